"""The numpy backend's memory plan: scratch arrays reused by liveness, written with `out=`.

Works on one generated function body (the statements the op templates rendered), because
only there is it visible which names are fresh arrays and which are views or aliases of
others (`y = x[:, 0:3]`, `g = gy`, whatever a template or runtime kernel returns).

- A statement `t = <expr>` whose expr makes a new array by one numpy call that takes `out=`
  (a ufunc, `+ - * / @`, np.concatenate), over operands whose shapes are known, with a
  result shape equal to t's, is a candidate: it becomes `t = np.add(a, b, out=_scratch[k])`.
  `G += A @ B` (a gradient accumulation) gets its product into a scratch array too, through
  rt.matmul_into (a broadcast multiply when the product is over one row: batch size 1).
- Every other binding `y = <expr>` may alias anything its expr reads, so those names stay
  alive as long as y does (transitively). Names that leave the function (the forward's
  saved activations and outputs, the backward's returned gradients) and everything they may
  alias never get scratch memory.
- A scratch array is free again after the statement that last uses its name (or an alias),
  so `out=` never overlaps the same statement's operands; the next candidate of the same
  shape takes it (first free, in order: deterministic).
- Arrays of fewer than MIN_ELEMENTS elements (B counted as 1) are left to numpy: for them
  passing `out=` costs about what an allocation does (the tutorial's 3 -> 2 LSTM cell ran
  2% slower with scratch arrays).

Scratch shapes may hold the batch symbol (B, or B*k); the runtime allocates them once per
batch size
(graphc_runtime.Module._scratch_arrays) with the model's dtype.
"""
from __future__ import annotations

import ast
import math

from ..ir.graph import is_symbolic, per_batch

SCRATCH = "_scratch"  # generated names never start with "_" (backends/numpy.py mangle)
UFUNCS = {"add", "subtract", "multiply", "divide", "true_divide", "negative", "tanh", "exp",
          "log", "log1p", "expm1", "sqrt", "square", "abs", "absolute", "maximum", "minimum",
          "sin", "cos", "reciprocal", "sign"}
MIN_ELEMENTS = 256
BINOPS = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide",
          ast.MatMult: "matmul"}


def plan_memory(blocks: list[list[str]], shapes: dict[str, tuple], leaving: set[str],
                ) -> tuple[list[list[str]], list[tuple]]:
    """blocks: the function's statements, grouped as they are laid out (one group per op).
    shapes: the shape of each name holding an array of the model's float dtype.
    leaving: names that outlive the call. Returns the rewritten blocks and the scratch
    shapes (slot k is `_scratch[k]`)."""
    stmts = []  # (block index, ast statement, source lines)
    for b, lines in enumerate(blocks):
        tree = ast.parse("\n".join(lines))
        for s in tree.body:
            stmts.append((b, s, lines[s.lineno - 1: s.end_lineno]))
    names = [_names(s) for _, s, _ in stmts]  # each statement's names, found in one walk
    loads = [read for read, _ in names]
    stores = [bound for _, bound in names]
    bound = {}  # how often each name is bound
    for names in stores:
        for name in names:
            bound[name] = bound.get(name, 0) + 1
    # a name bound twice may hold another shape in between (`y = y.reshape(...)`)
    shapes = {n: s for n, s in shapes.items() if bound.get(n, 0) <= 1}

    # aliases, and candidates with the op that makes them
    bases: dict[str, set] = {}
    made: dict[int, tuple] = {}
    for i, (_, s, _) in enumerate(stmts):
        assigned = _assigned_call(s, shapes)
        if assigned is not None:  # a new array: its name aliases none of the operands
            if _fits_scratch(assigned, shapes) and assigned[0] not in leaving:
                made[i] = assigned
            continue
        reads = loads[i]
        for name in stores[i]:
            closure = set()
            for r in reads:
                if r != name:
                    closure |= {r} | bases.get(r, set())
            bases[name] = bases.get(name, set()) | closure
    kept = set(leaving)
    for name in leaving:
        kept |= bases.get(name, set())

    last = {}
    for i in range(len(stmts)):
        for name in loads[i] | stores[i]:
            for n in {name} | bases.get(name, set()):
                last[n] = i

    slots: list[tuple] = []
    free: list[int] = []
    owner: dict[str, int] = {}
    out_blocks = [[] for _ in blocks]
    for i, (b, s, src) in enumerate(stmts):
        form = made.get(i)
        if form is not None and form[0] in kept:
            form = None
        if form is None:
            accumulate = _accumulate_form(s, shapes)
            if accumulate is not None:
                target, call, shape = accumulate
                k = _take(slots, free, shape)
                free.append(k)  # only this statement uses it
                out_blocks[b] += [f"rt.matmul_into({call[len('np.matmul('):-1]}, {SCRATCH}[{k}])",
                                  f"{target} += {SCRATCH}[{k}]"]
            else:
                out_blocks[b] += src
        else:
            target, call, shape = form
            k = _take(slots, free, shape)
            owner[target] = k
            out_blocks[b].append(f"{target} = {call[:-1]}, out={SCRATCH}[{k}])")
        for name, k in list(owner.items()):
            if last.get(name, i) <= i:
                free.append(k)
                del owner[name]
    return out_blocks, slots


def _take(slots, free, shape) -> int:
    for j, k in enumerate(free):
        if slots[k] == shape:
            return free.pop(j)
    slots.append(shape)
    return len(slots) - 1


def _names(s) -> tuple[set, set]:
    """(names read, names (re)bound) by one statement. `x += y` reads x and changes its
    array in place: it binds nothing new. ast.walk visits a node before its children, so an
    augmented target is known before its Name is seen."""
    loads, stores, augmented = set(), set(), set()
    for n in ast.walk(s):
        if isinstance(n, ast.AugAssign):
            augmented.add(id(n.target))
            if isinstance(n.target, ast.Name):
                loads.add(n.target.id)
        elif isinstance(n, ast.Name):
            if isinstance(n.ctx, ast.Load):
                loads.add(n.id)
            elif isinstance(n.ctx, ast.Store) and id(n) not in augmented:
                stores.add(n.id)
    return loads, stores


def _assigned_call(s, shapes):
    """(target, `np.f(args)` text, shape) for `t = <one numpy call or operator>` (t then
    aliases none of the operands), else None."""
    if not (isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)):
        return None
    made = _call_form(s.value, shapes)
    return None if made is None else (s.targets[0].id, made[0], made[1])


def _fits_scratch(assigned, shapes) -> bool:
    """The result has its name's known shape, big enough to be worth scratch memory."""
    target, _, shape = assigned
    return shapes.get(target) == shape and elements_per_row(shape) >= MIN_ELEMENTS


def _accumulate_form(s, shapes):
    """(G, `np.matmul(A, B)` text, shape) for `G += A @ B`."""
    if not (isinstance(s, ast.AugAssign) and isinstance(s.op, ast.Add)
            and isinstance(s.target, ast.Name) and s.target.id in shapes):
        return None
    made = _call_form(s.value, shapes)
    if (made is None or not made[0].startswith("np.matmul(") or made[1] != shapes[s.target.id]
            or elements_per_row(made[1]) < MIN_ELEMENTS):
        return None
    return s.target.id, made[0], made[1]


def elements_per_row(shape) -> int:
    """Elements of an array of this shape per unit of the batch (B counted as 1, B*k as k)."""
    return math.prod(per_batch(d) for d in shape)


def _call_form(e, shapes):
    """(numpy call text without out=, result shape) or None."""
    if isinstance(e, ast.BinOp) and type(e.op) in BINOPS:
        fn, args = BINOPS[type(e.op)], [e.left, e.right]
    elif isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
        fn, args = "negative", [e.operand]
    elif (isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute)
          and isinstance(e.func.value, ast.Name) and e.func.value.id == "np" and not e.keywords):
        fn, args = e.func.attr, list(e.args)
        if fn == "concatenate":
            return _concatenate_form(args, shapes)
        if fn not in UFUNCS:
            return None
    else:
        return None
    arg_shapes = [_operand_shape(a, shapes) for a in args]
    if any(a is None for a in arg_shapes):
        return None
    shape = _matmul_shape(*arg_shapes) if fn == "matmul" else _broadcast(arg_shapes)
    if shape is None:
        return None
    return f"np.{fn}({', '.join(ast.unparse(a) for a in args)})", shape


def _concatenate_form(args, shapes):
    if len(args) != 2 or not isinstance(args[0], ast.List) or not isinstance(args[1], ast.Constant):
        return None
    axis = args[1].value
    parts = [_operand_shape(a, shapes) for a in args[0].elts]
    if not parts or any(p is None or isinstance(p, (int, float)) or len(p) != len(parts[0]) for p in parts):
        return None
    if not isinstance(axis, int) or not 0 <= axis < len(parts[0]):
        return None
    rest = {p[:axis] + p[axis + 1:] for p in parts}
    if len(rest) != 1 or any(is_symbolic(p[axis]) for p in parts):
        return None
    shape = parts[0][:axis] + (sum(p[axis] for p in parts),) + parts[0][axis + 1:]
    return f"np.concatenate({ast.unparse(args[0])}, {axis})", shape


def _operand_shape(a, shapes):
    """A name, its 2-D transpose `x.T`, or a number (shape ())."""
    if isinstance(a, ast.Name):
        return shapes.get(a.id)
    if isinstance(a, ast.Attribute) and a.attr == "T" and isinstance(a.value, ast.Name):
        s = shapes.get(a.value.id)
        return s[::-1] if s is not None and len(s) == 2 else None
    if isinstance(a, ast.Constant) and type(a.value) in (int, float):
        return ()
    if isinstance(a, ast.UnaryOp) and isinstance(a.op, ast.USub):
        return _operand_shape(a.operand, shapes) if isinstance(a.operand, ast.Constant) else None
    return None


def _broadcast(arg_shapes):
    rank = max(len(s) for s in arg_shapes)
    out = []
    for k in range(rank):
        dims = {s[len(s) - rank + k] for s in arg_shapes if len(s) - rank + k >= 0} - {1}
        if len(dims) > 1:
            return None
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _matmul_shape(a, b):
    if len(a) != 2 or len(b) != 2 or a[1] != b[0]:
        return None
    return (a[0], b[1])
