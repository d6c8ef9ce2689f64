"""User mistakes: a clear PlanError, and nothing left behind."""

from __future__ import annotations

import tempfile

import pytest
from plan_data import numbers
from plan_runner import SCRIPTS

from runsurge_master.parallelizer import PlanError, plan_job

GOOD = (SCRIPTS / "column_sums.py").read_text()


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert not list(folder.iterdir()), "a failed plan left files behind"


BROKEN = """import csv

FILE_NAME = 'numbers.csv'

def broken(rows)
    return len(rows)

if __name__ == '__main__':
    print(broken([]))
"""


def test_syntax_error(tmp_path):
    with pytest.raises(PlanError, match=r"job.py: syntax error at line 5, column 17: expected ':'"):
        plan_job(BROKEN, "job.py", {"numbers.csv": numbers(tmp_path / "n.csv")})


def test_no_main_block(tmp_path):
    with pytest.raises(PlanError, match="no main block"):
        plan_job((SCRIPTS / "no_main.py").read_text(), "job.py", {"numbers.csv": numbers(tmp_path / "n.csv")})


@pytest.mark.parametrize("data, message", [
    (b"", "numbers.csv is empty"),
    (b"a,b,c,d,e\n1,2,3\n", "line 2 has 3 fields, the header has 5"),
    (b'a,b,c,d,e\n1,2,3,4,"5\n', "unbalanced quote"),
])
def test_empty_or_malformed_csv(tmp_path, data, message):
    path = tmp_path / "numbers.csv"
    path.write_bytes(data)
    with pytest.raises(PlanError, match=message):
        plan_job(GOOD, "job.py", {"numbers.csv": path}, chunks=2)


def test_empty_data_for_a_script_outside_the_convention(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_bytes(b"")
    source = "FILE_NAME = 'numbers.csv'\nif __name__ == '__main__':\n    print(open(FILE_NAME).read())\n"
    with pytest.raises(PlanError, match="is empty"):
        plan_job(source, "job.py", {"numbers.csv": path})


def test_file_name_must_match_one_upload(tmp_path):
    a, b = numbers(tmp_path / "a.csv"), numbers(tmp_path / "b.csv")
    with pytest.raises(PlanError, match="none of the uploaded files"):
        plan_job(GOOD, "job.py", {"a.csv": a, "b.csv": b})
    with pytest.raises(PlanError, match="no data file was uploaded"):
        plan_job(GOOD, "job.py", {})


def test_a_single_upload_is_what_file_name_means(tmp_path):
    plan = plan_job(GOOD, "job.py", {"other.csv": numbers(tmp_path / "o.csv")}, chunks=2)
    chunk_script = plan.files["job_chunk0.py"].decode()
    assert "FILE_NAME = 'other.csv'" in chunk_script
    plan.cleanup()


@pytest.mark.parametrize("script_name, data_name, chunks, message", [
    ("job.txt", "numbers.csv", None, "must be a .py file"),
    ("../job.py", "numbers.csv", None, "not a valid file name"),
    ("job.py", "a/b.csv", None, "not a valid file name"),
    ("job.py", "numbers.csv", 0, "positive integer"),
])
def test_bad_names_and_options(tmp_path, script_name, data_name, chunks, message):
    with pytest.raises(PlanError, match=message):
        plan_job(GOOD, script_name, {data_name: numbers(tmp_path / "n.csv")}, chunks=chunks)
