"""Lazy zeroGradParameters (graphc_runtime Module): no pass over the gradient buffer; the next
backward writes each parameter gradient's first contribution instead of adding it (and
zeroes the ones it does not write); anything that reads the gradients first zeroes them.
Torch's semantics must hold on every target: backward accumulates, zeroGradParameters()
then backward is a fresh gradient, the gradients read as zeros after zeroGradParameters()."""
from pathlib import Path

import numpy as np
import pytest

from conftest import build
from graphc.compiler import Options, compile_spec
from graphc.ir.graph import B

ROOT = Path(__file__).resolve().parent.parent

# a Linear used at two nodes (its gradients add: the second contribution adds to the first),
# an elementwise parameter (CMul), a plain Linear; big enough for the memory plan's scratch
SPEC = """
local x = nn.Identity()()
local lin = nn.Linear(300, 300)
local a = lin(x)
local b = lin(nn.Tanh()(a))
local c = nn.CMul(300)(b)
local out = nn.Sigmoid()(nn.CAddTable()({c, nn.Linear(300, 300)(x)}))
return nn.gModule({x}, {out})
"""


@pytest.fixture(params=["numpy", "cuda", "cpu"])
def target(request, tmp_path_factory, monkeypatch):
    """The numpy target, the CUDA target in host emulation (tests/cuda_host.py), and the
    CPU target (built at -O2, as the op harness builds it)."""
    if request.param == "cpu":
        from cuda_host import require_cpu_target
        require_cpu_target()
        monkeypatch.setenv("GRAPHC_CPU_CXXFLAGS", "-O2")
        yield "cpu"
    elif request.param == "cuda":
        import graphc_runtime.cuda as rt
        from cuda_host import HostBackend, require_tool
        require_tool("g++")
        old = rt.use_backend(HostBackend(tmp_path_factory.mktemp("cuda_host")))
        yield "cuda"
        rt.use_backend(old)
    else:
        yield "numpy"


def model(target, tmp_path, seed=0):
    mod = build(SPEC, tmp_path, dtype="float64", shapes={"input1": (B, 300)}, target=target)
    return mod.Model(dtype="float64", seed=seed)


def data(rng, batch=5):
    return rng.standard_normal((batch, 300)), rng.standard_normal((batch, 300))


def host(a):
    """A numpy copy of a numpy or CuPy array (CuPy's on a GPU machine)."""
    return a.get() if hasattr(a, "get") else np.array(a)


def fresh_gradient(target, tmp_path, x, gy):
    m = model(target, tmp_path)  # a new model's gradients are zero
    m.forward(x)
    m.backward(x, gy)
    return host(m.getParameters()[1]).copy()


def test_generated_backward_writes_first_contributions(tmp_path):
    src = compile_spec("spec.lua", Options(shapes={"input1": (B, 300)}), text=SPEC).source
    assert "_zeroed = self._lazy_zero.pending" in src and "self._lazy_zero.pending = False" in src
    # the shared Linear's (named after its first node, a) first contribution writes with
    # out=, its second one adds; CMul's first one is copied in
    assert "rt.matmul_into(grad_b.T, tanh1, g_a_weight)" in src
    assert src.count("g_a_weight += ") == 2  # the first's `else:` branch, and the second's
    assert "g_c_weight[...] = (b * grad_c)" in src
    cuda = compile_spec("spec.lua", Options(shapes={"input1": (B, 300)}, target="cuda"), text=SPEC).source
    # the first GEMMs of both Linears write (beta 0); CMul's kernel adds: zeroed first
    assert cuda.count("beta=0.0 if _zeroed else 1.0") == 4
    assert "if _zeroed:\n            self._grads[2][...] = 0\n" in cuda


def test_zero_then_backward_is_fresh_and_backward_accumulates(target, tmp_path, rng):
    x, gy = data(rng)
    ref = fresh_gradient(target, tmp_path, x, gy)
    m = model(target, tmp_path)
    _, flat_g = m.getParameters()
    flat_g[...] = np.nan  # stale values the lazy zero must never let through
    m.zeroGradParameters()
    m.forward(x)
    m.backward(x, gy)
    np.testing.assert_allclose(host(flat_g), ref, rtol=1e-13, atol=1e-15)
    m.forward(x)
    m.backward(x, gy)  # no zeroGradParameters: Torch adds
    np.testing.assert_allclose(host(flat_g), 2 * ref, rtol=1e-13, atol=1e-15)
    m.zeroGradParameters()
    m.forward(x)
    m.backward(x, gy)
    np.testing.assert_allclose(host(flat_g), ref, rtol=1e-13, atol=1e-15)


def test_gradients_read_after_zero_are_zeros(target, tmp_path, rng):
    x, gy = data(rng)
    m = model(target, tmp_path)
    m.forward(x)
    m.backward(x, gy)
    _, held = m.getParameters()
    assert host(held).any()
    m.zeroGradParameters()
    # documented: a flat gradient array taken before zeroGradParameters() keeps the old
    # values until the next backward or accessor call ...
    assert host(held).any()
    assert not host(m.getParameters()[1]).any()  # ... which zeroes the buffer
    assert not host(held).any()
    m.forward(x)
    m.backward(x, gy)
    m.zeroGradParameters()
    assert all(not host(g).any() for _, g in m.gradParameters())
    assert not host(held).any()


def test_optimizer_steps_after_lazy_zero_match_eager_zeroing(target, tmp_path, rng):
    from graphc_runtime import optim
    x, gy = data(rng)
    results = []
    for lazy in (True, False):
        m = model(target, tmp_path)
        flat_w, flat_g = m.getParameters()
        state = {}

        def feval(w):
            if lazy:
                m.zeroGradParameters()
            else:
                flat_g[...] = 0  # what zeroGradParameters() did before it was lazy
            out = m.forward(x)
            m.backward(x, gy)
            return float(host((out * gy).sum())), flat_g
        for _ in range(3):
            optim.sgd(feval, flat_w, {"learningRate": 0.1, "momentum": 0.9}, state)
        results.append(host(flat_w).copy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-13, atol=1e-15)


def test_clone_shared_sees_a_pending_zero(target, tmp_path, rng):
    x, gy = data(rng)
    ref = fresh_gradient(target, tmp_path, x, gy)
    m = model(target, tmp_path)
    m.forward(x)
    m.backward(x, gy)
    m.zeroGradParameters()
    clone = m.clone_shared()  # shares the gradient buffer, so the pending zero too
    clone.forward(x)
    clone.backward(x, gy)
    np.testing.assert_allclose(host(m.getParameters()[1]), ref, rtol=1e-13, atol=1e-15)
    assert not m._lazy_zero.pending


def test_cuda_graph_step_after_lazy_zero(tmp_path, rng, tmp_path_factory):
    """A CUDA graph replays one run's device work (its backward adds): step(graph=True)
    zeroes a pending zeroGradParameters() first."""
    import graphc_runtime.cuda as rt
    from cuda_host import HostBackend, require_tool
    require_tool("g++")
    old = rt.use_backend(HostBackend(tmp_path_factory.mktemp("cuda_host")))
    try:
        x, gy = data(rng)
        ref = fresh_gradient("cuda", tmp_path, x, gy)
        m = model("cuda", tmp_path)
        for _ in range(3):  # eager run, capture, replay
            m.zeroGradParameters()
            m.step((x,), (gy,), graph=True)
            np.testing.assert_allclose(host(m.getParameters()[1]), ref, rtol=1e-13, atol=1e-15)
    finally:
        rt.use_backend(old)


def test_sequence_zeroes_what_its_step_does_not_write(rng):
    """--unroll T splits the step: the per-step part never writes the input projection's
    gradient (the prefix, run once after the steps, adds it), so it zeroes it when pending."""
    res = compile_spec(str(ROOT / "samples" / "lstm.lua"),
                       Options(dtype="float64", unroll="T", state=[("output1", "input2"), ("output2", "input3")],
                               defines={"input_size": 16, "rnn_size": 16}))
    assert "# gradients this backward does not write: zero when pending" in res.source
    ns = {}
    exec(compile(res.source, "seq", "exec"), ns)
    xs = rng.standard_normal((4, 3, 16))
    c0, h0 = rng.standard_normal((3, 16)), rng.standard_normal((3, 16))
    grads = []
    for repeat in range(3):
        seq = ns["Sequence"](dtype="float64", seed=0)
        _, flat_g = seq.getParameters()
        if repeat:
            flat_g[...] = np.nan
            seq.zeroGradParameters()
        for _ in range(1 + (repeat == 2)):
            out = seq.forward(xs, c0, h0)
            seq.backward((xs, c0, h0), tuple(np.ones_like(o) for o in out))
        grads.append(flat_g.copy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-13)
    np.testing.assert_allclose(grads[2], 2 * grads[0], rtol=1e-13)
