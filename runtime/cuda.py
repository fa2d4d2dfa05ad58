"""The CUDA target's runtime: what `graphc compile --target cuda` modules import.

Generated code calls only its model's Backend (`rt = self._rt`: `rt.empty`, `rt.zeros`,
`rt.matmul`, `rt.addmm`, `rt.add_colsum`) and `CudaModule._launch`. CupyBackend (the
default) runs on the GPU through CuPy, which is imported the first time a model is built,
never at import time: numpy-target users and CPU-only machines need no CuPy. Tests swap in a
CPU backend with `use_backend()` that runs the very same generated kernels in host emulation.

Kernel compilation and caching
------------------------------
A model's kernels are one self-contained CUDA source (the module's CUDA_SOURCE). NVRTC
compiles it once per (source, dtype, GPU architecture) into a cubin (PTX when the GPU is
newer than NVRTC knows), kept on disk under `kernel_cache_dir()`:

    $GRAPHC_CUDA_CACHE_DIR, else $XDG_CACHE_HOME/graphc/cuda, else ~/.cache/graphc/cuda
    <sha256(source, NVRTC options, -arch, NVRTC version, CACHE_FORMAT)>.cubin

written atomically (temp file + os.replace), so concurrent processes and crashes never leave
a partial file; a file the driver refuses is deleted and compiled again. A second process
(or a second model with the same kernels) compiles nothing: `stats` counts compiles and cache
hits. CuPy keeps its own cache of the kernels *it* compiles (its elementwise and reduction
kernels, ~/.cupy/kernel_cache or $CUPY_CACHE_DIR); graphc's cubins are loaded from files
(cupy.RawModule(path=...)) and never go through it. Without CuPy's low-level NVRTC binding
the source is handed to cupy.RawModule(code=...), which then uses CuPy's cache instead.

GEMMs are cuBLAS calls: matmul(x, w.T) is cupy.matmul, which passes the transposed view to
cuBLAS as a transpose flag (no copy); addmm accumulates a gradient in place with
cupy.cublas.gemm(beta=1), Torch's addmm; add_colsum is a GEMM with a cached ones row.

CUDA graphs (opt-in: `CudaModule.step(inputs, grad_outputs, graph=True)`)
--------------------------------------------------------------------------
Replaying a captured CUDA graph removes the per-launch CPU overhead that dominates small
models. CuPy refuses cuBLAS calls during stream capture (cupy_backends/cuda/libs/cublas.pyx:
"calling cuBLAS API during stream capture is currently unsupported", cupy#6290), so a graph
step runs with GraphBackend, which replaces the three BLAS calls by graphc's own GEMM
kernels (GEMM_SOURCE: one thread per output element over arbitrary strides, so transposed
operands are still read in place). The first call of a shape runs eagerly (its results are
real) and notes every allocation; the second captures forward+backward as one graph with
those arrays laid out in one buffer made before capturing (so nothing is allocated while
capturing, and the graph owns its memory); later calls copy the inputs into the captured
input buffers and replay it, writing into the same buffers. Outputs and input gradients alias the
graph's buffers (the next replay overwrites them). Models whose ops run host code (Dropout's
mask, index checks, BatchNorm's running statistics) cannot be captured: GRAPH_UNSAFE (and, in
training mode, GRAPH_UNSAFE_TRAINING) names them and step(graph=True) refuses them. Own GEMMs
are only fast for small matrices: this
mode is for launch-bound models.
"""
from __future__ import annotations

import abc
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from .module import Module

BLOCK = 256  # threads per block; the generated kernels declare __launch_bounds__(256)
INT_LIMIT = 2**31 - 1  # kernels index with 32-bit ints
CACHE_FORMAT = "graphc-cuda-cache-1"
stats = {"compiled": 0, "cache_hits": 0, "loaded": 0}


class CudaCompileError(RuntimeError):
    """NVRTC rejected a generated source (a graphc bug): the message holds NVRTC's log."""


def user_cache_dir(env: str, name: str) -> Path:
    """$`env`, else $XDG_CACHE_HOME/graphc/`name`, else ~/.cache/graphc/`name`."""
    if os.environ.get(env):
        return Path(os.environ[env])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "graphc" / name


def kernel_cache_dir() -> Path:
    return user_cache_dir("GRAPHC_CUDA_CACHE_DIR", "cuda")


def _check_size(n: int, what: str, target: str = "CUDA"):
    if n > INT_LIMIT:
        raise ValueError(f"{what} of {n} elements is too large for the {target} target's 32-bit "
                         f"indices (at most {INT_LIMIT}); use a smaller batch")


class Backend(abc.ABC):
    """Arrays, BLAS and kernel launches for generated CUDA-target code. Subclasses give `xp`
    (the array module), `load()` and `call()`; BLAS defaults to xp.matmul."""

    xp = np
    name = "abstract"

    def empty(self, shape, dtype):
        n = 1
        for d in shape:
            n *= int(d)
        _check_size(n, "an array")
        return self.xp.empty(shape, dtype)

    def zeros(self, shape, dtype):
        return self.xp.zeros(shape, dtype)

    def matmul(self, a, b):
        return self.xp.matmul(a, b)

    def addmm(self, out, a, b, beta: float = 1.0):
        """out = beta * out + a @ b (Torch's addmm); beta 0 writes (out's old values, even
        NaN, are not read: a gradient's first contribution after zeroGradParameters)."""
        if beta == 0:
            self.xp.matmul(a, b, out=out)
        else:
            out += self.xp.matmul(a, b)

    def add_colsum(self, out, a, beta: float = 1.0):
        """out = beta * out + a.sum(0) for a 2-D a (a bias gradient); beta 0 as addmm's."""
        if beta == 0:
            out[...] = a.sum(0)
        else:
            out += a.sum(0)

    def launch(self, kernels, name: str, n: int, args):
        """Run kernel `name` on n threads (blocks of BLOCK)."""
        if n <= 0:
            return
        _check_size(n, f"kernel {name}'s launch")
        self.call(kernels, name, ((n + BLOCK - 1) // BLOCK,), (BLOCK,), args)

    def asarray(self, x):
        # (ascontiguousarray alone would make a 0-d array, e.g. a loss's gradient, 1-d)
        a = self.xp.asarray(x)
        return a if a.flags.c_contiguous else self.xp.ascontiguousarray(a)

    def full(self, shape, value, dtype):
        return self.xp.full(shape, value, dtype)

    def contiguous(self, x):
        """x itself when C-contiguous, else a contiguous copy (elem kernels index flat)."""
        return x if x.flags.c_contiguous else self.xp.ascontiguousarray(x)

    def indices(self, x):
        """Integer indices as the int32 array kernels read (values outside int32 refused)."""
        x = self.xp.asarray(x)
        if x.dtype != np.int32 and x.size and (int(x.min()) < -INT_LIMIT - 1 or int(x.max()) > INT_LIMIT):
            raise ValueError("indices must fit in 32 bits for the CUDA target")
        return self.xp.ascontiguousarray(x, dtype=np.int32)

    def check_indices(self, x, n: int, what: str):
        """Torch's 1-based indices: every one in 1..n, or the numpy target's ValueError (the
        first bad index, naming `what`)."""
        if x.size and (int(x.min()) < 1 or int(x.max()) > n):
            bad = (x < 1) | (x > n)
            raise ValueError(f"{what}: index {int(x[bad].ravel()[0])} is out of range 1..{n} "
                             f"(indices are 1-based) at position {self.position(bad)}")
        return x

    @staticmethod
    def position(bad) -> str:
        """The index of the first True element of boolean array `bad`, as text (as the numpy
        target's graphc_runtime.kernels.position)."""
        from .kernels import position
        return position(bad)

    def stable_argsort(self, a):
        return self.xp.argsort(a, kind="stable")

    def index_rows(self, x, n: int):
        """(positions of x sorted by index, int32; where each index 1..n starts in that
        order, n + 1 int32 entries): lets a kernel visit the positions of one index."""
        xp = self.xp
        flat = x.reshape(-1)
        order = self.stable_argsort(flat).astype(np.int32)
        starts = xp.searchsorted(flat[order], xp.arange(1, n + 2, dtype=flat.dtype)).astype(np.int32)
        return order, starts

    def dropout_mask(self, rng, shape, dtype, p: float, v1: bool):
        """The numpy target's mask (graphc_runtime.kernels.dropout_mask, the model's seeded
        host RNG), copied to the device: both targets drop the same elements."""
        from .kernels import dropout_mask
        return self.asarray(dropout_mask(rng, np.empty(shape, dtype), p, v1))

    def to_host(self, x) -> np.ndarray:
        return np.array(x)

    @abc.abstractmethod
    def load(self, source: str, dtype, names=()):
        """Compile `source` (or fetch it from the cache); return the kernels by name."""

    @abc.abstractmethod
    def call(self, kernels, name, grid, block, args):
        """Launch one kernel."""


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self):
        try:
            import cupy
        except ImportError as e:
            raise ImportError("the CUDA target needs CuPy (pip install cupy-cuda12x, or the "
                              "graphc[cuda] extra); compile with --target numpy for CPU code"
                              ) from e
        self.cupy = self.xp = cupy
        self._modules = {}
        self._ones = {}

    # ---- BLAS: cuBLAS through CuPy ----------------------------------------------------------

    def matmul(self, a, b):
        return self.cupy.matmul(a, b)  # a transposed (F-contiguous) view is a cuBLAS flag

    @staticmethod
    def _operand(x):
        if x.flags.c_contiguous:
            return x, "N"
        if x.T.flags.c_contiguous:
            return x.T, "T"
        return x.copy(), "N"

    def addmm(self, out, a, b, beta: float = 1.0):
        if not out.flags.c_contiguous:
            return Backend.addmm(self, out, a, b, beta)
        a, ta = self._operand(a)
        b, tb = self._operand(b)
        self.cupy.cublas.gemm(ta, tb, a, b, out=out, alpha=1.0, beta=beta)

    def add_colsum(self, out, a, beta: float = 1.0):
        rows = a.shape[0]
        key = (rows, a.dtype.str)
        ones = self._ones.get(key)
        if ones is None:
            ones = self._ones[key] = self.cupy.ones((1, rows), a.dtype)
        o = out.reshape(1, -1)
        if not o.flags.c_contiguous:
            return Backend.add_colsum(self, out, a, beta)
        a, ta = self._operand(a)
        self.cupy.cublas.gemm("N", ta, ones, a, out=o, alpha=1.0, beta=beta)

    def to_host(self, x) -> np.ndarray:
        return self.cupy.asnumpy(x)

    def stable_argsort(self, a):
        return self.cupy.argsort(a)  # always stable (CuPy takes no `kind` but None)

    # ---- kernels ------------------------------------------------------------------------------

    def load(self, source: str, dtype, names=()):
        if not names:
            return {}  # a model without kernels (GEMMs and views only) compiles nothing
        dtype = np.dtype(dtype)
        options = ("-DGRAPHC_REAL=double",) if dtype == np.float64 else ()
        device = self.cupy.cuda.Device()
        key = (hashlib.sha256(source.encode()).hexdigest(), options, device.id)
        if key not in self._modules:
            self._modules[key] = self._compile(source, options, device, names)
        return self._modules[key]

    def _compile(self, source, options, device, names):
        """{kernel name: function} of the source, through the disk cache."""
        cupy = self.cupy

        def functions(module):
            out = {name: module.get_function(name) for name in names}
            out["__module__"] = module
            return out
        try:
            from cupy_backends.cuda.libs import nvrtc
            supported = tuple(nvrtc.getSupportedArchs())
            version = nvrtc.getVersion()
        except Exception:  # no low-level binding: CuPy compiles (and caches) it itself
            return functions(cupy.RawModule(code=source, options=options, backend="nvrtc"))
        arch = int(device.compute_capability)
        if arch in supported:
            target, ext = f"-arch=sm_{arch}", "cubin"
        else:  # a GPU newer than this NVRTC: PTX for the newest arch it knows, JIT by the driver
            older = [a for a in supported if a <= arch] or [min(supported)]
            target, ext = f"-arch=compute_{max(older)}", "ptx"
        opts = list(options) + [target]
        key = hashlib.sha256("\0".join([CACHE_FORMAT, source, *opts, repr(version)]).encode()).hexdigest()
        path = kernel_cache_dir() / f"{key}.{ext}"
        for attempt in (0, 1):
            if path.exists():
                stats["cache_hits"] += 1
            else:
                self._nvrtc(nvrtc, source, opts, ext, path)
                stats["compiled"] += 1
            try:
                loaded = functions(cupy.RawModule(path=str(path)))  # the driver reads it here
                stats["loaded"] += 1
                return loaded
            except Exception:
                if attempt:
                    raise
                path.unlink(missing_ok=True)  # damaged: compile again
        raise AssertionError("unreachable")

    @staticmethod
    def _nvrtc(nvrtc, source, opts, ext, path: Path):
        prog = nvrtc.createProgram(source, "graphc_model.cu", [], [])
        try:
            try:
                nvrtc.compileProgram(prog, opts)
            except nvrtc.NVRTCError as e:
                raise CudaCompileError(f"NVRTC failed ({e}) on the generated kernels; this is a "
                                       f"graphc bug. Log:\n{nvrtc.getProgramLog(prog)}") from None
            data = nvrtc.getCUBIN(prog) if ext == "cubin" else nvrtc.getPTX(prog)
        finally:
            nvrtc.destroyProgram(prog)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def call(self, kernels, name, grid, block, args):
        kernels[name](grid, block, args)

    def capture(self, fn):
        """Run fn() under stream capture: (its results, replay()). Kernels launch on CuPy's
        current stream, so a capturing stream made current records them; replays launch the
        graph on the stream current then (after the input copies, before later work)."""
        cupy = self.cupy
        stream = cupy.cuda.Stream(non_blocking=True)
        with stream:
            stream.begin_capture()
            try:
                results = fn()
            finally:
                graph = stream.end_capture()

        def replay():
            graph.launch(cupy.cuda.get_current_stream())
        replay.graph = graph
        return results, replay


_backend: Backend | None = None


def backend() -> Backend:
    """The current backend (CupyBackend unless use_backend() chose another)."""
    global _backend
    if _backend is None:
        _backend = CupyBackend()
    return _backend


def use_backend(b: Backend | None) -> Backend | None:
    """Make `b` the backend of models built from now on; returns the previous one."""
    global _backend
    old, _backend = _backend, b
    return old


class CudaModule(Module):
    """Module (DESIGN section 4) on device arrays: the flat parameter and gradient buffers,
    inputs and outputs are the backend's arrays (CuPy's). Initial weights are drawn on the
    host exactly as the numpy target draws them, so both targets start from the same model."""

    _FAST = False  # numpy arguments must become device arrays: the general path

    CUDA_SOURCE = ""
    KERNELS: tuple = ()

    @classmethod
    def _backend(cls) -> Backend:
        return backend()

    def _kernel_source(self) -> str:
        return self.CUDA_SOURCE

    def __init__(self, dtype: str | None = None, seed: int | None = 0):
        self._rt = self._backend()
        super().__init__(dtype, seed)  # host buffers and Torch's init
        xp = self._rt.xp
        self._flat_w = xp.asarray(self._flat_w)
        self._flat_g = xp.asarray(self._flat_g)
        self._weights, self._grads = self._views(self._flat_w), self._views(self._flat_g)
        self._buffers = [xp.asarray(b) for b in self._buffers]
        self._on_device = True
        self._kernels = self._rt.load(self._kernel_source(), self.dtype, self.KERNELS)

    def _views(self, flat):
        out, offset = [], 0
        for _, shape, _ in self.PARAMETERS:
            n = 1
            for d in shape:
                n *= d
            out.append(flat[offset:offset + n].reshape(shape))
            offset += n
        return out

    def _launch(self, name, n, *args):
        self._rt.launch(self._kernels, name, n, args)

    def clone_shared(self):
        other = super().clone_shared()
        other.__dict__.pop("_graphs", None)  # a graph's buffers are its model's activations
        return other

    # ---- CUDA-graph mode ------------------------------------------------------------------------

    GRAPH_UNSAFE: tuple = ()  # ops whose host code cannot be captured (generated per model)
    GRAPH_UNSAFE_TRAINING: tuple = ()  # ... whose host code runs only in training mode

    def step(self, inputs, grad_outputs, graph: bool = False):
        """forward(*inputs) then backward(inputs, grad_outputs) in one call: returns
        (outputs, input gradients). graph=True replays a CUDA graph of the whole step per set
        of input shapes (see the module docstring): results alias the graph's buffers."""
        inputs = tuple(inputs)
        if not graph:
            out = self.forward(*inputs)
            return out, self.backward(inputs, grad_outputs)
        unsafe = self.GRAPH_UNSAFE + (self.GRAPH_UNSAFE_TRAINING if self.train else ())
        if unsafe:
            raise ValueError("this model cannot run as a CUDA graph: " + "; ".join(unsafe))
        # a graph replays the device work of one run: its backward adds to the gradients
        self.materialize_zero()
        arrays, squeeze = self._check_inputs(self._flatten_args(inputs))
        self._check_activations_of(arrays)
        grads = self._check_grads(grad_outputs, arrays, squeeze)
        key = (self.train, squeeze) + tuple(x.shape for x in arrays)
        graphs = self.__dict__.setdefault("_graphs", {})
        g = graphs.get(key)
        if not isinstance(g, _Graph):  # None: run eagerly; a list: the eager run's allocations
            result, graphs[key] = self._graph_build(arrays, grads, squeeze, plan=g)
            if g is None:
                self.output, self.gradInput = result
                return result
            g = graphs[key]
        for static, x in zip(g.inputs + g.grad_outputs, arrays + list(grads)):
            static[...] = x
        g.replay()
        self.output, self.gradInput = g.results
        return g.results

    def _graph_build(self, arrays, grads, squeeze, plan):
        """First call of a shape (plan None): the step runs eagerly on GraphBackend (own
        GEMMs), which notes its allocations: returns (results, that plan). Second call: the
        step is captured (nothing runs) into buffers laid out by the plan: returns (None,
        a _Graph for the replays)."""
        inner = self._rt
        gb = GraphBackend(inner, self.dtype, plan)
        static_in, static_g = [x.copy() for x in arrays], [g.copy() for g in grads]

        def run():
            outs = self._forward(*static_in)
            gin = self._backward(static_in, tuple(static_g))
            return self._user_outputs(outs, squeeze), self._user_grads(gin, squeeze)
        self._rt = gb
        try:
            if plan is None:
                return run(), gb.sizes
            capturer = getattr(inner, "capture", None)
            if capturer is None:  # emulation: record the device work, replay runs it
                gb.record = []
                results = run()
                recorded, gb.record = gb.record, None

                def replay():
                    for work in recorded:
                        work()
            else:
                results, replay = capturer(run)
        finally:
            self._rt = inner
        return None, _Graph(static_in, static_g, results, replay, gb.keep)

    # ---- host copies: init, save, load reuse Module's code on numpy arrays --------------------

    def _host(self) -> Module:
        h = object.__new__(Module)
        h.PARAMETERS, h.BUFFERS, h.dtype = self.PARAMETERS, self.BUFFERS, self.dtype
        h.T7_MODULES = getattr(self, "T7_MODULES", ())
        h._flat_w = self._rt.to_host(self._flat_w).copy()
        h._flat_g = np.zeros_like(h._flat_w)
        h._weights = self._views(h._flat_w)
        h._buffers = [self._rt.to_host(b).copy() for b in self._buffers]
        return h

    def _from_host(self, h: Module):
        xp = self._rt.xp
        self._flat_w[...] = xp.asarray(h._flat_w)
        for b, hb in zip(self._buffers, h._buffers):
            b[...] = xp.asarray(hb)

    def reset(self, seed: int | None = 0):
        if not getattr(self, "_on_device", False):
            return Module.reset(self, seed)
        h = self._host()
        Module.reset(h, seed)
        self._from_host(h)

    def save(self, path):
        Module.save(self._host(), path)

    def load(self, path):
        h = self._host()
        Module.load(h, path)
        self._from_host(h)
        return self

    def load_t7(self, path, entry=None, order="structure"):
        h = self._host()
        Module.load_t7(h, path, entry, order)
        self._from_host(h)
        if "train" in h.__dict__:  # the saved training/evaluation flag
            self.train = h.train
        return self

    def _state(self):
        return Module._state(self._host())

    # ---- inputs and gradients arrive as device arrays (numpy ones are copied over) ------------

    def _asarray(self, x):  # Module's checks then run on device arrays
        return self._rt.asarray(x)


# ---- CUDA-graph mode -------------------------------------------------------------------------

GEMM_KERNELS = ("graphc_gemm", "graphc_colsum")
GEMM_SOURCE = r"""// graphc runtime: GEMMs for CUDA-graph mode (cuBLAS cannot run during stream capture).
#ifndef GRAPHC_REAL
#define GRAPHC_REAL float
#endif
typedef GRAPHC_REAL real;
// Operands are strided views of contiguous arrays: element (m, k) of A is A[oa + m*sam + k*sak].
// C[m, n] (+)= sum_k A(m, k) * Bm(k, n); C is contiguous M x N.
extern "C" __global__ void __launch_bounds__(256) graphc_gemm(const real* __restrict__ A,
    const real* __restrict__ Bm, real* __restrict__ C, int M, int N, int K, int oa, int sam,
    int sak, int ob, int sbk, int sbn, int accumulate) {
  const int t = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (t >= M * N) return;
  const int m = t / N, n = t % N;
  real s = 0;
  for (int k = 0; k < K; ++k) s += A[oa + m * sam + k * sak] * Bm[ob + k * sbk + n * sbn];
  C[t] = accumulate ? C[t] + s : s;
}
// out[n] += sum_m A(m, n): a bias gradient.
extern "C" __global__ void __launch_bounds__(256) graphc_colsum(const real* __restrict__ A,
    real* __restrict__ out, int M, int N, int oa, int sam, int san) {
  const int n = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (n >= N) return;
  real s = 0;
  for (int m = 0; m < M; ++m) s += A[oa + m * sam + n * san];
  out[n] += s;
}
"""


class GraphBackend(Backend):
    """Another backend's arrays and kernels, with graphc's own GEMM kernels instead of BLAS
    (capturable), keeping every array it allocates (`keep`) so that a captured graph's
    buffers outlive the capture. With a `plan` (a capture), arrays are slices of one buffer.
    `record`: a list while emulating a capture (the inner backend has none of its own):
    device work is appended to it as callables instead of run."""

    def __init__(self, inner: Backend, dtype, plan: list | None = None):
        self.inner, self.xp, self.name = inner, inner.xp, f"graph({inner.name})"
        self.dtype = np.dtype(dtype)
        self.gemm = inner.load(GEMM_SOURCE, self.dtype, GEMM_KERNELS)
        self.keep: list = []  # every array allocated while building a graph
        self.record = None  # a list: launches are recorded instead of run (emulated capture)
        self.sizes: list = []  # bytes of each allocation, in order: the eager run's plan
        self.plan, self.arena = plan, None
        if plan is not None:
            # a capture allocates nothing from the memory pool (no cudaMalloc while capturing,
            # no pool block shared with later work): each array is the next slice of one
            # buffer made beforehand, in the order the eager run allocated them
            self.offsets, total = [], 0
            for n in plan:
                self.offsets.append(total)
                total += -(-n // 256) * 256
            self.arena = inner.empty((max(total, 256),), np.uint8)
            self.keep.append(self.arena)

    def _alloc(self, shape, dtype, zero: bool):
        dtype = np.dtype(dtype)
        count = 1
        for d in shape:
            count *= int(d)
        _check_size(count, "an array")
        n = count * dtype.itemsize
        k = len(self.sizes)
        self.sizes.append(n)
        if self.arena is None:
            a = (self.inner.zeros if zero else self.inner.empty)(shape, dtype)
        else:
            if k >= len(self.plan) or self.plan[k] != n:
                raise RuntimeError("the captured step allocated differently from its eager run "
                                   "(a graphc bug: please report it)")
            a = self.arena[self.offsets[k]:self.offsets[k] + n].view(dtype).reshape(shape)
            if zero:
                self._device(lambda: a.fill(0))
        self.keep.append(a)
        return a

    def empty(self, shape, dtype):
        return self._alloc(shape, dtype, False)

    def zeros(self, shape, dtype):
        return self._alloc(shape, dtype, True)

    @staticmethod
    def _operand(x):
        """A 2-D view as (its contiguous base array, offset, row stride, column stride), in
        elements: the kernels read views (slices, transposes) in place, never a copy that a
        replay would not refresh."""
        base = x
        while base.base is not None:
            base = base.base
        if base.dtype != x.dtype:  # a slice of a capture's byte arena
            base = base.reshape(-1).view(x.dtype)
        assert base.flags.c_contiguous, "a view of a contiguous array"

        def ptr(a):
            return a.data.ptr if hasattr(a.data, "ptr") else a.__array_interface__["data"][0]
        size = x.dtype.itemsize
        return base, (ptr(x) - ptr(base)) // size, x.strides[0] // size, x.strides[1] // size

    def _gemm(self, out, a, b, accumulate: bool):
        (M, K), (_, N) = a.shape, b.shape
        a, oa, sam, sak = self._operand(a)
        b, ob, sbk, sbn = self._operand(b)
        ints = [np.int32(v) for v in (M, N, K, oa, sam, sak, ob, sbk, sbn, accumulate)]
        self.launch(self.gemm, "graphc_gemm", M * N, (a, b, out, *ints))

    def matmul(self, a, b):
        if a.ndim == 3 and b.ndim == 3:  # batched: one GEMM per matrix of the batch
            out = self.empty((a.shape[0], a.shape[1], b.shape[2]), a.dtype)
            for k in range(a.shape[0]):
                self._gemm(out[k], a[k], b[k], False)
            return out
        if a.ndim == 3 and not a.flags.c_contiguous:  # a strided stack of matrices
            out = self.empty((a.shape[0], a.shape[1], b.shape[1]), a.dtype)
            for k in range(a.shape[0]):
                self._gemm(out[k], a[k], b, False)
            return out
        a2 = a.reshape(-1, a.shape[-1])  # contiguous (or 1-D/2-D): a view
        out = self.empty((a2.shape[0], b.shape[1]), a.dtype)
        self._gemm(out, a2, b, False)
        return out.reshape(a.shape[:-1] + (b.shape[1],))

    def addmm(self, out, a, b, beta: float = 1.0):
        # CudaModule.step zeroes a pending zeroGradParameters() before it runs a graph
        assert out.flags.c_contiguous and beta == 1
        self._gemm(out, a, b, True)

    def add_colsum(self, out, a, beta: float = 1.0):
        assert out.flags.c_contiguous and beta == 1
        M, N = a.shape
        a, oa, sam, san = self._operand(a)
        ints = [np.int32(v) for v in (M, N, oa, sam, san)]
        self.launch(self.gemm, "graphc_colsum", N, (a, out, *ints))

    def load(self, source, dtype, names=()):
        return self.inner.load(source, dtype, names)

    def call(self, kernels, name, grid, block, args):
        if self.record is not None:
            self.record.append(lambda: self.inner.call(kernels, name, grid, block, args))
        else:
            self.inner.call(kernels, name, grid, block, args)

    def asarray(self, x):
        return self.inner.asarray(x)

    def full(self, shape, value, dtype):
        out = self.empty(shape, dtype)
        self._device(lambda: out.fill(value))
        return out

    def _device(self, work):
        """Device work: recorded while emulating a capture, else run (or captured)."""
        if self.record is not None:
            self.record.append(work)
        else:
            work()

    def contiguous(self, x):
        if x.flags.c_contiguous:
            return x
        out = self.empty(x.shape, x.dtype)
        def copy():
            out[...] = x
        self._device(copy)
        return out

    def indices(self, x):
        return self.inner.indices(x)

    def to_host(self, x):
        return self.inner.to_host(x)


class _Graph:
    """One captured step: static input buffers, the step's results, how to replay it, and
    every buffer it uses (kept alive as long as the graph)."""

    def __init__(self, inputs, grad_outputs, results, replay, keep):
        self.inputs, self.grad_outputs, self.results = inputs, grad_outputs, results
        self.replay, self.keep = replay, keep
