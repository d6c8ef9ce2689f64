"""What the analysis concludes about a function called on the rows: how its results on row
ranges combine (a LoopReducer proven from the code, or a TagReducer the user declared)."""

from __future__ import annotations

import ast
from dataclasses import dataclass

TAG_KINDS = {"s": "sum", "c": "concatenation", "a": "average", "m": "maximum", "n": "minimum",
             "l": "length (sum of counts)", "i": "product"}


class CannotSplitError(Exception):
    """The function cannot be proven to combine; the message says why."""


@dataclass
class Accumulator:
    name: str
    op: str                      # sum | prod | pick | union | latch
    depth: int                   # 0: the variable itself; 1: its elements (per column, per key)...
    line: int
    take: str = ""               # pick: keep the later value b over the earlier a when this holds
    none_guard: bool = False     # pick: None means "nothing seen yet"
    reset: str = ""              # whole sum/prod: the neutral value a chunk starts from
    latch: object = None         # latch: the value a flag switches to
    concat: bool = False         # a sum of lists/strings: concatenation in chunk order
    label: str = ""              # what it stands for, when RunSurge introduced it

    def describe(self) -> str:
        where = "" if self.depth == 0 else "element-wise "
        if self.op == "pick":
            what = "max" if ">" in self.take else "min"
        else:
            what = {"sum": "concatenation" if self.concat else "sum", "prod": "product", "union": "set union",
                    "latch": "flag (set if any chunk sets it)"}[self.op]
        return f"{where}{what} of {self.label or self.name}"


@dataclass
class LoopReducer:
    function: str
    rows_param: str
    pre: list[ast.stmt]
    loop: ast.For
    post: list[ast.stmt]
    accs: list[Accumulator]
    uses_ncols: bool = False
    tag_note: str = ""          # where the function's aggregation tag says otherwise

    def describe(self) -> str:
        text = "; ".join(a.describe() for a in self.accs) + ", then the rest of the function runs once"
        return f"{text} ({self.tag_note})" if self.tag_note else text


@dataclass
class TagReducer:
    function: str
    rows_param: str
    kind: str
    var: str

    def describe(self) -> str:
        how = "weighted by each chunk's row count" if self.kind == "a" else "element-wise for lists"
        return f"{TAG_KINDS[self.kind]} of the chunks' results ({how}), from the aggregation tag"
