import pytest

from runsurge_master.jobspec import SpecError, parse_size, parse_spec, single_script_spec

GOOD = """
name = "wc"
[[tasks]]
name = "a"
script = "count.py"
inputs = { "text.txt" = "part_a.txt" }
outputs = ["counts.json"]
memory = "64MiB"
[[tasks]]
name = "merge"
script = "merge.py"
inputs = { "a.json" = "task:a/counts.json" }
"""
UPLOADS = {"count.py", "merge.py", "part_a.txt"}


def parse(text, uploads=UPLOADS):
    return parse_spec(text, uploads, 256 << 20, 3600, 100)


def test_valid_spec_builds_the_dag():
    spec = parse(GOOD)
    assert [t.name for t in spec.tasks] == ["a", "merge"]
    assert spec.tasks[0].memory_bytes == 64 << 20
    assert spec.tasks[1].memory_bytes == 256 << 20  # the default
    assert spec.producers_of(spec.tasks[1]) == {"a"}
    assert spec.consumed() == {("a", "counts.json")}
    assert spec.tasks[1].outputs is None  # collect every new file


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("task:a/counts.json", "task:zz/counts.json"), "unknown task 'zz'"),
    (GOOD.replace("task:a/counts.json", "task:a/other.json"), "does not declare"),
    (GOOD.replace('"part_a.txt"', '"missing.txt"'), "not uploaded: missing.txt"),
    (GOOD.replace('"text.txt"', '"../etc/passwd"'), "not a valid file name"),
    (GOOD.replace('script = "count.py"', 'script = "/bin/count.py"'), "not a valid file name"),
    (GOOD.replace('memory = "64MiB"', 'memory = "lots"'), "expected a size"),
    (GOOD.replace('name = "merge"', 'name = "a"'), "two tasks are named 'a'"),
    (GOOD + "\nbogus = 1\n", "unknown key"),
    ("name = 1", "name must be a string"),
    ("[[tasks", "not valid TOML"),
    ('name = "x"', "at least one"),
])
def test_bad_specs_are_refused_with_a_clear_reason(text, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        parse(text)


def test_cycles_are_refused():
    text = """
[[tasks]]
name = "a"
script = "s.py"
inputs = { "in" = "task:b/out" }
outputs = ["out"]
[[tasks]]
name = "b"
script = "s.py"
inputs = { "in" = "task:a/out" }
outputs = ["out"]
"""
    with pytest.raises(SpecError, match="cycle: a, b"):
        parse(text, {"s.py"})


def test_a_long_chain_does_not_hit_the_recursion_limit():
    parts = ['[[tasks]]\nname = "t0"\nscript = "s.py"\noutputs = ["o"]\n']
    for i in range(1, 3000):
        parts.append(f'[[tasks]]\nname = "t{i}"\nscript = "s.py"\n'
                     f'inputs = {{ "i" = "task:t{i-1}/o" }}\noutputs = ["o"]\n')
    spec = parse_spec("".join(parts), {"s.py"}, 1 << 20, 60, 5000)
    assert len(spec.tasks) == 3000


def test_sizes():
    assert parse_size("1GiB", "m") == 1 << 30
    assert parse_size("1.5 MB", "m") == 1_500_000
    assert parse_size(4096, "m") == 4096
    for bad in ("-1", 0, "1XB", True):
        with pytest.raises(SpecError):
            parse_size(bad, "m")


def test_single_script_spec_round_trips():
    spec = parse(single_script_spec("job.py", ["a.csv", "b.csv"]), {"job.py", "a.csv", "b.csv"})
    (task,) = spec.tasks
    assert task.script == "job.py" and set(task.inputs) == {"a.csv", "b.csv"} and task.outputs is None


def test_a_tasks_own_requirements_replace_the_job_wide_list():
    spec = parse('requirements = ["Pandas"]\n'
                 '[[tasks]]\nname = "a"\nscript = "a.py"\n'
                 '[[tasks]]\nname = "b"\nscript = "a.py"\nrequirements = ["PyYAML==6.0"]\n'
                 '[[tasks]]\nname = "c"\nscript = "a.py"\nrequirements = []\n', {"a.py"})
    assert [spec.requirements_of(t) for t in spec.tasks] == [["pandas"], ["pyyaml==6.0"], []]
    for bad, message in (('"pyyaml"', "task 'b': requirements must be a list"),
                         ('["-e ."]', "task 'b': requirements line 1: '-e .': pip options are not accepted")):
        with pytest.raises(SpecError) as e:
            parse(f'[[tasks]]\nname = "b"\nscript = "a.py"\nrequirements = {bad}\n', {"a.py"})
        assert str(e.value).startswith(message), e.value
