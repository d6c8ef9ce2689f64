"""The import analysis behind the submission check (imports.py): shapes of real scripts, wheels'
file lists, and the refusal through the HTTP API with nothing stored."""

import ast
import importlib.util
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from runsurge_master.api import create_app
from runsurge_master.config import load_config
from runsurge_master.imports import guest_modules, required_imports, wheel_modules
from runsurge_master.main import build

REPO = Path(__file__).resolve().parents[2]
PY = (3, 11)


def needed(src: str) -> list[str]:
    return [i.module for i in required_imports(ast.parse(src), PY)]


def test_every_kind_of_import_statement_counts_wherever_it_runs():
    src = """
import os.path, json as j
from collections.abc import Mapping
from . import sibling
from .pkg import thing
def f():
    def g():
        import inner_nested
    class C:
        from in_class import x
    for _ in ():
        import in_loop
    while False:
        pass
    with open("x") as fh:
        import in_with
    async def h():
        async with a:
            import in_async
if __name__ == "__main__":
    import in_main
elif flag:
    import in_elif
else:
    import in_else
match x:
    case 1:
        import in_match
try:
    pass
finally:
    import in_finally
"""
    assert needed(src) == ["json", "os", "collections", "inner_nested", "in_class", "in_loop", "in_with",
                           "in_async", "in_main", "in_elif", "in_else", "in_match", "in_finally"]


def test_imports_the_script_copes_without_are_optional():
    src = """
try:
    import ujson as json
except ImportError:
    import json_fallback
try:
    import fast_thing
except (ValueError, ModuleNotFoundError):
    fast_thing = None
else:
    import needs_fast_thing
try:
    import anything
except Exception:
    pass
try:
    import bare
except:
    pass
try:
    import not_guarded
except KeyError:
    pass
import contextlib
with contextlib.suppress(ImportError):
    import suppressed
try:
    import star
except* ImportError:
    pass
"""
    assert needed(src) == ["json_fallback", "not_guarded", "contextlib"]


def test_branches_a_guest_never_takes_are_skipped_and_dynamic_imports_ignored():
    src = """
import sys, os, importlib
from typing import TYPE_CHECKING
import typing
if TYPE_CHECKING:
    import only_for_types
if typing.TYPE_CHECKING:
    import also_for_types
if sys.version_info < (3, 11):
    import tomli as tomllib
else:
    import tomllib
if sys.version_info >= (3, 12):
    import future_only
if sys.version_info[:2] == (3, 11):
    import exact
if sys.version_info.minor < 8:
    import ancient
if sys.platform == "win32":
    import winreg
if sys.platform.startswith("linux"):
    import linux_only
if os.name == "nt" or sys.platform == "darwin":
    import msvcrt
if not (os.name == "posix"):
    import never
if False:
    import dead
if flag and sys.platform == "win32":
    import still_dead
if flag or sys.platform == "win32":
    import maybe
importlib.import_module("dynamic_a")
__import__("dynamic_b")
"""
    assert needed(src) == ["importlib", "os", "sys", "typing", "tomllib", "exact", "linux_only", "maybe"]


def test_deeply_nested_statements_do_not_exhaust_the_stack():
    depth = 80  # the parser's own limit is near 100 nested blocks
    src = "".join("    " * i + "if x:\n" for i in range(depth)) + "    " * depth + "import deep\n"
    assert needed(src) == ["deep"]


def test_the_guest_modules_are_the_stdlib_and_debians_packages():
    names = guest_modules()
    assert {"json", "sqlite3", "numpy", "asyncio", "_thread", "__future__"} <= names
    assert not {"pandas", "yaml", "tkinter"} & names  # not installed in the guest (tkinter: python3-tk)


def test_the_committed_guest_list_is_what_the_image_build_recorded():
    """The master ships the list (it has no image); the image for the current recipe records it."""
    spec = importlib.util.spec_from_file_location("vm_image_build", REPO / "vm-images/build.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    image = builder.find_image()
    if image is None:
        pytest.skip("skipped: no guest image for the current recipe (make image builds it)")
    recorded = (image / builder.MODULES).read_text().split()
    assert sorted(guest_modules()) == recorded, (
        "master/runsurge_master/guest_python_modules.txt differs from the image's list: copy "
        f"{image / builder.MODULES} over it")


def test_a_wheel_provides_what_its_files_put_on_sys_path(tmp_path):
    path = tmp_path / "scikit_learn-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name in ["sklearn/__init__.py", "sklearn/tree/_tree.cpython-311-x86_64-linux-gnu.so", "six.py",
                     "_fast.cpython-311-x86_64-linux-gnu.so", "google/protobuf/__init__.py", "hook.pth",
                     "scikit_learn-1.0.dist-info/RECORD", "scikit_learn-1.0.data/purelib/extra_mod/__init__.py",
                     "scikit_learn-1.0.data/scripts/tool", "scikit_learn-1.0.data/headers/x.h"]:
            z.writestr(name, "")
    assert wheel_modules(path) == {"sklearn", "six", "_fast", "google", "extra_mod"}
    (tmp_path / "broken.whl").write_bytes(b"not a zip")
    assert wheel_modules(tmp_path / "broken.whl") == set()


def post(client, h, files: dict[str, bytes], **data):
    return client.post("/api/jobs", headers=h, data=data, files=[("files", (n, b)) for n, b in files.items()])


@pytest.fixture
def api(tmp_path):
    sv = build(load_config(home=tmp_path / "m", package_index_url=""))
    with TestClient(create_app(sv)) as client:
        client.post("/api/auth/register", json={"email": "a@example.com", "password": "correct horse battery 9"})
        token = client.post("/api/auth/login", json={"email": "a@example.com",
                                                     "password": "correct horse battery 9"}).json()["access_token"]
        yield sv, client, {"authorization": f"Bearer {token}"}


@pytest.mark.parametrize("mode", ["single", "auto"])
def test_a_script_importing_an_unknown_module_is_refused_in_every_mode(api, mode):
    sv, client, h = api
    script = b"import json\ndef main():\n    import pandas\n    print(pandas)\nif __name__ == '__main__':\n    main()\n"
    r = post(client, h, {"by_region.py": script, "data.csv": b"a,b\n1,2\n"}, mode=mode, script="by_region.py")
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == (
        "by_region.py imports 'pandas' (line 3), which is neither in the worker image, nor among the job's files, "
        "nor in the job's requirements; list pandas in a requirements.txt and submit with --requirements "
        "requirements.txt")
    assert not list(sv.store.root.glob("*/*")) or all(p.parent.name == "incoming" for p in sv.store.root.glob("*/*"))
    assert client.get("/api/jobs", headers=h).json() == []


def test_spec_tasks_see_their_own_files_and_local_modules_are_followed(api):
    sv, client, h = api
    spec = """
[[tasks]]
name = "a"
script = "main.py"
inputs = { "helper.py" = "helper.py" }
[[tasks]]
name = "b"
script = "other.py"
"""
    ok = {"main.py": b"import helper\nfrom . import x\n", "helper.py": b"import json\n", "other.py": b"import os\n"}
    assert post(client, h, ok, spec=spec).status_code == 201
    bad = dict(ok, **{"helper.py": b"try:\n    import yaml\nexcept ImportError:\n    pass\nimport sklearn\n"})
    r = post(client, h, bad, spec=spec)
    assert r.status_code == 400 and r.json()["detail"].startswith(
        "helper.py imports 'sklearn' (line 5), which is neither in the worker image, nor among task 'a''s files")
    assert 'add requirements = ["scikit-learn"] to the job spec' in r.json()["detail"]
    # task b's folder holds no helper.py: importing it there would fail
    r = post(client, h, dict(ok, **{"other.py": b"import helper\n"}), spec=spec)
    assert r.status_code == 400 and "other.py imports 'helper'" in r.json()["detail"]
    assert len(client.get("/api/jobs", headers=h).json()) == 1
