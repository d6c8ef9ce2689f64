"""The worker's cache at start (cache.py, objects.ContentStore.remove_leftovers), on a real directory:
the temporary files of writes a crash interrupted (a FileReceiver's `.part-*` beside its object, a
`.tmp-*`, anything in `incoming`) are deleted; whole objects stay, and so does everything else."""

import hashlib

from runsurge_worker.cache import Cache


def test_leftovers_of_interrupted_writes_go_and_objects_stay(tmp_path):
    cache = Cache(tmp_path / "cache")
    src = tmp_path / "data.bin"
    src.write_bytes(b"x" * 10_000)
    kept, _ = cache.add_file(src)
    # A peer's stream cut by the worker's end: half written beside where it would land.
    data = b"y" * 3_000_000
    announced = hashlib.sha256(data).hexdigest()
    half = cache.receiver(announced, len(data), 1 << 30)
    half.write(data[:1_000_000])
    # A stream whose id is not known yet (put_stream) goes to `incoming` first: cut there too.
    cut = cache._incoming()
    cut.write_bytes(b"z" * 5000)  # received, not landed yet
    other = cache.root / kept[:2] / f".tmp-{'0' * 8}"
    other.write_bytes(b"old")
    leftovers = sorted(p for p in cache.root.rglob("*") if p.is_file() and p.name != kept)
    assert sorted(p.parent.name if p.parent.name == "incoming" else p.name[:5] for p in leftovers) \
        == [".part", ".tmp-", "incoming"]
    unrelated = cache.root / kept[:2] / "notes.txt"  # not ours to judge: kept
    unrelated.write_text("n")

    assert cache.remove_leftovers() == len(leftovers)
    assert sorted(p for p in cache.root.rglob("*") if p.is_file()) == sorted([cache.path(kept), unrelated])
    assert cache.ids() == [kept] and cache.path(kept).read_bytes() == src.read_bytes()
    assert cache.remove_leftovers() == 0  # nothing left to remove
    # The cache still takes the interrupted object whole afterwards.
    again = cache.receiver(announced, len(data), 1 << 30)
    again.write(data)
    assert again.commit() == (announced, len(data)) and cache.has(announced)
