"""Validating and cutting the CSV, and choosing how many chunks."""

from __future__ import annotations

import csv
import io
import tracemalloc

import pytest

from runsurge_master.parallelizer import PlanError
from runsurge_master.parallelizer.chunking import (
    CHUNK_TARGET_BYTES,
    CsvScan,
    choose_chunks,
    plan_chunks,
    scan_csv,
    write_chunks,
)
from runsurge_master.parallelizer.memory import estimate


def rows_of(data: bytes, **kw) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), **kw))


def cut(tmp_path, data: bytes, k: int, **kw) -> tuple[CsvScan, list[bytes]]:
    path = tmp_path / "d.csv"
    path.write_bytes(data)
    scan = scan_csv(path, "d.csv", kw, None)
    folder = tmp_path / "parts"
    folder.mkdir()
    parts = write_chunks(scan, plan_chunks(scan, k), folder, "d")
    return scan, [p.read_bytes() for p in parts]


def check_chunks(data: bytes, parts: list[bytes], **kw) -> None:
    """Every chunk starts with the header; together they hold exactly the original rows, in order."""
    whole = rows_of(data, **kw)
    got = []
    for p in parts:
        r = rows_of(p, **kw)
        assert r[0] == whole[0] and len(r) > 1
        got += r[1:]
    assert got == whole[1:]


def table(n: int, eol: str = "\n") -> bytes:
    return ("a,b,c" + eol + "".join(f"{i},{i * 2},x{i}{eol}" for i in range(n))).encode()


@pytest.mark.parametrize("data", [
    table(100),
    table(100, "\r\n"),
    table(100)[:-1],                                   # no newline at the end
    "\ufeff".encode() + table(50),                     # a byte-order mark
    b"a,b\n" + b"".join(b'%d,"multi\nline, with ""quotes"""\n' % i for i in range(60)),
    b"a,b\r\n" + b"".join(b'%d,"x\r\ny"\r\n' % i for i in range(60)),
    b"a,b\n1,2\n\n3,4\n" + b"5,6\n" * 30,               # a blank line is a row like any other
])
def test_chunks_are_whole_records_in_order(tmp_path, data):
    scan, parts = cut(tmp_path, data, 4)
    assert len(parts) == 4
    assert sum(len(rows_of(p)) - 1 for p in parts) == scan.rows
    check_chunks(data, parts)


def test_other_delimiters(tmp_path):
    data = b"a;b\n" + b"".join(b"%d;%d\n" % (i, i) for i in range(40))
    scan, parts = cut(tmp_path, data, 3, delimiter=";")
    assert scan.columns == 2 and len(parts) == 3
    check_chunks(data, parts, delimiter=";")


def test_never_more_chunks_than_rows(tmp_path):
    scan, parts = cut(tmp_path, table(3), 10)
    assert len(parts) == 3 and scan.rows == 3


def test_header_only_has_no_rows(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"a,b,c")
    scan = scan_csv(path, "d.csv", {}, None)
    assert scan.rows == 0 and scan.header_end == 5


def test_bare_carriage_returns_are_not_cut(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"a,b\r1,2\r3,4\r")
    assert scan_csv(path, "d.csv", {}, None).unsplittable


@pytest.mark.parametrize("data, message", [
    (b"", "is empty"),
    (b"\n\n  \n", "is empty"),
    (b"\na,b\n1,2\n", "the header. is empty"),
    (b"a,b,c\n1,2,3\n4,5\n", "line 3 has 2 fields, the header has 3"),
    (b'a,b\n1,"x,y"\n2,"z",3\n', "has 3 fields, the header has 2"),
    (b'a,b\n1,"unterminated\n2,3\n', "unbalanced quote"),
    (b"a,b\n1,\x002\n", "NUL bytes"),
    (b"a,b\n1,\xff\xfe\n", "not valid utf-8"),
])
def test_malformed_csv_is_a_user_error(tmp_path, data, message):
    path = tmp_path / "d.csv"
    path.write_bytes(data)
    with pytest.raises(PlanError, match=message):
        scan_csv(path, "d.csv", {}, None)


def test_large_files_are_streamed(tmp_path):
    path = tmp_path / "big.csv"
    line = b"12345.678,-0.000123,abcdefgh,42,3.14159\n"
    with open(path, "wb") as f:
        f.write(b"a,b,c,d,e\n")
        for _ in range(40):
            f.write(line * 25_000)  # 40 MB in total
    tracemalloc.start()
    scan = scan_csv(path, "big.csv", {}, None)
    folder = tmp_path / "parts"
    folder.mkdir()
    parts = write_chunks(scan, plan_chunks(scan, 4), folder, "big")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert scan.rows == 1_000_000 and len(parts) == 4
    assert peak < 24 << 20, f"peak {peak >> 20} MiB while cutting a 40 MB file"
    assert sum(p.stat().st_size for p in parts) == path.stat().st_size + 3 * 10


def fake_scan(size: int, rows: int) -> CsvScan:
    return CsvScan(path=None, name="d.csv", size=size, header_end=10, rows=rows, columns=5,
                   marks=[(10, 0), (size, rows)])


def memory_for(scan):
    return lambda nbytes: estimate(scan.rows * nbytes / scan.data_bytes, scan.columns, scan.field_chars)


def test_small_inputs_are_not_split():
    scan = fake_scan(200_000, 5_000)
    choice = choose_chunks(scan, 1, [8 << 30] * 4, 0.5, memory_for(scan), None)
    assert choice.k == 1 and "each extra task costs" in choice.why


def test_large_inputs_use_the_live_workers():
    scan = fake_scan(1 << 30, 25_000_000)
    choice = choose_chunks(scan, 1, [64 << 30] * 3, 0.5, memory_for(scan), None)
    assert choice.k % 3 == 0  # even waves over the 3 workers...
    assert scan.data_bytes / choice.k <= CHUNK_TARGET_BYTES < scan.data_bytes / (choice.k - 3)  # ...of ≤128 MiB
    assert "at most" in choice.why


def test_chunks_shrink_to_fit_the_largest_worker():
    scan = fake_scan(1 << 30, 25_000_000)
    choice = choose_chunks(scan, 1, [256 << 20, 512 << 20], 0.5, memory_for(scan), None)
    assert choice.k > 8 and "free memory" in choice.why  # more than the size rule alone would cut
    assert memory_for(scan)(scan.data_bytes // choice.k) <= 512 << 20


def test_every_round_passes_over_the_data_again():
    scan = fake_scan(200_000_000, 5_000_000)  # about 10 s of work
    assert choose_chunks(scan, 1, [8 << 30] * 2, 0.5, memory_for(scan), None).k == 2
    # three rounds on two workers read each chunk three times: slower than one sequential pass
    assert choose_chunks(scan, 3, [8 << 30] * 2, 0.5, memory_for(scan), None).k == 1
    assert choose_chunks(scan, 3, [8 << 30] * 8, 0.5, memory_for(scan), None).k == 8


def test_the_user_may_override_the_chunk_count():
    scan = fake_scan(1000, 7)
    assert choose_chunks(scan, 1, [], 0.5, memory_for(scan), 4).k == 4
    assert choose_chunks(scan, 1, [], 0.5, memory_for(scan), 50).k == 7
