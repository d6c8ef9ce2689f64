"""Scripts are checked in every mode before anything is stored: a syntax error is refused with
its line (never with a suggestion to use --single, which would fail the same way), and a name
nothing binds is flagged (the script would stop with NameError)."""

import pytest
from test_api import api, counts, files, login  # noqa: F401 - the fixture and helpers

from runsurge_master.jobspec import SpecError
from runsurge_master.scriptcheck import check_script

SPEC = '[[tasks]]\nname = "a"\nscript = "job.py"\n'


def test_names_nothing_binds_are_flagged_with_their_line():
    source = """import csv
LIMIT = 3
def f(rows):
    global SEEN
    SEEN = 1
    return [r for r in rows if len(r) > LIMIT] + [totl]
class K:
    size = LIMIT
    def m(self):
        return self.size + SEEN
if __name__ == '__main__':
    try:
        import numpy as np
    except ImportError:
        np = None
    for i in range(2):
        pass
    print(f([[1]]), i, np, __file__, resutl)
"""
    warnings = check_script(source, "job.py")
    assert [w.split(": the name ")[1].split()[0] for w in warnings] == ["'totl'", "'resutl'"]
    assert "line 6" in warnings[0] and "line 18" in warnings[1] and "NameError" in warnings[0]


def test_star_imports_make_every_name_possible():
    assert check_script("from math import *\nprint(tau, whatever)\n", "job.py") == []


@pytest.mark.parametrize("source, why", [
    ("x = (\n", "line 1"),
    ("return 5\n", "'return' outside function"),
    ("def f():\n    nonlocal x\n", "nonlocal"),
    ("x = " + " + ".join(["1"] * 50000) + "\n", "too long or nested too deeply"),
    ("x = 1\0\n", "cannot be parsed"),
])
def test_scripts_that_cannot_run_are_refused(source, why):
    with pytest.raises(SpecError, match=why):
        check_script(source, "job.py")


@pytest.mark.parametrize("form, extra", [
    ({"mode": "single"}, {"d.csv": b"a\n1\n"}),
    ({"mode": "auto"}, {"d.csv": b"a\n1\n"}),
    ({"spec": SPEC}, {}),
])
def test_every_mode_refuses_a_syntax_error_and_stores_nothing(api, form, extra):  # noqa: F811
    client, sv = api
    h = login(client)
    before = counts(sv)
    r = client.post("/api/jobs", headers=h, data=form, files=files(**{"job.py": b"print(\n"}, **extra))
    assert r.status_code == 400
    assert "job.py: syntax error at line 1" in r.json()["detail"] and "single" not in r.json()["detail"]
    assert counts(sv) == before


def test_plan_and_submit_flag_an_undefined_name(api):  # noqa: F811
    client, _ = api
    h = login(client)
    script = b"if __name__ == '__main__':\n    print(totl)\n"
    for path in ("/api/plan", "/api/jobs"):
        r = client.post(path, headers=h, data={"mode": "single"}, files=files(**{"job.py": script}))
        assert r.status_code in (200, 201), r.text
        assert any("'totl' is not defined" in line for line in r.json()["explanation"]), r.json()
