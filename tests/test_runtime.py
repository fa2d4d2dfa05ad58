"""Tests for the numpy runtime (criteria, optim, kernels) against PyTorch."""

import importlib
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

import torch  # noqa: E402  (the test oracle; installed by .[test])
import torch.nn.functional as F  # noqa: E402

from conftest import torch7_max_pool2d  # noqa: E402

_RUNTIME_DIR = pathlib.Path(__file__).resolve().parents[1] / "runtime"


def _load(name):
    """Import graphc_runtime.<name>, or load runtime/<name>.py directly."""
    try:
        return importlib.import_module(f"graphc_runtime.{name}")
    except ImportError:
        pass
    mod_name = f"_graphc_runtime_test_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, _RUNTIME_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


criteria = _load("criteria")
optim = _load("optim")
kernels = _load("kernels")



def _rng(seed=0):
    return np.random.default_rng(seed)


def _t(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _log_softmax(a):
    a = a - a.max(axis=-1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=-1, keepdims=True))


# ==========================================================================
# ClassNLLCriterion

@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("size_average", [True, False])
@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_classnll_vs_torch(weighted, size_average, batched, ignore_index):
    rng = _rng(1)
    C = 5
    x = _log_softmax(rng.normal(size=(6, C)) if batched else rng.normal(size=C))
    if batched:
        t = np.array([0, 2, 4, 1, 2, 3], dtype=np.int64)
    else:
        t = 3
    w = rng.uniform(0.5, 2.0, size=C) if weighted else None
    crit = criteria.ClassNLLCriterion(w, size_average, ignore_index)
    loss = crit.forward(x, t)
    gx = crit.backward(x, t)

    xt = _t(x, grad=True)
    ref = F.nll_loss(xt, torch.as_tensor(t), weight=None if w is None else _t(w),
                     reduction="mean" if size_average else "sum",
                     ignore_index=ignore_index)
    ref.backward()
    assert isinstance(loss, float)
    assert loss == pytest.approx(ref.item(), rel=1e-12, abs=1e-12)
    assert crit.output == loss
    assert gx.shape == x.shape and gx.dtype == np.float64
    assert crit.gradInput is gx
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_classnll_ignored_targets_are_skipped():
    x = _log_softmax(_rng(2).normal(size=(4, 3)))
    t = np.array([0, -100, 2, -100])
    crit = criteria.ClassNLLCriterion()
    assert crit.forward(x, t) == pytest.approx(-(x[0, 0] + x[2, 2]) / 2)
    g = crit.backward(x, t)
    assert np.all(g[[1, 3]] == 0)
    # all ignored: Torch7 gives 0 loss and zero gradient (PyTorch would give nan)
    t_all = np.full(4, -100)
    assert crit.forward(x, t_all) == 0.0
    assert np.all(crit.backward(x, t_all) == 0)


def test_classnll_aliases_and_float32():
    crit = criteria.ClassNLLCriterion(sizeAverage=False, ignoreIndex=1)
    assert crit.size_average is False and crit.ignore_index == 1
    x = _log_softmax(_rng(3).normal(size=(3, 4))).astype(np.float32)
    t = np.array([0, 1, 3], dtype=np.int32)
    x_copy = x.copy()
    loss = crit.forward(x, t)
    assert loss == pytest.approx(-(x[0, 0] + x[2, 3]), rel=1e-6)
    g = crit.backward(x, t)
    assert g.dtype == np.float32 and g.shape == x.shape
    np.testing.assert_array_equal(x, x_copy)
    # numpy integer scalar target for 1-D input
    assert criteria.ClassNLLCriterion().forward(x[0], np.int64(2)) == pytest.approx(-x[0, 2])


def test_classnll_errors():
    crit = criteria.ClassNLLCriterion()
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"target 3 .*out of range.*0\.\.2"):
        crit.forward(x, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"target -1 .*out of range"):
        crit.forward(x, np.array([-1, 0]))
    with pytest.raises(ValueError, match=r"target 5 .*out of range"):
        crit.forward(np.zeros(3), 5)
    with pytest.raises(ValueError, match="batch size 2"):
        crit.forward(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"input tensor should be 1D or 2D, got shape \(2, 3, 4\)"):
        crit.forward(np.zeros((2, 3, 4)), np.array([0, 1]))
    with pytest.raises(TypeError, match="integer"):
        crit.forward(x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="weights"):
        criteria.ClassNLLCriterion(np.ones(4)).forward(x, np.array([0, 1]))


# ==========================================================================
# MSECriterion

@pytest.mark.parametrize("size_average", [True, False])
def test_mse_vs_torch(size_average):
    rng = _rng(4)
    x, y = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4, 2))
    crit = criteria.MSECriterion(size_average)
    loss = crit.forward(x, y)
    g = crit.backward(x, y)
    xt = _t(x, grad=True)
    ref = F.mse_loss(xt, _t(y), reduction="mean" if size_average else "sum")
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-12)
    assert crit.output == loss and crit.gradInput is g


def test_mse_shapes_dtype_alias():
    rng = _rng(5)
    x = rng.normal(size=(2, 3)).astype(np.float32)
    y = rng.normal(size=6).astype(np.float32)
    crit = criteria.MSECriterion(sizeAverage=False)
    assert crit.size_average is False
    assert crit.forward(x, y) == pytest.approx(float(((x.ravel() - y) ** 2).sum()), rel=1e-5)
    g = crit.backward(x, y)
    assert g.dtype == np.float32 and g.shape == (2, 3)
    np.testing.assert_allclose(g.ravel(), 2 * (x.ravel() - y), rtol=1e-6)
    with pytest.raises(ValueError, match="same number of elements"):
        crit.forward(x, np.zeros(5))


# ==========================================================================
# optim.sgd

_A = np.array([[4.0, 1.0, 0.5, 0.0],
               [1.0, 3.0, 0.2, 0.1],
               [0.5, 0.2, 2.0, 0.3],
               [0.0, 0.1, 0.3, 1.5]])
_B = np.array([1.0, -2.0, 0.5, 3.0])
_X0 = np.array([0.3, -0.7, 1.2, 0.1])


def _quad(x):
    return 0.5 * x @ _A @ x - _B @ x, _A @ x - _B


def _ref_sgd(x, config, state, steps):
    """Straight transcription of Torch7 optim/sgd.lua."""
    x = x.copy()
    lr = config.get("learningRate", 1e-3)
    lrd = config.get("learningRateDecay", 0)
    wd = config.get("weightDecay", 0)
    mom = config.get("momentum", 0)
    damp = config.get("dampening", mom)
    nesterov = config.get("nesterov", False)
    lrs = config.get("learningRates")
    wds = config.get("weightDecays")
    losses = []
    for _ in range(steps):
        nevals = state.get("evalCounter", 0)
        fx, dfdx = _quad(x)
        losses.append(fx)
        if wd != 0:
            dfdx = dfdx + wd * x
        elif wds is not None:
            dfdx = dfdx + wds * x
        if mom != 0:
            if "dfdx" not in state:
                state["dfdx"] = dfdx.copy()
            else:
                state["dfdx"] = mom * state["dfdx"] + (1 - damp) * dfdx
            dfdx = dfdx + mom * state["dfdx"] if nesterov else state["dfdx"]
        clr = lr / (1 + nevals * lrd)
        x = x - clr * (lrs * dfdx if lrs is not None else dfdx)
        state["evalCounter"] = nevals + 1
    return x, losses


_SGD_CONFIGS = {
    "plain": {"learningRate": 0.1},
    "default_lr": {},
    "lrdecay": {"learningRate": 0.2, "learningRateDecay": 0.5},
    "weightdecay": {"learningRate": 0.1, "weightDecay": 0.05},
    "momentum": {"learningRate": 0.1, "momentum": 0.9},
    "momentum_dampening": {"learningRate": 0.1, "momentum": 0.9, "dampening": 0.3},
    "nesterov": {"learningRate": 0.1, "momentum": 0.8, "dampening": 0, "nesterov": True},
    "momentum_wd_lrd": {"learningRate": 0.1, "momentum": 0.5, "weightDecay": 0.01,
                        "learningRateDecay": 0.1},
    "arrays": {"learningRate": 0.1, "learningRates": np.array([1.0, 0.5, 2.0, 0.0]),
               "weightDecays": np.array([0.0, 0.1, 0.2, 0.3]), "momentum": 0.5},
}


@pytest.mark.parametrize("name", sorted(_SGD_CONFIGS))
def test_sgd_vs_reference(name):
    config = dict(_SGD_CONFIGS[name])
    x = _X0.copy()
    ptr = x.__array_interface__["data"][0]
    losses = []
    for _ in range(5):
        x_out, fxs = optim.sgd(_quad, x, config)
        assert x_out is x
        losses.append(fxs[0])
    assert x.__array_interface__["data"][0] == ptr
    ref_state = {}
    ref_x, ref_losses = _ref_sgd(_X0, _SGD_CONFIGS[name], ref_state, 5)
    np.testing.assert_allclose(x, ref_x, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-13)
    # state defaults to config: it carries the counter and the momentum buffer
    assert config["evalCounter"] == 5
    if "dfdx" in ref_state:
        np.testing.assert_allclose(config["dfdx"], ref_state["dfdx"], rtol=1e-13)
    else:
        assert "dfdx" not in config


_TORCH_SGD = {
    "plain": dict(lr=0.1),
    "weightdecay": dict(lr=0.1, weight_decay=0.05),
    # Torch7's dampening defaults to the momentum, PyTorch's to 0
    "momentum": dict(lr=0.1, momentum=0.9, dampening=0.9),
    "momentum_dampening": dict(lr=0.1, momentum=0.9, dampening=0.3),
    "nesterov": dict(lr=0.1, momentum=0.8, nesterov=True),
}


def _torch_sgd_steps(x0, kwargs, steps):
    """Run PyTorch SGD on the quadratic.  The functional form computes exactly
    what torch.optim.SGD.step does but avoids importing torch._dynamo (~2 s)."""
    At, Bt = _t(_A), _t(_B)
    kw = dict(weight_decay=0.0, momentum=0.0, dampening=0.0, nesterov=False)
    kw.update(kwargs)
    try:
        from torch.optim.sgd import sgd as sgd_fn
    except ImportError:                                    # pragma: no cover
        sgd_fn = None
    if sgd_fn is None:                                     # pragma: no cover
        p = torch.nn.Parameter(_t(x0))
        opt = torch.optim.SGD([p], **kw)
        for _ in range(steps):
            p.grad = At @ p.detach() - Bt
            opt.step()
        return p.detach().numpy()
    p = _t(x0)
    bufs = [None]
    for _ in range(steps):
        sgd_fn([p], [At @ p - Bt], bufs, maximize=False, foreach=False, **kw)
    return p.numpy()


@pytest.mark.parametrize("name", sorted(_TORCH_SGD))
def test_sgd_vs_torch_optim(name):
    config = dict(_SGD_CONFIGS[name])
    x = _X0.copy()
    for _ in range(5):
        optim.sgd(_quad, x, config)
    ref = _torch_sgd_steps(_X0, _TORCH_SGD[name], 5)
    np.testing.assert_allclose(x, ref, rtol=1e-12, atol=1e-15)


def test_sgd_separate_state_flat_view_float32_and_snake_case():
    # x is a view into a larger buffer (like getParameters()): updated in place
    storage = np.zeros(6, dtype=np.float32)
    x = storage[1:5]
    x[:] = _X0
    config = {"learning_rate": 0.1, "momentum": 0.9}
    state = {}
    for _ in range(3):
        xo, _ = optim.sgd(lambda v: _quad(v.astype(np.float64)), x, config, state)
        assert xo is x
    assert x.dtype == np.float32
    assert storage[0] == 0 and storage[5] == 0
    assert state["evalCounter"] == 3 and "evalCounter" not in config
    assert state["dfdx"].dtype == np.float32
    ref_x, _ = _ref_sgd(_X0, {"learningRate": 0.1, "momentum": 0.9}, {}, 3)
    np.testing.assert_allclose(storage[1:5], ref_x, rtol=1e-5)
    # a resumed run continues from the stored buffer and counter
    ref_state = {}
    ref_x, _ = _ref_sgd(_X0, {"learningRate": 0.1, "momentum": 0.9, "learningRateDecay": 0.1},
                        ref_state, 4)
    cfg = {"learningRate": 0.1, "momentum": 0.9, "learningRateDecay": 0.1}
    x64 = _X0.copy()
    optim.sgd(_quad, x64, cfg)
    cfg2 = dict(cfg)       # copy carries evalCounter and dfdx along
    for _ in range(3):
        optim.sgd(_quad, x64, cfg2)
    np.testing.assert_allclose(x64, ref_x, rtol=1e-13)
    assert cfg2["evalCounter"] == 4


def test_sgd_adds_weight_decay_to_returned_gradient_like_torch():
    # optim/sgd.lua does dfdx:add(wd, x) on the closure's gradient tensor
    x = _X0.copy()
    grad = np.zeros(4)

    def feval(v):
        grad[...] = _quad(v)[1]
        return 0.0, grad

    g0 = _quad(_X0)[1]
    optim.sgd(feval, x, {"learningRate": 0.1, "weightDecay": 0.5})
    np.testing.assert_allclose(grad, g0 + 0.5 * _X0)
    np.testing.assert_allclose(x, _X0 - 0.1 * (g0 + 0.5 * _X0))


def test_sgd_errors():
    x = _X0.copy()
    with pytest.raises(ValueError, match="Nesterov"):
        optim.sgd(_quad, x, {"nesterov": True, "momentum": 0.9})   # dampening = momentum
    with pytest.raises(ValueError, match="Nesterov"):
        optim.sgd(_quad, x, {"nesterov": True})
    with pytest.raises(ValueError, match="Only one of wd and wds"):
        optim.sgd(_quad, x, {"weightDecay": 0.1, "weightDecays": np.ones(4)})
    with pytest.raises(TypeError):
        optim.sgd(_quad, [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(x, _X0)


# ==========================================================================
# convolution

_CONV_CASES = [
    # N, C, H, W, nOut, kH, kW, dH, dW, padH, padW, bias
    (2, 3, 7, 6, 4, 3, 3, 1, 1, 0, 0, True),
    (1, 1, 5, 5, 2, 3, 3, 2, 2, 1, 1, True),
    (3, 2, 8, 9, 5, 5, 3, 2, 1, 2, 0, False),
    (2, 4, 6, 6, 3, 1, 1, 1, 1, 0, 0, True),
    (1, 3, 10, 7, 2, 4, 2, 3, 2, 1, 2, True),
    (2, 2, 4, 4, 3, 4, 4, 1, 1, 0, 0, True),
]


@pytest.mark.parametrize("case", _CONV_CASES)
def test_conv2d_vs_torch(case):
    N, C, H, W, nOut, kH, kW, dH, dW, pH, pW, has_bias = case
    rng = _rng(7)
    x = rng.normal(size=(N, C, H, W))
    w = rng.normal(size=(nOut, C, kH, kW))
    b = rng.normal(size=nOut) if has_bias else None
    x0, w0 = x.copy(), w.copy()
    y, cols = kernels.conv2d_forward(x, w, b, dH, dW, pH, pW)
    xt, wt = _t(x, True), _t(w, True)
    bt = _t(b, True) if has_bias else None
    yt = F.conv2d(xt, wt, bt, stride=(dH, dW), padding=(pH, pW))
    assert y.shape == tuple(yt.shape)
    assert y.shape[2] == kernels.conv_output_size(H, kH, dH, pH)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)

    gy = rng.normal(size=y.shape)
    gy0 = gy.copy()
    yt.backward(_t(gy))
    gx, gw, gb = kernels.conv2d_backward(gy, x.shape, cols, w, dH, dW, pH, pW)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), rtol=1e-12)
    if has_bias:
        np.testing.assert_allclose(gb, bt.grad.numpy(), rtol=1e-10)
    assert gx.shape == x.shape and gw.shape == w.shape and gb.shape == (nOut,)
    gx2, gw2, _ = kernels.conv2d_backward(gy, x.shape, cols, w, dH, dW, pH, pW,
                                          need_input=False)
    assert gx2 is None
    np.testing.assert_array_equal(gw2, gw)
    for a, a0 in ((x, x0), (w, w0), (gy, gy0)):
        np.testing.assert_array_equal(a, a0)


def test_conv2d_float32():
    rng = _rng(8)
    x = rng.normal(size=(2, 3, 6, 5)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    y, cols = kernels.conv2d_forward(x, w, b, 2, 1, 1, 1)
    assert y.dtype == np.float32
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                   stride=(2, 1), padding=1)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-5)
    gx, gw, gb = kernels.conv2d_backward(np.ones_like(y), x.shape, cols, w, 2, 1, 1, 1)
    assert gx.dtype == gw.dtype == gb.dtype == np.float32


def test_conv2d_finite_differences():
    rng = _rng(9)
    x = rng.normal(size=(1, 2, 4, 5))
    w = rng.normal(size=(2, 2, 3, 2))
    b = rng.normal(size=2)
    args = (2, 1, 1, 1)
    y, cols = kernels.conv2d_forward(x, w, b, *args)
    gy = rng.normal(size=y.shape)
    gx, gw, gb = kernels.conv2d_backward(gy, x.shape, cols, w, *args)

    def loss(x_, w_, b_):
        return float((kernels.conv2d_forward(x_, w_, b_, *args)[0] * gy).sum())

    eps = 1e-6
    for arr, grad, pos in ((x, gx, 0), (w, gw, 1), (b, gb, 2)):
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            vals = [x, w, b]
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            vals[pos] = plus
            lp = loss(*vals)
            vals[pos] = minus
            lm = loss(*vals)
            num[idx] = (lp - lm) / (2 * eps)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


def test_conv2d_errors():
    with pytest.raises(ValueError, match="input 3x3 .*too small for a 5x5 kernel"):
        kernels.conv2d_forward(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 5, 5)), None, 1, 1, 0, 0)
    with pytest.raises(ValueError, match="input plane"):
        kernels.conv2d_forward(np.zeros((1, 2, 3, 3)), np.zeros((1, 3, 1, 1)), None, 1, 1, 0, 0)
    with pytest.raises(ValueError, match="4D"):
        kernels.conv2d_forward(np.zeros((2, 3, 3)), np.zeros((1, 2, 1, 1)), None, 1, 1, 0, 0)


# ==========================================================================
# max pooling

_POOL_CASES = [
    # N, C, H, W, kH, kW, dH, dW, padH, padW, ceil
    (2, 3, 8, 8, 2, 2, 2, 2, 0, 0, False),
    (2, 3, 7, 7, 2, 2, 2, 2, 0, 0, True),
    (1, 2, 9, 8, 3, 3, 2, 2, 1, 1, False),     # overlapping windows
    (1, 2, 9, 8, 3, 3, 2, 2, 1, 1, True),
    (2, 1, 6, 7, 3, 2, 1, 1, 1, 0, False),
    (1, 3, 10, 11, 3, 3, 3, 2, 1, 1, True),
    (1, 2, 5, 5, 2, 2, 2, 2, 1, 1, True),      # ceil-mode decrement on both axes
    (1, 2, 5, 5, 4, 4, 2, 2, 2, 2, True),
    (1, 1, 7, 6, 2, 3, 3, 2, 1, 0, True),
    (1, 2, 5, 5, 1, 1, 3, 3, 0, 0, True),      # k < d, ceil mode
]


def _perm_input(shape, seed):
    return _rng(seed).permutation(int(np.prod(shape))).reshape(shape).astype(np.float64)


@pytest.mark.parametrize("case", _POOL_CASES)
def test_maxpool2d_vs_torch(case):
    N, C, H, W, kH, kW, dH, dW, pH, pW, ceil = case
    x = _perm_input((N, C, H, W), 10)
    x0 = x.copy()
    y, am = kernels.maxpool2d_forward(x, kH, kW, dH, dW, pH, pW, ceil)
    xt = _t(x, True)
    yt, _ = torch7_max_pool2d(xt, (kH, kW), (dH, dW), (pH, pW), ceil)
    assert y.shape == tuple(yt.shape)
    keep = not (pH or pW)  # Torch7 keeps a ceil-mode window past the input with no padding
    assert y.shape[2:] == (kernels.pool_output_size(H, kH, dH, pH, ceil, keep),
                           kernels.pool_output_size(W, kW, dW, pW, ceil, keep))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    assert am.dtype == np.int64 and am.shape == y.shape
    gy = _rng(11).normal(size=y.shape)
    gy0 = gy.copy()
    yt.backward(_t(gy))
    gx = kernels.maxpool2d_backward(gy, am, x.shape, kH, kW, dH, dW, pH, pW)
    assert gx.shape == x.shape
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(gy, gy0)


def _ref_maxpool_torch7(x, kH, kW, dH, dW, pH, pW, oH, oW):
    """Loop transcription of THNN SpatialMaxPooling: first strict maximum over
    the real cells of each window, row-major."""
    N, C, H, W = x.shape
    y = np.empty((N, C, oH, oW))
    idx = np.empty((N, C, oH, oW), dtype=np.int64)
    for n, c, i, j in np.ndindex(N, C, oH, oW):
        best, arg = -np.inf, -1
        for h in range(max(i * dH - pH, 0), min(i * dH - pH + kH, H)):
            for w in range(max(j * dW - pW, 0), min(j * dW - pW + kW, W)):
                if x[n, c, h, w] > best or arg < 0:
                    best, arg = x[n, c, h, w], ((n * C + c) * H + h) * W + w
        y[n, c, i, j], idx[n, c, i, j] = best, arg
    return y, idx


@pytest.mark.parametrize("case", _POOL_CASES)
def test_maxpool2d_ties_first_max(case):
    N, C, H, W, kH, kW, dH, dW, pH, pW, ceil = case
    x = _rng(12).integers(0, 3, size=(N, C, H, W)).astype(np.float64)   # many ties
    y, am = kernels.maxpool2d_forward(x, kH, kW, dH, dW, pH, pW, ceil)
    ry, ridx = _ref_maxpool_torch7(x, kH, kW, dH, dW, pH, pW, *y.shape[2:])
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(am, ridx)
    gy = np.ones_like(y)
    gx = kernels.maxpool2d_backward(gy, am, x.shape, kH, kW, dH, dW, pH, pW)
    ref_gx = np.bincount(ridx[ridx >= 0], minlength=x.size).reshape(x.shape)  # -1: no winner
    np.testing.assert_array_equal(gx, ref_gx)


def test_maxpool2d_constant_input_and_float32():
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)
    y, am = kernels.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, False)
    gx = kernels.maxpool2d_backward(np.ones_like(y), am, x.shape, 2, 2, 2, 2, 0, 0)
    assert y.dtype == np.float32 and gx.dtype == np.float32
    expected = np.zeros((4, 4), dtype=np.float32)
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(gx[0, 0], expected)
    # all -inf: the winner must still be a real cell
    x = np.full((1, 1, 3, 3), -np.inf)
    y, am = kernels.maxpool2d_forward(x, 3, 3, 1, 1, 1, 1, False)
    assert np.all(np.isneginf(y)) and am.min() >= 0 and am.max() < 9


# ==========================================================================
# output-size helpers

def test_output_size_helpers():
    assert kernels.conv_output_size(7, 3, 1, 0) == 5
    assert kernels.conv_output_size(5, 3, 2, 1) == 3
    assert kernels.conv_output_size(6, 3, 2, 0) == 2
    assert kernels.pool_output_size(7, 2, 2, 0, False) == 3
    assert kernels.pool_output_size(7, 2, 2, 0, True) == 4
    assert kernels.pool_output_size(5, 4, 2, 2, True) == 4
    assert kernels.pool_output_size(5, 2, 2, 1, True) == 3      # 4 -> 3 (decrement)
    assert kernels.pool_output_size(5, 1, 3, 0, True) == 2      # 3 -> 2 (decrement)
    assert kernels.pool_output_size(5, 1, 3, 0, True, keep_outside=True) == 3
    assert kernels.pool_output_size(6, 3, 3, 1, True) == 3
    assert kernels.pool_output_size(3, 3, 1, 0, False) == 1
    with pytest.raises(ValueError, match="too small"):
        kernels.conv_output_size(3, 5, 1, 0)
    with pytest.raises(ValueError, match="too small"):
        kernels.pool_output_size(2, 3, 1, 0, False)
    with pytest.raises(ValueError, match="pad should be at most half of kernel size"):
        kernels.pool_output_size(8, 3, 1, 2, False)
    with pytest.raises(ValueError, match="stride"):
        kernels.conv_output_size(8, 3, 0, 0)
    with pytest.raises(ValueError, match="input 2x9 .*too small for a 3x3 kernel"):
        kernels.maxpool2d_forward(np.zeros((1, 1, 2, 9)), 3, 3, 1, 1, 0, 0, False)
    with pytest.raises(ValueError, match="pad should be at most half"):
        kernels.maxpool2d_forward(np.zeros((1, 1, 9, 9)), 2, 2, 1, 1, 2, 0, False)
