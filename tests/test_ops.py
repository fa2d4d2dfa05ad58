"""Every core module: forward vs PyTorch, backward vs PyTorch autograd and vs central finite
differences (float64), batch and non-batch input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import build, central_differences
from graphc.ir.graph import B

torch.set_default_dtype(torch.float64)


def softmax_dim(x):
    return {1: 0, 2: 1, 3: 0, 4: 1}[x.dim()]


# name -> (spec body applied to `x` (or x1, x2), shapes, torch reference(inputs, params))
CASES = {
    "Linear": ("nn.Linear(3, 4)(x)", {"x": "Bx3"}, lambda xs, ps: F.linear(xs[0], ps[0], ps[1])),
    "Linear_nobias": ("nn.Linear(3, 4, false)(x)", {"x": "Bx3"}, lambda xs, ps: F.linear(xs[0], ps[0])),
    "Linear_noBias_method": ("nn.Linear(3, 4):noBias()(x)", {"x": "Bx3"},
                             lambda xs, ps: F.linear(xs[0], ps[0])),
    "Linear_1d": ("nn.Linear(3, 4)(x)", {"x": "3"}, lambda xs, ps: F.linear(xs[0], ps[0], ps[1])),
    "Tanh": ("nn.Tanh()(x)", {"x": "Bx5"}, lambda xs, ps: torch.tanh(xs[0])),
    "Sigmoid": ("nn.Sigmoid()(x)", {"x": "Bx5"}, lambda xs, ps: torch.sigmoid(xs[0])),
    "ReLU": ("nn.ReLU()(x)", {"x": "Bx5"}, lambda xs, ps: torch.relu(xs[0])),
    "SoftMax": ("nn.SoftMax()(x)", {"x": "Bx5"}, lambda xs, ps: F.softmax(xs[0], 1)),
    "SoftMax_4d": ("nn.SoftMax()(x)", {"x": "Bx3x2x2"}, lambda xs, ps: F.softmax(xs[0], 1)),
    "SoftMax_1d": ("nn.SoftMax()(x)", {"x": "5"}, lambda xs, ps: F.softmax(xs[0], 0)),
    "LogSoftMax": ("nn.LogSoftMax()(x)", {"x": "Bx5"}, lambda xs, ps: F.log_softmax(xs[0], 1)),
    "LogSoftMax_3d": ("nn.LogSoftMax()(x)", {"x": "3x2x2"}, lambda xs, ps: F.log_softmax(xs[0], 0)),
    "CAddTable": ("nn.CAddTable()({x1, x2})", {"x1": "Bx4", "x2": "Bx4"},
                  lambda xs, ps: xs[0] + xs[1]),
    "CAddTable_reshaped": ("nn.CAddTable()({x1, x2})", {"x1": "Bx6", "x2": "Bx2x3"},
                           lambda xs, ps: xs[0] + xs[1].reshape(xs[0].shape)),
    "CMulTable": ("nn.CMulTable()({x1, x2, x3})", {"x1": "Bx4", "x2": "Bx4", "x3": "Bx4"},
                  lambda xs, ps: xs[0] * xs[1] * xs[2]),
    "CMulTable_reshaped": ("nn.CMulTable()({x1, x2})", {"x1": "Bx6", "x2": "Bx3x2"},
                           lambda xs, ps: xs[0] * xs[1].reshape(xs[0].shape)),
    "View": ("nn.View(6)(x)", {"x": "Bx2x3"}, lambda xs, ps: xs[0].reshape(xs[0].shape[0], 6)),
    "View_minus1": ("nn.View(3, -1):setNumInputDims(1)(x)", {"x": "Bx6"},
                    lambda xs, ps: xs[0].reshape(xs[0].shape[0], 3, 2)),
    "View_fixed_batch_guess": ("nn.View(3)(x)", {"x": "4x3"}, lambda xs, ps: xs[0].reshape(4, 3)),
    "View_numInputDims": ("nn.View(-1):setNumInputDims(2)(x)", {"x": "4x2x3"},
                          lambda xs, ps: xs[0].reshape(4, 6)),
    "Reshape": ("nn.Reshape(4, 2)(x)", {"x": "Bx8"}, lambda xs, ps: xs[0].reshape(-1, 4, 2)),
    "Reshape_fixed": ("nn.Reshape(4, 2)(x)", {"x": "8"}, lambda xs, ps: xs[0].reshape(4, 2)),
    "Narrow": ("nn.Narrow(2, 2, 3)(x)", {"x": "Bx6"}, lambda xs, ps: xs[0][:, 1:4]),
    "Narrow_neg_length": ("nn.Narrow(2, 3, -1)(x)", {"x": "Bx6"}, lambda xs, ps: xs[0][:, 2:]),
    "Narrow_neg_dim": ("nn.Narrow(-1, 1, 2)(x)", {"x": "Bx3x4"}, lambda xs, ps: xs[0][:, :, 0:2]),
    "SpatialConvolution": ("nn.SpatialConvolution(2, 3, 3, 2)(x)", {"x": "Bx2x5x6"},
                           lambda xs, ps: F.conv2d(xs[0], ps[0], ps[1])),
    "SpatialConvolution_stride_pad": ("nn.SpatialConvolution(2, 3, 3, 3, 2, 1, 1, 2)(x)", {"x": "Bx2x7x6"},
                                      lambda xs, ps: F.conv2d(xs[0], ps[0], ps[1], stride=(1, 2), padding=(2, 1))),
    "SpatialConvolution_3d": ("nn.SpatialConvolution(2, 3, 3, 3, 1, 1, 1)(x)", {"x": "2x5x5"},
                              lambda xs, ps: F.conv2d(xs[0][None], ps[0], ps[1], padding=1)[0]),
    "SpatialMaxPooling": ("nn.SpatialMaxPooling(2, 2, 2, 2)(x)", {"x": "Bx2x6x6"},
                          lambda xs, ps: F.max_pool2d(xs[0], 2, 2)),
    "SpatialMaxPooling_overlap_pad": ("nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1)(x)", {"x": "Bx2x7x7"},
                                      lambda xs, ps: F.max_pool2d(xs[0], 3, 2, 1)),
    "SpatialMaxPooling_ceil": ("nn.SpatialMaxPooling(2, 2, 2, 2):ceil()(x)", {"x": "Bx1x5x5"},
                               lambda xs, ps: F.max_pool2d(xs[0], 2, 2, ceil_mode=True)),
    "SpatialMaxPooling_3d": ("nn.SpatialMaxPooling(2, 3, 2, 1)(x)", {"x": "2x6x6"},
                             lambda xs, ps: F.max_pool2d(xs[0], (3, 2), (1, 2))),
    "Sequential": ("nn.Sequential():add(nn.Linear(3, 4)):add(nn.Tanh()):add(nn.Linear(4, 2))(x)",
                   {"x": "Bx3"}, lambda xs, ps: F.linear(torch.tanh(F.linear(xs[0], ps[0], ps[1])), ps[2], ps[3])),
    "Parallel": ("nn.Parallel(3, 2):add(nn.Linear(4, 3)):add(nn.Linear(4, 2))(x)", {"x": "Bx4x2"},
                 lambda xs, ps: torch.cat([F.linear(xs[0][:, :, 0], ps[0], ps[1]),
                                           F.linear(xs[0][:, :, 1], ps[2], ps[3])], 1)),
    "shared_module": ("(function() local l = nn.Linear(3, 3); return nn.CAddTable()({l(x), l(nn.Tanh()(x))}) end)()",
                      {"x": "Bx3"}, lambda xs, ps: F.linear(xs[0], ps[0], ps[1]) + F.linear(torch.tanh(xs[0]), ps[0], ps[1])),
    "nested_gModule": ("(function() local a = nn.Identity()(); local b = nn.Identity()(); "
                       "local inner = nn.gModule({a, b}, {nn.CMulTable()({a, b}), nn.Tanh()(a)}); "
                       "local p, q = inner({x1, x2}):split(2); return nn.CAddTable()({p, q}) end)()",
                       {"x1": "Bx3", "x2": "Bx3"}, lambda xs, ps: xs[0] * xs[1] + torch.tanh(xs[0])),
}


def make_spec(body, shapes):
    names = list(shapes)
    lines = [f"local {n} = nn.Identity()()" for n in names]
    lines.append(f"local out = {body}")
    lines.append(f"return nn.gModule({{{', '.join(names)}}}, {{out}})")
    return "\n".join(lines) + "\n"


def compiled(case, tmp_path):
    body, shapes, ref = CASES[case]
    order = list(shapes)
    shape_opts = {f"input{i + 1}": parse(s) for i, s in enumerate(shapes.values())}
    mod = build(make_spec(body, shapes), tmp_path, shapes=shape_opts)
    return mod, order, shapes, ref


def parse(s):
    from graphc.compiler import parse_shape
    return parse_shape(s)


def random_inputs(shapes, batch, rng, nonneg_ties=False):
    xs = []
    for s in shapes.values():
        dims = [batch if d == "B" else int(d) for d in s.split("x")]
        xs.append(rng.standard_normal(dims))
    return xs


def torch_run(ref, xs, params, gys):
    txs = [torch.tensor(x, requires_grad=True) for x in xs]
    tps = [torch.tensor(p, requires_grad=True) for p in params]
    out = ref(txs, tps)
    (out * torch.tensor(gys[0])).sum().backward()
    return out.detach().numpy(), [t.grad.numpy() for t in txs], [t.grad.numpy() for t in tps]


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_backward_vs_torch(case, tmp_path, rng):
    mod, order, shapes, ref = compiled(case, tmp_path)
    m = mod.Model(dtype="float64", seed=3)
    flat_w, flat_g = m.getParameters()
    flat_w[:] = rng.standard_normal(flat_w.size) * 0.5
    xs = random_inputs(shapes, 3, rng)
    out = m.forward(*xs)
    gy = rng.standard_normal(out.shape)
    m.zeroGradParameters()
    gins = m.backward(tuple(xs), (gy,))
    gins = gins if isinstance(gins, tuple) else (gins,)
    params = [w for _, w in m.parameters()]
    t_out, t_gin, t_gp = torch_run(ref, xs, params, [gy])
    np.testing.assert_allclose(out, t_out, rtol=1e-10, atol=1e-12)
    for a, b in zip(gins, t_gin):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for (name, g), b in zip(m.gradParameters(), t_gp):
        np.testing.assert_allclose(g, b, rtol=1e-10, atol=1e-12, err_msg=name)
    # gradients accumulate across backward calls (Torch's accGradParameters)
    if flat_g.size:
        before = flat_g.copy()
        m.forward(*xs)
        m.backward(tuple(xs), (gy,))
        np.testing.assert_allclose(flat_g, 2 * before, rtol=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_backward_vs_finite_differences(case, tmp_path, rng):
    mod, order, shapes, ref = compiled(case, tmp_path)
    m = mod.Model(dtype="float64", seed=5)
    flat_w, flat_g = m.getParameters()
    xs = random_inputs(shapes, 2, rng)
    out = m.forward(*xs)
    gy = rng.standard_normal(out.shape)
    m.zeroGradParameters()
    gins = m.backward(tuple(xs), (gy,))
    gins = gins if isinstance(gins, tuple) else (gins,)

    def loss():
        return float((m.forward(*xs) * gy).sum())

    for x, gx in zip(xs, gins):
        np.testing.assert_allclose(gx, central_differences(loss, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(flat_g, central_differences(loss, flat_w), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", sorted(c for c in CASES if all(s.startswith("B") for s in CASES[c][1].values())))
def test_non_batch_input_is_a_batch_of_one(case, tmp_path, rng):
    mod, order, shapes, ref = compiled(case, tmp_path)
    m = mod.Model(dtype="float64")
    xs = random_inputs(shapes, 1, rng)
    batched = m.forward(*xs)
    single = m.forward(*[x[0] for x in xs])
    assert single.shape == batched.shape[1:]
    np.testing.assert_allclose(single, batched[0], rtol=1e-12)
    gy = rng.standard_normal(single.shape)
    g1 = m.backward(tuple(x[0] for x in xs), (gy,))
    g1 = g1 if isinstance(g1, tuple) else (g1,)
    for g, x in zip(g1, xs):
        assert g.shape == x.shape[1:]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtypes(dtype, tmp_path, rng):
    mod, order, shapes, ref = compiled("Sequential", tmp_path)
    m = mod.Model(dtype=dtype)
    x = rng.standard_normal((2, 3)).astype(dtype)
    out = m.forward(x)
    assert out.dtype == np.dtype(dtype)
    g = m.backward(x, np.ones_like(out))
    assert g.dtype == np.dtype(dtype) and m.getParameters()[1].dtype == np.dtype(dtype)


@pytest.mark.parametrize("width", [5, 300])  # the 0.5(1 + tanh(x/2)) and 1/(1 + exp(-x)) forms
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_saturates_without_warnings(dtype, width):
    """Far below 0, exp(-x) overflows to inf, which must give exactly 0 (and its gradient 0)
    with no RuntimeWarning."""
    import warnings
    mod = build("return nn.Sigmoid()", shapes={"input1": (B, width)}, dtype=dtype)
    m = mod.Model(dtype=dtype)
    x = np.linspace(-30, 30, width).astype(dtype)[None]
    x[0, :5] = [-1e4, -100.0, 0.0, 100.0, 1e4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = m.forward(x)
        g = m.backward(x, np.ones_like(y))
    np.testing.assert_allclose(y, torch.sigmoid(torch.tensor(x)).numpy(), rtol=1e-6, atol=1e-30)
    assert y[0, 0] == 0 and y[0, 2] == 0.5 and y[0, 4] == 1 and g[0, 0] == 0 and g[0, 4] == 0
    assert ("errstate" in mod.RESULT.source) == (width >= 256)
