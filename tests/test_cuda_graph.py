"""CUDA-graph mode (CudaModule.step(..., graph=True)) in host emulation: GraphBackend's own
GEMM kernels instead of cuBLAS, the eager first call, the capture (emulated by recording the
launches) and replays into the same buffers, against the numpy target step after step."""
import shutil

import numpy as np
import pytest

from cuda_host import HostBackend, assert_close, load_text, require_tool

import graphc_runtime.cuda as rt
from test_cuda import load_module, random_inputs


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    require_tool("g++")
    b = HostBackend(tmp_path_factory.mktemp("cuda_graph"))
    old = rt.use_backend(b)
    yield b
    rt.use_backend(old)


def _as_list(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


@pytest.mark.parametrize("name,batch", [("lstm", 4), ("lenet", 2), ("tables", 3), ("views", 3)])
def test_graph_steps_match_the_numpy_target(name, batch, host):
    ref = load_module(name, "numpy").Model(seed=0)
    m = load_module(name, "cuda").Model(seed=0)
    rng = np.random.default_rng(0)
    launches = []
    for step in range(4):  # eager, capture, then replays with new data
        xs = random_inputs(ref, batch, "float64", rng)
        outs = _as_list(ref.forward(*xs))
        gys = [rng.standard_normal(o.shape) for o in outs]
        g = tuple(gys) if len(gys) > 1 else gys[0]
        gin = _as_list(ref.backward(tuple(xs), g))
        before = len(host.launches)
        out_c, gin_c = m.step(xs, g, graph=True)
        launches.append(host.launches[before:])
        for i, (a, b) in enumerate(zip(outs, _as_list(out_c))):
            assert_close(a, b, "float64", f"step {step}: output {i + 1}")
        for i, (a, b) in enumerate(zip(gin, _as_list(gin_c))):
            assert_close(a, b, "float64", f"step {step}: input gradient {i + 1}")
        assert_close(ref.getParameters()[1], m.getParameters()[1], "float64",
                     f"step {step}: accumulated parameter gradients")
    assert not any("cublas" in k for k in launches[0])
    # the second call captures (running nothing) then replays: each call runs the step once
    assert launches[1] == launches[2] == launches[3] == launches[0]
    if name in ("lstm", "lenet"):
        assert "graphc_gemm" in launches[0]


def test_replays_reuse_buffers_and_shapes_get_their_own_graph(host):
    m = load_module("lstm", "cuda").Model(seed=0)
    rng = np.random.default_rng(1)
    for batch in (2, 2, 2, 3, 3, 3):
        xs = [rng.standard_normal((batch, n)) for n in (3, 2, 2)]
        out, _ = m.step(xs, (np.ones((batch, 2)), np.ones((batch, 2))), graph=True)
        assert out[0].shape == (batch, 2)
    assert sorted(k[2:] for k in m._graphs) == [((2, 3), (2, 2), (2, 2)), ((3, 3), (3, 2), (3, 2))]
    xs = [rng.standard_normal((2, n)) for n in (3, 2, 2)]
    out_a, _ = m.step(xs, (np.ones((2, 2)), np.ones((2, 2))), graph=True)
    out_b, _ = m.step(xs, (np.ones((2, 2)), np.ones((2, 2))), graph=True)
    assert out_a[0] is out_b[0], "replays return the graph's own output buffers"
    graph = m._graphs[(True, False, (2, 3), (2, 2), (2, 2))]
    arena = graph.keep[0]
    assert arena.dtype == np.uint8 and all(np.shares_memory(o, arena) for o in out_a), \
        "the capture's arrays are slices of one buffer made before capturing"


def test_graph_gemm_kernels_on_transposed_operands(host):
    gb = rt.GraphBackend(host, "float64")
    rng = np.random.default_rng(2)
    a, w = rng.standard_normal((5, 7)), rng.standard_normal((4, 7))
    np.testing.assert_allclose(gb.matmul(a, w.T), a @ w.T, rtol=1e-13)
    np.testing.assert_allclose(gb.matmul(a[1], w.T), a[1] @ w.T, rtol=1e-13)
    out = rng.standard_normal((4, 5))
    want = out + w @ a.T
    gb.addmm(out, w, a.T)
    np.testing.assert_allclose(out, want, rtol=1e-13)
    bias = rng.standard_normal(7)
    want = bias + a.sum(0)
    gb.add_colsum(bias, a)
    np.testing.assert_allclose(bias, want, rtol=1e-13)
    col = rng.standard_normal(5)
    want = col + a.T.sum(0)
    gb.add_colsum(col, a.T)
    np.testing.assert_allclose(col, want, rtol=1e-13)


def test_models_with_host_code_refuse_graph_mode(host):
    m = load_text("""
        require 'nn'
        return nn.Sequential():add(nn.Linear(3, 3)):add(nn.Dropout(0.5))
    """, {"input1": "Bx3"}, "cuda").Model(seed=0)
    if not m.GRAPH_UNSAFE_TRAINING or m.GRAPH_UNSAFE:
        pytest.fail("Dropout's mask is drawn on the host when training (only then)")
    with pytest.raises(ValueError, match=r"cannot run as a CUDA graph: nn\.Dropout at op\.lua:3:\d+ runs host code"):
        m.step([np.zeros((2, 3))], np.zeros((2, 3)), graph=True)


def test_graph_mode_batched_products(host):
    """MM/MV are cuBLAS calls eagerly; in graph mode GraphBackend's GEMM kernels, one per
    matrix of a batched (3-D) product, and strided transposes read in place."""
    spec = """
        require 'nngraph'
        local a = nn.Identity()()
        local b = nn.Identity()()
        local v = nn.Identity()()
        return nn.gModule({a, b, v}, {nn.MM(true, false)({a, b}), nn.MV(true)({nn.Tanh()(a), v}),
                                      nn.MM(false, true)({b, nn.Identity()(b)})})
    """
    shapes = {"input1": "4x3x2", "input2": "4x3x5", "input3": "4x3"}
    ref = load_text(spec, shapes, "numpy").Model(seed=0)
    m = load_text(spec, shapes, "cuda").Model(seed=0)
    rng = np.random.default_rng(4)
    for step in range(3):
        xs = [rng.standard_normal(s) for s in ((4, 3, 2), (4, 3, 5), (4, 3))]
        outs = _as_list(ref.forward(*xs))
        gys = tuple(rng.standard_normal(o.shape) for o in outs)
        gin = _as_list(ref.backward(tuple(xs), gys))
        out_c, gin_c = m.step(xs, gys, graph=True)
        for a, b in zip(outs + gin, _as_list(out_c) + _as_list(gin_c)):
            assert_close(a, b, "float64", f"step {step}")


def test_graph_mode_checks_arguments_and_takes_unbatched_samples(host):
    ref = load_module("lstm", "numpy").Model(seed=0)
    m = load_module("lstm", "cuda").Model(seed=0)
    rng = np.random.default_rng(5)
    for step in range(3):  # one sample, no batch dim: eager, capture, replay
        xs = [rng.standard_normal(n) for n in (3, 2, 2)]
        g = (rng.standard_normal(2), rng.standard_normal(2))
        outs, gin = ref.forward(*xs), ref.backward(tuple(xs), g)
        out_c, gin_c = m.step(xs, g, graph=True)
        assert [o.shape for o in out_c] == [(2,), (2,)] and [x.shape for x in gin_c] == [(3,), (2,), (2,)]
        for a, b in zip(list(outs) + list(gin), list(out_c) + list(gin_c)):
            assert_close(a, b, "float64", f"step {step}")
    xs = [rng.standard_normal((4, n)) for n in (3, 2, 2)]
    good = (np.ones((4, 2)), np.ones((4, 2)))
    for _ in range(3):
        m.step(xs, good, graph=True)  # the batch-of-4 graph exists and replays
    with pytest.raises(ValueError, match="batch size 1 differs"):
        m.step(xs, (np.ones((1, 2)), np.ones((4, 2))), graph=True)
    with pytest.raises(ValueError, match="expected 2 output gradients, got 1"):
        m.step(xs, (np.ones((4, 2)),), graph=True)
    with pytest.raises(ValueError, match="expected dtype float64"):
        m.step(xs, (np.ones((4, 2), np.float32), np.ones((4, 2))), graph=True)


def test_a_shared_clone_has_its_own_graphs(host):
    m = load_module("lstm", "cuda").Model(seed=0)
    xs = [np.ones((2, n)) for n in (3, 2, 2)]
    g = (np.ones((2, 2)), np.ones((2, 2)))
    for _ in range(3):
        out_m, _ = m.step(xs, g, graph=True)
    c = m.clone_shared()
    for _ in range(3):
        out_c, _ = c.step(xs, g, graph=True)
    assert out_c[0] is not out_m[0] and c._graphs is not m._graphs


def test_batchnorm_and_dropout_run_as_a_graph_in_evaluate_mode(host):
    """Their host code (the dropout mask, the running statistics) runs only when training:
    in evaluate mode the model is captured; in training mode it is refused, naming both."""
    spec = """
        require 'nn'
        return nn.Sequential():add(nn.Linear(3, 4)):add(nn.BatchNormalization(4))
                              :add(nn.Dropout(0.3)):add(nn.Tanh())
    """
    ref = load_text(spec, {"input1": "Bx3"}, "numpy").Model(seed=0).evaluate()
    m = load_text(spec, {"input1": "Bx3"}, "cuda").Model(seed=0).evaluate()
    rng = np.random.default_rng(6)
    ref._buffers[0][:] = m._buffers[0][:] = rng.standard_normal(4)  # running mean
    ref._buffers[1][:] = m._buffers[1][:] = rng.uniform(0.5, 2, 4)  # running variance
    for step in range(4):
        x, gy = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
        out, gin = ref.forward(x), ref.backward(x, gy)
        out_c, gin_c = m.step([x], gy, graph=True)
        assert_close(out, out_c, "float64", f"step {step}: output")
        assert_close(gin, gin_c, "float64", f"step {step}: input gradient")
        assert_close(ref.getParameters()[1], m.getParameters()[1], "float64", f"step {step}")
    assert len(m._graphs) == 1 and all(isinstance(g, rt._Graph) for g in m._graphs.values())
    m.training()
    with pytest.raises(ValueError, match=r"nn\.BatchNormalization at .* when training; "
                                         r"nn\.Dropout at .* when training"):
        m.step([np.zeros((5, 3))], np.zeros((5, 4)), graph=True)


def test_index_checks_refuse_graph_mode_in_any_mode(host):
    m = load_text("""
        require 'nn'
        return nn.Sequential():add(nn.LookupTable(5, 2))
    """, {"input1": "B"}, "cuda").Model(seed=0).evaluate()
    assert m.GRAPH_UNSAFE and not m.GRAPH_UNSAFE_TRAINING
    with pytest.raises(ValueError, match=r"nn\.LookupTable at .* runs host code"):
        m.step([np.ones(3, np.int64)], np.zeros((3, 2)), graph=True)
