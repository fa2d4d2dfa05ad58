"""The op library beyond the core (ops/pointwise.py, reduce.py, matrix.py): forward vs
PyTorch, backward vs PyTorch autograd and vs central finite differences (float64), batch and
non-batch input, float32 kept float32; then Torch's tie, init and error rules."""
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import build, compile_error
from op_harness import make_spec, op_tests, shape_opts

torch.set_default_dtype(torch.float64)


def pos(x):
    """Inputs away from 0 and from the kinks, for Log, Sqrt, Power and divisors."""
    return np.abs(x) + 0.5


def softmin_dim(x):
    return {1: 0, 2: 1, 3: 0, 4: 1}[x.dim()]


def rows(x, w):
    """Torch's CMul/CAdd/Add "view as Bx-1" case: w applied to each row of x."""
    return w.reshape(1, -1).expand(x.shape[0], -1).reshape(x.shape)


def torch7_param(x, w):
    """Parameter w as Torch7's CMul/CAdd (CMul.lua, CAdd.lua) meet input x: the same element
    count: elementwise; the same number of dims: expandAs; else x viewed as (size(1), -1)
    and w as (1, -1), expanded."""
    if x.numel() == w.numel():
        return w.reshape(x.shape)
    if x.dim() == w.dim():
        return w.expand_as(x)
    rows = x.reshape(x.shape[0], -1)
    return w.reshape(1, -1).expand_as(rows).reshape(x.shape)


def prelu(x, w, axis=1):
    shape = [1] * x.dim()
    if w.numel() > 1:
        shape[axis] = -1
    return torch.where(x > 0, x, w.reshape(shape) * x)


# name -> (spec body applied to `x` (or x1, x2, ...), input shapes, torch reference(inputs,
# params)[, input transforms: one function (all inputs) or a list (per input, None: as is)])
CASES = {
    # ---- pointwise ----
    "Exp": ("nn.Exp()(x)", {"x": "Bx5"}, lambda xs, ps: torch.exp(xs[0])),
    "Log": ("nn.Log()(x)", {"x": "Bx5"}, lambda xs, ps: torch.log(xs[0]), pos),
    "Abs": ("nn.Abs()(x)", {"x": "Bx5"}, lambda xs, ps: torch.abs(xs[0])),
    "Square": ("nn.Square()(x)", {"x": "Bx5"}, lambda xs, ps: xs[0] * xs[0]),
    "Sqrt": ("nn.Sqrt()(x)", {"x": "Bx5"}, lambda xs, ps: torch.sqrt(xs[0]), pos),
    "Sqrt_eps_ignored": ("nn.Sqrt(1e-3)(x)", {"x": "Bx2x3"}, lambda xs, ps: torch.sqrt(xs[0]), pos),
    "Power": ("nn.Power(2.5)(x)", {"x": "Bx5"}, lambda xs, ps: xs[0] ** 2.5, pos),
    "Power_int": ("nn.Power(3)(x)", {"x": "Bx5"}, lambda xs, ps: xs[0] ** 3),
    "Power_neg": ("nn.Power(-1)(x)", {"x": "Bx5"}, lambda xs, ps: xs[0] ** -1, pos),
    "Clamp": ("nn.Clamp(-0.5, 0.7)(x)", {"x": "Bx6"}, lambda xs, ps: torch.clamp(xs[0], -0.5, 0.7)),
    "Clamp_huge": ("nn.Clamp(0, math.huge)(x)", {"x": "Bx6"}, lambda xs, ps: torch.clamp(xs[0], min=0)),
    "HardTanh": ("nn.HardTanh()(x)", {"x": "Bx6"}, lambda xs, ps: F.hardtanh(xs[0])),
    "HardTanh_range": ("nn.HardTanh(-2, 0.5, true)(x)", {"x": "Bx6"},
                       lambda xs, ps: F.hardtanh(xs[0], -2, 0.5)),
    "LeakyReLU": ("nn.LeakyReLU()(x)", {"x": "Bx6"}, lambda xs, ps: F.leaky_relu(xs[0], 0.01)),
    "LeakyReLU_negval": ("nn.LeakyReLU(0.2, true)(x)", {"x": "Bx6"},
                         lambda xs, ps: F.leaky_relu(xs[0], 0.2)),
    "ELU": ("nn.ELU()(x)", {"x": "Bx6"}, lambda xs, ps: F.elu(xs[0])),
    "ELU_alpha": ("nn.ELU(0.5)(x)", {"x": "Bx2x3"}, lambda xs, ps: F.elu(xs[0], 0.5)),
    "SoftPlus": ("nn.SoftPlus()(x)", {"x": "Bx6"}, lambda xs, ps: F.softplus(xs[0])),
    "SoftPlus_beta": ("nn.SoftPlus(2)(x)", {"x": "Bx6"}, lambda xs, ps: F.softplus(xs[0], beta=2)),
    "SoftSign": ("nn.SoftSign()(x)", {"x": "Bx6"}, lambda xs, ps: F.softsign(xs[0])),
    "LogSigmoid": ("nn.LogSigmoid()(x)", {"x": "Bx6"}, lambda xs, ps: F.logsigmoid(xs[0])),
    "Threshold": ("nn.Threshold()(x)", {"x": "Bx6"}, lambda xs, ps: F.threshold(xs[0], 1e-6, 0.0)),
    "Threshold_value": ("nn.Threshold(0.5, -1)(x)", {"x": "Bx6"},
                        lambda xs, ps: F.threshold(xs[0], 0.5, -1.0)),
    "MulConstant": ("nn.MulConstant(2.5)(x)", {"x": "Bx2x3"}, lambda xs, ps: xs[0] * 2.5),
    "MulConstant_neg": ("nn.MulConstant(-3, true)(x)", {"x": "Bx4"}, lambda xs, ps: xs[0] * -3),
    "AddConstant": ("nn.AddConstant(-1.5)(x)", {"x": "Bx2x3"}, lambda xs, ps: xs[0] - 1.5),
    "SoftMin": ("nn.SoftMin()(x)", {"x": "Bx5"}, lambda xs, ps: F.softmin(xs[0], 1)),
    "SoftMin_4d": ("nn.SoftMin()(x)", {"x": "Bx3x2x2"}, lambda xs, ps: F.softmin(xs[0], 1)),
    "SoftMin_1d": ("nn.SoftMin()(x)", {"x": "5"}, lambda xs, ps: F.softmin(xs[0], 0)),
    "PReLU": ("nn.PReLU()(x)", {"x": "Bx5"}, lambda xs, ps: prelu(xs[0], ps[0])),
    "PReLU_planes": ("nn.PReLU(3)(x)", {"x": "Bx3"}, lambda xs, ps: prelu(xs[0], ps[0])),
    "PReLU_planes_4d": ("nn.PReLU(3)(x)", {"x": "Bx3x2x2"}, lambda xs, ps: prelu(xs[0], ps[0])),
    "PReLU_planes_1d": ("nn.PReLU(4)(x)", {"x": "4"}, lambda xs, ps: prelu(xs[0], ps[0], 0)),
    "Copy": ("nn.Copy('torch.DoubleTensor', 'torch.DoubleTensor')(nn.Tanh()(x))", {"x": "Bx4"},
             lambda xs, ps: torch.tanh(xs[0])),
    "Contiguous": ("nn.Square()(nn.Contiguous()(x))", {"x": "Bx4"}, lambda xs, ps: xs[0] ** 2),
    "CSubTable": ("nn.CSubTable()({x1, x2})", {"x1": "Bx4", "x2": "Bx4"}, lambda xs, ps: xs[0] - xs[1]),
    "CSubTable_reshaped": ("nn.CSubTable()({x1, x2})", {"x1": "Bx6", "x2": "Bx2x3"},
                           lambda xs, ps: xs[0] - xs[1].reshape(xs[0].shape)),
    "CDivTable": ("nn.CDivTable()({x1, x2})", {"x1": "Bx4", "x2": "Bx4"},
                  lambda xs, ps: xs[0] / xs[1], [None, pos]),
    "CDivTable_reshaped": ("nn.CDivTable()({x1, x2})", {"x1": "Bx2x3", "x2": "Bx6"},
                           lambda xs, ps: xs[0] / xs[1].reshape(xs[0].shape), [None, pos]),
    "CMaxTable": ("nn.CMaxTable()({x1, x2, x3})", {"x1": "Bx4", "x2": "Bx4", "x3": "Bx4"},
                  lambda xs, ps: torch.maximum(torch.maximum(xs[0], xs[1]), xs[2])),
    "CMaxTable_reshaped": ("nn.CMaxTable()({x1, x2})", {"x1": "Bx6", "x2": "Bx3x2"},
                           lambda xs, ps: torch.maximum(xs[0], xs[1].reshape(xs[0].shape))),
    "CMinTable": ("nn.CMinTable()({x1, x2})", {"x1": "Bx2x3", "x2": "Bx2x3"},
                  lambda xs, ps: torch.minimum(xs[0], xs[1])),
    "Mul": ("nn.Mul()(x)", {"x": "Bx2x3"}, lambda xs, ps: xs[0] * ps[0]),
    "CMul": ("nn.CMul(5)(x)", {"x": "Bx5"}, lambda xs, ps: xs[0] * ps[0]),
    "CMul_expand": ("nn.CMul(1, 3, 1, 1)(x)", {"x": "Bx3x2x2"}, lambda xs, ps: xs[0] * ps[0]),
    "CMul_expand_partial": ("nn.CMul(1, 3, 2)(x)", {"x": "Bx3x2"}, lambda xs, ps: xs[0] * ps[0]),
    "CMul_rows": ("nn.CMul(2, 3)(x)", {"x": "Bx3x2"}, lambda xs, ps: xs[0] * rows(xs[0], ps[0])),
    "CMul_flat": ("nn.CMul(3, 2)(x)", {"x": "2x3"}, lambda xs, ps: xs[0] * ps[0].reshape(2, 3)),
    "CMul_rows_fixed": ("nn.CMul(2)(x)", {"x": "3x2"}, lambda xs, ps: xs[0] * rows(xs[0], ps[0])),
    # one-element parameters: Torch7 expands them in every case (with and without B)
    "CMul_one_rows": ("nn.CMul(1, 1)(x)", {"x": "4x2x3"}, lambda xs, ps: xs[0] * torch7_param(xs[0], ps[0])),
    "CMul_one_batch": ("nn.CMul(1, 1, 1)(x)", {"x": "Bx4x2x3"},
                       lambda xs, ps: xs[0] * torch7_param(xs[0], ps[0])),
    "CMul_one_same_dims": ("nn.CMul(1, 1, 1)(x)", {"x": "4x2x3"},
                           lambda xs, ps: xs[0] * torch7_param(xs[0], ps[0])),
    "CMul_one_1d": ("nn.CMul(1, 1)(x)", {"x": "5"}, lambda xs, ps: xs[0] * torch7_param(xs[0], ps[0])),
    "CMul_rows_batch_4d": ("nn.CMul(2, 3, 4)(x)", {"x": "Bx4x2x3"},
                           lambda xs, ps: xs[0] * torch7_param(xs[0], ps[0])),
    "CAdd_one_rows": ("nn.CAdd(1)(x)", {"x": "2x4x4"}, lambda xs, ps: xs[0] + torch7_param(xs[0], ps[0])),
    "CAdd_one_2d": ("nn.CAdd(1, 1)(x)", {"x": "4x2x2"}, lambda xs, ps: xs[0] + torch7_param(xs[0], ps[0])),
    "CAdd_one_batch": ("nn.CAdd(1)(x)", {"x": "Bx3"}, lambda xs, ps: xs[0] + torch7_param(xs[0], ps[0])),
    "CAdd_one_batch_same_dims": ("nn.CAdd(1, 1, 1)(x)", {"x": "Bx2x3"},
                                 lambda xs, ps: xs[0] + torch7_param(xs[0], ps[0])),
    "CAdd": ("nn.CAdd(5)(x)", {"x": "Bx5"}, lambda xs, ps: xs[0] + ps[0]),
    "CAdd_expand": ("nn.CAdd(1, 3, 1, 1)(x)", {"x": "Bx3x2x2"}, lambda xs, ps: xs[0] + ps[0]),
    "CAdd_rows": ("nn.CAdd(3, 2)(x)", {"x": "Bx2x3"}, lambda xs, ps: xs[0] + rows(xs[0], ps[0])),
    "CAdd_flat": ("nn.CAdd(6)(x)", {"x": "2x3"}, lambda xs, ps: xs[0] + ps[0].reshape(2, 3)),
    "Add": ("nn.Add(5)(x)", {"x": "Bx5"}, lambda xs, ps: xs[0] + ps[0]),
    "Add_rows": ("nn.Add(6)(x)", {"x": "Bx2x3"}, lambda xs, ps: xs[0] + rows(xs[0], ps[0])),
    "Add_scalar": ("nn.Add(4, true)(x)", {"x": "Bx4"}, lambda xs, ps: xs[0] + ps[0]),
    "Add_1d": ("nn.Add(3)(x)", {"x": "3"}, lambda xs, ps: xs[0] + ps[0]),
    # ---- reductions and dimension shuffles ----
    "Sum": ("nn.Sum(2)(x)", {"x": "Bx4x3"}, lambda xs, ps: xs[0].sum(1)),
    "Sum_neg_dim": ("nn.Sum(-1)(x)", {"x": "Bx4x3"}, lambda xs, ps: xs[0].sum(2)),
    "Sum_nInputDims": ("nn.Sum(1, 1)(x)", {"x": "Bx4"}, lambda xs, ps: xs[0].sum(1)),
    "Sum_sizeAverage": ("nn.Sum(2, nil, true)(x)", {"x": "Bx4x3"}, lambda xs, ps: xs[0].mean(1)),
    "Sum_no_squeeze": ("nn.Sum(3, nil, false, false)(x)", {"x": "Bx4x3"},
                       lambda xs, ps: xs[0].sum(2, keepdim=True)),
    "Sum_1d": ("nn.Sum()(x)", {"x": "4"}, lambda xs, ps: xs[0].sum(0, keepdim=True)),
    "Mean": ("nn.Mean(2)(x)", {"x": "Bx4x3"}, lambda xs, ps: xs[0].mean(1)),
    "Mean_nInputDims": ("nn.Mean(1, 2)(x)", {"x": "Bx4x3"}, lambda xs, ps: xs[0].mean(1)),
    "Mean_fixed_dim1": ("nn.Mean()(x)", {"x": "4x3"}, lambda xs, ps: xs[0].mean(0)),
    "Max": ("nn.Max(2)(x)", {"x": "Bx4x3"}, lambda xs, ps: xs[0].max(1).values),
    "Max_neg_dim": ("nn.Max(-1)(x)", {"x": "Bx4x3"}, lambda xs, ps: xs[0].max(2).values),
    "Max_nInputDims": ("nn.Max(1, 1)(x)", {"x": "Bx5"}, lambda xs, ps: xs[0].max(1).values),
    "Max_1d": ("nn.Max()(x)", {"x": "5"}, lambda xs, ps: xs[0].max(0, keepdim=True).values),
    "Min": ("nn.Min(3)(x)", {"x": "Bx4x3"}, lambda xs, ps: xs[0].min(2).values),
    "Min_nInputDims": ("nn.Min(2, 2)(x)", {"x": "Bx4x3"}, lambda xs, ps: xs[0].min(2).values),
    "Transpose": ("nn.Transpose({2, 3})(x)", {"x": "Bx3x4"}, lambda xs, ps: xs[0].transpose(1, 2)),
    "Transpose_chain": ("nn.Transpose({2, 3}, {3, 4})(x)", {"x": "Bx2x3x4"},
                        lambda xs, ps: xs[0].transpose(1, 2).transpose(2, 3)),
    "Transpose_numInputDims": ("nn.Transpose({1, 2}):setNumInputDims(2)(x)", {"x": "Bx3x4"},
                               lambda xs, ps: xs[0].transpose(1, 2)),
    "Transpose_fixed": ("nn.Transpose({1, 2})(x)", {"x": "3x4"}, lambda xs, ps: xs[0].t()),
    "Replicate": ("nn.Replicate(3, 2)(x)", {"x": "Bx4"},
                  lambda xs, ps: xs[0].unsqueeze(1).expand(-1, 3, -1)),
    "Replicate_ndim": ("nn.Replicate(3, 1, 1)(x)", {"x": "Bx4"},
                       lambda xs, ps: xs[0].unsqueeze(1).expand(-1, 3, -1)),
    "Replicate_last": ("nn.Replicate(2, 3)(x)", {"x": "Bx4"},
                       lambda xs, ps: xs[0].unsqueeze(2).expand(-1, -1, 2)),
    "Replicate_fixed": ("nn.Replicate(2)(x)", {"x": "3"}, lambda xs, ps: xs[0].unsqueeze(0).expand(2, -1)),
    "Squeeze_all": ("nn.Squeeze()(x)", {"x": "Bx1x4x1"}, lambda xs, ps: xs[0].reshape(-1, 4)),
    "Squeeze_dim": ("nn.Squeeze(2)(x)", {"x": "Bx1x4"}, lambda xs, ps: xs[0].reshape(-1, 4)),
    "Squeeze_numInputDims": ("nn.Squeeze(1, 2)(x)", {"x": "Bx1x4"}, lambda xs, ps: xs[0].reshape(-1, 4)),
    "Squeeze_not_one": ("nn.Squeeze(3)(nn.Tanh()(x))", {"x": "Bx4x3"},
                        lambda xs, ps: torch.tanh(xs[0])),
    "Squeeze_fixed": ("nn.Squeeze()(x)", {"x": "1x4x1"}, lambda xs, ps: xs[0].reshape(4)),
    "Unsqueeze": ("nn.Unsqueeze(2)(x)", {"x": "Bx4"}, lambda xs, ps: xs[0].unsqueeze(1)),
    "Unsqueeze_numInputDims": ("nn.Unsqueeze(1, 1)(x)", {"x": "Bx4"}, lambda xs, ps: xs[0].unsqueeze(1)),
    "Unsqueeze_last": ("nn.Unsqueeze(3)(x)", {"x": "Bx4"}, lambda xs, ps: xs[0].unsqueeze(2)),
    # ---- matrix products ----
    "MM": ("nn.MM()({x1, x2})", {"x1": "Bx2x3", "x2": "Bx3x4"}, lambda xs, ps: torch.bmm(xs[0], xs[1])),
    "MM_transA": ("nn.MM(true)({x1, x2})", {"x1": "Bx3x2", "x2": "Bx3x4"},
                  lambda xs, ps: torch.bmm(xs[0].transpose(1, 2), xs[1])),
    "MM_transB": ("nn.MM(false, true)({x1, x2})", {"x1": "Bx2x3", "x2": "Bx4x3"},
                  lambda xs, ps: torch.bmm(xs[0], xs[1].transpose(1, 2))),
    "MM_transAB": ("nn.MM(true, true)({x1, x2})", {"x1": "Bx3x2", "x2": "Bx4x3"},
                   lambda xs, ps: torch.bmm(xs[0].transpose(1, 2), xs[1].transpose(1, 2))),
    "MM_2d": ("nn.MM()({x1, x2})", {"x1": "Bx3", "x2": "3x4"}, lambda xs, ps: xs[0] @ xs[1]),
    "MM_2d_transB": ("nn.MM(false, true)({x1, x2})", {"x1": "Bx3", "x2": "4x3"},
                     lambda xs, ps: xs[0] @ xs[1].t()),
    "MM_2d_fixed_transA": ("nn.MM(true)({x1, x2})", {"x1": "3x2", "x2": "3x4"},
                           lambda xs, ps: xs[0].t() @ xs[1]),
    "MV": ("nn.MV()({x1, x2})", {"x1": "Bx2x3", "x2": "Bx3"},
           lambda xs, ps: torch.bmm(xs[0], xs[1].unsqueeze(2)).squeeze(2)),
    "MV_trans": ("nn.MV(true)({x1, x2})", {"x1": "Bx3x2", "x2": "Bx3"},
                 lambda xs, ps: torch.bmm(xs[0].transpose(1, 2), xs[1].unsqueeze(2)).squeeze(2)),
    "MV_2d": ("nn.MV()({x1, x2})", {"x1": "Bx3", "x2": "3"}, lambda xs, ps: xs[0] @ xs[1]),
    "MV_2d_fixed_trans": ("nn.MV(true)({x1, x2})", {"x1": "3x2", "x2": "3"},
                          lambda xs, ps: xs[0].t() @ xs[1]),
    "DotProduct": ("nn.DotProduct()({x1, x2})", {"x1": "Bx4", "x2": "Bx4"},
                   lambda xs, ps: (xs[0] * xs[1]).sum(1)),
    "DotProduct_1d": ("nn.DotProduct()({x1, x2})", {"x1": "4", "x2": "4"},
                      lambda xs, ps: (xs[0] * xs[1]).sum(0, keepdim=True)),
}


(test_forward_backward_vs_torch, test_backward_vs_finite_differences,
 test_non_batch_input_is_a_batch_of_one, test_float32_stays_float32) = op_tests(CASES)


# ---- Torch's rules that random inputs do not reach ------------------------------------------


def one_op(body, shapes, tmp_path, dtype="float64"):
    return build(make_spec(body, shapes), tmp_path, dtype=dtype, shapes=shape_opts(shapes))


def test_table_max_min_ties_go_to_the_first_input(tmp_path):
    x = np.array([[1.0, 2.0, 3.0]])
    for kind in ("CMaxTable", "CMinTable"):
        m = one_op(f"nn.{kind}()({{x1, x2, x3}})", {"x1": "Bx3", "x2": "Bx3", "x3": "Bx3"},
                   tmp_path).Model()
        m.forward(x, x.copy(), x - (1 if kind == "CMaxTable" else -1))
        g1, g2, g3 = m.backward((x, x, x), (np.ones((1, 3)),))
        assert g1.tolist() == [[1, 1, 1]] and not g2.any() and not g3.any()


def test_max_min_ties_go_to_the_first_index(tmp_path):
    for kind in ("Max", "Min"):
        m = one_op(f"nn.{kind}(2)(x)", {"x": "Bx4"}, tmp_path).Model()
        x = np.array([[5.0, 5.0, 5.0, 5.0]])
        assert m.forward(x).tolist() == [5.0]
        assert m.backward(x, np.array([2.0])).tolist() == [[2, 0, 0, 0]]


def test_abs_gradient_at_zero_is_plus_one_and_sqrt_at_zero_is_zero(tmp_path):
    m = one_op("nn.Abs()(x)", {"x": "Bx3"}, tmp_path).Model()
    x = np.array([[0.0, -1.0, 2.0]])
    m.forward(x)
    assert m.backward(x, np.ones((1, 3))).tolist() == [[1, -1, 1]]
    m = one_op("nn.Sqrt()(x)", {"x": "Bx2"}, tmp_path).Model()
    x = np.array([[0.0, 4.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert m.forward(x).tolist() == [[0, 2]]
        assert m.backward(x, np.ones((1, 2))).tolist() == [[0, 0.25]]


def test_hardtanh_gradient_passes_at_the_bounds(tmp_path):
    m = one_op("nn.HardTanh()(x)", {"x": "Bx4"}, tmp_path).Model()
    x = np.array([[-1.0, 1.0, -1.5, 1.5]])
    m.forward(x)
    assert m.backward(x, np.ones((1, 4))).tolist() == [[1, 1, 0, 0]]


def test_softplus_gradient_comes_from_the_output(tmp_path):
    # Torch7 tests beta*y > threshold (20), not beta*x: here beta*x = 20 but beta*y > 20.
    m = one_op("nn.SoftPlus(2)(x)", {"x": "Bx2"}, tmp_path).Model()
    x = np.array([[10.0, 0.0]])
    y = m.forward(x)
    assert y[0, 0] > 10 and y[0, 1] == pytest.approx(math.log(2) / 2)
    assert m.backward(x, np.ones((1, 2))).tolist() == [[1.0, 0.5]]


def test_init_follows_torch_reset(tmp_path):
    mod = one_op("(function() local h = nn.Mul()(x); h = nn.CMul(1, 3)(h); h = nn.Add(3)(h); "
                 "h = nn.Add(4, true)(h); return nn.PReLU(3)(h) end)()", {"x": "Bx3"}, tmp_path)
    assert [(n.split(".")[-1], s, i) for n, s, i in mod.PARAMETERS] == [
        ("weight", (1,), ("uniform", 1.0)),
        ("weight", (1, 3), ("uniform", 1 / math.sqrt(3))),
        ("bias", (3,), ("uniform", 1 / math.sqrt(3))),
        ("bias", (1,), ("uniform", 1.0)),  # scalar: Torch's stdv is 1/sqrt(bias:size(1)) = 1
        ("weight", (3,), ("const", 0.25)),
    ]
    assert mod.Model().parameters()[-1][1].tolist() == [0.25] * 3


def test_transpose_and_squeeze_outputs_are_views(tmp_path, rng):
    m = one_op("nn.Transpose({2, 3})(nn.Squeeze(2)(x))", {"x": "Bx1x3x4"}, tmp_path).Model()
    x = rng.standard_normal((2, 1, 3, 4))
    assert np.shares_memory(m.forward(x), x)


@pytest.mark.parametrize("body, shapes, message", [
    ("nn.AddConstant({1, 2})(x)", {"x": "Bx3"}, "argument 'constant_scalar' must be a number, got table"),
    ("nn.MulConstant()(x)", {"x": "Bx3"}, "missing argument 'constant_scalar'"),
    ("nn.HardTanh(1, -1)(x)", {"x": "Bx3"}, "max_value (-1) must be larger than min_value (1)"),
    ("nn.Sum(1)(x)", {"x": "Bx3"}, "cannot sum over the batch dimension B"),
    ("nn.Max()(x)", {"x": "Bx3"}, "over the batch dimension B"),
    ("nn.Sum(4)(x)", {"x": "Bx3"}, "dimension 4 is out of range for a 2-D input"),
    ("nn.Transpose(1, 2)(x)", {"x": "Bx3x4"}, "argument 1 must be a table such as {1, 2}"),
    ("nn.Transpose({1, 2})(x)", {"x": "Bx3x4"}, "cannot move the batch dimension B"),
    ("nn.Replicate(3)(x)", {"x": "Bx3"}, "before the batch dimension B"),
    ("nn.Replicate(3, 0)(x)", {"x": "Bx3"}, "positive integer dimensions"),
    ("nn.Squeeze(1)(x)", {"x": "Bx1"}, "dimension 1 is the batch dimension B"),
    ("nn.Unsqueeze(1)(x)", {"x": "Bx3"}, "before the batch dimension B"),
    ("nn.Unsqueeze(5)(x)", {"x": "Bx3"}, "invalid position 5"),
    ("nn.PReLU(4)(x)", {"x": "Bx3"}, "expects 4 input planes in dimension 2, got 3"),
    ("nn.CMul(4)(x)", {"x": "Bx3"}, "the parameter has 4 elements (4), but the input Bx3 has 3"),
    ("nn.CMul(2, 3)(x)", {"x": "Bx3"}, "dimension 1 is 2, not 1 or the batch dimension B"),
    # as Torch7 with a real batch: x viewed as Bx24 does not meet a 12-element weight
    ("nn.CMul(4, 1, 3)(x)", {"x": "Bx4x2x3"},
     "the parameter has 12 elements (4x1x3), but the input Bx4x2x3 has 24 per row"),
    ("nn.CAdd(2, 1)(x)", {"x": "5"}, "the parameter has 2 elements (2x1), but the input 5 has 5"),
    ("nn.Add(4)(x)", {"x": "Bx3"}, "expects 4 elements per sample"),
    ("nn.CSubTable()({x1, x2, x3})", {"x1": "Bx3", "x2": "Bx3", "x3": "Bx3"},
     "expects a table of two tensors, got 3"),
    ("nn.CDivTable()({x1, x2})", {"x1": "Bx3", "x2": "Bx4"}, "element counts must match"),
    ("nn.MM()({x1, x2})", {"x1": "Bx2x3", "x2": "Bx4x3"}, "matrix sizes do not match"),
    ("nn.MM()({x1, x2})", {"x1": "Bx2x3", "x2": "3x4"}, "second input tensor must be 3D"),
    ("nn.MM(true)({x1, x2})", {"x1": "Bx3", "x2": "Bx4"}, "batch dimension B would be summed over"),
    ("nn.MV()({x1, x2})", {"x1": "Bx2x3", "x2": "Bx4"}, "do not match"),
    ("nn.DotProduct()({x1, x2})", {"x1": "Bx3", "x2": "Bx4"}, "of the same shape"),
])
def test_errors(body, shapes, message):
    _, text = compile_error(make_spec(body, shapes), shapes=shape_opts(shapes))
    assert message in text, text
