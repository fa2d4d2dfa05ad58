#!/usr/bin/env python3
"""graphc benchmarks: one training step of graphc's generated code against every peer.

    python benchmarks/run.py                      # full mode, at 1 and then 2 threads
    python benchmarks/run.py --quick              # the whole table in a few minutes
    python benchmarks/run.py --threads 1 --only lstm128 --profile

A step is the idiomatic training step of each library, as its users write it: gradients
zeroed (graphc: `zeroGradParameters()`) or set to None (PyTorch: `zero_grad(set_to_none=True)`),
forward, the same loss, backward. Only the parameters' gradients are computed, on every side:
graphc compiles with `--no-grad` for the data input and the initial states, PyTorch's inputs
do not require grad, JAX differentiates the parameters only. The sides are graphc's targets
(numpy; cpu where it builds) and the peers: PyTorch eager (nn modules), torch.compile of the
same module and loss, torch's fused nn.LSTMCell / nn.LSTM for the LSTM rows, and JAX jit of
value_and_grad (where jax is installed). Before timing, each side's loss and parameter
gradients must agree with PyTorch eager's. All sides of a row are timed round-robin in one
process (the order rotates every round); medians are reported, and graphc's best target
against the best peer.

See benchmarks/README.md for the protocol and what each column means.
"""
from __future__ import annotations

import argparse
import ast
import gc
import inspect
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import types
from pathlib import Path


def _threads_arg(argv) -> str | None:
    """--threads's value, read ahead of argparse: it must reach the BLAS and OpenMP
    libraries before they load."""
    for i, a in enumerate(argv):
        if a.startswith("--threads"):
            return a.split("=", 1)[1] if "=" in a else (argv[i + 1:] or [""])[0]
    return None


# Idle worker threads of numpy's BLAS (OpenBLAS: busy-waits 2^28 cycles after each call by
# default) and of torch's OpenMP pool (libgomp: spins before sleeping) keep cores busy. With
# the libraries interleaved step by step on a machine with few cores, one pool's spinning
# threads then delay the other's workers, and a pair of ~1 ms steps was seen to take 20-50 ms.
# So the pools are told to sleep when idle (symmetric; all pay a wake-up per parallel call).
# These are read when the libraries load, hence set before the imports; values already in
# the environment win, except the thread counts, which --threads N sets for every library.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_N = _threads_arg(sys.argv) if __name__ == "__main__" else None
if _N is not None and _N.isdigit():
    for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = _N
    if int(_N) == 1:  # XLA's CPU client: one intra-op thread (it uses every core otherwise)
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1").strip()
    # ...and N cores: even with those flags XLA ran a 1-thread step on 1.7 cores (CPU time /
    # wall time), which made JAX look 1.4x faster than it is on one core. Threads made later
    # inherit the process's affinity, so every library is held to the same cores.
    _cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if 0 < int(_N) < len(_cores):
        os.sched_setaffinity(0, _cores[:int(_N)])

import numpy as np  # noqa: E402  (after the environment set-up above)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPECS = HERE / "specs"
SAMPLES = ROOT / "samples"

perf = time.perf_counter


# ---------------------------------------------------------------------------------------
# compiling and loading generated modules

_COMPILED: dict = {}


def compile_source(spec: Path, shapes=None, defines=None, **options) -> str:
    from graphc.compiler import Options, compile_spec, parse_shape
    key = (str(spec), tuple(sorted((shapes or {}).items())), tuple(sorted((defines or {}).items())),
           repr(sorted(options.items())))
    if key not in _COMPILED:
        opts = Options(shapes={k: parse_shape(v) for k, v in (shapes or {}).items()},
                       defines=dict(defines or {}), dtype="float32", **options)
        _COMPILED[key] = compile_spec(str(spec), opts).source
    return _COMPILED[key]


def load_module(source: str, name: str, transform=None, extra_globals=None) -> dict:
    """exec generated source into a fresh module dict; `transform` rewrites its AST first."""
    mod = types.ModuleType(name)
    mod.__file__ = f"<graphc-bench:{name}>"
    if extra_globals:
        mod.__dict__.update(extra_globals)
    tree = ast.parse(source)
    if transform is not None:
        tree = ast.fix_missing_locations(transform.visit(tree))
    exec(compile(tree, mod.__file__, "exec"), mod.__dict__)
    return mod.__dict__


# ---------------------------------------------------------------------------------------
# GEMM recording: rewrite `a @ b` (and np.dot / np.matmul, with or without out=) in the
# generated code and in graphc_runtime.kernels (rt.matmul_into, the convolutions) into
# calls that record operand shapes, strides and dtypes.

class _MatmulToCall(ast.NodeTransformer):
    def visit_BinOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.MatMult):
            return ast.copy_location(
                ast.Call(func=ast.Name("_bench_gemm_", ast.Load()), args=[node.left, node.right],
                         keywords=[]), node)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "np":
            if (f.attr in ("dot", "matmul") and len(node.args) == 2
                    and all(k.arg == "out" for k in node.keywords)):  # the memory plan's out=
                node.func = ast.Name("_bench_gemm_", ast.Load())
            elif f.attr in _UNCOUNTED:
                # np.einsum(...) -> _bench_other_("einsum", np.einsum)(...): noted if called
                node.func = ast.Call(func=ast.Name("_bench_other_", ast.Load()),
                                     args=[ast.Constant(f.attr), f], keywords=[])
        return node


_UNCOUNTED = ("einsum", "tensordot", "inner", "outer", "vdot", "kron")


def _layout(a: np.ndarray):
    return (a.shape, a.strides, a.dtype.str)


class GemmRecorder:
    def __init__(self):
        self.calls = []
        self.active = True
        self.uncounted = set()

    def other(self, name, fn):
        self.uncounted.add(name)
        return fn

    def __call__(self, a, b, out=None):
        a, b = np.asarray(a), np.asarray(b)
        out = np.matmul(a, b, out=out)
        if self.active:
            self.calls.append((_layout(a), _layout(b)))
        return out


def recording_module(source: str, name: str, recorder: GemmRecorder) -> dict:
    """The generated module with every matmul recorded, its `rt` kernels likewise."""
    import graphc_runtime.kernels as kernels
    hooks = {"_bench_gemm_": recorder, "_bench_other_": recorder.other}
    kdict = load_module(inspect.getsource(kernels), "graphc_runtime.kernels_rec", _MatmulToCall(),
                        hooks)
    rt = types.SimpleNamespace(**{k: v for k, v in kdict.items() if not k.startswith("__")})
    mod = load_module(source, name + "_rec", _MatmulToCall(), hooks)
    mod["rt"] = rt
    return mod


def _strided(layout, rng):
    """An array with exactly this shape, strides and dtype (positive strides)."""
    shape, strides, dt = layout
    dt = np.dtype(dt)
    if any(s < 0 for s in strides):
        return np.ascontiguousarray(rng.standard_normal(shape).astype(dt))
    extent = 1 + sum((n - 1) * s for n, s in zip(shape, strides)) // dt.itemsize if all(shape) else 1
    buf = rng.standard_normal(max(extent, 1)).astype(dt)
    return np.lib.stride_tricks.as_strided(buf, shape=shape, strides=strides)


def gemm_flops(la, lb) -> int:
    sa, sb = la[0], lb[0]
    k = sa[-1]
    out_shape = np.broadcast_shapes(sa[:-2], sb[:-2]) + (sa[-2:-1] if len(sa) >= 2 else ()) + \
        (sb[-1:] if len(sb) >= 2 else ())
    return 2 * math.prod(out_shape) * k


def _best_time(fn, budget) -> float:
    """The fastest of repeated calls (at least 7, about `budget` seconds): what the library
    can do here, less sensitive to other processes than a median."""
    for _ in range(3):
        fn()
    ts = []
    deadline = perf() + budget
    while len(ts) < 7 or (perf() < deadline and len(ts) < 5000):
        t0 = perf()
        fn()
        ts.append(perf() - t0)
    return min(ts)


def time_gemms(calls, budget) -> list:
    """Each distinct GEMM timed alone (best of repeated calls), through numpy (graphc's BLAS)
    and through torch on the same strided operands: rows (la, lb, count, numpy s, torch s,
    flops)."""
    import torch
    rng = np.random.default_rng(1)
    counts: dict = {}
    for c in calls:
        counts[c] = counts.get(c, 0) + 1
    rows = []
    for (la, lb), n in counts.items():
        a, b = _strided(la, rng), _strided(lb, rng)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        rows.append((la, lb, n, _best_time(lambda: a @ b, budget),
                     _best_time(lambda: ta @ tb, budget), gemm_flops(la, lb)))
    return rows


def gemm_text(la, lb) -> str:
    """'64x1024 @ 1024x4096^T': shapes, ^T where an operand is a transposed view."""
    def one(layout):
        shape, strides, _ = layout
        t = "^T" if len(shape) >= 2 and strides[-2] < strides[-1] else ""
        return "x".join(map(str, shape)) + t
    return f"{one(la)} @ {one(lb)}"


def sgemm_peak(n: int, reps: int) -> tuple[float, float]:
    """GFLOP/s of a large square float32 matmul, best of `reps`, through numpy's BLAS and
    through torch's, each with the threads this run gives it."""
    import torch
    rng = np.random.default_rng(2)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    out = []
    for fn in (lambda: a @ b, lambda: ta @ tb):
        fn()
        ts = []
        for _ in range(reps):
            t0 = perf()
            fn()
            ts.append(perf() - t0)
        out.append(2 * n ** 3 / min(ts) / 1e9)
    return out[0], out[1]


# ---------------------------------------------------------------------------------------
# line-level timing of the generated _forward/_backward (for --profile)

class _TimeStatements(ast.NodeTransformer):
    """Wrap each top-level statement of Model._forward/_backward in timing code."""

    def __init__(self, source):
        self.lines = source.splitlines()
        self.labels = []

    def visit_ClassDef(self, node):
        if node.name == "Model":
            for f in node.body:
                if isinstance(f, ast.FunctionDef) and f.name in ("_forward", "_backward"):
                    f.body = self._wrap(f.name, f.body)
        return node

    def _wrap(self, fname, body):
        out = []
        for stmt in body:
            i = len(self.labels)
            text = self.lines[stmt.lineno - 1].strip()
            self.labels.append(f"{ {'_forward': 'fwd', '_backward': 'bwd'}[fname]}  {text}")
            start = ast.parse("_bench_t0_ = _bench_pc_()").body
            stop = ast.parse(f"_bench_acc_[{i}] += _bench_pc_() - _bench_t0_").body
            if isinstance(stmt, ast.Return):
                assign = ast.Assign(targets=[ast.Name("_bench_ret_", ast.Store())], value=stmt.value)
                out += start + [ast.copy_location(assign, stmt)] + stop + \
                    [ast.Return(ast.Name("_bench_ret_", ast.Load()))]
            else:
                out += start + [stmt] + stop
        return out


# ---------------------------------------------------------------------------------------
# timing

def _loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def _fmt_time(s: float) -> str:
    if s != s:
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _fmt_bytes(n) -> str:
    if n is None:
        return "n/a"
    for unit, k in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= k:
            return f"{n / k:.1f} {unit}"
    return f"{n} B"


def block_sizes(sides: list, block_time: float) -> list[int]:
    """Steps per timed block for each side: enough back-to-back steps to last about
    `block_time` (0: one step per block)."""
    out = []
    for fn in sides:
        t0 = perf()
        for _ in range(3):
            fn()
        one = (perf() - t0) / 3
        out.append(max(1, min(1000, math.ceil(block_time / one))) if block_time > 0 else 1)
    return out


def interleaved(sides: list, budget: float, min_reps: int, blocks: list[int],
                max_reps: int = 200_000):
    """Time several step functions alternately; returns a list of per-side time lists.

    After a warm-up, rounds run until about `budget` seconds per side have passed on average
    (and at least `min_reps` rounds); each round runs every side once, in an order that
    rotates from round to round, so slow drifts of the machine hit all sides alike. A side
    runs `blocks[i]` steps back to back per round (as a training loop does), and its time
    per step is the block's time over that count: a lone step right after the other
    library's step mostly measures cold caches for tiny models."""
    for fn in sides:
        for _ in range(3):
            fn()
    times = [[] for _ in sides]
    n = len(sides)
    gc.collect()
    gc_was = gc.isenabled()
    gc.disable()
    try:
        deadline = perf() + budget * n
        r = 0
        while r < max_reps and (r < min_reps or perf() < deadline):
            for j in range(n):
                i = (r + j) % n
                fn, k = sides[i], blocks[i]
                t0 = perf()
                for _ in range(k):
                    fn()
                times[i].append((perf() - t0) / k)
            r += 1
    finally:
        if gc_was:
            gc.enable()
    return times


def numpy_peak(fn) -> int:
    """tracemalloc's peak during one call, above the level before it (numpy reports its
    data buffers to tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def torch_peak(fn):
    """Peak of torch's CPU allocator during one call, above the level before it: the running
    sum of the allocation/free events recorded by torch.profiler(profile_memory=True)."""
    import torch
    try:
        from torch._C._profiler import _EventType
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                    profile_memory=True) as prof:
            fn()
        events = []

        def walk(node):
            if node.tag == _EventType.Allocation:
                ef = node.extra_fields
                if ef.device.type == "cpu":
                    events.append((node.start_time_ns, ef.alloc_size))
            for c in node.children:
                walk(c)
        for root in prof.profiler.kineto_results.experimental_event_tree():
            walk(root)
    except Exception as e:  # a private API: degrade to n/a rather than fail the run
        print(f"  note: torch memory profile unavailable ({type(e).__name__}: {e})")
        return None
    cur = peak = 0
    for _, size in sorted(events):
        cur += size
        peak = max(peak, cur)
    return peak


# ---------------------------------------------------------------------------------------
# sides: one library's training step each, on the same model, data and loss

class Side:
    """One library's training step: `step()` runs it (gradients zeroed or set to None
    first, as that library does it), `loss()` and `grads()` (numpy arrays in graphc's
    parameter order) read the last step. `setup`: seconds spent before the first step could
    run (compiling), None where there is nothing to compile; `absent`: why the side is not
    in the table (None when it is)."""
    kind = "peer"
    setup = None
    absent = None
    note = None

    def __init__(self, label):
        self.label = label


class Absent(Side):
    def __init__(self, label, why, kind="peer"):
        super().__init__(label)
        self.absent, self.kind = why, kind


def _why(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}"


class GraphcSide(Side):
    """graphc's generated Model for one target: zeroGradParameters(), then the row's step
    (forward, the loss with graphc_runtime.criteria, backward)."""
    kind = "graphc"

    def __init__(self, w, target):
        super().__init__(f"graphc {target}")
        self.w, self.target, self.key = w, target, f"{w.key}_{target}"
        t0 = perf()
        self.source = compile_source(w.spec, target=target, **w.compile_options)
        self.mod = load_module(self.source, self.key)
        self.m = self.mod["Model"](dtype="float32", seed=0)
        self.setup = perf() - t0
        if w.flat0 is not None:
            self.m.getParameters()[0][:] = w.flat0
        self.last = None

    def step(self):
        self.m.zeroGradParameters()
        self.last = self.w.graphc_step(self.m)

    def loss(self):
        return float(self.last[0])

    def input_grads(self):
        gin = self.last[1]
        return list(gin) if isinstance(gin, (list, tuple)) else [gin]

    def grads(self):
        return [g.copy() for _, g in self.m.gradParameters()]


def cpu_target_status() -> tuple[bool, str]:
    """Whether graphc's native cpu target can build here (its own answer), else why not."""
    try:
        from graphc_runtime import cpu
    except ImportError as e:
        return False, f"graphc_runtime.cpu is not in this graphc ({_why(e)})"
    try:
        ok, why = cpu.available()
    except Exception as e:  # its own failure is the reason shown
        return False, f"graphc_runtime.cpu.available() failed: {_why(e)}"
    return bool(ok), str(why)


def graphc_sides(w) -> list:
    sides = [GraphcSide(w, "numpy")]
    w.flat0 = sides[0].m.getParameters()[0].copy()
    w.params0 = [p.copy() for _, p in sides[0].m.parameters()]
    ok, why = cpu_target_status()
    if not ok:
        sides.append(Absent("graphc cpu", why, "graphc"))
    else:
        try:
            sides.append(GraphcSide(w, "cpu"))
        except Exception as e:  # shown in the table with the reason
            sides.append(Absent("graphc cpu", _why(e), "graphc"))
    return sides


class TorchSide(Side):
    """`module.zero_grad(set_to_none=True)`, the row's forward + loss (as written, or
    through torch.compile), `loss.backward()`."""

    def __init__(self, label, module, loss_fn, inputs, grads, compiled=False):
        super().__init__(label)
        self.module, self.inputs, self._grads = module, inputs, grads

        def forward_loss(*xs):
            return loss_fn(module, *xs)
        self.fn = forward_loss
        if compiled:
            import torch
            self.fn = torch.compile(forward_loss)
            t0 = perf()
            self.step()  # compiles forward + loss, and the backward graph
            self.setup = perf() - t0
        self.last = None

    def step(self):
        self.module.zero_grad(set_to_none=True)
        loss = self.fn(*self.inputs)
        loss.backward()
        self.last = loss

    def loss(self):
        return float(self.last.detach())

    def grads(self):
        return self._grads(self.module)


class JaxSide(Side):
    """jax.jit(jax.value_and_grad(forward + loss)) over the parameters; the step returns
    fresh gradients, so there is nothing to zero."""

    def __init__(self, loss_fn, params, data):
        super().__init__("JAX jit")
        import jax
        self.jax = jax
        self.f = jax.jit(jax.value_and_grad(loss_fn))
        self.params = [jax.device_put(p) for p in params]
        self.data = [jax.device_put(d) for d in data]
        t0 = perf()
        self.step()
        self.setup = perf() - t0

    def step(self):
        self.last = self.jax.block_until_ready(self.f(self.params, *self.data))

    def loss(self):
        return float(self.last[0])

    def grads(self):
        return [np.asarray(g) for g in self.last[1]]


def _param_grads(module) -> list:
    return [p.grad.detach().numpy().copy() for p in module.parameters()]


def _load_params(module, params0):
    """Copy graphc's initial parameters into a torch module whose parameters() come in
    graphc's order with the same shapes."""
    import torch
    ps = list(module.parameters())
    shapes = [tuple(p.shape) for p in ps]
    if shapes != [w.shape for w in params0]:
        raise ValueError(f"torch parameter shapes {shapes} != graphc's {[w.shape for w in params0]}")
    with torch.no_grad():
        for p, w in zip(ps, params0):
            p.copy_(torch.from_numpy(w))
    return module


def peer_sides(w) -> list:
    import torch
    sides = [TorchSide("PyTorch eager", w.torch_module(), w.torch_loss, w.torch_inputs,
                       _param_grads)]
    try:
        sides.append(TorchSide("torch.compile", w.torch_module(), w.torch_loss, w.torch_inputs,
                               _param_grads, compiled=True))
    except Exception as e:  # e.g. no C++ compiler for Inductor: shown with the reason
        sides.append(Absent("torch.compile", _why(e)))
    fused = w.fused()
    if fused is not None:
        label, module, loss_fn, grads = fused
        sides.append(TorchSide(label, module, loss_fn, w.torch_inputs, grads))
    try:
        import jax  # noqa: F401
    except ImportError:
        sides.append(Absent("JAX jit", 'not installed (pip install -e ".[bench]")'))
    else:
        try:
            sides.append(JaxSide(w.jax_loss, w.params0, w.jax_data))
        except Exception as e:
            sides.append(Absent("JAX jit", _why(e)))
    del torch
    return sides


# ---------------------------------------------------------------------------------------
# workloads: the model, its data and loss on every side

def _rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


class Workload:
    """A row: the spec graphc compiles (with --no-grad for every input: nobody
    differentiates the data or the initial states), the data, and each library's
    forward + loss. `eager_target`: a bound on graphc's best / PyTorch eager as well."""
    eager_target = None
    flat0 = params0 = None

    def fused(self):
        return None


def _tutorial_cell_class():
    import torch
    from torch import nn

    class TutorialLSTMCell(nn.Module):
        """samples/lstm.lua as a PyTorch user writes it: i2h and h2h Linears, gates i, f, o
        (sigmoid) and g (tanh) cut from the sum."""

        def __init__(self, n_in, n):
            super().__init__()
            self.n = n
            self.i2h = nn.Linear(n_in, 4 * n)
            self.h2h = nn.Linear(n, 4 * n)

        def forward(self, x, c, h):
            n = self.n
            pre = self.i2h(x) + self.h2h(h)
            gates = torch.sigmoid(pre[:, :3 * n])
            g = torch.tanh(pre[:, 3 * n:])
            i, f, o = gates[:, :n], gates[:, n:2 * n], gates[:, 2 * n:]
            next_c = f * c + i * g
            return next_c, o * torch.tanh(next_c)
    return TutorialLSTMCell


def _jax_cell(p, x, c, h):
    import jax
    import jax.numpy as jnp
    wi, bi, wh, bh = p
    n = h.shape[1]
    pre = x @ wi.T + bi + h @ wh.T + bh
    gates = jax.nn.sigmoid(pre[:, :3 * n])
    g = jnp.tanh(pre[:, 3 * n:])
    next_c = gates[:, n:2 * n] * c + gates[:, :n] * g
    return next_c, gates[:, 2 * n:] * jnp.tanh(next_c)


class LSTMCellRow(Workload):
    """The tutorial's LSTM cell (samples/lstm.lua), one step: MSE of next_h against a fixed
    target (next_c, the state output, gets a zero gradient)."""

    def __init__(self, key, name, n_in, n, batch, eager_target=None):
        import torch
        from graphc_runtime.criteria import MSECriterion
        self.key, self.name, self.n_in, self.n = key, name, n_in, n
        self.eager_target = eager_target
        self.spec = SAMPLES / "lstm.lua"
        self.compile_options = dict(defines={"input_size": n_in, "rnn_size": n},
                                    no_grad=["input1", "input2", "input3"])
        rng = np.random.default_rng(0)
        self.xs = (_rand(rng, (batch, n_in)), _rand(rng, (batch, n)), _rand(rng, (batch, n)))
        self.y = _rand(rng, (batch, n))
        self.zero = np.zeros((batch, n), np.float32)
        self.crit = MSECriterion()
        self.jax_data = [*self.xs, self.y]
        self.torch_inputs = [torch.from_numpy(a) for a in self.jax_data]
        self.perm = np.r_[0:2 * n, 3 * n:4 * n, 2 * n:3 * n]  # PyTorch's gate order i, f, g, o

    def graphc_step(self, m):
        xs, crit = self.xs, self.crit
        _, h = m.forward(*xs)
        loss = crit.forward(h, self.y)
        return loss, m.backward(xs, (self.zero, crit.backward(h, self.y)))

    def torch_module(self):
        return _load_params(_tutorial_cell_class()(self.n_in, self.n), self.params0)

    @staticmethod
    def torch_loss(cell, x, c, h, y):
        import torch.nn.functional as F
        return F.mse_loss(cell(x, c, h)[1], y)

    @staticmethod
    def jax_loss(p, x, c, h, y):
        import jax.numpy as jnp
        return jnp.mean((_jax_cell(p, x, c, h)[1] - y) ** 2)

    def _fused_weights(self, module, names):
        import torch
        wi, bi, wh, bh = self.params0
        with torch.no_grad():
            for name, w in zip(names, (wi, wh, bi, bh)):
                getattr(module, name).copy_(torch.from_numpy(w[self.perm]))
        inv = np.argsort(self.perm)

        def grads(mod):  # back to graphc's order: wi, bi, wh, bh
            wi_, wh_, bi_, bh_ = (getattr(mod, name).grad.detach().numpy()[inv] for name in names)
            return [wi_, bi_, wh_, bh_]
        return grads

    def fused(self):
        from torch import nn
        import torch.nn.functional as F
        cell = nn.LSTMCell(self.n_in, self.n)
        grads = self._fused_weights(cell, ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

        def loss(cell, x, c, h, y):
            return F.mse_loss(cell(x, (h, c))[0], y)
        return "nn.LSTMCell (fused)", cell, loss, grads


class LSTMSeqRow(LSTMCellRow):
    """The cell unrolled T steps by graphc (`--unroll T`, one straight-line Model; c and h
    feed the next step; `--entry` adds next_h as a per-step output): MSE of every h_t
    against a fixed target, full backpropagation through time."""

    def __init__(self, key, name, n_in, n, batch, steps):
        import torch
        super().__init__(key, name, n_in, n, batch)
        self.T = steps
        self.compile_options.update(
            entry="nn.gModule(inputs, {next_c, next_h, nn.Identity()(next_h)})", unroll=steps,
            state=[("output1", "input2"), ("output2", "input3")])
        rng = np.random.default_rng(1)
        self.xs = (_rand(rng, (steps, batch, n_in)), _rand(rng, (batch, n)), _rand(rng, (batch, n)))
        self.y = _rand(rng, (steps, batch, n))
        self.jax_data = [*self.xs, self.y]
        self.torch_inputs = [torch.from_numpy(a) for a in self.jax_data]

    def graphc_step(self, m):
        xs, crit = self.xs, self.crit
        _, _, hs = m.forward(*xs)
        loss = crit.forward(hs, self.y)
        return loss, m.backward(xs, (self.zero, self.zero, crit.backward(hs, self.y)))

    @staticmethod
    def torch_loss(cell, xs, c, h, y):
        import torch
        import torch.nn.functional as F
        hs = []
        for x in xs:
            c, h = cell(x, c, h)
            hs.append(h)
        return F.mse_loss(torch.stack(hs), y)

    @staticmethod
    def jax_loss(p, xs, c, h, y):
        import jax
        import jax.numpy as jnp

        def step(carry, x):
            c, h = _jax_cell(p, x, *carry)
            return (c, h), h
        _, hs = jax.lax.scan(step, (c, h), xs)
        return jnp.mean((hs - y) ** 2)

    def fused(self):
        from torch import nn
        import torch.nn.functional as F
        lstm = nn.LSTM(self.n_in, self.n)
        grads = self._fused_weights(lstm, ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                           "bias_hh_l0"))

        def loss(lstm, xs, c, h, y):
            return F.mse_loss(lstm(xs, (h[None], c[None]))[0], y)
        return "nn.LSTM (fused)", lstm, loss, grads


class ClassifierRow(Workload):
    """A classifier ending in LogSoftMax: ClassNLL of fixed labels (mean over the batch)."""

    def __init__(self, key, name, spec, x_shape, shapes=None):
        import torch
        from graphc_runtime.criteria import ClassNLLCriterion
        self.key, self.name, self.spec = key, name, spec
        self.compile_options = dict(shapes=shapes or {}, no_grad=["input1"])
        rng = np.random.default_rng(0)
        self.x = _rand(rng, x_shape)
        self.labels = rng.integers(0, 10, x_shape[0])
        self.crit = ClassNLLCriterion()
        self.jax_data = [self.x, self.labels.astype(np.int32)]
        self.torch_inputs = [torch.from_numpy(self.x), torch.from_numpy(self.labels)]

    def graphc_step(self, m):
        out = m.forward(self.x)
        loss = self.crit.forward(out, self.labels)
        return loss, m.backward(self.x, self.crit.backward(out, self.labels))

    @staticmethod
    def torch_loss(net, x, labels):
        import torch.nn.functional as F
        return F.nll_loss(net(x), labels)

    @staticmethod
    def jax_nll(logp, labels):
        import jax.numpy as jnp
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


class LeNetRow(ClassifierRow):
    """samples/lenet.lua: two 5x5 convolutions with ReLU and 2x2 max-pooling, three Linears."""

    def __init__(self, key, name, batch):
        super().__init__(key, name, SAMPLES / "lenet.lua", (batch, 1, 32, 32),
                         {"input1": "Bx1x32x32"})

    def torch_module(self):
        from torch import nn
        net = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
                            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                            nn.Linear(84, 10), nn.LogSoftmax(dim=1))
        return _load_params(net, self.params0)

    @classmethod
    def jax_loss(cls, p, x, labels):
        import jax
        from jax import lax
        c1w, c1b, c2w, c2b, l1w, l1b, l2w, l2b, l3w, l3b = p

        def conv_relu_pool(y, w, b):
            y = lax.conv_general_dilated(y, w, (1, 1), "VALID",
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
            y = jax.nn.relu(y + b[None, :, None, None])
            return lax.reduce_window(y, -np.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        y = conv_relu_pool(conv_relu_pool(x, c1w, c1b), c2w, c2b).reshape(x.shape[0], 400)
        y = jax.nn.relu(y @ l1w.T + l1b)
        y = jax.nn.relu(y @ l2w.T + l2b)
        return cls.jax_nll(jax.nn.log_softmax(y @ l3w.T + l3b), labels)


class MLPRow(ClassifierRow):
    """benchmarks/specs/mlp.lua: 784-512-512-10, ReLU, LogSoftMax."""

    def __init__(self, key, name, batch):
        super().__init__(key, name, SPECS / "mlp.lua", (batch, 784))

    def torch_module(self):
        from torch import nn
        net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                            nn.Linear(512, 10), nn.LogSoftmax(dim=1))
        return _load_params(net, self.params0)

    @classmethod
    def jax_loss(cls, p, x, labels):
        import jax
        w1, b1, w2, b2, w3, b3 = p
        y = jax.nn.relu(x @ w1.T + b1)
        y = jax.nn.relu(y @ w2.T + b2)
        return cls.jax_nll(jax.nn.log_softmax(y @ w3.T + b3), labels)


WORKLOADS = {
    "lstm3": lambda: LSTMCellRow("lstm3", "tutorial LSTM cell 3->2, B=1", 3, 2, 1,
                                 eager_target=0.05),
    "lstm128": lambda: LSTMCellRow("lstm128", "LSTM cell 128, B=32", 128, 128, 32),
    "lstm1024": lambda: LSTMCellRow("lstm1024", "LSTM cell 1024, B=64", 1024, 1024, 64),
    "lstm128x50": lambda: LSTMSeqRow("lstm128x50", "LSTM 128 x 50 steps BPTT, B=32",
                                     128, 128, 32, 50),
    "lenet1": lambda: LeNetRow("lenet1", "LeNet, B=1", 1),
    "lenet64": lambda: LeNetRow("lenet64", "LeNet, B=64", 64),
    "mlp128": lambda: MLPRow("mlp128", "MLP 784-512-512-10, B=128", 128),
}


# ---------------------------------------------------------------------------------------
# checks

def _rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def check(sides: list, ref) -> dict:
    """Each side's loss (to 1e-4) and parameter gradients (to 1e-3, relative to
    max(1, max |g|)) against `ref` (PyTorch eager) after two steps, so that a side which
    accumulated instead of zeroing is caught; graphc's backward must compute no input
    gradient (--no-grad: None, or zero arrays, which are noted). Returns {label: problem} for
    the sides that fail."""
    problems = {}
    ref.step()
    ref.step()
    ref_loss = ref.loss()
    ref_g = ref.grads()
    for s in sides:
        if s is ref:
            continue
        try:
            s.step()
            s.step()
        except Exception as e:  # the side fails, not the run: shown with the error
            problems[s.label] = f"the step raised {_why(e)}"
            continue
        g = s.grads()
        msg = []
        if [a.shape for a in g] != [a.shape for a in ref_g]:
            problems[s.label] = (f"gradient shapes {[a.shape for a in g]} vs PyTorch's "
                                 f"{[a.shape for a in ref_g]}")
            continue
        e_loss = abs(s.loss() - ref_loss) / max(1.0, abs(ref_loss))
        e_grad = max(_rel_err(a, b) for a, b in zip(g, ref_g))
        if not e_loss <= 1e-4:
            msg.append(f"loss differs by {e_loss:.2e} (> 1e-4)")
        if not e_grad <= 1e-3:
            msg.append(f"parameter gradients differ by {e_grad:.2e} (> 1e-3)")
        if s.kind == "graphc":
            gin = [x for x in s.input_grads() if x is not None]
            if any(np.any(x) for x in gin):
                msg.append("backward computed input gradients despite --no-grad")
            elif gin:  # not computed, but made and filled each step (the numpy target: None)
                s.note = (f"backward returns {len(gin)} zero array(s) for the --no-grad "
                          "inputs (the numpy target returns None)")
        if msg:
            problems[s.label] = "; ".join(msg)
    return problems


# ---------------------------------------------------------------------------------------
# compile and import time

def _wall(cmd, cwd, env):
    t0 = perf()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return perf() - t0


def compile_and_import(n: int):
    """Wall times of subprocesses, median of n; paired commands run alternately."""
    spec = SPECS / "charrnn_lstm.lua"
    entry = "LSTM.lstm(65, 128, 2, 0)"
    py = sys.executable
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        gen = Path(tmp) / "gen.py"
        cmd = [py, "-m", "graphc", "compile", str(spec), "--entry", entry, "-o", str(gen)]
        _wall(cmd, ROOT, env)  # warm-up: disk caches, graphc's own .pyc files
        t_compile = statistics.median(_wall(cmd, ROOT, env) for _ in range(n))
        t_pass = statistics.median(_wall([py, "-c", "pass"], tmp, env) for _ in range(n))
        # where a cold compile's time goes, inside one fresh interpreter
        probe = ("import time; t0 = time.perf_counter(); import graphc.cli; "
                 "from graphc.compiler import Options, compile_spec; t1 = time.perf_counter(); "
                 "compile_spec({s!r}, Options(entry={e!r})); t2 = time.perf_counter(); "
                 "compile_spec({s!r}, Options(entry={e!r})); t3 = time.perf_counter(); "
                 "print(t1 - t0, t2 - t1, t3 - t2)").format(s=str(spec), e=entry)
        parts = [[float(v) for v in subprocess.run(
            [py, "-c", probe], cwd=ROOT, env=env, check=True, capture_output=True,
            text=True).stdout.split()] for _ in range(n)]
        t_imports, t_first, t_again = (statistics.median(p[i] for p in parts) for i in range(3))
        # import: a first run writes gen's .pyc, as any first import would; then alternate
        _wall([py, "-c", "import gen"], tmp, env)
        t_gen, t_np = [], []
        for _ in range(n):
            t_gen.append(_wall([py, "-c", "import gen"], tmp, env))
            t_np.append(_wall([py, "-c", "import numpy"], tmp, env))
        # the same, measured inside one interpreter (less noisy): import gen after numpy
        probe = ("import time, numpy; t = time.perf_counter(); import {m}; "
                 "print(time.perf_counter() - t)")
        inc = {}
        for m in ("gen", "graphc_runtime"):
            inc[m] = statistics.median(
                float(subprocess.run([py, "-c", probe.format(m=m)], cwd=tmp, env=env, check=True,
                                     capture_output=True, text=True).stdout)
                for _ in range(n))
    return dict(compile=t_compile, python_startup=t_pass, imports=t_imports,
                first_compile=t_first, compile_again=t_again,
                import_gen=statistics.median(t_gen) - statistics.median(t_np),
                import_gen_inproc=inc["gen"], import_runtime_inproc=inc["graphc_runtime"])


def profile_lines(w: GraphcSide, seconds: float):
    """Time each statement of the generated _forward/_backward over many steps."""
    tr = _TimeStatements(w.source)
    mod = load_module(w.source, w.key + "_lines", tr, {"_bench_pc_": perf})
    acc = [0.0] * len(tr.labels)
    mod["_bench_acc_"] = acc
    saved = w.m, w.mod
    w.m = mod["Model"](dtype="float32", seed=0)
    try:
        for _ in range(5):
            w.step()
        for i in range(len(acc)):
            acc[i] = 0.0
        n = 0
        t0 = perf()
        while perf() - t0 < seconds:
            w.step()
            n += 1
        total = (perf() - t0) / n
    finally:
        w.m, w.mod = saved
    per = [a / n for a in acc]
    inside = sum(per)
    print(f"\nper-statement time of the generated code, {w.w.name} ({n} steps, "
          f"{_fmt_time(total)}/step with timing overhead):")
    print(f"  {'time':>9}  {'share':>6}  statement")
    for i in sorted(range(len(per)), key=lambda i: -per[i])[:15]:
        print(f"  {_fmt_time(per[i]):>9}  {per[i] / total:6.1%}  {tr.labels[i][:110]}")
    print(f"  {_fmt_time(total - inside):>9}  {(total - inside) / total:6.1%}  "
          "outside _forward/_backward: Module.forward/backward checks, calls, timing overhead")


# ---------------------------------------------------------------------------------------
# cold start: graphc.load in a fresh interpreter, with empty caches and again

COLD_CASES = [
    ("tutorial cell", SAMPLES / "lstm.lua", {}),
    ("char-rnn 2x128", SPECS / "charrnn_lstm.lua", {"entry": "LSTM.lstm(65, 128, 2, 0)"}),
]
_LOAD_PROBE = ("import time, numpy; t0 = time.perf_counter(); import graphc; "
               "mod = graphc.load({spec!r}, target={target!r}, **{kw!r}); mod.Model(); "
               "print(time.perf_counter() - t0)")
_IMPORT_PROBE = ("import time, numpy; t0 = time.perf_counter(); import gen; gen.Model(); "
                 "print(time.perf_counter() - t0)")


def _probe_pair(code, cwd, env, cold, warm) -> str | None:
    """Run `code` twice in fresh interpreters (cold, then warm on what the first left);
    append the seconds it prints; return the error of a run that fails."""
    for out in (cold, warm):
        r = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                           text=True)
        if r.returncode != 0:
            return " ".join((r.stderr.strip().splitlines() or ["?"])[-1:])
        out.append(float(r.stdout.split()[-1]))
    return None


def cold_start(targets, n: int) -> list:
    """Seconds from after `import numpy` to a built Model, in a fresh interpreter, median of
    n, two ways: through graphc.load (import graphc, compile, import the module, build the
    native kernels where the target has them), cold with empty cache directories
    (GRAPHC_CACHE_DIR, GRAPHC_CPU_CACHE_DIR) and warm on the caches the cold run filled; and
    `import gen` of a module compiled beforehand by `graphc compile` (cold: empty
    GRAPHC_CPU_CACHE_DIR, warm: filled). Rows (case, target, load cold, load warm, import
    cold, import warm, error)."""
    env0 = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    rows = []
    for case, spec, kw in COLD_CASES:
        for target in targets:
            probe = _LOAD_PROBE.format(spec=str(spec), target=target, kw=kw)
            compile_cmd = [sys.executable, "-m", "graphc", "compile", str(spec), "--target",
                           target, "-o", "gen.py"] + (["--entry", kw["entry"]] if kw else [])
            times = [[], [], [], []]
            error = None
            for _ in range(n):
                with tempfile.TemporaryDirectory() as d:
                    # (not named graphc: run in d, that would shadow the package)
                    env = dict(env0, GRAPHC_CACHE_DIR=str(Path(d) / "cache-py"),
                               GRAPHC_CPU_CACHE_DIR=str(Path(d) / "cache-cpu"))
                    error = _probe_pair(probe, d, env, times[0], times[1])
                    if error:
                        break
                    env["GRAPHC_CPU_CACHE_DIR"] = str(Path(d) / "cache-cpu-2")
                    r = subprocess.run(compile_cmd, cwd=d, env=env, capture_output=True,
                                       text=True)
                    if r.returncode != 0:
                        error = " ".join((r.stderr.strip().splitlines() or ["?"])[-1:])
                        break
                    error = _probe_pair(_IMPORT_PROBE, d, env, times[2], times[3])
                    if error:
                        break
            rows.append((case, target, *(statistics.median(t) if len(t) == n else None
                                         for t in times), error))
    return rows


# ---------------------------------------------------------------------------------------
# one run at one thread count

def _table(hdr, rows, left=1):
    widths = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
    def fmt(r):
        return "  ".join(str(c).ljust(wd) if i < left else str(c).rjust(wd)
                         for i, (c, wd) in enumerate(zip(r, widths)))
    line = fmt(hdr)
    print(line)
    print("-" * len(line))
    for r in rows:
        print(fmt(r))


def verdict(row: dict) -> None:
    """graphc's best target against the best peer (<= 1.0), against PyTorch eager where the
    row has its own bound, and the cpu target against the numpy target."""
    timed = [s for s in row["sides"] if s["median"]]
    g = [s for s in timed if s["kind"] == "graphc"]
    p = [s for s in timed if s["kind"] == "peer"]
    eager = next((s for s in timed if s["label"] == "PyTorch eager"), None)
    if not g or not p or eager is None:
        row.update(verdict="MISMATCH" if row["mismatch"] else "n/a", ratio=None, why=[])
        return
    bg, bp = min(g, key=lambda s: s["median"]), min(p, key=lambda s: s["median"])
    row.update(graphc_best=bg["label"], best_peer=bp["label"],
               ratio=bg["median"] / bp["median"], eager_ratio=bg["median"] / eager["median"])
    why, short = [], []  # short: the summary table's words for each target missed
    if row["ratio"] > 1.0:
        why.append(f"{bg['label']} / {bp['label']} = {row['ratio']:.2f} > 1.0")
        short.append("peer")
    if row["eager_target"] is not None and row["eager_ratio"] > row["eager_target"]:
        why.append(f"{bg['label']} / PyTorch eager = {row['eager_ratio']:.3f} > "
                   f"{row['eager_target']}")
        short.append("eager")
    by = {s["label"]: s for s in g}
    if "graphc cpu" in by and "graphc numpy" in by and \
            by["graphc cpu"]["median"] > by["graphc numpy"]["median"]:
        why.append("graphc cpu slower than graphc numpy")
        short.append("cpu>numpy")
    if any(s["kind"] == "graphc" and s["absent"] and s["absent"].startswith("MISMATCH")
           for s in row["sides"]):
        why.append("a graphc target failed its check (MISMATCH)")
        short.append("check")
    row.update(verdict="FAIL" if why else "pass", why=why, short=short)


def run_row(key, args, threads) -> tuple[dict, object]:
    t_row = perf()
    w = WORKLOADS[key]()
    sides = graphc_sides(w) + peer_sides(w)
    ref = next(s for s in sides if s.label == "PyTorch eager")
    live = [s for s in sides if s.absent is None]
    problems = check(live, ref)
    for s in live:
        if s.label in problems:
            s.absent = "MISMATCH: " + problems[s.label]
    live = [s for s in live if s.absent is None]
    steps = [s.step for s in live]
    blocks = block_sizes(steps, args.block_ms / 1e3)
    load0 = _loadavg()
    times = interleaved(steps, 0.1 if args.quick else 0.5, 7 if args.quick else 15, blocks)
    load1 = _loadavg()
    i_ref = live.index(ref)
    out = []
    for s in sides:
        d = dict(label=s.label, kind=s.kind, setup=s.setup, absent=s.absent, median=None,
                 paired=None, block=None, note=s.note)
        if s in live:
            i = live.index(s)
            d.update(median=statistics.median(times[i]), block=blocks[i],
                     paired=statistics.median(a / b for a, b in zip(times[i], times[i_ref])))
        out.append(d)
    g_np = next(s for s in sides if s.label == "graphc numpy")
    mem = {}
    if g_np.absent is None:
        # from no saved activations and no scratch arrays (the memory plan's, kept between
        # steps): both are counted as made during the step
        m = g_np.m
        mem["graphc numpy"] = numpy_peak(lambda: (setattr(m, "_saved", None),
                                                  setattr(m, "_scratch", {}), g_np.step()))
    mem["PyTorch eager"] = torch_peak(ref.step)
    row = dict(key=key, name=w.name, threads=threads, sides=out, reps=len(times[0]),
               load=[load0, load1], memory=mem, eager_target=w.eager_target,
               mismatch=bool(problems))
    verdict(row)
    # the GEMMs of one step of each graphc target, each timed alone
    budget = 0.01 if args.quick else 0.03
    row["gemms"], row["uncounted"] = {}, []
    if g_np.absent is None:
        rec = GemmRecorder()
        saved = g_np.m, g_np.mod
        mod = recording_module(g_np.source, g_np.key, rec)
        g_np.m, g_np.mod = mod["Model"](dtype="float32", seed=0), mod
        try:
            g_np.step()
        finally:
            g_np.m, g_np.mod = saved
        row["gemms"]["graphc numpy"] = _gemm_dicts(time_gemms(rec.calls, budget))
        row["uncounted"] = sorted(rec.uncounted)
    g_cpu = next(s for s in sides if s.label == "graphc cpu")
    if g_cpu.absent is None and hasattr(g_cpu.m, "_rt"):
        rec = GemmRecorder()
        inner = g_cpu.m._rt
        g_cpu.m._rt = _RecordingBackend(inner, rec)
        try:
            g_cpu.step()
        finally:
            g_cpu.m._rt = inner
        row["gemms"]["graphc cpu"] = _gemm_dicts(time_gemms(rec.calls, budget))
    print(f"  {key}: {row['reps']} rounds, {perf() - t_row:.1f} s", file=sys.stderr)
    return row, g_np


def _gemm_dicts(rows) -> list:
    return [dict(gemm=gemm_text(la, lb), n=n, numpy=tn, torch=tt, flops=f)
            for la, lb, n, tn, tt, f in rows]


class _RecordingBackend:
    """A kernel target's backend (the generated code's `rt`) whose GEMMs, `matmul` and
    `addmm` (out = a @ b + beta * out), are recorded; everything else passes through."""

    def __init__(self, inner, recorder):
        self._inner, self._rec = inner, recorder

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def matmul(self, a, b, *args, **kw):
        self._rec.calls.append((_layout(a), _layout(b)))
        return self._inner.matmul(a, b, *args, **kw)

    def addmm(self, out, a, b, *args, **kw):
        self._rec.calls.append((_layout(a), _layout(b)))
        return self._inner.addmm(out, a, b, *args, **kw)


def print_row(row):
    print(f"\n{row['key']}: {row['name']}  ({row['threads']} thread(s), {row['reps']} rounds, "
          f"load {row['load'][0]:.2f} -> {row['load'][1]:.2f})")
    eager = next(s for s in row["sides"] if s["label"] == "PyTorch eager")["median"]
    table = []
    for s in row["sides"]:
        setup = (f"{s['setup']:.2f} s" if s["setup"] is not None else "-")
        if s["median"]:
            table.append((s["label"], _fmt_time(s["median"]), f"{s['median'] / eager:.3f}",
                          f"{s['paired']:.3f}", str(s["block"]), setup))
        else:
            table.append((s["label"], "-", "-", "-", "-", setup))
    _table(("side", "median", "/ eager", "paired", "steps/block", "compile"), table)
    for s in row["sides"]:
        for text in (s["absent"], s["note"]):
            if text:
                print(f"  {s['label']}: {text}")
    if row.get("ratio") is not None:
        print(f"  graphc best ({row['graphc_best']}) / best peer ({row['best_peer']}) = "
              f"{row['ratio']:.3f} (target <= 1.0)"
              + (f"; / PyTorch eager = {row['eager_ratio']:.3f} (target <= "
                 f"{row['eager_target']})" if row["eager_target"] is not None else "")
              + f": {row['verdict']}" + (f" ({'; '.join(row['why'])})" if row["why"] else ""))
    else:
        print(f"  result: {row['verdict']}")
    print("  memory, peak of one step: " + ", ".join(f"{k} {_fmt_bytes(v)}"
                                                      for k, v in row["memory"].items()))


SUMMARY_SIDES = ("graphc numpy", "graphc cpu", "torch.compile", "fused", "JAX jit")


def print_summary(rows, markdown=False):
    """One line per row and thread count: PyTorch eager's median, every other side as a
    ratio to it, and the verdict; as a Markdown table with `markdown`."""
    hdr = ("row", "threads", "PyTorch eager") + SUMMARY_SIDES + ("graphc / best peer", "result")
    table = []
    for r in rows:
        by = {("fused" if "fused" in s["label"] else s["label"]): s for s in r["sides"]}
        eager = by["PyTorch eager"]["median"]
        cells = []
        for label in SUMMARY_SIDES:
            s = by.get(label)
            cells.append("-" if s is None else
                         f"{s['median'] / eager:.3f}" if s["median"] and eager else
                         "MISMATCH" if (s["absent"] or "").startswith("MISMATCH") else "absent")
        best = (f"{r['ratio']:.2f} ({r['best_peer']})" if r.get("ratio") is not None else "-")
        result = r["verdict"] + (f" ({', '.join(r['short'])})" if r.get("short") else "")
        table.append((r["key"], str(r["threads"]), _fmt_time(eager) if eager else "-", *cells,
                      best, result))
    if markdown:
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
        for t in table:
            print("| " + " | ".join(t) + " |")
    else:
        _table(hdr, table)
    print("Each side's median step time over PyTorch eager's (lower is faster); fused: "
          "nn.LSTMCell / nn.LSTM; graphc / best peer: graphc's best target over the fastest "
          "peer (target <= 1.0; lstm3 also <= 0.05 of eager). FAIL (peer, eager, cpu>numpy, "
          "check): the targets missed: the best peer, lstm3's bound on eager, the cpu target "
          "no slower than numpy, a graphc target's correctness check. absent: not installed "
          "or not built here (the reason is printed with the row).")


def _gflops(flops, seconds) -> str:
    g = flops / seconds / 1e9
    return f"{g:.1f}" if g >= 1 else f"{g:.3f}"


def print_gemms(rows, peaks, peak_n, threads):
    np_peak, t_peak = peaks
    peak = max(peaks)  # the machine's measured peak: the faster of the two libraries
    print(f"\nGEMMs of one step of each graphc target, each timed alone through numpy and "
          f"through torch on the same strided operands ({threads} thread(s)). Machine peak: "
          f"sgemm {peak_n}x{peak_n} float32 {np_peak:.1f} GFLOP/s through numpy "
          f"({np.__version__}), {t_peak:.1f} GFLOP/s through torch.")
    table = []
    for r in rows:
        for label, gemms in r["gemms"].items():
            if not gemms:
                continue
            step = next(s for s in r["sides"] if s["label"] == label)["median"]
            total = sum(g["n"] * g["numpy"] for g in gemms)
            t_total = sum(g["n"] * g["torch"] for g in gemms)
            flops = sum(g["n"] * g["flops"] for g in gemms)
            table.append((f"{r['key']} ({label.split()[-1]})", "all",
                          str(sum(g["n"] for g in gemms)), _fmt_time(total),
                          _gflops(flops, total), f"{flops / total / 1e9 / peak:.0%}",
                          _fmt_time(t_total), _gflops(flops, t_total),
                          f"{total / step:.0%}" if step else "-"))
            for g in sorted(gemms, key=lambda g: -g["n"] * g["numpy"])[:6]:
                table.append(("", g["gemm"], str(g["n"]), _fmt_time(g["numpy"]),
                              _gflops(g["flops"], g["numpy"]),
                              f"{g['flops'] / g['numpy'] / 1e9 / peak:.0%}",
                              _fmt_time(g["torch"]), _gflops(g["flops"], g["torch"]), ""))
        if r.get("uncounted"):
            print(f"  note: {r['key']}: np.{', np.'.join(r['uncounted'])} called, not counted")
    _table(("row (target)", "GEMM", "calls", "numpy", "GFLOP/s", "of peak", "torch", "GFLOP/s",
            "of step"), table, left=2)
    print("numpy/torch: one call, best of repeated calls (the 'all' line: the sum over the "
          "step's calls); of peak: numpy's GFLOP/s over the higher sgemm peak; of step: the "
          "numpy GEMMs' sum over that target's step median (warm caches: a lower bound). The "
          "cpu target's GEMMs are its backend's matmul/addmm (numpy's BLAS; addmm writes or "
          "adds the product to the gradient). ^T: a transposed view.")


def _cores_text() -> str:
    if not hasattr(os, "sched_getaffinity"):
        return "affinity unknown"
    cores = sorted(os.sched_getaffinity(0))
    return f"this process on {'all' if len(cores) == os.cpu_count() else 'only'} cores {','.join(map(str, cores))}"


def run_one(args, threads: int) -> list:
    import torch
    torch.set_num_threads(threads)
    keys = args.only or list(WORKLOADS)
    print(f"graphc benchmarks ({'quick' if args.quick else 'full'} mode, {threads} thread(s)): "
          f"python {sys.version.split()[0]}, numpy {np.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), jax {_version('jax')}, {os.cpu_count()} CPUs "
          f"({_cores_text()}); "
          + ", ".join(f"{v}={os.environ.get(v, '(default)')}" for v in
                      ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                       "OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "XLA_FLAGS")))
    print("one step = each library's training step: gradients zeroed (graphc) or set to None "
          "(PyTorch), forward, the same loss, backward, parameter gradients only; float32; "
          "median of interleaved rounds, each side running back-to-back steps for "
          f"~{args.block_ms:g} ms per round")
    load0 = _loadavg()
    print(f"load average at start: {load0:.2f}")
    rows, graphc_np = [], {}
    for key in keys:
        row, graphc_np[key] = run_row(key, args, threads)
        print_row(row)
        rows.append(row)
    load1 = _loadavg()
    print(f"\nsummary, {threads} thread(s):")
    print_summary(rows, args.markdown)
    print(f"load average at start/end: {load0:.2f} / {load1:.2f}")
    if max(load0, load1) > 0.5 * os.cpu_count():
        print(f"warning: other processes are using the CPUs (load {max(load0, load1):.2f} on "
              f"{os.cpu_count()} CPUs): the medians measure the machine as much as the "
              "libraries; multi-threaded calls stall behind other processes most.")
    # 1024: a call short enough (~25 ms on one core) that some of many run undisturbed by
    # other processes; the best of them is the peak
    peak_n = 1024
    print_gemms(rows, sgemm_peak(peak_n, 8 if args.quick else 20), peak_n, threads)

    if not args.no_compile_time:
        ci = compile_and_import(3)
        print("\ncompile/import (2-layer char-rnn LSTM, benchmarks/specs/charrnn_lstm.lua, "
              "--entry 'LSTM.lstm(65, 128, 2, 0)'; median of 3 runs):")
        ok_c = "pass" if ci["compile"] <= 0.5 else "FAIL"
        ok_i = "pass" if ci["import_gen"] <= 0.05 else "FAIL"
        print(f"  compile, `python -m graphc compile` wall time: {_fmt_time(ci['compile'])}  "
              f"(target <= 0.5 s: {ok_c})")
        print(f"  of which (medians, in a fresh interpreter): python startup "
              f"{_fmt_time(ci['python_startup'])}, importing graphc {_fmt_time(ci['imports'])}, "
              f"first compile_spec() {_fmt_time(ci['first_compile'])}; a second compile_spec() in "
              f"the same process takes {_fmt_time(ci['compile_again'])}")
        print(f"  import of the generated module, `python -c 'import gen'` minus `python -c "
              f"'import numpy'`: {_fmt_time(ci['import_gen'])}  (target <= 50 ms: {ok_i})")
        print(f"  the same timed inside the interpreter after `import numpy`: "
              f"{_fmt_time(ci['import_gen_inproc'])}, of which graphc_runtime "
              f"{_fmt_time(ci['import_runtime_inproc'])}")
        ok, why = cpu_target_status()
        targets = ["numpy", "cpu"] if ok else ["numpy"]
        print("\ncold start: seconds from after `import numpy` to a built Model in a fresh "
              "interpreter, median of 3: through graphc.load(spec) (compile + import), cold "
              "with empty GRAPHC_CACHE_DIR and GRAPHC_CPU_CACHE_DIR, warm on the caches it "
              "filled; and `import gen` of a module compiled beforehand by `graphc compile` "
              "(cold: empty GRAPHC_CPU_CACHE_DIR, warm: filled). Targets for the cpu target's "
              "tutorial cell, each way: cold <= 2 s, warm <= 50 ms."
              + ("" if ok else f" (cpu target: {why})"))
        table = []
        for case, target, l_cold, l_warm, i_cold, i_warm, error in cold_start(targets, 3):
            res = "-"
            if target == "cpu" and case == "tutorial cell":
                res = ", ".join(
                    f"{way} " + ("failed" if cold is None or warm is None else
                                 "pass" if cold <= 2.0 and warm <= 0.05 else "FAIL")
                    for way, cold, warm in (("load", l_cold, l_warm), ("import", i_cold, i_warm)))
            table.append((case, target, *(_fmt_time(t) if t is not None else "failed"
                                          for t in (l_cold, l_warm, i_cold, i_warm)), res))
            if error:
                print(f"  {case}, {target}: failed: {error}")
        _table(("spec", "target", "load cold", "load warm", "import cold", "import warm",
                "result"), table, left=2)

    prof = args.profile or (None if args.quick else "lstm128")
    if prof:
        side = graphc_np.get(prof)
        if side is None:
            w = WORKLOADS[prof]()
            side = graphc_sides(w)[0]
        profile_lines(side, 0.3 if args.quick else 1.0)
    return rows


def _version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return "not installed"


# ---------------------------------------------------------------------------------------
# main: one thread count in this process, or each in a fresh one (BLAS and OpenMP read
# their thread counts when they load)

def _without(argv, flags):
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in flags:
            skip = True
        elif not any(a.startswith(f + "=") for f in flags):
            out.append(a)
    return out


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="~0.1 s of timing per row and side")
    ap.add_argument("--only", action="append", choices=sorted(WORKLOADS),
                    help="run only these rows (repeatable)")
    ap.add_argument("--profile", nargs="?", const="lstm128", choices=sorted(WORKLOADS),
                    help="also print per-statement times of the generated numpy code of this "
                         "row (default lstm128; lstm128 is always profiled in full mode)")
    ap.add_argument("--threads", default="1,2",
                    help="thread counts, comma-separated (default 1,2): each runs in a fresh "
                         "process with every library (OpenBLAS, torch, OpenMP, MKL, XLA) at "
                         "that many threads")
    ap.add_argument("--no-compile-time", action="store_true",
                    help="skip the compile/import and cold-start timing")
    ap.add_argument("--block-ms", type=float, default=1.0,
                    help="each side runs back-to-back steps for about this long per round "
                         "(default 1 ms); 0: one step per round, strictly alternating")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    ap.add_argument("--markdown", action="store_true", help="print the summary as Markdown")
    args = ap.parse_args(argv)
    try:
        threads = [int(t) for t in args.threads.split(",")]
        if not threads or min(threads) < 1:
            raise ValueError
    except ValueError:
        ap.error(f"--threads: comma-separated positive integers, not {args.threads!r}")

    if len(threads) == 1:
        if os.environ.get("OPENBLAS_NUM_THREADS") != str(threads[0]):
            # run.py imported as a module, or the environment changed: the libraries may
            # already have loaded with other thread counts, so start afresh
            return _reexec(argv, threads, args)
        rows = run_one(args, threads[0])
    else:
        return _reexec(argv, threads, args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def _reexec(argv, threads, args):
    rows, rc = [], 0
    base = _without(argv, ("--threads", "--json"))
    for k, n in enumerate(threads):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "rows.json"
            extra = ["--no-compile-time"] if k > 0 and "--no-compile-time" not in base else []
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(n))
            r = subprocess.run([sys.executable, str(Path(__file__).resolve()), *base, *extra,
                                "--threads", str(n), "--json", str(out)], env=env)
            rc = rc or r.returncode
            if out.exists():
                rows += json.loads(out.read_text())
        print(flush=True)
    if len(threads) > 1:
        print(f"summary, threads {', '.join(map(str, threads))}:")
        print_summary(rows, args.markdown)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
