"""Manual mode's group shape: one script over N archives, then an aggregator task."""

from __future__ import annotations

import csv
import zipfile

import pytest
from plan_runner import run_plan

from runsurge_master.jobspec import parse_spec
from runsurge_master.parallelizer import PlanError, plan_group

SCRIPT = '''
import csv, zipfile

with zipfile.ZipFile('input.zip') as z:
    numbers = [int(line) for name in sorted(z.namelist()) for line in z.read(name).split()]
with open('result.csv', 'w', newline='') as f:
    csv.writer(f).writerow([len(numbers), sum(numbers)])
'''

AGGREGATOR = '''
import csv, glob

total = count = 0
for name in sorted(glob.glob('*_result.csv')):
    with open(name) as f:
        n, s = next(csv.reader(f))
    count += int(n)
    total += int(s)
with open('final.csv', 'w', newline='') as f:
    csv.writer(f).writerow([count, total])
'''


def archive(path, values):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.txt", "\n".join(map(str, values[::2])))
        z.writestr("b.txt", "\n".join(map(str, values[1::2])))
    return path


def test_group_runs_each_archive_then_the_aggregator(tmp_path):
    parts = {f"part{i}.zip": archive(tmp_path / f"part{i}.zip", list(range(i * 100, i * 100 + 50)))
             for i in range(3)}
    plan = plan_group("count.py", SCRIPT, parts, {"part0.zip": 64 << 20, "part1.zip": 128 << 20},
                      "merge.py", AGGREGATOR)
    spec = parse_spec(plan.spec_toml, set(plan.files), 256 << 20, 3600, 100)
    by_name = {t.name: t for t in spec.tasks}
    assert set(by_name) == {"part0", "part1", "part2", "aggregate"}
    assert by_name["part0"].memory_bytes == 64 << 20 and by_name["part1"].memory_bytes == 128 << 20
    assert by_name["part2"].memory_bytes > 0  # estimated from the archive
    assert spec.producers_of(by_name["aggregate"]) == {"part0", "part1", "part2"}
    assert by_name["aggregate"].outputs is None  # every file it writes is a result
    results = run_plan(plan, tmp_path / "run")
    with open(results["final.csv"]) as f:
        count, total = map(int, next(csv.reader(f)))
    assert count == 150 and total == sum(range(50)) + sum(range(100, 150)) + sum(range(200, 250))


def test_the_archive_name_follows_the_script(tmp_path):
    script = SCRIPT.replace("'input.zip'", "FILE_NAME").replace("import csv, zipfile",
                                                                 "import csv, zipfile\nFILE_NAME = 'data.zip'")
    plan = plan_group("count.py", script, {"x.zip": archive(tmp_path / "x.zip", [1, 2])}, {}, "m.py", AGGREGATOR)
    assert '"data.zip" = "x.zip"' in plan.spec_toml


@pytest.mark.parametrize("change, message", [
    (dict(script="def broken(:\n"), "syntax error"),
    (dict(script="print('nothing written')\n"), "cannot tell which file it writes"),
    (dict(aggregator_name="count.py"), "different names"),
    (dict(memory={"nope.zip": 1}), "unknown archive"),
    (dict(memory={"part0.zip": -5}), "positive"),
    (dict(archives={}), "at least one archive"),
    (dict(aggregator_name="merge.sh"), "must be a .py script"),
])
def test_group_mistakes(tmp_path, change, message):
    kw = dict(script_name="count.py", script=SCRIPT, archives={"part0.zip": archive(tmp_path / "p.zip", [1])},
              memory={}, aggregator_name="merge.py", aggregator=AGGREGATOR)
    kw.update(change)
    with pytest.raises(PlanError, match=message):
        plan_group(**kw)


def test_not_a_zip(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_text("hello")
    with pytest.raises(PlanError, match="not a zip archive"):
        plan_group("count.py", SCRIPT, {"bad.zip": bad}, {}, "merge.py", AGGREGATOR)
