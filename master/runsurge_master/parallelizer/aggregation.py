"""Which functions can run on row ranges separately, and how their partial results combine.

Two sources of truth:
- an explicit tag `aggregation = "<kind>:<var>"` just before the function's return;
- a proof from the code: the function is `pre; for row in rows: body; post; return ...` where every
  variable the loop carries from row to row (an *accumulator*) is only updated in a combinable
  way (running sum/count/concatenation, product, min/max, set union, a flag that latches). Each
  chunk runs `pre + loop` and hands back its accumulators; the combine step merges them and runs
  `post` once, so averages and other non-associative results are computed from merged sums and
  counts, never by averaging averages. Comprehensions such as `sum(f(r) for r in rows)` are first
  rewritten into such loops, and independent loops over the rows are fused into one.
Anything else is refused with the reason: a refused function runs unsplit.
"""

from __future__ import annotations

import ast

from runsurge_master.parallelizer.accumulators import LoopProof
from runsurge_master.parallelizer.astutil import names_in
from runsurge_master.parallelizer.effects import FunctionSummary
from runsurge_master.parallelizer.header_rows import rows_name, split_header
from runsurge_master.parallelizer.model import PlanError
from runsurge_master.parallelizer.reducers import TAG_KINDS, CannotSplitError, LoopReducer, TagReducer

__all__ = ["CannotSplitError", "LoopReducer", "TagReducer", "find_tag", "names_in", "reducer_for"]


# -- tags ---------------------------------------------------------------------------------------------

def find_tag(fn: ast.FunctionDef, script_name: str) -> tuple[str, str] | None:
    """(kind, var) from `aggregation = "k:var"` just before the final return; kind "" = never split."""
    body = fn.body
    tags = [s for s in ast.walk(fn) if _is_tag(s)]
    if not tags:
        return None
    tag = body[-2] if len(body) >= 2 and isinstance(body[-1], ast.Return) else None
    if tag is None or not _is_tag(tag) or len(tags) > 1:
        raise PlanError(f"{script_name}: line {tags[0].lineno}: the aggregation tag must be the line just "
                        f"before {fn.name}'s final return (and appear once)")
    if not isinstance(tag.value, ast.Constant) or not isinstance(tag.value.value, str):
        raise PlanError(f"{script_name}: line {tag.lineno}: the aggregation tag must be a string "
                        '"<kind>:<variable>" (or "" to never split)')
    text = tag.value.value.strip()
    if text == "":
        return "", ""
    kind, sep, var = text.partition(":")
    kind, var = kind.strip(), var.strip()
    if not sep or kind not in TAG_KINDS or not var.isidentifier():
        raise PlanError(f"{script_name}: line {tag.lineno}: aggregation tag {text!r}: expected "
                        f"\"<kind>:<variable>\" with kind one of {', '.join(TAG_KINDS)} "
                        '(or "" to never split)')
    ret = body[-1].value
    if not (isinstance(ret, ast.Name) and ret.id == var):
        raise PlanError(f"{script_name}: line {tag.lineno}: the aggregation tag names {var!r}, "
                        f"but {fn.name} returns {ast.unparse(ret) if ret else 'nothing'}")
    return kind, var


def _is_tag(s: ast.AST) -> bool:
    return isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name) \
        and s.targets[0].id == "aggregation"


# -- entry point --------------------------------------------------------------------------------------

def reducer_for(summary: FunctionSummary, rows_param: str, script_name: str,
                header_row: bool = False) -> LoopReducer | TagReducer:
    """How calls of this function over chunks of `rows_param` combine; raises CannotSplitError.
    The code decides: a combination proven from the loop wins over the tag (which may be wrong:
    an "average" of averages, a "concatenation" of per-column lists). A tag is taken on its word
    only where the code cannot be analysed, and never for rows that carry the header (header_row:
    the function also sees `data[0]`, so what a chunk returns cannot be told from the tag)."""
    fn = summary.node
    tag = find_tag(fn, script_name)
    if tag is not None and tag[0] == "":
        raise CannotSplitError(f"{fn.name} is tagged aggregation = \"\" (never split)")
    if not summary.pure:
        raise CannotSplitError(f"{fn.name} is not pure: {summary.effects.reasons()[0]}")
    if summary.has_yield:
        raise CannotSplitError(f"{fn.name} is a generator")
    if fn.args.vararg or fn.args.kwarg:
        raise CannotSplitError(f"{fn.name} takes *args or **kwargs")
    try:
        if header_row:
            body_fn, bind = split_header(fn, rows_param)
            red = LoopProof(body_fn, rows_name(rows_param)).run()
            red.pre.insert(0, bind)
        else:
            red = LoopProof(fn, rows_param).run()
    except CannotSplitError as e:
        if tag is not None and not header_row:
            return TagReducer(fn.name, rows_param, tag[0], tag[1])
        why = f"{fn.name}: {e}"
        if tag is not None:
            why += (f"; its tag \"{tag[0]}:{tag[1]}\" ({TAG_KINDS[tag[0]]}) is not enough: RunSurge combines "
                    "only what it can prove from the code when the function sees the header row")
        raise CannotSplitError(why) from None
    if tag is not None:
        red.tag_note = (f"the tag says {TAG_KINDS[tag[0]]}; combined as the code computes it instead"
                        if not _tag_agrees(tag[0], red) else "")
    return red


def _tag_agrees(kind: str, red: LoopReducer) -> bool:
    """Whether the tag's combination is what the code proves (the explanation says when not)."""
    ops = {(a.op, a.concat) for a in red.accs}
    want = {"s": {("sum", False)}, "l": {("sum", False)}, "c": {("sum", True)}, "i": {("prod", False)},
            "m": {("pick", False)}, "n": {("pick", False)}}.get(kind)
    return want is not None and ops <= want and all(_is_tag(s) for s in red.post)
