"""Every core module through the op-test harness (tests/op_harness.py): forward vs PyTorch,
backward vs PyTorch autograd and vs central finite differences (float64), batch and
non-batch input, float32 kept float32."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import build
from op_harness import compiled, op_tests
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


(test_forward_backward_vs_torch, test_backward_vs_finite_differences,
 test_non_batch_input_is_a_batch_of_one, test_float32_stays_float32) = op_tests(CASES)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtypes(dtype, tmp_path, rng):
    mod = compiled(CASES["Sequential"], tmp_path, dtype=dtype)
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
