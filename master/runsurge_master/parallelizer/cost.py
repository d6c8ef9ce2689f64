"""What one row of the data costs a task: memory once loaded, and seconds to load and go through,
estimated from the load block the analysis proved and a sample of the file's lines.

Memory counts CPython's real object sizes: a list per row (56 bytes + 8 per element, plus what
growing by append over-allocates), per field an int (28; none for -5..256, which CPython
shares), a float (24) or a str (49 + its characters), whichever the loader makes of it; and the
lines themselves when the load block keeps them (`lines = f.readlines()` stays alive beside the
parsed rows). A loader that converts fields
(int(), float(), or a helper such as the template's infer_type) is assumed to make numbers of what
parses as a number, and to keep the rest as str. Times are per field, measured on this project's
2-core reference machine (see BENCHMARKS.md): converting a field that parses as an int ~0.2 µs, one that
takes a failed int() first ~1 µs, a plain csv field ~0.15 µs (as chunk tasks measure them: reading,
parsing and keeping a task's lines). What each call of the user's functions then costs per row is read from its
code (passcost.py); a call whose loop over the rows cannot be read costs ~0.6 µs a field, the
high end of what the template kinds measure.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from runsurge_master.parallelizer.analysis import CallSite
from runsurge_master.parallelizer.chunking import CsvScan
from runsurge_master.parallelizer.convention import LoadBlock
from runsurge_master.parallelizer.passcost import pass_seconds_per_row
from runsurge_master.parallelizer.script import Script

_LIST, _PTR, _INT, _FLOAT, _STR = 56, 8, 28, 24, 49
_APPEND_SLACK = 1.125
_S_INT, _S_OTHER, _S_PLAIN, _S_PASS = 0.2e-6, 1.0e-6, 0.15e-6, 0.6e-6


@dataclass(frozen=True)
class RowCost:
    bytes_per_row: float
    load_s_per_row: float
    pass_s_per_row: dict[str, float]  # function -> seconds one call of it spends per row
    default_pass_s: float             # a pass nothing is known of (no call of a function)
    source: str

    def seconds(self, rows: float, sites: list[CallSite]) -> float:
        """Loading `rows` rows, then the calls `sites` over them (at least one pass)."""
        passes = sum(self.pass_s_per_row[s.function] for s in sites) if sites else self.default_pass_s
        return rows * (self.load_s_per_row + passes)


def _converts(a_body: list[ast.stmt], load: LoadBlock) -> bool:
    calls = {n.func.id for s in a_body for n in ast.walk(s) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return bool(calls & ({"int", "float", "complex", "eval"} | set(load.helpers)))


def _kind(field: bytes) -> str:
    """int (0 bytes for -5..256, which CPython shares), float, or str."""
    text = field.strip()
    try:
        return "small" if -5 <= int(text) <= 256 else "int"
    except ValueError:
        pass
    try:
        float(text)
        return "float"
    except ValueError:
        return "str"


def row_cost(scan: CsvScan, load: LoadBlock, script: Script, sites: list[CallSite]) -> RowCost:
    """`sites`: the main block's calls over the rows."""
    cols = max(1, scan.columns)
    converts = _converts(script.body[load.start:load.end], load)
    sample = [line for line in scan.sample if line.strip()]
    line_bytes = sum(len(x) + 1 for x in sample) / len(sample) if sample else cols * (scan.field_chars + 1)
    per_row = _LIST + _APPEND_SLACK * _PTR * cols
    load_s = 0.0
    if sample and converts:
        kinds = {"small": 0, "int": 0, "float": 0, "str": 0}
        chars = 0
        fields = 0
        for line in sample:
            for f in line.split(b","):
                k = _kind(f)
                kinds[k] += 1
                chars += len(f) if k == "str" else 0
                fields += 1
        share = {k: v / fields for k, v in kinds.items()}
        per_field = share["int"] * _INT + share["float"] * _FLOAT + share["str"] * _STR \
            + (chars / fields)
        per_row += cols * per_field
        ints = share["small"] + share["int"]
        load_s = cols * (ints * _S_INT + (1 - ints) * _S_OTHER)
        how = f"{ints:.0%} ints, {share['float']:.0%} floats, {share['str']:.0%} strings in a sample"
    else:
        per_row += cols * (_STR + scan.field_chars)
        load_s = cols * _S_PLAIN
        how = "fields kept as strings"
    if load.kept_lines:
        per_row += _STR + line_bytes + _PTR
        how += "; the lines are kept too"
    passes = {}
    for site in sites:
        read = pass_seconds_per_row(script.tree, script.functions[site.function], site.rows_param, cols)
        passes[site.function] = cols * _S_PASS if read is None else read
    return RowCost(bytes_per_row=per_row, load_s_per_row=load_s, pass_s_per_row=passes, default_pass_s=cols * _S_PASS,
                   source=f"{per_row:.0f} bytes per loaded row ({how})")
