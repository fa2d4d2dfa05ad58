"""CupyBackend's own code (cuBLAS calls with transpose flags, the ones-row bias GEMM, module
loading, stream capture and graph replay) run against a stand-in for CuPy: numpy arrays,
a cublas.gemm that honours the flags, RawModule kernels built by the host-emulation harness,
and streams that record launches while capturing. No GPU here, so this is what checks the
Python half of the GPU path in CI; tests/gpu/run.sh checks it against real CuPy."""
import sys
import types

import numpy as np
import pytest

from cuda_host import HostBackend, assert_close

import graphc_runtime.cuda as rt
from test_cuda import load_module, random_inputs


class _Stream:
    def __init__(self, non_blocking=False):
        self.recording = None

    def record(self):
        return object()

    def wait_event(self, event):
        pass

    def __enter__(self):
        _STREAMS.append(self)
        return self

    def __exit__(self, *exc):
        _STREAMS.pop()

    def begin_capture(self):
        self.recording = []

    def end_capture(self):
        graph, self.recording = _Graph(self.recording), None
        return graph


class _Graph:
    def __init__(self, calls):
        self.calls = calls
        self.launches = 0

    def launch(self, stream):
        self.launches += 1
        for run in self.calls:
            run()


_STREAMS = [_Stream()]


def fake_cupy(host: HostBackend, gemms: list):
    def gemm(ta, tb, a, b, out, alpha, beta):
        gemms.append((ta, tb))
        for m in (a, b, out):
            assert m.flags.c_contiguous, "cuBLAS gets C-contiguous arrays and flags"
        op_a, op_b = (a.T if ta == "T" else a), (b.T if tb == "T" else b)
        out[...] = alpha * (op_a @ op_b) + beta * out

    class RawModule:
        def __init__(self, code=None, options=(), backend=None, path=None):
            dtype = "float64" if "-DGRAPHC_REAL=double" in options else "float32"
            names = [n for _, n, _ in __import__("cuda_host").SIGNATURE.findall(code)]
            self.kernels = host.load(code, dtype, names)

        def get_function(self, name):
            def launch(grid, block, args):
                run = lambda: host.call(self.kernels, name, grid, block, args)  # noqa: E731
                stream = _STREAMS[-1]
                stream.recording.append(run) if stream.recording is not None else run()
            return launch

    mod = types.ModuleType("cupy")
    mod.__getattr__ = lambda name: getattr(np, name)  # arrays are numpy's
    mod.cublas = types.SimpleNamespace(gemm=gemm)
    mod.asnumpy = np.asarray
    mod.RawModule = RawModule
    mod.cuda = types.SimpleNamespace(Stream=_Stream, get_current_stream=lambda: _STREAMS[-1],
                                     Device=lambda: types.SimpleNamespace(id=0, compute_capability="90"))
    return mod


@pytest.fixture
def cupy_backend(tmp_path, monkeypatch):
    gemms = []
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(HostBackend(tmp_path), gemms))
    monkeypatch.setitem(sys.modules, "cupy_backends", None)  # no low-level NVRTC: RawModule(code=)
    backend = rt.CupyBackend()
    old = rt.use_backend(backend)
    yield backend, gemms
    rt.use_backend(old)


def _tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


@pytest.mark.parametrize("name,batch", [("lstm", 3), ("lenet", 2), ("tables", 3), ("views", 2)])
def test_cupy_backend_matches_the_numpy_target(name, batch, cupy_backend):
    _, gemms = cupy_backend
    ref = load_module(name, "numpy").Model(seed=0)
    m = load_module(name, "cuda").Model(seed=0)
    rng = np.random.default_rng(2)
    xs = random_inputs(ref, batch, "float64", rng)
    outs = _tuple(ref.forward(*xs))
    for a, b in zip(outs, _tuple(m.forward(*xs))):
        assert_close(a, b, "float64", "output")
    g = tuple(rng.standard_normal(o.shape) for o in outs)
    g = g if len(g) > 1 else g[0]
    for _ in range(2):  # parameter gradients accumulate in place through cublas.gemm(beta=1)
        gin, gin_c = _tuple(ref.backward(tuple(xs), g)), _tuple(m.backward(tuple(xs), g))
    for a, b in zip(gin, gin_c):
        assert_close(a, b, "float64", "input gradient")
    assert_close(ref.getParameters()[1], m.getParameters()[1], "float64", "parameter gradients")
    if name in ("lstm", "lenet"):
        assert gemms, "weight and bias gradients go through cublas.gemm"


def test_cupy_backend_graph_capture_and_replay(cupy_backend):
    ref = load_module("lstm", "numpy").Model(seed=0)
    m = load_module("lstm", "cuda").Model(seed=0)
    rng = np.random.default_rng(3)
    for step in range(4):
        xs = [rng.standard_normal((2, n)) for n in (3, 2, 2)]
        g = (rng.standard_normal((2, 2)), rng.standard_normal((2, 2)))
        outs, gin = ref.forward(*xs), ref.backward(tuple(xs), g)
        out_c, gin_c = m.step(xs, g, graph=True)
        for a, b in zip(list(outs) + list(gin), list(out_c) + list(gin_c)):
            assert_close(a, b, "float64", f"step {step}")
        assert_close(ref.getParameters()[1], m.getParameters()[1], "float64", f"step {step}")
    (graph,) = m._graphs.values()
    assert graph.replay.graph.launches == 3  # steps 2-4 replay; step 1 ran eagerly
