"""The data file: validate it, find record boundaries, cut it into chunk files (header + a byte
range of whole records each, streamed: a 1 GB input is never in memory at once), and decide how
many chunks are worth it.

Chunks are byte-identical slices of the original, so the user's own load block parses them
exactly as it parses the whole file. Without quote characters every newline ends a record (a fast
scan with bytes.count); with quotes the csv module itself finds the record ends.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runsurge_master.parallelizer.model import PlanError

THROUGHPUT_BPS = 20e6      # bytes/s a pure-Python script gets through (csv parsing + a loop)
# Past this, a chunk's rows held as Python lists slow the script per byte (allocator and GC):
# measured on 1 GB over 2 workers (bench/speedup.py), 8 chunks of 134 MB ran in 34 s, 2 of 537 MB in 44 s.
CHUNK_TARGET_BYTES = 128 << 20
MAX_AUTO_CHUNKS = 64
ASCII_COMPATIBLE = {"utf-8", "utf-8-sig", "ascii", "latin-1", "iso8859-1", "cp1252", "iso8859-15"}
SAMPLE_ROWS = 2000


@dataclass
class CsvScan:
    path: Path
    name: str
    size: int
    header_end: int = 0                  # byte offset just after the header record
    rows: int = 0                        # data records after the header
    columns: int = 0                     # fields in the header
    marks: list[tuple[int, int]] = field(default_factory=list)  # (record boundary offset, rows before it)
    field_chars: float = 8.0             # average characters per field (sampled)
    unsplittable: str = ""               # why its records cannot be located safely
    sample: list[bytes] = field(default_factory=list)  # the first data lines (no quoting), for cost estimates

    @property
    def data_bytes(self) -> int:
        return self.size - self.header_end


def check_not_empty(path: Path, name: str) -> int:
    size = path.stat().st_size
    if size == 0:
        raise PlanError(f"{name} is empty")
    with open(path, "rb") as f:
        if not f.read(1 << 16).strip() and size <= 1 << 16:
            raise PlanError(f"{name} is empty (only blank lines)")
    return size


def scan_csv(path: Path, name: str, reader_kwargs: dict[str, object], encoding: str | None,
             strict: bool = True, lines: bool = False) -> CsvScan:
    """Validate the CSV (PlanError when malformed) and find record boundaries to cut at.
    strict: every row must have as many fields as the header (blank lines excepted).
    lines: the script reads lines, not csv records (quotes mean nothing to it; it parses each
    line itself, so the field count is its business)."""
    size = check_not_empty(path, name)
    scan = CsvScan(path=path, name=name, size=size)
    enc = codecs.lookup(encoding or "utf-8").name
    dialect = csv.reader([], **reader_kwargs).dialect
    quoting = dialect.quoting != csv.QUOTE_NONE and dialect.quotechar is not None
    if enc not in ASCII_COMPATIBLE:
        scan.unsplittable = f"its encoding {enc} is not ASCII-compatible"
        return scan
    special = [c.encode(enc) for c in (dialect.quotechar if quoting else None, dialect.escapechar) if c]
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    if lines:
        return _fast_scan(scan, enc, False, dialect.delimiter.encode(enc))
    if any(s in head for s in special) or _has(path, special):
        return _slow_scan(scan, reader_kwargs, enc, strict, dialect)
    return _fast_scan(scan, enc, strict, dialect.delimiter.encode(enc))


def _has(path: Path, needles: list[bytes]) -> bool:
    if not needles:
        return False
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            if any(n in block for n in needles):
                return True
    return False


def _block_size(size: int) -> int:
    return min(4 << 20, max(512, size // 1024))


def _granule(size: int) -> int:
    """Record boundaries are kept about this far apart (~2000 per file): enough to cut anywhere."""
    return max(1, size // 2048)


def _fast_scan(scan: CsvScan, enc: str, strict: bool, delim: bytes) -> CsvScan:
    """No quoting in the file: records are lines."""
    decoder = codecs.getincrementaldecoder(enc)("strict")
    carry, offset, samples = b"", 0, []
    granule, next_mark = _granule(scan.size), 0
    with open(scan.path, "rb") as f:
        while True:
            block = f.read(_block_size(scan.size))
            final = not block
            _decode(decoder, block, final, f"{scan.name} is not valid {enc} text", offset + len(carry))
            if b"\0" in block:
                raise PlanError(f"{scan.name} contains NUL bytes; is it a binary file?")
            data = carry + block
            if final and not data:
                break
            cut = len(data) - 1 if final else data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            complete, carry = data[:cut + 1], data[cut + 1:]
            if b"\r" in complete and complete.count(b"\r") != complete.count(b"\r\n"):
                scan.unsplittable = "it ends lines with a bare carriage return"
            start = 0
            if scan.header_end == 0:
                nl = complete.find(b"\n")
                start = nl + 1 if nl >= 0 else len(complete)
                if not complete[:start].strip():
                    raise PlanError(f"{scan.name}: the first line (the header) is empty")
                scan.columns = complete[:start].count(delim) + 1
                scan.header_end = start
                scan.marks.append((start, 0))
                next_mark = start + granule
            body = complete[start:]
            n_lines = body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)
            if strict and body.count(delim) != n_lines * (scan.columns - 1):
                _check_fields(body, delim, scan, 2 + scan.rows)  # only then look line by line
            if len(samples) < SAMPLE_ROWS:
                samples.extend(body[:1 << 16].split(b"\n")[:-1][:SAMPLE_ROWS - len(samples)])
            base, pos, rows = offset + start, 0, scan.rows
            while next_mark < base + len(body):  # a few boundaries inside this block
                nl = body.find(b"\n", max(0, next_mark - base))
                if nl < 0 or base + nl + 1 >= offset + len(complete):
                    break
                rows += body.count(b"\n", pos, nl + 1)
                pos = nl + 1
                scan.marks.append((base + pos, rows))
                next_mark = base + pos + granule
            scan.rows += n_lines
            offset += len(complete)
            if offset > scan.marks[-1][0]:
                scan.marks.append((offset, scan.rows))
            if final:
                break
    scan.sample = samples
    if samples and scan.columns:
        chars = sum(len(s) for s in samples) - len(samples) * (scan.columns - 1)
        scan.field_chars = max(1.0, chars / (len(samples) * scan.columns))
    return scan


def _decode(decoder: codecs.IncrementalDecoder, block: bytes, final: bool, what: str, offset: int) -> None:
    try:
        decoder.decode(block, final)
    except UnicodeDecodeError as e:
        raise PlanError(f"{what} (near byte {offset + e.start})") from None


def _check_fields(body: bytes, delim: bytes, scan: CsvScan, first_line: int) -> None:
    """Every non-blank line has as many fields as the header."""
    want = scan.columns - 1
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    counts = list(map(bytes.count, lines, itertools.repeat(delim)))
    for k, (c, line) in enumerate(zip(counts, lines, strict=True)):
        if c != want and line.strip(b"\r"):
            raise PlanError(f"{scan.name}: line {first_line + k} has {c + 1} fields, the header has "
                            f"{scan.columns} (a malformed CSV?)")


def _slow_scan(scan: CsvScan, kwargs: dict[str, object], enc: str, strict: bool,
               dialect: csv.Dialect) -> CsvScan:
    """Quoted fields may hold newlines: let the csv module say where each record ends."""
    offset = 0
    quotes = 0
    q = (dialect.quotechar or "").encode(enc)

    def lines():
        nonlocal offset, quotes
        for raw in f:
            if b"\0" in raw:
                raise PlanError(f"{scan.name} contains NUL bytes; is it a binary file?")
            try:
                text = raw.decode(enc)
            except UnicodeDecodeError as e:
                raise PlanError(f"{scan.name} is not valid {enc} text (near byte {offset + e.start})") from None
            if q:
                quotes += raw.count(q)
            offset += len(raw)
            yield text

    granule = _granule(scan.size)
    samples = 0
    chars = 0
    with open(scan.path, "rb") as f:
        reader = csv.reader(lines(), **kwargs)
        try:
            header = next(reader, None)
            if not header:
                raise PlanError(f"{scan.name}: the first line (the header) is empty")
            scan.columns, scan.header_end = len(header), offset
            scan.marks.append((offset, 0))
            next_mark = offset + granule
            for row in reader:
                scan.rows += 1
                if strict and row and len(row) != scan.columns:
                    raise PlanError(f"{scan.name}: line {reader.line_num} has {len(row)} fields, the header "
                                    f"has {scan.columns} (a malformed CSV?)")
                if samples < SAMPLE_ROWS and row:
                    samples += 1
                    chars += sum(len(x) for x in row) / len(row)
                if offset >= next_mark:
                    scan.marks.append((offset, scan.rows))
                    next_mark = offset + granule
        except csv.Error as e:
            if "new-line character" in str(e):
                scan.unsplittable = "it ends lines with a bare carriage return"
                scan.marks = []
                return scan
            raise PlanError(f"{scan.name}: malformed CSV at line {reader.line_num}: {e}") from None
    if scan.marks[-1][0] != offset:
        scan.marks.append((offset, scan.rows))
    if q and dialect.doublequote and not dialect.escapechar and quotes % 2:
        raise PlanError(f"{scan.name}: unbalanced quote characters (an unterminated quoted field?)")
    if samples:
        scan.field_chars = max(1.0, chars / samples)
    return scan


# -- cutting --------------------------------------------------------------------------------------------

@dataclass
class Chunk:
    start: int   # byte offsets of its records in the original file
    end: int
    rows: int


def plan_chunks(scan: CsvScan, k: int) -> list[Chunk]:
    """k chunks of about equal bytes, cut at record boundaries; never an empty chunk."""
    marks = scan.marks
    if k <= 1 or len(marks) < 2:
        return [Chunk(scan.header_end, scan.size, scan.rows)]
    offsets = [m[0] for m in marks]
    cuts = [marks[0]]
    for i in range(1, k):
        target = scan.header_end + scan.data_bytes * i / k
        j = bisect.bisect_left(offsets, target)
        cand = [marks[x] for x in (j - 1, j) if 0 <= x < len(marks)]
        best = min(cand, key=lambda m: abs(m[0] - target))
        if best[1] > cuts[-1][1] and best[1] < scan.rows:
            cuts.append(best)
    cuts.append((scan.size, scan.rows))
    return [Chunk(a[0], b[0], b[1] - a[1]) for a, b in zip(cuts, cuts[1:], strict=False) if b[1] > a[1]]


def write_chunks(scan: CsvScan, chunks: list[Chunk], folder: Path, stem: str) -> list[Path]:
    """Each chunk file: the header bytes then its byte range, copied 1 MiB at a time."""
    paths = []
    with open(scan.path, "rb") as src:
        header = src.read(scan.header_end)
        for i, c in enumerate(chunks):
            path = folder / f"{stem}_part{i:03d}.csv"
            with open(path, "wb") as out:
                out.write(header)
                src.seek(c.start)
                left = c.end - c.start
                while left > 0:
                    block = src.read(min(1 << 20, left))
                    if not block:
                        break
                    out.write(block)
                    left -= len(block)
            paths.append(path)
    return paths


def header_bytes(scan: CsvScan) -> bytes:
    with open(scan.path, "rb") as f:
        return f.read(scan.header_end)


# -- how many chunks --------------------------------------------------------------------------------

@dataclass
class ChunkChoice:
    k: int
    why: str


def choose_chunks(scan: CsvScan, rounds: int, workers: list[int], overhead_s: float,
                  memory_for: Callable[[int], int], requested: int | None, work_s: float | None = None) -> ChunkChoice:
    """Fewest chunks that fit the biggest worker's free memory; more while each one saves more
    time than a task costs; never more than live workers (they would only queue) or rows."""
    rows = scan.rows
    workers = [w for w in workers if w > 0]
    if requested is not None:
        k = max(1, min(requested, rows))
        note = f" (capped at the {rows} rows)" if k < requested else ""
        return ChunkChoice(k, f"{k} chunk(s), as requested{note}")
    work_s = scan.size / THROUGHPUT_BPS if work_s is None else work_s
    slots = len(workers) or 2
    assumed = "" if workers else " (no live workers reported; assuming 2)"
    k_mem = 1
    if workers:
        biggest = max(workers)
        while k_mem < min(rows, 4096) and memory_for(scan.data_bytes // k_mem) > biggest:
            k_mem += 1

    def wall(k: int) -> float:  # every round: a pass over a chunk, then a combine task
        return overhead_s + work_s if k == 1 else rounds * (2 * overhead_s + work_s / k)

    best = min(range(1, max(1, min(slots, rows, MAX_AUTO_CHUNKS)) + 1), key=lambda k: (wall(k), k))
    waves = ""
    if best > 1 and scan.data_bytes / best > CHUNK_TARGET_BYTES:  # big chunks: cut smaller, in even waves
        best = min(best * math.ceil(scan.data_bytes / (best * CHUNK_TARGET_BYTES)), rows, MAX_AUTO_CHUNKS)
        waves = f", in chunks of at most {_size(CHUNK_TARGET_BYTES)} (big in-memory row lists slow Python down)"
    k = max(best, k_mem)
    if k == 1:
        return ChunkChoice(1, f"{_size(scan.size)} is about {work_s:.2g} s of work; splitting it over "
                              f"{slots} worker(s) would not beat the {overhead_s:g} s each extra task "
                              f"costs{assumed}")
    why = f"{k} chunks: {_size(scan.size)} is about {work_s:.2g} s of work over {slots} worker(s){assumed}{waves}"
    if k_mem > best:
        why += f"; fewer chunks would not fit the largest worker's {_size(max(workers))} of free memory"
    return ChunkChoice(k, why)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
