"""The worker's environment cache: a tree built once per id from wheels, read-only, evicted least
recently used at its size cap (never while in use); a wheel with an unsafe path is refused."""

import json
import subprocess
import zipfile

import pytest
from wheels import make_wheel

from runsurge_worker.environments import MANIFEST, EnvironmentCache, WheelError, image_of

A, B, C = "a" * 64, "b" * 64, "c" * 64


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src, house = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("house")
    make_wheel(src, house, "tinypkg", "1.0", body="VALUE = '" + "x" * 4000 + "'\n")
    (path,) = house.glob("*.whl")
    return path


def test_a_tree_is_built_once_read_only_and_reused(tmp_path, wheel):
    cache = EnvironmentCache(tmp_path / "envs", cap_bytes=1 << 30)
    with cache.use(A, [(wheel.name, "1" * 64)], lambda _: wheel) as tree:
        assert (tree / "tinypkg" / "__init__.py").read_text().startswith("VALUE")
        assert not (tree / "tinypkg" / "__init__.py").stat().st_mode & 0o222
        assert not (tree / "tinypkg").stat().st_mode & 0o222
    with cache.use(A, [(wheel.name, "1" * 64)], lambda _: pytest.fail("no wheel is read again")):
        pass
    assert cache.builds == 1 and cache.held() == [A]


def test_least_recently_used_trees_go_at_the_cap_but_not_one_in_use(tmp_path, wheel):
    cache = EnvironmentCache(tmp_path / "envs", cap_bytes=1 << 30)
    for env in (A, B):
        with cache.use(env, [(wheel.name, "1" * 64)], lambda _: wheel):
            pass
    size = json.loads((tmp_path / "envs" / A / MANIFEST).read_text())["size"]
    cache.cap_bytes = size * 5 // 2  # room for two trees
    with cache.use(A, [(wheel.name, "1" * 64)], lambda _: wheel):  # A is now the more recent
        pass
    with cache.use(C, [(wheel.name, "1" * 64)], lambda _: wheel):
        assert cache.held() == [A, C]  # B, least recently used, is gone
        with cache.use(B, [(wheel.name, "1" * 64)], lambda _: wheel):
            # over the cap with A, B and C: A goes; C and B are in use, so they stay
            assert cache.held() == [B, C]
    assert cache.builds == 4


def test_a_wheel_escaping_its_tree_is_refused_and_nothing_is_left(tmp_path):
    bad = tmp_path / "evil-1.0-py3-none-any.whl"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("evil/__init__.py", "")
        z.writestr("../../outside.py", "pwned = 1")
    cache = EnvironmentCache(tmp_path / "envs", cap_bytes=1 << 30)
    with pytest.raises(WheelError, match="unsafe path"):
        with cache.use(A, [(bad.name, "1" * 64)], lambda _: bad):
            pass
    assert not (tmp_path / "outside.py").exists() and not any((tmp_path / "envs").iterdir())
    assert not list((tmp_path / "envs").glob(f"*/{MANIFEST}"))


def test_a_vm_cache_keeps_an_ext4_image_of_the_tree_counted_at_the_cap(tmp_path, wheel):
    cache = EnvironmentCache(tmp_path / "envs", cap_bytes=1 << 30, images=True)
    with cache.use(A, [(wheel.name, "1" * 64)], lambda _: wheel) as tree:
        image = image_of(tree)
        # the file system's own content, read without mounting it (debugfs, from e2fsprogs)
        shown = subprocess.run(["debugfs", "-R", "cat /tinypkg/__init__.py", str(image)],
                               capture_output=True, text=True, check=True).stdout
        assert shown == (tree / "tinypkg" / "__init__.py").read_text()
        assert not image.stat().st_mode & 0o222
    with cache.use(B, [(wheel.name, "1" * 64)], lambda _: wheel):
        pass
    cache.cap_bytes = image.stat().st_size + 1  # one image and its tree do not fit: A goes
    with cache.use(B, [(wheel.name, "1" * 64)], lambda _: wheel):
        pass
    assert cache.held() == [B] and not image.exists()


def test_a_tree_kept_without_an_image_gets_one_when_a_vm_needs_it(tmp_path, wheel):
    with EnvironmentCache(tmp_path / "envs", cap_bytes=1 << 30).use(A, [(wheel.name, "1" * 64)],
                                                                     lambda _: wheel) as tree:
        assert not image_of(tree).exists()
    vm_cache = EnvironmentCache(tmp_path / "envs", cap_bytes=1 << 30, images=True)
    with vm_cache.use(A, [(wheel.name, "1" * 64)], lambda _: pytest.fail("not unpacked again")) as tree:
        assert image_of(tree).exists()
    assert vm_cache.builds == 0
