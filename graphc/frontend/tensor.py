"""Tensors at spec time: a numpy-backed subset of torch.Tensor, enough for a spec to compute
sizes and initial values (`torch.Tensor(feature_maps):sum()`, `torch.randn(4, 3) * 0.1`,
`m.weight:copy(t)`). Values are float64 (torch.DoubleTensor, Torch's default) or int64
(torch.LongTensor); indices are 1-based; torch.rand/randn draw from one generator that
torch.manualSeed seeds (seed 0 until then), so a spec stays deterministic.

lua.py hands TensorObj indexing, arithmetic and `#` to this module; the Interpreter's `torch`
table gets the constructors from `torch_functions`."""
from __future__ import annotations

import math

import numpy as np

from ..errors import SpecError
from .values import LuaTable

MAX_ELEMENTS = 10_000_000  # elements one spec-time tensor may hold


class TensorObj:
    __slots__ = ("a",)

    def __init__(self, a: np.ndarray):
        if a.size > MAX_ELEMENTS:
            raise ValueError(f"a spec-time tensor may hold at most {MAX_ELEMENTS} elements")
        self.a = a

    @property
    def long(self) -> bool:
        return self.a.dtype.kind == "i"

    @property
    def typename(self) -> str:
        return "torch.LongTensor" if self.long else "torch.DoubleTensor"

    def array(self) -> list:
        """Its numbers, flat (where a Lua table of numbers is expected: criterion weights)."""
        return [_num(x) for x in self.a.ravel().tolist()]

    def shape_text(self) -> str:
        return "x".join(map(str, self.a.shape)) or "empty"

    def __repr__(self):
        return f"{self.typename} of size {self.shape_text()}"

    def text(self) -> str:
        """print(t): the values, then Torch's `[torch.DoubleTensor of size 2x3]` line."""
        body = np.array2string(self.a, separator="  ", threshold=200)
        return f"{body}\n[{self.typename} of size {self.shape_text()}]"


def _num(x):
    if isinstance(x, float) and x.is_integer() and abs(x) < 2**53:
        return int(x)
    return x


def _isnum(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _sizes(args, what, loc) -> tuple:
    """Sizes given as numbers, or as one table of numbers (a LongStorage)."""
    if len(args) == 1 and isinstance(args[0], LuaTable):
        args = args[0].array()
    if len(args) == 1 and isinstance(args[0], TensorObj):
        args = args[0].array()
    sizes = []
    for v in args:
        if not _isnum(v) or v != int(v) or v < 0:
            raise SpecError(f"{what}: sizes must be whole numbers >= 0, got {args}", loc)
        sizes.append(int(v))
    if math.prod(sizes) > MAX_ELEMENTS:
        raise SpecError(f"{what}: a spec-time tensor may hold at most {MAX_ELEMENTS} elements", loc)
    return tuple(sizes)


def from_table(t, loc, what="torch.Tensor") -> np.ndarray:
    """A (nested) table of numbers as an array; rows must agree in length."""

    def rows(v):
        if _isnum(v):
            return float(v)
        if isinstance(v, TensorObj):
            return v.a.tolist()
        if isinstance(v, LuaTable):
            return [rows(x) for x in v.array()]
        raise SpecError(f"{what}: expected numbers or tables of numbers, got a {type(v).__name__}", loc)
    try:
        return np.array(rows(t), dtype=np.float64)
    except ValueError:
        raise SpecError(f"{what}: the rows of the table have different lengths", loc) from None


class Tensors:
    """The spec's torch functions and tensor methods, with one seeded generator."""

    def __init__(self):
        self.rng = np.random.default_rng(0)

    # ---- construction --------------------------------------------------------------

    def construct(self, kind):
        """torch.Tensor / torch.LongTensor (and Float/Double/Cuda aliases)."""
        def make(args, loc):
            dtype = np.int64 if kind == "long" else np.float64
            if len(args) == 1 and isinstance(args[0], LuaTable) and any(
                    isinstance(v, LuaTable) or _isnum(v) for v in args[0].array()):
                return TensorObj(from_table(args[0], loc).astype(dtype))
            if len(args) == 1 and isinstance(args[0], TensorObj):
                return args[0]  # Torch: a tensor sharing the storage
            return TensorObj(np.zeros(_sizes(args, "torch.Tensor", loc), dtype))
        return make

    def functions(self) -> dict:
        def filled(value, name):
            def make(args, loc):
                return TensorObj(np.full(_sizes(args, name, loc), float(value)))
            return make

        def rand(args, loc):
            return TensorObj(self.rng.uniform(0.0, 1.0, _sizes(args, "torch.rand", loc)))

        def randn(args, loc):
            return TensorObj(self.rng.standard_normal(_sizes(args, "torch.randn", loc)))

        def torch_range(args, loc):
            a, b = args[0], args[1] if len(args) > 1 else None
            step = args[2] if len(args) > 2 and args[2] is not None else 1
            if not all(_isnum(v) for v in (a, b, step)) or step == 0:
                raise SpecError("torch.range(a, b [, step]) takes numbers and a non-zero step", loc)
            n = int(math.floor((b - a) / step + 1e-9)) + 1
            _sizes([max(n, 0)], "torch.range", loc)
            return TensorObj(a + step * np.arange(max(n, 0), dtype=np.float64))

        def linspace(args, loc):
            a, b = args[0], args[1] if len(args) > 1 else None
            n = args[2] if len(args) > 2 and args[2] is not None else 100
            if not all(_isnum(v) for v in (a, b, n)):
                raise SpecError("torch.linspace(a, b [, n]) takes numbers", loc)
            return TensorObj(np.linspace(a, b, _sizes([n], "torch.linspace", loc)[0]))

        def manual_seed(args, loc):
            s = args[0] if args else None
            if not _isnum(s):
                raise SpecError("torch.manualSeed(seed) takes a number", loc)
            self.rng = np.random.default_rng(int(s))
            return []

        def is_tensor(args, loc):
            return isinstance(args[0] if args else None, TensorObj)

        return {"Tensor": self.construct("double"), "DoubleTensor": self.construct("double"),
                "FloatTensor": self.construct("double"), "CudaTensor": self.construct("double"),
                "LongTensor": self.construct("long"), "zeros": filled(0, "torch.zeros"),
                "ones": filled(1, "torch.ones"), "rand": rand, "randn": randn,
                "range": torch_range, "linspace": linspace, "manualSeed": manual_seed,
                "isTensor": is_tensor}

    # ---- methods -------------------------------------------------------------------

    def method(self, t: TensorObj, key, loc):
        fn = _METHODS.get(key) if isinstance(key, str) else None
        if fn is None:
            raise SpecError(f"spec-time tensors have no method '{key}' (graphc supports "
                            f"{', '.join(sorted(_METHODS))})", loc)
        return lambda args, l: fn(self, t, list(args[1:]), l)


def _dim(t, d, loc, what):
    if not _isnum(d) or d != int(d) or not 1 <= d <= t.a.ndim:
        raise SpecError(f"{what}: dimension {d} out of range for a {t.shape_text()} tensor", loc)
    return int(d) - 1


def _reduce(np_fn, with_index=False):
    def f(ts, t, args, loc):
        if t.a.size == 0:
            raise SpecError("reduction of an empty tensor", loc)
        if not args or args[0] is None:
            return _num(float(np_fn(t.a)))
        d = _dim(t, args[0], loc, "reduction")
        vals = TensorObj(np.expand_dims(np_fn(t.a, axis=d), d))
        if with_index:  # Torch's max/min(dim) also return the 1-based indices
            arg = np.argmax if np_fn is np.max else np.argmin
            return [vals, TensorObj(np.expand_dims(arg(t.a, axis=d), d) + 1)]
        return vals
    return f


def _inplace(fn):
    def f(ts, t, args, loc):
        t.a[...] = fn(ts, t, args, loc)
        return t
    return f


def _operand(v, loc, what):
    if isinstance(v, TensorObj):
        return v.a
    if _isnum(v):
        return float(v)
    raise SpecError(f"{what}: expected a number or a tensor, got {type(v).__name__}", loc)


def _same_count(t, v, loc, what):
    b = _operand(v, loc, what)
    if isinstance(b, np.ndarray):
        if b.size != t.a.size:
            raise SpecError(f"{what}: inconsistent tensor size ({t.shape_text()} and "
                            f"{'x'.join(map(str, b.shape))})", loc)
        return b.reshape(t.a.shape)
    return b


def _narrow(ts, t, args, loc):
    d = _dim(t, args[0] if args else None, loc, "narrow")
    i, n = (args + [None, None, None])[1:3]
    if not (_isnum(i) and _isnum(n)) or i < 1 or n < 0 or i - 1 + n > t.a.shape[d]:
        raise SpecError(f"narrow({d + 1}, {i}, {n}) is out of range for a {t.shape_text()} tensor", loc)
    idx = [slice(None)] * t.a.ndim
    idx[d] = slice(int(i) - 1, int(i) - 1 + int(n))
    return TensorObj(t.a[tuple(idx)])


def _select(ts, t, args, loc):
    d = _dim(t, args[0] if args else None, loc, "select")
    i = args[1] if len(args) > 1 else None
    if not _isnum(i) or not 1 <= i <= t.a.shape[d]:
        raise SpecError(f"select({d + 1}, {i}) is out of range for a {t.shape_text()} tensor", loc)
    return TensorObj(np.take(t.a, int(i) - 1, axis=d)) if t.a.ndim == 1 else \
        TensorObj(t.a[(slice(None),) * d + (int(i) - 1,)])


def _view(ts, t, args, loc):
    sizes = list(args[0].array()) if args and hasattr(args[0], "array") and len(args) == 1 else args
    if sizes.count(-1) == 1:
        known = math.prod(s for s in sizes if s != -1)
        sizes = [t.a.size // known if s == -1 and known else s for s in sizes]
    shape = _sizes(sizes, "view", loc)
    if math.prod(shape) != t.a.size:
        raise SpecError(f"view: a {t.shape_text()} tensor cannot be viewed as "
                        f"{'x'.join(map(str, shape))}", loc)
    return TensorObj(t.a.reshape(shape))


def _size(ts, t, args, loc):
    if args and args[0] is not None:
        return t.a.shape[_dim(t, args[0], loc, "size")]
    return LuaTable.of(list(t.a.shape))


def _copy(ts, t, args, loc):
    src = args[0] if args else None
    if isinstance(src, TensorObj):
        b = src.a
    else:
        if not isinstance(src, LuaTable):
            raise SpecError("copy: expected a tensor", loc)
        b = from_table(src, loc, "copy")
    if b.size != t.a.size:
        raise SpecError(f"copy: {t.shape_text()} and {'x'.join(map(str, b.shape))} differ in "
                        "element count", loc)
    t.a[...] = b.reshape(t.a.shape)
    return t


_METHODS = {
    "size": _size,
    "dim": lambda ts, t, a, l: t.a.ndim, "nDimension": lambda ts, t, a, l: t.a.ndim,
    "nElement": lambda ts, t, a, l: int(t.a.size), "numel": lambda ts, t, a, l: int(t.a.size),
    "sum": _reduce(np.sum), "mean": _reduce(np.mean), "max": _reduce(np.max, True),
    "min": _reduce(np.min, True), "prod": _reduce(np.prod),
    "fill": _inplace(lambda ts, t, a, l: _operand(a[0] if a else None, l, "fill")),
    "zero": _inplace(lambda ts, t, a, l: 0),
    "add": _inplace(lambda ts, t, a, l: t.a + (_same_count(t, a[0], l, "add") if len(a) == 1
                                               else _operand(a[0], l, "add") * _same_count(t, a[1], l, "add"))),
    "mul": _inplace(lambda ts, t, a, l: t.a * _operand(a[0] if a else None, l, "mul")),
    "div": _inplace(lambda ts, t, a, l: t.a / _operand(a[0] if a else None, l, "div")),
    "cmul": _inplace(lambda ts, t, a, l: t.a * _same_count(t, a[0] if a else None, l, "cmul")),
    "normal": _inplace(lambda ts, t, a, l: ts.rng.normal(
        float(a[0]) if a and a[0] is not None else 0.0,
        float(a[1]) if len(a) > 1 and a[1] is not None else 1.0, t.a.shape)),
    "uniform": _inplace(lambda ts, t, a, l: ts.rng.uniform(
        float(a[0]) if a and a[0] is not None else 0.0,
        float(a[1]) if len(a) > 1 and a[1] is not None else 1.0, t.a.shape)),
    "copy": _copy,
    "clone": lambda ts, t, a, l: TensorObj(t.a.copy()),
    "narrow": _narrow, "select": _select, "view": _view,
    "t": lambda ts, t, a, l: TensorObj(t.a.T),
    "abs": lambda ts, t, a, l: TensorObj(np.abs(t.a)),
    "sqrt": lambda ts, t, a, l: TensorObj(np.sqrt(t.a)),
    "totable": lambda ts, t, a, l: _totable(t.a),
    "type": lambda ts, t, a, l: t.typename if not a else t,
    "double": lambda ts, t, a, l: TensorObj(t.a.astype(np.float64)),
    "float": lambda ts, t, a, l: TensorObj(t.a.astype(np.float64)),
    "cuda": lambda ts, t, a, l: TensorObj(t.a.astype(np.float64)),
    "long": lambda ts, t, a, l: TensorObj(np.trunc(t.a).astype(np.int64)),
}


def _totable(a):
    if a.ndim == 0:
        return _num(a.item())
    return LuaTable.of([_totable(x) if a.ndim > 1 else _num(x.item()) for x in a])


def index(t: TensorObj, key, loc):
    """t[i]: a number (1-D) or the i-th sub-tensor (a view), 1-based."""
    n = t.a.shape[0] if t.a.ndim else 0
    if not _isnum(key) or key != int(key) or not 1 <= key <= n:
        raise SpecError(f"index {key} out of range for a {t.shape_text()} tensor", loc)
    v = t.a[int(key) - 1]
    return _num(v.item()) if t.a.ndim == 1 else TensorObj(v)


def set_index(t: TensorObj, key, v, loc):
    n = t.a.shape[0] if t.a.ndim else 0
    if not _isnum(key) or key != int(key) or not 1 <= key <= n:
        raise SpecError(f"index {key} out of range for a {t.shape_text()} tensor", loc)
    t.a[int(key) - 1] = _operand(v, loc, "assignment")


def arith(op, a, b, loc):
    """Torch's tensor operators: + - elementwise (same element count) or with a number,
    * by a number, or a matrix/vector product of two tensors; / by a number."""
    if op in ("+", "-"):
        x = a.a if isinstance(a, TensorObj) else _operand(a, loc, op)
        y = (_same_count(a, b, loc, op) if isinstance(a, TensorObj) else _operand(b, loc, op))
        return TensorObj(np.asarray(x + y if op == "+" else x - y, dtype=np.float64))
    if op == "*":
        if isinstance(a, TensorObj) and isinstance(b, TensorObj):
            if a.a.ndim == 1 and b.a.ndim == 1:
                if a.a.size != b.a.size:
                    raise SpecError("dot: vectors of different sizes", loc)
                return _num(float(a.a @ b.a))
            if a.a.ndim == 2 and b.a.ndim in (1, 2) and a.a.shape[1] == b.a.shape[0]:
                return TensorObj(a.a @ b.a)
            raise SpecError(f"tensor product of {a.shape_text()} and {b.shape_text()} tensors: "
                            "sizes do not match", loc)
        return TensorObj(_operand(a, loc, op) * _operand(b, loc, op))
    if op == "/" and isinstance(a, TensorObj):
        return TensorObj(a.a / _operand(b, loc, op))
    raise SpecError(f"operator '{op}' is not supported on spec-time tensors", loc)
