#!/usr/bin/env python3
"""graphc benchmarks: one training step of graphc's generated numpy code vs PyTorch eager.

    python benchmarks/run.py            # full mode (~0.5 s of timing per workload and side)
    python benchmarks/run.py --quick    # ~0.1 s per workload and side
    python benchmarks/run.py --only lstm128 --profile

A "step" is forward, then backward with fixed output gradients (no loss), parameter
gradients accumulated (never zeroed between repetitions, on either side). Both sides get the
same float32 inputs and output gradients and the same parameters: the torch model is
written by hand with torch.nn.functional and its parameters are copied from graphc's flat
vector. Before timing, outputs are checked to agree to 1e-4 (and parameter gradients to
1e-3, relative to their largest magnitude). The sides are timed alternately in one process
(the order flips every round) and the median of all repetitions is reported.

See benchmarks/README.md for what each column means.
"""
from __future__ import annotations

import argparse
import ast
import gc
import inspect
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

# Idle worker threads of numpy's BLAS (OpenBLAS: busy-waits 2^28 cycles after each call by
# default) and of torch's OpenMP pool (libgomp: spins before sleeping) keep cores busy. With
# the two libraries interleaved step by step on a machine with few cores, one pool's spinning
# threads then delay the other's workers, and a pair of ~1 ms steps was seen to take 20-50 ms.
# So both pools are told to sleep when idle (symmetric; both pay a wake-up per parallel call).
# These are read when the libraries load, hence set before the imports; values already in
# the environment win.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if "numpy" not in sys.modules:
    # --threads N must reach OpenBLAS before numpy loads, so look for it ahead of argparse
    for _i, _a in enumerate(sys.argv):
        if _a.startswith("--threads"):
            _n = _a.split("=", 1)[1] if "=" in _a else (sys.argv[_i + 1:] or [""])[0]
            if _n.isdigit():
                os.environ["OPENBLAS_NUM_THREADS"] = _n

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


def time_gemms(calls, budget) -> tuple[float, int, int, list]:
    """Median time of each distinct GEMM in isolation; returns (total s, flops, n, rows)."""
    rng = np.random.default_rng(1)
    counts: dict = {}
    for c in calls:
        counts[c] = counts.get(c, 0) + 1
    total = 0.0
    flops = 0
    rows = []
    for (la, lb), n in counts.items():
        a, b = _strided(la, rng), _strided(lb, rng)
        for _ in range(3):
            a @ b
        ts = []
        deadline = perf() + budget
        while len(ts) < 7 or (perf() < deadline and len(ts) < 5000):
            t0 = perf()
            a @ b
            ts.append(perf() - t0)
        med = statistics.median(ts)
        f = gemm_flops(la, lb)
        total += n * med
        flops += n * f
        rows.append((la, lb, n, med, f))
    return total, flops, sum(counts.values()), rows


def sgemm_peak(n: int, reps: int) -> float:
    """GFLOP/s of a large square float32 matmul (numpy's BLAS, all its threads)."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    a @ b
    ts = []
    for _ in range(reps):
        t0 = perf()
        a @ b
        ts.append(perf() - t0)
    return 2 * n ** 3 / min(ts) / 1e9


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
# workloads

class Workload:
    """name, target ratio, graphc model + step, torch step, and how to read gradients."""
    name: str
    target: float | None
    g_mod: dict
    source: str
    refs: list  # extra torch sides: (label, step, zero, grads)

    def g_step(self):  # returns outputs (numpy)
        raise NotImplementedError

    def t_step(self):  # returns outputs (torch)
        raise NotImplementedError

    def g_zero(self):
        self.m.zeroGradParameters()

    def g_grads(self):
        return self.m.getParameters()[1].copy()

    def t_zero(self):
        for p in self.tp:
            p.grad = None

    def t_grads(self):
        return np.concatenate([p.grad.detach().numpy().ravel() for p in self.tp])

    def g_recording_step(self, recorder):
        """One graphc step on a copy of the model whose matmuls are recorded."""
        mod = recording_module(self.source, self.key, recorder)
        saved = self.m, self.g_mod
        self.m, self.g_mod = mod["Model"](dtype="float32", seed=0), mod
        try:
            self.g_step()
        finally:
            self.m, self.g_mod = saved


def _torch_params(m):
    import torch
    return [torch.tensor(w.copy(), requires_grad=True) for _, w in m.parameters()]


def _rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


class LSTMCell(Workload):
    """The Torch tutorial's LSTM cell (samples/lstm.lua): gates i, f, o (sigmoid), g (tanh)."""

    def __init__(self, key, name, target, n_in, n_hid, batch):
        import torch
        self.key, self.name, self.target = key, name, target
        self.n = n_hid
        self.source = compile_source(SAMPLES / "lstm.lua",
                                     defines={"input_size": n_in, "rnn_size": n_hid})
        self.g_mod = load_module(self.source, key)
        self.m = self.g_mod["Model"](dtype="float32", seed=0)
        rng = np.random.default_rng(0)
        self.xs = (_rand(rng, (batch, n_in)), _rand(rng, (batch, n_hid)), _rand(rng, (batch, n_hid)))
        self.gouts = (_rand(rng, (batch, n_hid)), _rand(rng, (batch, n_hid)))
        self.tp = _torch_params(self.m)
        # graphc returns gradients for every input, so torch computes them too
        self.txs = [torch.tensor(x, requires_grad=True) for x in self.xs]
        self.tgouts = [torch.tensor(g) for g in self.gouts]
        self.refs = []

    def g_step(self):
        m = self.m
        out = m.forward(*self.xs)
        m.backward(self.xs, self.gouts)
        return out

    def t_cell(self, x, c, h):
        import torch
        import torch.nn.functional as F
        wi, bi, wh, bh = self.tp
        n = self.n
        pre = F.linear(x, wi, bi) + F.linear(h, wh, bh)
        gates = torch.sigmoid(pre[:, :3 * n])
        g = torch.tanh(pre[:, 3 * n:])
        i, f, o = gates[:, :n], gates[:, n:2 * n], gates[:, 2 * n:]
        next_c = f * c + i * g
        next_h = o * torch.tanh(next_c)
        return next_c, next_h

    def t_step(self):
        import torch
        out = self.t_cell(*self.txs)
        torch.autograd.backward(out, self.tgouts)
        return out


class LSTMUnrolled(LSTMCell):
    """The 128 cell unrolled T steps with full BPTT, compiled by graphc with `--unroll T`
    for this fixed T (one straight-line Model over the steps; c and h feed the next step;
    not the `--unroll T` Sequence of any length). `--entry` adds
    next_h as a third, per-step output of samples/lstm.lua, so that every h_t takes an output
    gradient (c_T and h_T get zero gradients as state outputs)."""

    def __init__(self, key, name, target, n_in, n_hid, batch, steps):
        import torch
        super().__init__(key, name, target, n_in, n_hid, batch)
        self.source = compile_source(
            SAMPLES / "lstm.lua", defines={"input_size": n_in, "rnn_size": n_hid},
            entry="nn.gModule(inputs, {next_c, next_h, nn.Identity()(next_h)})",
            unroll=steps, state=[("output1", "input2"), ("output2", "input3")])
        self.g_mod = load_module(self.source, key)
        cell = self.m
        self.m = self.g_mod["Model"](dtype="float32", seed=0)
        self.m.getParameters()[0][:] = cell.getParameters()[0]  # the torch sides copied these
        rng = np.random.default_rng(1)
        self.T = steps
        self.X = _rand(rng, (steps, batch, n_in))
        self.c0, self.h0 = _rand(rng, (batch, n_hid)), _rand(rng, (batch, n_hid))
        self.GH = _rand(rng, (steps, batch, n_hid))
        self.zero = np.zeros((batch, n_hid), np.float32)
        self.tX = torch.tensor(self.X, requires_grad=True)
        self.tc0 = torch.tensor(self.c0, requires_grad=True)
        self.th0 = torch.tensor(self.h0, requires_grad=True)
        self.tGH = torch.tensor(self.GH)
        self.tGH_list = list(self.tGH.unbind(0))
        # the reference: torch.nn.LSTM (fused cell, PyTorch gate order i, f, g, o)
        lstm = torch.nn.LSTM(n_in, n_hid)
        perm = np.r_[0:2 * n_hid, 3 * n_hid:4 * n_hid, 2 * n_hid:3 * n_hid]
        wi, bi, wh, bh = (w for _, w in self.m.parameters())
        with torch.no_grad():
            lstm.weight_ih_l0.copy_(torch.tensor(wi[perm]))
            lstm.bias_ih_l0.copy_(torch.tensor(bi[perm]))
            lstm.weight_hh_l0.copy_(torch.tensor(wh[perm]))
            lstm.bias_hh_l0.copy_(torch.tensor(bh[perm]))
        self.lstm, self.perm = lstm, perm
        self.refs = [("torch.nn.LSTM (fused)", self.f_step, self.f_zero, self.f_grads)]

    def g_step(self):
        m = self.m
        xs = (self.X, self.c0, self.h0)
        _, _, hs = m.forward(*xs)
        m.backward(xs, (self.zero, self.zero, self.GH))
        return list(hs)

    def t_step(self):
        import torch
        c, h = self.tc0, self.th0
        hs = []
        for t in range(self.T):
            c, h = self.t_cell(self.tX[t], c, h)
            hs.append(h)
        torch.autograd.backward(hs, self.tGH_list)
        return hs

    def f_step(self):
        import torch
        out, _ = self.lstm(self.tX, (self.th0[None], self.tc0[None]))
        torch.autograd.backward(out, self.tGH)
        return list(out.unbind(0))

    def f_zero(self):
        for p in self.lstm.parameters():
            p.grad = None

    def f_grads(self):
        n4 = 4 * self.n
        inv = np.argsort(self.perm)
        wi, bi, wh, bh = (p.grad.detach().numpy() for p in
                          (self.lstm.weight_ih_l0, self.lstm.bias_ih_l0,
                           self.lstm.weight_hh_l0, self.lstm.bias_hh_l0))
        assert wi.shape[0] == n4
        return np.concatenate([a[inv].ravel() for a in (wi, bi, wh, bh)])


class LeNet(Workload):
    def __init__(self, key, name, target, batch):
        import torch
        self.key, self.name, self.target = key, name, target
        self.source = compile_source(SAMPLES / "lenet.lua", shapes={"input1": "Bx1x32x32"})
        self.g_mod = load_module(self.source, key)
        self.m = self.g_mod["Model"](dtype="float32", seed=0)
        rng = np.random.default_rng(0)
        self.x = _rand(rng, (batch, 1, 32, 32))
        self.gout = _rand(rng, (batch, 10))
        self.tp = _torch_params(self.m)
        self.tx = torch.tensor(self.x, requires_grad=True)
        self.tgout = torch.tensor(self.gout)
        self.refs = []

    def g_step(self):
        out = self.m.forward(self.x)
        self.m.backward(self.x, self.gout)
        return (out,)

    def t_step(self):
        import torch.nn.functional as F
        c1w, c1b, c2w, c2b, l1w, l1b, l2w, l2b, l3w, l3b = self.tp
        y = F.max_pool2d(F.relu(F.conv2d(self.tx, c1w, c1b)), 2, 2)
        y = F.max_pool2d(F.relu(F.conv2d(y, c2w, c2b)), 2, 2)
        y = y.reshape(y.shape[0], 400)
        y = F.relu(F.linear(y, l1w, l1b))
        y = F.relu(F.linear(y, l2w, l2b))
        y = F.log_softmax(F.linear(y, l3w, l3b), dim=1)
        y.backward(self.tgout)
        return (y,)


class MLP(Workload):
    def __init__(self, key, name, target, batch):
        import torch
        self.key, self.name, self.target = key, name, target
        self.source = compile_source(SPECS / "mlp.lua")
        self.g_mod = load_module(self.source, key)
        self.m = self.g_mod["Model"](dtype="float32", seed=0)
        rng = np.random.default_rng(0)
        self.x = _rand(rng, (batch, 784))
        self.gout = _rand(rng, (batch, 10))
        self.tp = _torch_params(self.m)
        self.tx = torch.tensor(self.x, requires_grad=True)
        self.tgout = torch.tensor(self.gout)
        self.refs = []

    def g_step(self):
        out = self.m.forward(self.x)
        self.m.backward(self.x, self.gout)
        return (out,)

    def t_step(self):
        import torch.nn.functional as F
        w1, b1, w2, b2, w3, b3 = self.tp
        y = F.relu(F.linear(self.tx, w1, b1))
        y = F.relu(F.linear(y, w2, b2))
        y = F.log_softmax(F.linear(y, w3, b3), dim=1)
        y.backward(self.tgout)
        return (y,)


WORKLOADS = {
    "lstm3": lambda: LSTMCell("lstm3", "tutorial LSTM cell 3->2, batch 1", 0.06, 3, 2, 1),
    "lstm128": lambda: LSTMCell("lstm128", "LSTM cell 128->128, batch 32", 0.6, 128, 128, 32),
    "lstm1024": lambda: LSTMCell("lstm1024", "LSTM cell 1024->1024, batch 64", 1.0, 1024, 1024, 64),
    "lstm128x50": lambda: LSTMUnrolled("lstm128x50", "LSTM 128 x50 steps BPTT, batch 32", 0.36,
                                       128, 128, 32, 50),
    "lenet1": lambda: LeNet("lenet1", "LeNet, batch 1", 0.25, 1),
    "lenet64": lambda: LeNet("lenet64", "LeNet, batch 64", 0.9, 64),
    "mlp128": lambda: MLP("mlp128", "MLP 784-512-512-10, batch 128", 1.0, 128),
}


# ---------------------------------------------------------------------------------------
# checks

def _rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def check(w: Workload) -> list[str]:
    """Outputs to 1e-4 and parameter gradients to 1e-3 (relative to max(1, max |g|))."""
    problems = []
    w.g_zero()
    gout = [np.array(o) for o in w.g_step()]
    g_grad = w.g_grads()
    sides = [("torch", w.t_step, w.t_zero, w.t_grads)] + list(w.refs)
    for label, step, zero, grads in sides:
        zero()
        tout = [o.detach().numpy() for o in step()]
        if len(tout) != len(gout):
            problems.append(f"{label}: {len(tout)} outputs vs graphc's {len(gout)}")
            continue
        e_out = max(_rel_err(a, b) for a, b in zip(gout, tout))
        e_grad = _rel_err(g_grad, grads())
        if not e_out <= 1e-4:
            problems.append(f"{label}: outputs differ by {e_out:.2e} (> 1e-4)")
        if not e_grad <= 1e-3:
            problems.append(f"{label}: parameter gradients differ by {e_grad:.2e} (> 1e-3)")
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


# ---------------------------------------------------------------------------------------
# main

def profile_lines(w: Workload, seconds: float):
    """Time each statement of the generated _forward/_backward over many steps."""
    tr = _TimeStatements(w.source)
    mod = load_module(w.source, w.key + "_lines", tr, {"_bench_pc_": perf})
    acc = [0.0] * len(tr.labels)
    mod["_bench_acc_"] = acc
    saved = w.m, w.g_mod
    w.m = mod["Model"](dtype="float32", seed=0)
    try:
        for _ in range(5):
            w.g_step()
        for i in range(len(acc)):
            acc[i] = 0.0
        n = 0
        t0 = perf()
        while perf() - t0 < seconds:
            w.g_step()
            n += 1
        total = (perf() - t0) / n
    finally:
        w.m, w.g_mod = saved
    per = [a / n for a in acc]
    inside = sum(per)
    print(f"\nper-statement time of the generated code, {w.name} ({n} steps, "
          f"{_fmt_time(total)}/step with timing overhead):")
    print(f"  {'time':>9}  {'share':>6}  statement")
    for i in sorted(range(len(per)), key=lambda i: -per[i])[:15]:
        print(f"  {_fmt_time(per[i]):>9}  {per[i] / total:6.1%}  {tr.labels[i][:110]}")
    print(f"  {_fmt_time(total - inside):>9}  {(total - inside) / total:6.1%}  "
          "outside _forward/_backward: Module.forward/backward checks, calls, timing overhead")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="~0.1 s per workload and side")
    ap.add_argument("--only", action="append", choices=sorted(WORKLOADS),
                    help="run only these workloads (repeatable)")
    ap.add_argument("--profile", nargs="?", const="lstm128", choices=sorted(WORKLOADS),
                    help="also print per-statement times of the generated code of this "
                         "workload (default lstm128; lstm128 is always profiled in full mode)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="threads for torch and for numpy's OpenBLAS (default: all CPUs; "
                         "OpenBLAS is left at its own default unless this is given)")
    ap.add_argument("--no-compile-time", action="store_true", help="skip compile/import timing")
    ap.add_argument("--block-ms", type=float, default=1.0,
                    help="each side runs back-to-back steps for about this long per round "
                         "(default 1 ms); 0: one step per round, strictly alternating")
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    budget = 0.1 if args.quick else 0.5
    min_reps = 7 if args.quick else 15
    keys = args.only or list(WORKLOADS)

    print(f"graphc benchmarks ({'quick' if args.quick else 'full'} mode): python "
          f"{sys.version.split()[0]}, numpy {np.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), {os.cpu_count()} CPUs, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(default)')}, "
          f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT', '(default)')}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}")
    print("one step = forward + backward with given output gradients, parameter gradients "
          "accumulated; float32; median of interleaved rounds, each side running back-to-back "
          f"steps for ~{args.block_ms:g} ms per round")
    load0 = _loadavg()
    print(f"load average at start: {load0:.2f}\n")

    rows, gemm_rows, built = [], [], {}
    for key in keys:
        t0 = perf()
        w = WORKLOADS[key]()
        built[key] = w
        problems = check(w)
        if problems:
            print(f"{w.name}: MISMATCH, not timed: " + "; ".join(problems))
            rows.append((w.name, None, None, None, w.target, "MISMATCH", None, None, 0))
            continue
        sides = [w.g_step, w.t_step] + [r[1] for r in w.refs]
        blocks = block_sizes(sides, args.block_ms / 1e3)
        times = interleaved(sides, budget, min_reps, blocks)
        meds, reps = [statistics.median(t) for t in times], len(times[0])
        paired = statistics.median(g / t for g, t in zip(times[0], times[1]))
        # from no saved activations and no scratch arrays (the memory plan's, kept between
        # steps): both are counted as made during the step
        g_mem = numpy_peak(lambda: (setattr(w.m, "_saved", None), setattr(w.m, "_scratch", {}),
                                    w.g_step()))
        t_mem = torch_peak(w.t_step)
        ratio = meds[0] / meds[1]
        verdict = "pass" if ratio <= w.target else "FAIL"
        rows.append((w.name, meds[0], meds[1], paired, w.target, verdict, g_mem, t_mem, reps))
        for (label, step, _, _), med, tt in zip(w.refs, meds[2:], times[2:]):
            p2 = statistics.median(g / t for g, t in zip(times[0], tt))
            rows.append(("  ref: " + label, meds[0], med, p2, None, "(ref)", None, torch_peak(step),
                         reps))
        # GEMMs: record the ones one step makes, time them alone
        rec = GemmRecorder()
        w.g_recording_step(rec)
        if rec.uncounted:
            print(f"  note: {w.name}: np.{', np.'.join(sorted(rec.uncounted))} called, "
                  "not counted as GEMMs")
        gt, gflop, ncalls, _ = time_gemms(rec.calls, 0.01 if args.quick else 0.03)
        gemm_rows.append((w.name, ncalls, gflop, gt, meds[0], meds[1]))
        print(f"  {w.name}: {reps} rounds of {blocks[0]} graphc / {blocks[1]} torch steps, "
              f"{perf() - t0:.1f} s", file=sys.stderr)

    # ---- the table
    hdr = ("workload", "graphc", "torch", "ratio", "paired", "target", "result", "graphc peak",
           "torch peak", "reps")
    table = []
    for name, g, t, paired, target, verdict, gm, tm, reps in rows:
        table.append((name, _fmt_time(g) if g else "-", _fmt_time(t) if t else "-",
                      f"{g / t:.3f}" if g and t else "-", f"{paired:.3f}" if paired else "-",
                      f"<= {target}" if target is not None else "-", verdict,
                      _fmt_bytes(gm), _fmt_bytes(tm), str(reps)))
    widths = [max(len(r[i]) for r in table + [hdr]) for i in range(len(hdr))]
    line = "  ".join(h.ljust(wd) if i == 0 else h.rjust(wd) for i, (h, wd) in enumerate(zip(hdr, widths)))
    print(line)
    print("-" * len(line))
    for r in table:
        print("  ".join(c.ljust(wd) if i == 0 else c.rjust(wd) for i, (c, wd) in enumerate(zip(r, widths))))
    print("ratio = graphc median / torch median (lower is better for graphc; pass/fail uses it). "
          "paired = median over rounds of graphc time / torch time within the same round. "
          "graphc peak: "
          "tracemalloc peak of one step (from no saved activations) above the level before it; "
          "torch peak: torch.profiler CPU-allocator events, peak of the running sum over one step.")

    load1 = _loadavg()
    print(f"load average at start/end of timing: {load0:.2f} / {load1:.2f}")
    if args.threads > 1 and max(load0, load1) > 0.5 * os.cpu_count():
        print(f"warning: other processes are using the CPUs (load {max(load0, load1):.2f} on "
              f"{os.cpu_count()} CPUs); multi-threaded BLAS calls then stall behind them and "
              "the medians above can be off by several times. `--threads 1` is more stable.")

    # ---- GEMM analysis
    peak_n = 1024 if args.quick else 2048
    peak = sgemm_peak(peak_n, 3 if args.quick else 5)
    print(f"\nGEMM analysis: numpy sgemm peak = {peak:.1f} GFLOP/s ({peak_n}x{peak_n} float32 "
          f"matmul, best of several). GEMMs recorded from one graphc step (shapes, strides and dtypes of "
          f"every `@` in the generated code and the runtime kernels), each timed alone.")
    hdr2 = ("workload", "GEMMs", "GFLOP/step", "GEMM time", "of graphc step", "GEMM GFLOP/s",
            "of peak", "graphc GFLOP/s", "torch GFLOP/s")
    t2 = []
    for name, n, fl, gt, gstep, tstep in gemm_rows:
        t2.append((name, str(n), f"{fl / 1e9:.4f}", _fmt_time(gt), f"{gt / gstep:.0%}",
                   f"{fl / gt / 1e9:.1f}", f"{fl / gt / 1e9 / peak:.0%}",
                   f"{fl / gstep / 1e9:.1f}", f"{fl / tstep / 1e9:.1f}"))
    widths = [max(len(r[i]) for r in t2 + [hdr2]) for i in range(len(hdr2))]
    line = "  ".join(h.ljust(wd) if i == 0 else h.rjust(wd) for i, (h, wd) in enumerate(zip(hdr2, widths)))
    print(line)
    print("-" * len(line))
    for r in t2:
        print("  ".join(c.ljust(wd) if i == 0 else c.rjust(wd) for i, (c, wd) in enumerate(zip(r, widths))))
    print("GEMM time: sum of the isolated GEMM medians (warm caches, so a lower bound on their "
          "time inside the step). graphc/torch GFLOP/s: the same GEMM FLOPs over each side's "
          "whole step time.")

    # ---- compile and import time
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

    prof = args.profile or (None if args.quick else "lstm128")
    if prof:
        w = built.get(prof) or WORKLOADS[prof]()
        profile_lines(w, 0.3 if args.quick else 1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
