"""Module: the base class of every generated Model (DESIGN section 4).

Parameters live in one flat buffer (and gradients in another); each parameter is a view,
so optimizers can work on the flat vector. Generated subclasses provide INPUTS, OUTPUTS,
PARAMETERS, `_forward(*inputs) -> tuple` and `_backward(inputs, grad_outputs) -> tuple`.
"""
from __future__ import annotations

import math
import operator
import os

import numpy as np

_FLOATS = ("float32", "float64")
DEFAULT_MAX_BYTES = 16 * 2**30  # graphc's compile-time limit has the same default and variable


def max_bytes() -> int:
    """GRAPHC_MAX_BYTES (default 16 GiB): the most memory one forward's values may take."""
    try:
        return int(os.environ.get("GRAPHC_MAX_BYTES", DEFAULT_MAX_BYTES))
    except ValueError:
        return DEFAULT_MAX_BYTES


def _size_text(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.4g} {unit}"
        n /= 1024


class _PendingZero:
    """zeroGradParameters() done lazily: while `pending`, the gradient buffer still holds old
    values that stand for zeros. The next backward writes each gradient's first contribution
    instead of adding it (and zeroes the gradients it does not write); anything else that
    reads the gradients first zeroes the buffer (Module.materialize_zero). One object per
    gradient buffer: clone_shared()'s models and Sequence's parts share it."""
    __slots__ = ("pending",)

    def __init__(self):
        self.pending = False


class Module:
    INPUTS: tuple = ()
    OUTPUTS: tuple = ()
    PARAMETERS: tuple = ()
    BUFFERS: tuple = ()
    INPUT_STRUCTURE: tuple | None = None  # None: one argument per input
    OUTPUT_STRUCTURE: tuple | None = None
    DEFAULT_DTYPE = "float32"
    ACTIVATION_ELEMENTS = (0, 0)  # (per sample, fixed) elements of one forward's values
    SUMMARY: tuple = ()  # (source line, module, output shape, parameter count) per module

    def __init__(self, dtype: str | None = None, seed: int | None = 0):
        dtype = dtype or self.DEFAULT_DTYPE
        if str(np.dtype(dtype)) not in _FLOATS:
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.dtype = np.dtype(dtype)
        sizes = [math.prod(shape) for _, shape, _ in self.PARAMETERS]
        self._flat_w = np.zeros(sum(sizes), self.dtype)
        self._flat_g = np.zeros(sum(sizes), self.dtype)
        self._weights, self._grads = [], []
        offset = 0
        for (_, shape, _), n in zip(self.PARAMETERS, sizes):
            self._weights.append(self._flat_w[offset:offset + n].reshape(shape))
            self._grads.append(self._flat_g[offset:offset + n].reshape(shape))
            offset += n
        self._buffers = [np.zeros(shape, self.dtype) for _, shape, _ in self.BUFFERS]
        self.train = True
        self.output = None
        self.gradInput = None
        self._saved = None
        self._rng = np.random.default_rng(seed)  # dropout masks
        self._scratch = {}  # (part, batch size) -> the memory plan's scratch arrays
        self._lazy_zero = _PendingZero()  # zeroGradParameters() not yet applied
        self.reset(seed)

    # ---- parameters ----------------------------------------------------------------

    def reset(self, seed: int | None = 0):
        """Each parameter's init (PARAMETERS' third column: Torch's default reset(), or what
        the spec recorded), drawn in flat order from one generator seeded with `seed`:
        ('uniform', s): U(-s, s); ('uniform_range', a, b): U(a, b); ('uniform01', s): U(0, s);
        ('normal', s): N(0, s^2); ('normal_mean', m, s): N(m, s^2); ('const', c): c;
        ('values', (v1, v2, ...)): those values, row-major (the spec's :copy);
        ('same_as', name): the values of parameter `name` (:copy of a parameter, clone()),
        copied after all the others are drawn."""
        rng = np.random.default_rng(seed)
        pairs = list(zip(self._weights + self._buffers, self.PARAMETERS + self.BUFFERS))
        for w, (_, shape, init) in pairs:
            kind, args = init[0], init[1:]
            if kind == "uniform":
                w[...] = rng.uniform(-args[0], args[0], shape)
            elif kind == "uniform_range":
                w[...] = rng.uniform(args[0], args[1], shape)
            elif kind == "uniform01":
                w[...] = rng.uniform(0.0, args[0], shape)
            elif kind == "normal":
                w[...] = rng.normal(0.0, args[0], shape)
            elif kind == "normal_mean":
                w[...] = rng.normal(args[0], args[1], shape)
            elif kind == "values":
                w[...] = np.asarray(args[0], dtype=w.dtype).reshape(shape)
            elif kind == "const":
                w[...] = args[0]
            elif kind != "same_as":
                raise ValueError(f"unknown parameter init {init!r}")
        by_name = {name: w for w, (name, _, _) in pairs}
        for w, (_, _, init) in pairs:
            if init[0] == "same_as":
                w[...] = by_name[init[1]].reshape(w.shape)

    def getParameters(self):
        """(flat weights, flat gradients): 1-D views; writing them changes the model. The
        gradient buffer is zeroed lazily (zeroGradParameters): between zeroGradParameters()
        and the next backward(), flat gradients returned earlier hold the old values (and
        what is written there is overwritten by that backward); calling getParameters() (or
        gradParameters()) zeroes them first."""
        self.materialize_zero()
        return self._flat_w, self._flat_g

    def parameters(self):
        """[(name, weight view)] in flat order."""
        return [(name, w) for (name, _, _), w in zip(self.PARAMETERS, self._weights)]

    def gradParameters(self):
        self.materialize_zero()
        return [(name, g) for (name, _, _), g in zip(self.PARAMETERS, self._grads)]

    def clone_shared(self):
        """A model sharing this one's parameters, gradients and buffers (not activations)."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other._saved, other.output, other.gradInput = None, None, None
        other._scratch = {}
        other._rng = np.random.default_rng(self._rng.integers(2**63))
        return other

    def _scratch_arrays(self, plan: dict, part: str, batch: int) -> list:
        """The generated memory plan's scratch arrays for one call of `part` ('forward' or
        'backward') at this batch size, made on first use and kept for later calls (up to 16
        (part, batch size) entries; the first made goes first). They never leave the call."""
        key = (part, batch)
        arrays = self._scratch.get(key)
        if arrays is None:
            if len(self._scratch) >= 16:
                self._scratch.pop(next(iter(self._scratch)))
            arrays = [np.empty(concrete_shape(shape, batch), self.dtype) for shape in plan[part]]
            self._scratch[key] = arrays
        return arrays

    def zeroGradParameters(self):
        """The gradients become zero, lazily: no pass over the buffer now; the next backward
        writes each gradient instead of adding to it (Torch's accumulate semantics hold: a
        backward without zeroGradParameters() adds). getParameters() and gradParameters()
        zero the buffer first if no backward came in between."""
        self._lazy_zero.pending = True

    def materialize_zero(self):
        """Apply a pending zeroGradParameters() to the buffer now."""
        if self._lazy_zero.pending:
            self._flat_g[...] = 0
            self._lazy_zero.pending = False

    def training(self):
        self.train = True
        return self

    def evaluate(self):
        self.train = False
        return self

    # ---- forward / backward --------------------------------------------------------

    def forward(self, *inputs):
        """forward(x) or forward(x1, x2, ...) (or a list of them, Torch style); a table input
        is a list. Returns one array (or list, for a table output) or a tuple of them."""
        fast = self._fast_specs()
        batch = self._plain(inputs, fast[0]) if fast is not None else None
        if batch is not None:
            if batch > self._batch_cap():
                self.check_activation_size(batch)
            self._last = (inputs, inputs, False)
            outs = self._forward(*inputs)
            self.output = outs[0] if len(outs) == 1 else outs
            return self.output
        arrays, squeeze = self._check_inputs(self._flatten_args(inputs))
        self._check_activations_of(arrays)
        self._last = (inputs, arrays, squeeze)  # backward with these same objects skips checks
        self.output = self._user_outputs(self._forward(*arrays), squeeze)
        return self.output

    __call__ = forward

    def _batch_cap(self) -> float:
        """The largest batch whose forward stays within GRAPHC_MAX_BYTES (read on the first
        forward), so the common path checks one comparison."""
        cap = self.__dict__.get("_cap")
        if cap is None or cap[0] != self.dtype:
            per, fixed = self.ACTIVATION_ELEMENTS
            room = max_bytes() // self.dtype.itemsize - fixed
            cap = self._cap = (self.dtype, room // per if per else (math.inf if room >= 0 else -1))
        return cap[1]

    def _check_activations_of(self, arrays) -> None:
        """check_activation_size for checked input arrays (their batch size, or 1)."""
        batch = next((x.shape[0] for x, (_, s, _) in zip(arrays, self.INPUTS) if _is_batched(s)), 1)
        self.check_activation_size(batch)

    def check_activation_size(self, batch: int, steps: int = 1) -> None:
        """ValueError, before anything is allocated, when `steps` forwards at `batch` would
        hold more than GRAPHC_MAX_BYTES of values (counting every value a node makes)."""
        per, fixed = self.ACTIVATION_ELEMENTS
        need = steps * (batch * per + fixed) * self.dtype.itemsize
        limit = max_bytes()
        if need > limit:
            at = f"batch size {batch}" + (f" and {steps} steps" if steps > 1 else "")
            raise ValueError(f"forward at {at} would need {_size_text(need)} for its values "
                             f"({need} bytes of {self.dtype}); the limit is {_size_text(limit)} "
                             "(set GRAPHC_MAX_BYTES to change it)")

    def backward(self, inputs, grad_outputs):
        """Gradients w.r.t. the inputs (None for integer inputs); accumulates parameter
        gradients. Uses the activations of the last forward()."""
        if self._saved is None:
            raise RuntimeError("backward() needs a forward() first")
        args = _as_tuple(inputs, len(self._in_struct()))
        last = getattr(self, "_last", None)
        if last is not None and len(last[0]) == len(args) and all(map(operator.is_, last[0], args)):
            arrays, squeeze = last[1], last[2]
            fast = self._fast_specs()
            if fast is not None and not squeeze and arrays:
                grads = _as_tuple(grad_outputs, len(fast[1]))
                if self._plain(grads, fast[1], arrays[0].shape[0]) is not None:
                    gin = self._backward(arrays, grads)
                    self.gradInput = gin[0] if len(gin) == 1 else gin
                    return self.gradInput
        else:
            arrays, squeeze = self._check_inputs(self._flatten_args(args))
        gin = self._backward(arrays, self._check_grads(grad_outputs, arrays, squeeze))
        self.gradInput = self._user_grads(gin, squeeze)
        return self.gradInput

    def _check_grads(self, grad_outputs, arrays, squeeze) -> tuple:
        """The output gradients as checked arrays, batched like `arrays` (_check_inputs')."""
        grads = _as_tuple(grad_outputs, len(self._out_struct()))
        if not self._flat_io()[1]:
            grads = _flatten(grads, self._out_struct(), "output gradients")
        if len(grads) != len(self.OUTPUTS):
            raise ValueError(f"expected {len(self.OUTPUTS)} output gradients, got {len(grads)}")
        batch = arrays[0].shape[0] if arrays and _is_batched(self.INPUTS[0][1]) else None
        checked = []
        for k, (g, (name, shape)) in enumerate(zip(grads, self.OUTPUTS)):
            g = self._asarray(g)
            if squeeze and _is_batched(shape):
                g = g[None]
            self._check_spec(g, self._specs()[1][k], batch, lambda k=k: self._describe(k, True))
            checked.append(g)
        return tuple(checked)

    def _user_outputs(self, outs, squeeze):
        """_forward's results as forward() returns them: unbatched again, nested."""
        if squeeze:
            outs = tuple(o[0] if _is_batched(shape) else o for o, (_, shape) in zip(outs, self.OUTPUTS))
        return self._nest(outs, self._out_struct())

    def _user_grads(self, gin, squeeze):
        if squeeze:
            gin = tuple(g[0] if g is not None and _is_batched(s) else g
                        for g, (_, s, _) in zip(gin, self.INPUTS))
        return self._nest(gin, self._in_struct())

    def _in_struct(self):
        return self.INPUT_STRUCTURE if self.INPUT_STRUCTURE is not None else tuple(range(len(self.INPUTS)))

    def _out_struct(self):
        return self.OUTPUT_STRUCTURE if self.OUTPUT_STRUCTURE is not None else tuple(range(len(self.OUTPUTS)))

    @classmethod
    def _flat_io(cls):
        """(inputs are plain, outputs are plain): no tables to flatten or rebuild."""
        if "_flat_io_cache" not in cls.__dict__:
            cls._flat_io_cache = tuple(all(isinstance(i, int) for i in s)
                                       for s in (cls._in_struct(cls), cls._out_struct(cls)))
        return cls._flat_io_cache

    # The common case, checked in a few comparisons: every argument a numpy array, batch
    # first, of the expected shape and dtype (no tables, no unbatched call). Anything else
    # takes the general path, which converts, checks and words the errors.
    _FAST = True  # CudaModule: False (it converts numpy arguments to device arrays)

    @classmethod
    def _fast_specs(cls):
        """([(tail shape, kind)] per input, [(tail shape, 'float')] per output) when the fast
        path applies to this class, else None."""
        if "_fast_cache" not in cls.__dict__:
            ins, outs = cls._specs()
            ok = cls._FAST and all(cls._flat_io()) and all(sp[2] and sp[4] is not None for sp in ins + outs)
            cls._fast_cache = ([(sp[4], sp[3]) for sp in ins], [(sp[4], sp[3]) for sp in outs]) if ok else None
        return cls._fast_cache

    def _plain(self, arrays, specs, batch=None):
        """The batch size if `arrays` are plain numpy arrays matching `specs` (all of them
        batched, with one batch size, `batch` if given), else None."""
        if len(arrays) != len(specs):
            return None
        for x, (tail, kind) in zip(arrays, specs):
            if type(x) is not np.ndarray:
                return None
            shape = x.shape
            if not shape or shape[1:] != tail or (batch is not None and shape[0] != batch):
                return None
            batch = shape[0]
            if kind == "float":
                if x.dtype != self.dtype:
                    return None
            elif x.dtype.kind not in "iu":
                return None
        return batch

    @classmethod
    def _specs(cls):
        """Per input and output: a `_spec`, built once per class so checking an argument is a
        few comparisons."""
        if "_specs_cache" not in cls.__dict__:
            cls._specs_cache = ([_spec(s, k) for _, s, k in cls.INPUTS],
                                [_spec(s, "float") for _, s in cls.OUTPUTS])
        return cls._specs_cache

    def _flatten_args(self, args):
        struct = self._in_struct()
        if len(args) == 1 and isinstance(args[0], (list, tuple)) and len(struct) > 1:
            args = tuple(args[0])  # Torch style: forward({x, c, h})
        if len(args) != len(struct):
            names = ", ".join(n for n, _, _ in self.INPUTS)
            raise ValueError(f"expected {len(struct)} inputs ({names}), got {len(args)}")
        return list(args) if self._flat_io()[0] else _flatten(args, struct, "inputs")

    @staticmethod
    def _nest(flat, struct):
        """Flat arrays -> the user's nesting: one value, or a tuple (tables are lists)."""
        def build(s):
            return flat[s] if isinstance(s, int) else [build(x) for x in s]
        out = tuple(build(s) for s in struct)
        return out[0] if len(out) == 1 else out

    def _asarray(self, x):
        """An argument as this backend's array type (CudaModule: a device array)."""
        return x if type(x) is np.ndarray else np.asarray(x)

    def _check_inputs(self, inputs):
        if len(inputs) != len(self.INPUTS):
            names = ", ".join(n for n, _, _ in self.INPUTS)
            raise ValueError(f"expected {len(self.INPUTS)} inputs ({names}), got {len(inputs)}")
        arrays = self._int_indices([self._asarray(x) for x in inputs])
        specs = self._specs()[0]
        # A batched model given unbatched inputs (all of them) runs a batch of one.
        squeeze = all(sp[2] and x.ndim == sp[0] - 1 for x, sp in zip(arrays, specs))
        if squeeze:
            arrays = [x[None] for x in arrays]
        batch = None
        for k, x in enumerate(arrays):
            batch = self._check_spec(x, specs[k], batch, lambda k=k: self._describe(k, False))
        return arrays, squeeze

    def _int_indices(self, arrays: list) -> list:
        """`arrays` (one per input) with index inputs given as floats converted to int64."""
        for k, (x, sp) in enumerate(zip(arrays, self._specs()[0])):
            if sp[3] == "index" and x.dtype.kind == "f":
                arrays[k] = self._float_indices(x, lambda k=k: self._describe(k, False)[0])
        return arrays

    @staticmethod
    def _float_indices(x, what):
        """Torch's convention: indices may come as floats holding whole numbers (char-rnn
        feeds LookupTable a float tensor). They are converted exactly to int64; a value that
        is not a whole number (or NaN, or beyond 2^53 where floats stop being exact) is an
        error naming the input (`what()`) and its first such position."""
        bad = ~(abs(x) <= 2.0 ** 53) | (x != x.round())
        if bad.any():
            from .kernels import position
            value = x[bad].ravel()[0]
            raise ValueError(f"{what()}: index {float(value)!r} at position {position(bad)} is "
                             "not a whole number (float indices must hold integers)")
        return x.astype(np.int64)

    def _check_spec(self, x, spec, batch, describe):
        """`describe()` -> (what, expected shape text): only called to word an error."""
        ndim, fixed, is_batched, kind, tail, scaled = spec
        shape = x.shape
        if tail is not None:  # the common case: B first (or no B): one tuple comparison
            # (a 0-d array has no B: its shape[1:] would match a batched index input's ())
            bad = (shape[1:] if is_batched else shape) != tail or (is_batched and not shape)
        else:
            bad = x.ndim != ndim or any(shape[a] != d for a, d in fixed)
        if bad:
            what, want = describe()
            got = "None" if x.dtype.kind == "O" and x.ndim == 0 and x.item() is None else (
                'x'.join(map(str, shape)) or 'scalar')
            raise ValueError(f"{what}: expected shape {want}, got {got}")
        if is_batched:
            if batch is not None and shape[0] != batch:
                raise ValueError(f"{describe()[0]}: batch size {shape[0]} differs from the other "
                                 f"inputs' {batch}")
            batch = shape[0]
        for a, k in scaled:  # a dim of B*k elements (View(-1, ...) folding the batch)
            if batch is None and shape[a] % k == 0:
                batch = shape[a] // k
            if batch is None or shape[a] != k * batch:
                what, want = describe()
                raise ValueError(f"{what}: expected shape {want}, got {shape_text(shape)} (dim "
                                 f"{a + 1} must be {k} times the batch size"
                                 + (f" {batch})" if batch is not None else ")"))
        if kind == "float":
            if x.dtype != self.dtype:
                raise ValueError(f"{describe()[0]}: expected dtype {self.dtype}, got {x.dtype} "
                                 f"(convert it with .astype(np.{self.dtype}), or make the model "
                                 f"with {type(self).__name__}(dtype=\"{x.dtype}\"))"
                                 if x.dtype.kind == "f" else
                                 f"{describe()[0]}: expected dtype {self.dtype}, got {x.dtype}")
        elif kind == "index" and x.dtype.kind not in "iu":
            raise ValueError(f"{describe()[0]}: expected an integer array (or floats holding "
                             f"integers), got {x.dtype}")
        return batch

    def _describe(self, k, output):
        name, shape = (self.OUTPUTS[k][0], self.OUTPUTS[k][1]) if output else self.INPUTS[k][:2]
        what = f"gradient of output '{name}'" if output else f"input '{name}'"
        return what, shape_text(shape)

    def __repr__(self):
        """A Torch-style summary (print(net) in Torch): the modules in order, with their
        output shapes and parameter counts, then the totals."""
        shape = shape_text
        rows = [(where, module, shape(out), f"{count:,}" if count else "")
                for where, module, out, count in self.SUMMARY]
        width = [max([len(r[k]) for r in rows] + [0]) for k in range(4)]
        ins = ", ".join(f"{n}: {shape(s)}" for n, s, _ in self.INPUTS)
        outs = ", ".join(f"{n}: {shape(s)}" for n, s in self.OUTPUTS)
        lines = [f"{type(self).__module__}.{type(self).__name__} ({self.dtype}, "
                 f"{'training' if self.train else 'evaluate'} mode) {{",
                 f"  inputs:  {ins}"]
        index = len(f"({len(rows)})")
        lines += [f"  {f'({i})'.ljust(index)} {w.ljust(width[0])}  {m.ljust(width[1])}  -> {o.ljust(width[2])}  "
                  f"{c.rjust(width[3])}".rstrip() for i, (w, m, o, c) in enumerate(rows, 1)]
        lines += [f"  outputs: {outs}",
                  f"  parameters: {self._flat_w.size:,} in {len(self.PARAMETERS)} arrays"
                  + (f"; buffers: {sum(b.size for b in self._buffers):,}" if self._buffers else ""),
                  "}"]
        return "\n".join(lines)

    # ---- persistence ------------------------------------------------------------------

    def _signature(self):
        return "|".join(f"{n}:{'x'.join(map(str, s))}" for n, s, _ in self.PARAMETERS + self.BUFFERS)

    def _state(self):
        """Parameters then buffers, as one flat array (what save() writes)."""
        return np.concatenate([self._flat_w] + [b.ravel() for b in self._buffers])

    def save(self, path):
        """Write the weights to `path` (an .npz file) atomically: a crash leaves the old file."""
        path = os.fspath(path)
        if os.path.exists(path) and not os.path.isfile(path):  # a device or FIFO: write to it
            with open(path, "wb") as f:
                np.savez(f, graphc_parameters=self._signature(), flat=self._state())
            return
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                np.savez(f, graphc_parameters=self._signature(), flat=self._state())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def load(self, path):
        """Read weights saved by save(). Anything else (a truncated, foreign or other model's
        file) raises ValueError naming the mismatch, and the weights stay unchanged."""
        try:
            with np.load(path, allow_pickle=False) as f:
                if "graphc_parameters" not in f.files or "flat" not in f.files:
                    raise ValueError(f"{path}: not a graphc parameter file (keys: {sorted(f.files)[:5]})")
                sig = str(f["graphc_parameters"])
                flat = f["flat"]
        except ValueError:
            raise
        except Exception as e:  # zipfile/EOF/OS errors of a damaged file
            raise ValueError(f"{path}: cannot read a graphc parameter file ({type(e).__name__}: {e})") from None
        if sig != self._signature():
            raise ValueError(f"{path}: parameters do not match this model "
                             f"(file: {sig[:200]!r}; model: {self._signature()[:200]!r})")
        state = self._state()
        if flat.shape != state.shape or not np.issubdtype(flat.dtype, np.floating):
            raise ValueError(f"{path}: expected {state.size} floats, got {flat.size} of {flat.dtype}")
        n = self._flat_w.size
        self._flat_w[...] = flat[:n]
        for b in self._buffers:
            b[...] = flat[n:n + b.size].reshape(b.shape)
            n += b.size
        return self

    def load_t7(self, path, entry=None, order="structure"):
        """Read the weights and running state of a module saved by Torch7 (`torch.save`),
        matched by structure (or order='flat': one getParameters() vector); see
        graphc_runtime.t7.load_into. Raises ValueError naming the first mismatch; nothing
        changes then."""
        from .t7 import load_into
        return load_into(self, path, entry, order)

    def _flatten_outputs(self):
        out = self.output if len(self._out_struct()) > 1 else (self.output,)
        return _flatten(out, self._out_struct(), "outputs")

    # ---- a quick self-check (`python model.py`) ------------------------------------------

    @classmethod
    def self_check(cls, batch: int = 2):
        m = cls(seed=0)
        rng = np.random.default_rng(0)
        xs = [rng.integers(1, 3, concrete_shape(s, batch)) if kind == "index" else
              rng.standard_normal(concrete_shape(s, batch)).astype(m.dtype)
              for _, s, kind in cls.INPUTS]
        args = m._nest(xs, m._in_struct())
        args = args if len(m._in_struct()) > 1 else (args,)
        m.forward(*args)
        outs = m._flatten_outputs()
        m.backward(args, m._nest([np.ones_like(o) for o in outs], m._out_struct()))
        for (name, _), o in zip(cls.OUTPUTS, outs):
            print(f"{name}: shape {o.shape}, mean {float(o.mean()):.6g}")
        print(f"{len(cls.PARAMETERS)} parameter arrays, {m._flat_w.size} numbers; "
              f"|grad| = {float(np.abs(m._flat_g).sum()):.6g}")


def batch_factor(d):
    """A metadata dim's multiple of the batch: 1 for 'B', k for 'B*k', None for a size."""
    if d == "B":
        return 1
    if isinstance(d, str) and d.startswith("B*"):
        return int(d[2:])
    return None


def concrete_shape(shape, batch: int) -> tuple:
    """A metadata shape at this batch size ('B*5' is 5 * batch)."""
    return tuple(d if batch_factor(d) is None else batch * batch_factor(d) for d in shape)


def shape_text(shape) -> str:
    """'Bx4', '(B*5)x4' (as graphc writes shapes), 'scalar' for ()."""
    return "x".join(f"({d})" if isinstance(d, str) and d != "B" else str(d) for d in shape) or "scalar"


def _spec(shape, kind):
    """(ndim, [(axis, size) of fixed dims], batched, kind, the shape to compare or None,
    [(axis, k) of the dims that are k times the batch, other than a leading B])."""
    batched = _is_batched(shape)
    rest = tuple(shape[1:]) if batched else tuple(shape)
    scaled = [(a, batch_factor(d)) for a, d in enumerate(shape)
              if batch_factor(d) is not None and not (batched and a == 0)]
    tail = rest if not scaled else None
    return (len(shape), [(a, d) for a, d in enumerate(shape) if batch_factor(d) is None],
            batched, kind, tail, scaled)


def _is_batched(shape) -> bool:
    return bool(shape) and shape[0] == "B"


def _flatten(args, struct, what):
    """Arguments nested per `struct` -> the flat list of arrays."""
    flat = {}

    def walk(a, s, path):
        if isinstance(s, int):
            flat[s] = a
            return
        if not isinstance(a, (list, tuple)) or len(a) != len(s):
            got = f"a table of {len(a)}" if isinstance(a, (list, tuple)) else "one array"
            raise ValueError(f"{what}{path}: expected a table (list) of {len(s)}, got {got}")
        for i, (x, t) in enumerate(zip(a, s), 1):
            walk(x, t, f"{path}[{i}]")
    for i, (a, s) in enumerate(zip(args, struct), 1):
        walk(a, s, f" {i}" if len(struct) > 1 else "")
    return [flat[i] for i in range(len(flat))]


def _as_tuple(x, n):
    if n == 1 and not isinstance(x, (list, tuple)):
        return (x,)
    if n == 1 and isinstance(x, (list, tuple)) and len(x) == 1:
        return tuple(x)
    if n == 1:
        return (x,)
    return tuple(x)
