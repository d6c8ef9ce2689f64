"""The proof that a function's loop over the rows combines across row ranges: every variable the
loop carries from row to row (an accumulator) is updated only by a recognised, combinable
operation, starts from a value that allows it, and is never read inside the loop otherwise."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from runsurge_master.parallelizer.astutil import loads_in, names_in, root_names, same, stores_in, used_before_assigned
from runsurge_master.parallelizer.effects import numeric
from runsurge_master.parallelizer.loops import Rewriter, fuse, is_rows_loop, row_level
from runsurge_master.parallelizer.reducers import Accumulator, CannotSplitError, LoopReducer

_DICTS = {"dict", "OrderedDict", "collections.OrderedDict"}
_DEFAULT_LEAF = {"int": "sum", "float": "sum", "str": "sum", "list": "sum", "tuple": "sum", "set": "union"}


@dataclass
class _Update:
    op: str
    depth: int
    line: int
    take: str = ""
    none_guard: bool = False
    guarded: bool = False        # the update itself creates missing dict keys with a neutral value
    key: ast.expr | None = None  # the first subscript (dict key)
    latch: object = None
    list_op: bool = False        # append/extend: the value must be a list


@dataclass
class LoopProof:
    fn: ast.FunctionDef
    rows: str
    updates: dict[str, list[_Update]] = field(default_factory=dict)
    guards: dict[str, list[tuple[ast.expr, ast.expr]]] = field(default_factory=dict)

    def run(self) -> LoopReducer:
        body = list(self.fn.body)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]
        if not body or not isinstance(body[-1], ast.Return) or body[-1].value is None:
            raise CannotSplitError("does not end with `return <value>`")
        if any(isinstance(n, ast.Return) for s in body[:-1] for n in ast.walk(s)):
            raise CannotSplitError("returns from more than one place")
        rows = self.rows
        if rows in stores_in(body):
            raise CannotSplitError(f"changes or rebinds its rows parameter {rows}")
        rewriter = Rewriter(rows)
        body = fuse(rewriter.statements(body), rows)
        idx = [i for i, s in enumerate(body) if is_rows_loop(s, rows)]
        if not idx:
            raise CannotSplitError(f"has no `for` loop over {rows} (only such loops are split)")
        loop: ast.For = body[idx[0]]
        pre, post = body[:idx[0]], body[idx[0] + 1:]
        self.params = {a.arg for a in [*self.fn.args.posonlyargs, *self.fn.args.args, *self.fn.args.kwonlyargs]}
        self.params.discard(rows)
        self.check_outside(pre + post)
        row_vars = self.check_loop_shape(loop)
        pre_defs = stores_in(pre)
        self.accs = stores_in(loop.body) & (pre_defs | self.params)
        if self.accs & row_vars:
            raise CannotSplitError(f"the loop variable {sorted(self.accs & row_vars)[0]} also exists before the loop")
        self.count_dep = self.count_dependent(pre)
        if names_in(loop) & self.count_dep:
            raise CannotSplitError(f"the loop uses {sorted(names_in(loop) & self.count_dep)[0]}, "
                                   f"which depends on len({rows}) (differs per chunk)")
        self.block(loop.body)
        locals_ = stores_in(loop.body) - self.accs
        carried = used_before_assigned(loop.body, locals_, row_vars)
        if carried:
            raise CannotSplitError(f"{sorted(carried)[0]} carries a value from one row to the next")
        leaked = used_before_assigned(post, (locals_ | row_vars) - pre_defs, set())
        if leaked:
            raise CannotSplitError(f"uses {sorted(leaked)[0]} after the loop (its last value depends on the row order)")
        accs = [self.finish(name, pre, post) for name in sorted(self.accs)]
        for acc in accs:
            acc.label = rewriter.labels.get(acc.name, "")
        ncols = any(self.is_len0(n) for s in pre + post for n in ast.walk(s))
        return LoopReducer(self.fn.name, rows, pre, loop, post, accs, ncols)

    # -- shape
    def is_len(self, n: ast.AST) -> bool:
        return isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "len" \
            and len(n.args) == 1 and isinstance(n.args[0], ast.Name) and n.args[0].id == self.rows

    def is_len0(self, n: ast.AST) -> bool:
        if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "len"
                and len(n.args) == 1 and isinstance(n.args[0], ast.Subscript)):
            return False
        sub = n.args[0]
        return isinstance(sub.value, ast.Name) and sub.value.id == self.rows \
            and isinstance(sub.slice, ast.Constant) and sub.slice.value == 0

    def check_outside(self, stmts: list[ast.stmt]) -> None:
        """Outside the loop the rows may only be measured: len(rows), len(rows[0])."""
        allowed: set[int] = set()
        for s in stmts:
            for n in ast.walk(s):
                if self.is_len(n):
                    allowed.add(id(n.args[0]))
                elif self.is_len0(n):
                    allowed.add(id(n.args[0].value))
            for n in ast.walk(s):
                if isinstance(n, ast.Name) and n.id == self.rows and id(n) not in allowed:
                    raise CannotSplitError(f"line {n.lineno}: uses {self.rows} outside its loop over the rows")

    def check_loop_shape(self, loop: ast.For) -> set[str]:
        if loop.orelse:
            raise CannotSplitError(f"line {loop.lineno}: the loop over the rows has an else branch")
        bad = row_level(loop.body, (ast.Break,)) or next(
            (n for n in ast.walk(loop) if isinstance(n, ast.Return | ast.Global | ast.Nonlocal)), None)
        if bad is not None:
            raise CannotSplitError(f"line {bad.lineno}: {type(bad).__name__.lower()} inside the loop over the rows "
                                   "(the result would depend on the row order)")
        if any(isinstance(n, ast.Yield | ast.YieldFrom) for n in ast.walk(loop)):
            raise CannotSplitError(f"line {loop.lineno}: yields inside the loop")
        it, target = loop.iter, loop.target
        targets = {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        if isinstance(it, ast.Call) and it.func.id == "enumerate":
            if not (isinstance(target, ast.Tuple) and len(target.elts) == 2 and isinstance(target.elts[0], ast.Name)):
                raise CannotSplitError(f"line {loop.lineno}: unusual loop over enumerate({self.rows})")
            i = target.elts[0].id
            if i in names_in(loop.body):
                raise CannotSplitError(f"line {loop.lineno}: uses the row number {i} (differs per chunk)")
            allowed: set[int] = set()
        elif isinstance(it, ast.Call):  # for i in range(len(rows)): rows[i] only
            if not isinstance(target, ast.Name):
                raise CannotSplitError(f"line {loop.lineno}: unusual loop over range(len({self.rows}))")
            i = target.id
            allowed = set()
            for n in ast.walk(loop):
                if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and n.value.id == self.rows \
                        and isinstance(n.slice, ast.Name) and n.slice.id == i:
                    allowed |= {id(n.value), id(n.slice)}
            for n in ast.walk(ast.Module(body=loop.body, type_ignores=[])):
                if isinstance(n, ast.Name) and n.id == i and id(n) not in allowed:
                    raise CannotSplitError(f"line {n.lineno}: uses the row number {i} other than as {self.rows}[{i}]")
        else:
            allowed = set()
        for n in ast.walk(ast.Module(body=loop.body, type_ignores=[])):
            if isinstance(n, ast.Name) and n.id == self.rows and id(n) not in allowed:
                raise CannotSplitError(f"line {n.lineno}: uses {self.rows} itself inside the loop over it")
        return targets

    def count_dependent(self, pre: list[ast.stmt]) -> set[str]:
        dep: set[str] = set()
        for s in pre:
            if any(self.is_len(n) for n in ast.walk(s)) or names_in(s) & dep:
                dep |= stores_in([s])
        return dep

    # -- the loop body
    def refs(self, node: ast.AST | None) -> None:
        if node is None:
            return
        bad = names_in(node) & self.accs
        if bad:
            raise CannotSplitError(f"line {getattr(node, 'lineno', '?')}: reads {sorted(bad)[0]} inside the loop "
                                   "(its value there depends on the rows before)")

    def block(self, stmts: list[ast.stmt]) -> None:
        for s in stmts:
            if self.update(s):
                continue
            if isinstance(s, ast.If):
                self.refs(s.test)
                self.block(s.body)
                self.block(s.orelse)
            elif isinstance(s, ast.For | ast.While):
                self.refs(s.iter if isinstance(s, ast.For) else s.test)
                if isinstance(s, ast.For):
                    self.refs(s.target)
                self.block(s.body)
                self.block(s.orelse)
            elif isinstance(s, ast.Try):
                self.block(s.body)
                for h in s.handlers:
                    self.refs(h.type)
                    self.block(h.body)
                self.block(s.orelse)
                self.block(s.finalbody)
            elif isinstance(s, ast.With):
                for item in s.items:
                    self.refs(item.context_expr)
                self.block(s.body)
            else:
                bad = (names_in(s) | stores_in([s])) & self.accs
                if bad:
                    raise CannotSplitError(f"line {s.lineno}: uses {sorted(bad)[0]} in a way that is not a running "
                                           "sum, count, product, min/max, append/extend, set add or flag")

    def target(self, t: ast.expr) -> tuple[str, list[ast.expr]] | None:
        keys = []
        while isinstance(t, ast.Subscript):
            if isinstance(t.slice, ast.Slice):
                return None
            keys.append(t.slice)
            t = t.value
        if isinstance(t, ast.Name) and t.id in self.accs:
            for k in keys:
                self.refs(k)
            return t.id, list(reversed(keys))
        return None

    def record(self, tgt: tuple[str, list[ast.expr]], op: str, line: int, **kw) -> bool:
        name, keys = tgt
        self.updates.setdefault(name, []).append(
            _Update(op=op, depth=len(keys), line=line, key=keys[0] if keys else None, **kw))
        return True

    def update(self, s: ast.stmt) -> bool:  # one branch per recognised form
        line = s.lineno
        if isinstance(s, ast.AugAssign):
            tgt = self.target(s.target)
            if tgt is None:
                return False
            op = {ast.Add: "sum", ast.Sub: "sum", ast.Mult: "prod", ast.BitOr: "or"}.get(type(s.op))
            if op is None:
                raise CannotSplitError(f"line {line}: updates {tgt[0]} with {ast.unparse(s)}, which does not combine")
            self.refs(s.value)
            return self.record(tgt, op, line)
        if isinstance(s, ast.Assign) and len(s.targets) == 1:
            tgt = self.target(s.targets[0])
            if tgt is None:
                return False
            t, v = s.targets[0], s.value
            if isinstance(v, ast.BinOp) and same(v.left, t) and isinstance(v.op, ast.Add | ast.Sub | ast.Mult):
                self.refs(v.right)
                return self.record(tgt, "prod" if isinstance(v.op, ast.Mult) else "sum", line)
            if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id in {"max", "min"} \
                    and len(v.args) == 2 and not v.keywords:
                a, b = v.args
                mx = v.func.id == "max"
                if same(a, t):
                    self.refs(b)
                    return self.record(tgt, "pick", line, take="b > a" if mx else "b < a")
                if same(b, t):
                    self.refs(a)
                    return self.record(tgt, "pick", line, take="not a > b" if mx else "not a < b")
            if len(tgt[1]) >= 1 and isinstance(v, ast.BinOp) and isinstance(v.op, ast.Add) \
                    and self.get_default(v.left, t) is not None:
                self.refs(v.right)
                return self.record(tgt, "sum", line, guarded=True)
            if isinstance(v, ast.Constant):
                return self.record(tgt, "latch", line, latch=v.value)
            raise CannotSplitError(f"line {line}: sets {tgt[0]} to {ast.unparse(v)}, "
                                   "which does not combine across chunks")
        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and isinstance(s.value.func, ast.Attribute):
            call, meth, recv = s.value, s.value.func.attr, s.value.func.value
            if isinstance(recv, ast.Call) and isinstance(recv.func, ast.Attribute) and recv.func.attr == "setdefault" \
                    and len(recv.args) == 2 and meth in {"append", "extend"}:
                tgt = self.target(recv.func.value)
                if tgt is None:
                    return False
                self.refs(recv.args[0])
                self.guards.setdefault(tgt[0], []).append((recv.args[0], recv.args[1]))
                for a in call.args:
                    self.refs(a)
                return self.record((tgt[0], [*tgt[1], recv.args[0]]), "sum", line, guarded=True, list_op=True)
            tgt = self.target(recv)
            if tgt is None:
                return False
            for a in call.args:
                self.refs(a)
            if call.keywords:
                raise CannotSplitError(f"line {line}: {ast.unparse(s)} does not combine across chunks")
            if meth in {"append", "extend"} and len(call.args) == 1:
                return self.record(tgt, "sum", line, list_op=True)
            if meth == "add" and len(call.args) == 1:
                return self.record(tgt, "union", line)
            if meth == "update" and len(call.args) == 1:
                return self.record(tgt, "update", line)
            if meth == "setdefault" and len(call.args) == 2:
                self.guards.setdefault(tgt[0], []).append((call.args[0], call.args[1]))
                return True
            raise CannotSplitError(f"line {line}: calls .{meth}() on {tgt[0]}, which does not combine across chunks")
        if isinstance(s, ast.If):
            return self.if_update(s)
        return False

    def get_default(self, e: ast.expr, t: ast.expr) -> ast.expr | None:
        """`A.get(K, Z)` where t is A[K] → Z."""
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute) and e.func.attr == "get" \
                and len(e.args) == 2 and isinstance(t, ast.Subscript) and same(e.func.value, t.value) \
                and same(e.args[0], t.slice):
            self.guards.setdefault(root_names(t).pop(), []).append((e.args[0], e.args[1]))
            return e.args[1]
        return None

    def if_update(self, s: ast.If) -> bool:
        line = s.lineno
        test = s.test
        one = len(s.body) == 1 and isinstance(s.body[0], ast.Assign) and len(s.body[0].targets) == 1
        # if K not in A: A[K] = Z            (a guard: creates the key with a neutral value)
        if one and not s.orelse and self.membership(test, ast.NotIn, s.body[0].targets[0]):
            t = s.body[0].targets[0]
            tgt = self.target(t)
            if tgt is not None:
                self.guards.setdefault(tgt[0], []).append((t.slice, s.body[0].value))
                self.refs(s.body[0].value)
                return True
        # if K in A: A[K] += e / .append(x)   else: A[K] = e / [x]
        if len(s.body) == 1 and len(s.orelse) == 1:
            for cmp, upd, init in ((ast.In, s.body[0], s.orelse[0]), (ast.NotIn, s.orelse[0], s.body[0])):
                if not (isinstance(init, ast.Assign) and len(init.targets) == 1):
                    continue
                t = init.targets[0]
                if not self.membership(test, cmp, t):
                    continue
                tgt = self.target(t)
                if tgt is None:
                    continue
                if isinstance(upd, ast.AugAssign) and isinstance(upd.op, ast.Add) and same(upd.target, t) \
                        and same(upd.value, init.value) and _numeric(upd.value):
                    self.refs(upd.value)
                    return self.record(tgt, "sum", line, guarded=True)
                if isinstance(upd, ast.Expr) and isinstance(upd.value, ast.Call) \
                        and isinstance(upd.value.func, ast.Attribute) and upd.value.func.attr == "append" \
                        and same(upd.value.func.value, t) and len(upd.value.args) == 1 \
                        and isinstance(init.value, ast.List) and len(init.value.elts) == 1 \
                        and same(init.value.elts[0], upd.value.args[0]):
                    self.refs(upd.value.args[0])
                    return self.record(tgt, "sum", line, guarded=True, list_op=True)
        if not one or s.orelse:
            return False
        t, v = s.body[0].targets[0], s.body[0].value
        tgt = self.target(t)
        if tgt is None:
            return False
        # if e > A: A = e   (and >=, <, <=, either side; optionally `A is None or ...`, `K not in A or ...`)
        cmp, none_guard, key_guard = test, False, False
        if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or) and len(test.values) == 2:
            first, cmp = test.values
            if isinstance(first, ast.Compare) and len(first.ops) == 1 and isinstance(first.ops[0], ast.Is) \
                    and same(first.left, t) and isinstance(first.comparators[0], ast.Constant) \
                    and first.comparators[0].value is None:
                none_guard = True
            elif self.membership(first, ast.NotIn, t):
                key_guard = True
            else:
                cmp = None
        if isinstance(cmp, ast.Compare) and len(cmp.ops) == 1:
            left, right, op = cmp.left, cmp.comparators[0], type(cmp.ops[0])
            sym = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<="}.get(op)
            take = None
            if sym and same(left, v) and same(right, t):
                take = f"b {sym} a"
            elif sym and same(left, t) and same(right, v):
                take = f"a {sym} b"
            if take is not None:
                self.refs(v)
                return self.record(tgt, "pick", line, take=take, none_guard=none_guard, guarded=key_guard)
        # if <condition on the row>: flag = <constant>
        if isinstance(v, ast.Constant):
            self.refs(test)
            return self.record(tgt, "latch", line, latch=v.value)
        return False

    def membership(self, test: ast.expr, op: type, t: ast.expr) -> bool:
        return isinstance(t, ast.Subscript) and isinstance(test, ast.Compare) and len(test.ops) == 1 \
            and isinstance(test.ops[0], op) and same(test.left, t.slice) and same(test.comparators[0], t.value)

    # -- per accumulator: one way of combining, and a start value that allows it
    def finish(self, name: str, pre: list[ast.stmt], post: list[ast.stmt]) -> Accumulator:
        ups = self.updates.get(name)
        if not ups:
            raise CannotSplitError(f"{name} is changed in the loop in a way RunSurge does not recognise")
        init = self.init_of(name, pre)
        kinds = {(u.op, u.depth, u.take, u.none_guard, repr(u.latch)) for u in ups}
        if len(kinds) > 1:
            lines = ", ".join(str(u.line) for u in ups)
            raise CannotSplitError(f"{name} is updated in more than one way (lines {lines})")
        u = ups[0]
        op, depth = u.op, u.depth
        if op in {"or", "update"}:  # |= and .update(): set union, or Counter counting
            if depth == 0 and _is_set(init) or depth > 0 and self.neutral(init, depth, "union", name, ups):
                op = "union"
            elif op == "update" and _call_name(init) in {"Counter", "collections.Counter"} and depth == 0:
                op, depth = "sum", 1
            else:
                raise CannotSplitError(f"line {u.line}: {'|=' if op == 'or' else '.update()'} on {name} combines "
                                       "only for sets (or Counter.update)")
        acc = Accumulator(name, op, depth, u.line, take=u.take, none_guard=u.none_guard, latch=u.latch,
                          concat=any(x.list_op for x in ups))
        if init is None:
            if op != "pick":
                raise CannotSplitError(f"{name} starts from a parameter; only min/max can start anywhere")
            return acc
        if names_in(init) & self.count_dep or any(self.is_len(n) for n in ast.walk(init)):
            raise CannotSplitError(f"{name}'s start value depends on len({self.rows}), which differs per chunk")
        if op in {"sum", "prod"} and depth == 0:
            kind = _value_kind(init)
            if op == "prod" and kind != "number" or kind is None or u.list_op and kind != "list":
                raise CannotSplitError(f"cannot tell what kind of value {name} starts as ({ast.unparse(init)})")
            acc.reset = {"number": "0" if op == "sum" else "1", "str": "''", "list": "[]", "tuple": "()"}[kind]
            acc.concat = kind != "number"
        elif op in {"sum", "prod", "union"}:
            leaf = "prod" if op == "prod" else op
            if not self.neutral(init, depth, leaf, name, ups):
                raise CannotSplitError(f"{name} does not start from zeros/empties ({ast.unparse(init)}), so "
                                       "chunks cannot be added element by element")
        elif op == "latch":
            if not _latch_start(init, depth, u.latch):
                raise CannotSplitError(f"{name} (a flag) must start from a constant other than {u.latch!r}")
        elif op == "pick" and depth > 0 and not (_is_list(init) or
                                                  _call_name(init) in _DICTS or isinstance(init, ast.Dict)):
            raise CannotSplitError(f"{name}: element-wise min/max needs a list or dict start value")
        elif op == "pick" and depth > 0 and (_call_name(init) in _DICTS or isinstance(init, ast.Dict)):
            if isinstance(init, ast.Dict) and init.keys or not all(x.guarded for x in ups):
                raise CannotSplitError(f"{name}: per-key min/max must start empty and guard new keys with `not in`")
        if op == "union":
            self.order_free(name, depth, post)
        return acc

    def init_of(self, name: str, pre: list[ast.stmt]) -> ast.expr | None:
        binders = [s for s in pre if name in stores_in([s])]
        if not binders:
            if name in self.params:
                return None
            raise CannotSplitError(f"{name} has no start value before the loop")
        s = binders[0]
        if len(binders) > 1 or not (isinstance(s, ast.Assign) and len(s.targets) == 1
                                    and isinstance(s.targets[0], ast.Name)):
            raise CannotSplitError(f"line {s.lineno}: {name} must get its start value from one plain assignment")
        # The combine step rebinds the accumulator to the merged value: nothing may hold the old one.
        readers = [x for x in pre if x is not s and name in loads_in([x])]
        if readers:
            raise CannotSplitError(f"line {readers[0].lineno}: {name} is used before the loop (it could be "
                                   "shared with another variable)")
        if isinstance(s.value, ast.Name | ast.Attribute | ast.Subscript) and self.updates[name][0].op != "pick":
            raise CannotSplitError(f"line {s.lineno}: {name} starts as another variable's value "
                                   f"({ast.unparse(s.value)}), which it would share")
        return s.value

    def neutral(self, e: ast.expr, depth: int, leaf: str, name: str, ups: list[_Update]) -> bool:
        if depth == 0:
            return _neutral_leaf(e, leaf)
        if self.guards.get(name) and not (_call_name(e) in _DICTS | {"defaultdict", "collections.defaultdict",
                                                                      "Counter", "collections.Counter"}
                                          or isinstance(e, ast.Dict)):
            return False  # `if k not in A: A[k] = 0` on a list tests values: it is no guard
        if isinstance(e, ast.List | ast.Tuple):
            return all(self.neutral(x, depth - 1, leaf, name, []) for x in e.elts)
        if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Mult):
            lst = e.left if isinstance(e.left, ast.List) else e.right if isinstance(e.right, ast.List) else None
            # [0] * n is fine; [[0] * n] * m repeats one inner list: refuse
            return lst is not None and depth == 1 and len(lst.elts) == 1 and isinstance(lst.elts[0], ast.Constant) \
                and _neutral_leaf(lst.elts[0], leaf)
        if isinstance(e, ast.ListComp):
            return all(not g.ifs for g in e.generators) and self.neutral(e.elt, depth - 1, leaf, name, [])
        fname = _call_name(e)
        if fname in {"defaultdict", "collections.defaultdict"} and len(e.args) == 1 and not e.keywords:
            f = e.args[0]
            return depth == 1 and isinstance(f, ast.Name) and _DEFAULT_LEAF.get(f.id) == leaf \
                and self.guards_neutral(name, depth, leaf)
        if fname in {"Counter", "collections.Counter"} and not e.args and not e.keywords:
            return depth == 1 and leaf == "sum" and self.guards_neutral(name, depth, leaf)
        if fname in _DICTS and not e.args and not e.keywords or isinstance(e, ast.Dict) and not e.keys:
            guarded = {ast.unparse(k) for k, _ in self.guards.get(name, [])}
            if not all(u.guarded or u.key is not None and ast.unparse(u.key) in guarded for u in ups):
                return False  # a missing key would raise KeyError... or start from something else
            return self.guards_neutral(name, depth, leaf)
        return False

    def guards_neutral(self, name: str, depth: int, leaf: str) -> bool:
        return all(self.neutral(z, depth - 1, leaf, name, []) for _, z in self.guards.get(name, []))

    def order_free(self, name: str, depth: int, scope: list[ast.AST]) -> None:
        """Set union keeps the members, not the iteration order: after the loop a set may only be
        measured (len, sorted, `in`, ==); containers of sets may be indexed or iterated."""
        parents = {id(c): p for s in scope for p in ast.walk(s) for c in ast.iter_child_nodes(p)}
        for s in scope:
            for n in ast.walk(s):
                if isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load):
                    self.order_free_use(n, depth, parents)

    def order_free_use(self, n: ast.Name, depth: int, parents: dict[int, ast.AST]) -> None:
        node, d = n, depth
        while isinstance(parents.get(id(node)), ast.Subscript) and parents[id(node)].value is node:
            node, d = parents[id(node)], d - 1
        p = parents.get(id(node))
        if isinstance(p, ast.Call) and isinstance(p.func, ast.Name) and p.args and p.args[0] is node \
                and (p.func.id == "len" or d <= 0 and p.func.id in {"sorted", "bool"}):
            return
        if d <= 0 and isinstance(p, ast.Compare) and node in p.comparators and \
                all(isinstance(o, ast.In | ast.NotIn | ast.Eq | ast.NotEq) for o in p.ops):
            return
        if d > 0:  # iterating a list/dict of sets: check each element the same way
            it_parent, target = p, None
            if isinstance(p, ast.Attribute) and p.attr in {"values", "items"} \
                    and isinstance(parents.get(id(p)), ast.Call):
                call = parents[id(p)]
                it_parent = parents.get(id(call))
                node = call
            if isinstance(it_parent, ast.comprehension | ast.For) and it_parent.iter is node:
                target = it_parent.target
                if isinstance(target, ast.Tuple) and len(target.elts) == 2 and isinstance(p, ast.Attribute) \
                        and p.attr == "items":
                    target = target.elts[1]
            if isinstance(target, ast.Name):
                scope = it_parent.body if isinstance(it_parent, ast.For) else [parents[id(it_parent)]]
                self.order_free(target.id, d - 1, scope)
                return
        raise CannotSplitError(f"line {n.lineno}: uses the set(s) {n.id} in a way that depends on iteration "
                               "order (only len(), sorted(), `in` are order-free)")


def _numeric(e: ast.expr) -> bool:
    return numeric(e, set())


def _call_name(e: ast.expr | None) -> str | None:
    if isinstance(e, ast.Call):
        f = e.func
        if isinstance(f, ast.Name):
            return f.id
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            return f"{f.value.id}.{f.attr}"
    return None


def _is_list(e: ast.expr) -> bool:
    return isinstance(e, ast.List | ast.ListComp) or _call_name(e) == "list" or \
        isinstance(e, ast.BinOp) and isinstance(e.op, ast.Mult | ast.Add) and (_is_list(e.left) or _is_list(e.right))


def _is_set(e: ast.expr | None) -> bool:
    return e is not None and (isinstance(e, ast.Set | ast.SetComp) or _call_name(e) in {"set", "frozenset"})


def _value_kind(e: ast.expr) -> str | None:
    """number | str | list | tuple when the start value's type is plain to see."""
    if isinstance(e, ast.Constant):
        v = e.value
        if isinstance(v, bool) or v is None:
            return None
        return "number" if isinstance(v, int | float | complex) else "str" if isinstance(v, str) else None
    if numeric(e, set()):
        return "number"
    if isinstance(e, ast.JoinedStr) or _call_name(e) == "str":
        return "str"
    if _is_list(e):
        return "list"
    if isinstance(e, ast.Tuple) or _call_name(e) == "tuple":
        return "tuple"
    return None


def _neutral_leaf(e: ast.expr, leaf: str) -> bool:
    if leaf == "sum":
        if isinstance(e, ast.Constant):
            return not isinstance(e.value, bool) and e.value in (0, "") and e.value is not None
        if isinstance(e, ast.List | ast.Tuple):
            return not e.elts
        return _call_name(e) in {"list", "str", "tuple", "int", "float"} and not e.args
    if leaf == "prod":
        return isinstance(e, ast.Constant) and not isinstance(e.value, bool) and e.value == 1
    if leaf == "union":
        return _call_name(e) in {"set", "frozenset"} and not e.args or \
            isinstance(e, ast.Set) and all(isinstance(x, ast.Constant) for x in e.elts)
    return False


def _latch_start(e: ast.expr, depth: int, value: object) -> bool:
    def leaf(x: ast.expr) -> bool:
        return isinstance(x, ast.Constant) and (type(x.value), x.value) != (type(value), value)
    if depth == 0:
        return leaf(e)
    if depth == 1:
        if isinstance(e, ast.List):
            return all(leaf(x) for x in e.elts)
        if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Mult):
            lst = e.left if isinstance(e.left, ast.List) else e.right
            return isinstance(lst, ast.List) and len(lst.elts) == 1 and leaf(lst.elts[0])
        if isinstance(e, ast.ListComp):
            return leaf(e.elt) and all(not g.ifs for g in e.generators)
    return False
