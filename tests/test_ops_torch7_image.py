"""Torch7's image-model modules (ops/padding_upsampling.py, ops/norm_dilated_lp.py, ReLU6,
SpatialDropout, SpatialConvolutionMM, cudnn.*): forward vs PyTorch (a reference written for
Torch7's semantics where PyTorch differs), backward vs PyTorch autograd and vs central finite
differences (float64), batch and non-batch input, float32 kept float32 (tests/op_harness.py);
then the rules random inputs do not reach (an unbatched CxHxW spec, SpatialDropout's planes
and evaluate mode, edges, ties) and the errors."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import build, central_differences, compile_error
from op_harness import make_spec, op_tests, shape_opts

torch.set_default_dtype(torch.float64)


def positive(x):
    return np.abs(x) + 0.5


def subtractive(x, kernel, channels):
    """Torch7's SpatialSubtractiveNormalization: x minus the kernel-weighted local mean over
    all channels, divided by the kernel's weight inside the image."""
    k = torch.tensor(kernel)
    w = k.expand(1, channels, *k.shape)
    pad = (k.shape[0] // 2, k.shape[1] // 2)
    batched = x if x.dim() == 4 else x[None]
    mean = F.conv2d(batched, w, padding=pad)
    coef = F.conv2d(torch.ones_like(batched[:1]), w, padding=pad)
    y = batched - mean / coef
    return y if x.dim() == 4 else y[0]


def lp_pool(x, p, k, d):
    return (F.avg_pool2d(x ** p, k, d) * (k[0] * k[1])) ** (1 / p)


def temporal_max(x, k, d):
    return F.max_pool1d(x.transpose(-1, -2), k, d).transpose(-1, -2)


# Torch's image.gaussian1D(7): exp(-((i - center) / (sigma size))^2 / 2), i = 1..7,
# center = mean size + 0.5 = 4, sigma = 0.25
G7 = [math.exp(-((i - 4) / (0.25 * 7)) ** 2 / 2) for i in range(1, 8)]


# name -> (spec body applied to x, input shapes, torch reference(inputs, params)[, input maker])
CASES = {
    "ZeroPadding": ("nn.SpatialZeroPadding(1, 2, 3, 0)(x)", {"x": "Bx2x4x5"},
                    lambda xs, ps: F.pad(xs[0], (1, 2, 3, 0))),
    "ZeroPadding_default": ("nn.SpatialZeroPadding(2)(x)", {"x": "Bx2x3x3"},
                            lambda xs, ps: F.pad(xs[0], (2, 2, 2, 2))),
    "ZeroPadding_crop": ("nn.SpatialZeroPadding(-1, 2, 1, -2)(x)", {"x": "Bx2x5x4"},
                         lambda xs, ps: F.pad(xs[0], (-1, 2, 1, -2))),
    "ReflectionPadding": ("nn.SpatialReflectionPadding(2, 1, 3, 1)(x)", {"x": "Bx2x4x5"},
                          lambda xs, ps: F.pad(xs[0], (2, 1, 3, 1), mode="reflect")),
    "ReplicationPadding": ("nn.SpatialReplicationPadding(3, 0, 1, 4)(x)", {"x": "Bx2x3x4"},
                           lambda xs, ps: F.pad(xs[0], (3, 0, 1, 4), mode="replicate")),
    "UpSamplingNearest": ("nn.SpatialUpSamplingNearest(3)(x)", {"x": "Bx2x3x4"},
                          lambda xs, ps: F.interpolate(xs[0], scale_factor=3, mode="nearest")),
    "CrossMapLRN": ("nn.SpatialCrossMapLRN(3, 0.5, 0.75, 2)(x)", {"x": "Bx6x3x4"},
                    lambda xs, ps: F.local_response_norm(xs[0], 3, 0.5, 0.75, 2)),
    "CrossMapLRN_default_wide": ("nn.CAddTable()({nn.SpatialCrossMapLRN()(x), "
                                 "nn.SpatialCrossMapLRN(9, 0.3)(x)})",
                                 {"x": "Bx7x2x3"},
                                 lambda xs, ps: F.local_response_norm(xs[0], 5, 1e-4, 0.75, 1)
                                 + F.local_response_norm(xs[0], 9, 0.3, 0.75, 1)),
    "SubtractiveNormalization": ("nn.SpatialSubtractiveNormalization(2)(x)", {"x": "Bx2x10x11"},
                                 lambda xs, ps: subtractive(xs[0], [[1.0] * 9] * 9, 2)),
    "SubtractiveNormalization_1d": (
        "nn.SpatialSubtractiveNormalization(3, torch.Tensor{1, 2, 3, 2, 1})(x)", {"x": "Bx3x5x6"},
        lambda xs, ps: subtractive(xs[0], np.outer([1, 2, 3, 2, 1], [1, 2, 3, 2, 1]).astype(float), 3)),
    "SubtractiveNormalization_filled": (
        "nn.SpatialSubtractiveNormalization(2, torch.Tensor(3, 5):fill(1))(x)", {"x": "Bx2x4x6"},
        lambda xs, ps: subtractive(xs[0], [[1.0] * 5] * 3, 2)),
    "SubtractiveNormalization_2d": (
        "nn.SpatialSubtractiveNormalization(1, {{1, 0, 2}, {0.5, 1, 3}, {1, 1, 1}})(x)",
        {"x": "Bx1x4x5"},
        lambda xs, ps: subtractive(xs[0], [[1.0, 0, 2], [0.5, 1, 3], [1, 1, 1]], 1)),
    "SubtractiveNormalization_gaussian": (
        "nn.SpatialSubtractiveNormalization(2, require('image').gaussian1D(7))(x)", {"x": "Bx2x8x9"},
        lambda xs, ps: subtractive(xs[0], np.outer(G7, G7), 2)),
    "DilatedConvolution": ("nn.SpatialDilatedConvolution(3, 2, 3, 2, 2, 1, 1, 2, 2, 3)(x)",
                           {"x": "Bx3x9x8"},
                           lambda xs, ps: F.conv2d(xs[0], ps[0], ps[1], (1, 2), (2, 1), (3, 2))),
    "DilatedConvolution_nobias": ("nn.SpatialDilatedConvolution(2, 3, 2, 2):noBias()(x)",
                                  {"x": "Bx2x4x4"},
                                  lambda xs, ps: F.conv2d(xs[0], ps[0])),
    "LPPooling": ("nn.SpatialLPPooling(2, 2, 2, 2)(x)", {"x": "Bx2x6x5"},
                  lambda xs, ps: lp_pool(xs[0], 2, (2, 2), (2, 2)), positive),
    "LPPooling_p3_stride": ("nn.SpatialLPPooling(2, 3, 3, 2, 1, 2)(x)", {"x": "Bx2x5x6"},
                            lambda xs, ps: lp_pool(xs[0], 3, (2, 3), (2, 1)), positive),
    "ReLU6": ("nn.ReLU6()(nn.MulConstant(4)(x))", {"x": "Bx7"},
              lambda xs, ps: F.relu6(4 * xs[0])),
    "TemporalMaxPooling": ("nn.TemporalMaxPooling(3)(x)", {"x": "Bx10x4"},
                           lambda xs, ps: temporal_max(xs[0], 3, 3)),
    "TemporalMaxPooling_overlap": ("nn.TemporalMaxPooling(3, 2)(x)", {"x": "Bx9x3"},
                                   lambda xs, ps: temporal_max(xs[0], 3, 2)),
    "SpatialConvolutionMM": ("nn.SpatialConvolutionMM(2, 3, 3, 2, 1, 2, 1)(x)", {"x": "Bx2x5x6"},
                             lambda xs, ps: F.conv2d(xs[0], ps[0], ps[1], (2, 1), (1, 1))),
}
(test_forward_backward_vs_torch, test_backward_vs_finite_differences,
 test_non_batch_input_is_a_batch_of_one, test_float32_stays_float32) = op_tests(CASES)


# ---- what random inputs do not reach ------------------------------------------------------------


def one_op(body, shapes, tmp_path, dtype="float64"):
    return build(make_spec(body, shapes), tmp_path, dtype=dtype, shapes=shape_opts(shapes))


def test_unbatched_3d_input(tmp_path, rng):
    """A CxHxW spec (no B) gives the same numbers as a batch of one."""
    x = rng.standard_normal((2, 5, 6))
    for body in ("nn.SpatialReflectionPadding(1, 2, 2, 1)(x)", "nn.SpatialZeroPadding(-1, 1, 0, 2)(x)",
                 "nn.SpatialCrossMapLRN(3)(x)", "nn.SpatialSubtractiveNormalization(2)(x)",
                 "nn.SpatialLPPooling(2, 2, 2, 2)(nn.Abs()(x))", "nn.SpatialUpSamplingNearest(2)(x)",
                 "nn.SpatialDilatedConvolution(2, 3, 2, 2, 1, 1, 1, 1, 2, 2)(x)"):
        plain = one_op(body, {"x": "2x5x6"}, tmp_path).Model(dtype="float64")
        batch = one_op(body, {"x": "Bx2x5x6"}, tmp_path).Model(dtype="float64")
        batch.getParameters()[0][:] = plain.getParameters()[0]
        y = plain.forward(x)
        np.testing.assert_allclose(y, batch.forward(x[None])[0], rtol=1e-12, err_msg=body)
        gy = rng.standard_normal(y.shape)
        np.testing.assert_allclose(plain.backward(x, gy), batch.backward(x[None], gy[None])[0],
                                   rtol=1e-12, err_msg=body)


def test_spatial_dropout_drops_whole_planes(tmp_path, rng):
    m = one_op("nn.SpatialDropout(0.5)(x)", {"x": "Bx40x3x3"}, tmp_path).Model(dtype="float64", seed=1)
    x = rng.standard_normal((5, 40, 3, 3)) + 10  # no zeros of its own
    y = m.forward(x)
    kept = (y != 0).reshape(5, 40, 9)
    assert (kept.all(-1) | ~kept.any(-1)).all()  # each plane kept whole or dropped whole
    planes = kept.all(-1)
    assert 0.3 < planes.mean() < 0.7
    np.testing.assert_array_equal(y[planes], x[planes])  # kept planes are not scaled (Torch7)
    gy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(m.backward(x, gy), np.where(y != 0, gy, 0))
    m.evaluate()
    np.testing.assert_allclose(m.forward(x), x * 0.5)
    np.testing.assert_allclose(m.backward(x, gy), gy * 0.5)


def test_relu6_gradient_at_the_edges(tmp_path):
    m = one_op("nn.ReLU6(true)(x)", {"x": "6"}, tmp_path).Model(dtype="float64")
    x = np.array([-1.0, 0.0, 3.0, 6.0, 7.0, 6.5])
    np.testing.assert_array_equal(m.forward(x), [0, 0, 3, 6, 6, 6])
    np.testing.assert_array_equal(m.backward(x, np.ones(6)), [0, 1, 1, 1, 0, 0])


def test_temporal_max_pooling_ties_go_to_the_first(tmp_path):
    m = one_op("nn.TemporalMaxPooling(2)(x)", {"x": "4x1"}, tmp_path).Model(dtype="float64")
    x = np.array([[1.0], [1.0], [0.0], [2.0]])
    np.testing.assert_array_equal(m.forward(x), [[1], [2]])
    np.testing.assert_array_equal(m.backward(x, np.array([[3.0], [5.0]])), [[3], [0], [0], [5]])


def test_cudnn_modules_are_nn_modules(tmp_path, rng):
    spec = """
require 'cudnn'
require 'cunn'
require 'cutorch'
cudnn.benchmark = true
local x = nn.Identity()()
local c = cudnn.SpatialConvolution(2, 3, 3, 3, 1, 1, 1, 1)(x)
local b = cudnn.SpatialBatchNormalization(3)(c)
local p = cudnn.SpatialMaxPooling(2, 2, 2, 2)(cudnn.ReLU(true)(b))
local y = cudnn.LogSoftMax()(nn.Linear(12, 4)(nn.View(12)(p)))
return cudnn.convert(nn.gModule({x}, {y}), cudnn)
"""
    ref = spec.replace("cudnn.SpatialConvolution", "nn.SpatialConvolution").replace(
        "cudnn.SpatialBatchNormalization", "nn.SpatialBatchNormalization").replace(
        "cudnn.SpatialMaxPooling", "nn.SpatialMaxPooling").replace("cudnn.ReLU", "nn.ReLU").replace(
        "cudnn.LogSoftMax", "nn.LogSoftMax").replace("cudnn.convert(", "(").replace("), cudnn)", "))")
    shapes = {"input1": ("B", 2, 4, 4)}
    a = build(spec, tmp_path, dtype="float64", shapes=shapes).Model(dtype="float64")
    b = build(ref, tmp_path, dtype="float64", shapes=shapes).Model(dtype="float64")
    x = rng.standard_normal((3, 2, 4, 4))
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    assert [n for n, _ in a.parameters()] == [n for n, _ in b.parameters()]


def test_spatial_convolution_mm_is_spatial_convolution(tmp_path, rng):
    a = one_op("nn.SpatialConvolutionMM(2, 3, 3, 3)(x)", {"x": "Bx2x5x5"}, tmp_path)
    b = one_op("nn.SpatialConvolution(2, 3, 3, 3)(x)", {"x": "Bx2x5x5"}, tmp_path)
    x = rng.standard_normal((2, 2, 5, 5))
    np.testing.assert_array_equal(a.Model(dtype="float64").forward(x),
                                  b.Model(dtype="float64").forward(x))


@pytest.mark.parametrize("body, shapes, message", [
    ("nn.SpatialReflectionPadding(3, 0, 0, 0)(x)", {"x": "Bx1x4x3"},
     "each pad must be smaller than the input's size"),
    ("nn.SpatialReflectionPadding(-1)(x)", {"x": "Bx1x4x4"},
     "pads must be >= 0 (nn.SpatialZeroPadding crops with negative pads)"),
    ("nn.SpatialZeroPadding(-2, -2, 0, 0)(x)", {"x": "Bx1x4x4"}, "crop the 4x4 image to nothing"),
    ("nn.SpatialZeroPadding(1)(x)", {"x": "Bx4"}, "expects a 3D (CxHxW) or 4D (NxCxHxW) input"),
    ("nn.SpatialUpSamplingNearest(0)(x)", {"x": "Bx1x4x4"}, "scale must be >= 1"),
    ("nn.SpatialCrossMapLRN(0)(x)", {"x": "Bx1x4x4"}, "size must be odd and >= 1"),
    ("nn.SpatialCrossMapLRN(4)(x)", {"x": "Bx1x4x4"}, "size must be odd and >= 1 (a window "
     "centred on each channel), got 4"),
    ("nn.SpatialSubtractiveNormalization(2, torch.Tensor{1, 1})(x)", {"x": "Bx2x4x4"},
     "the averaging kernel must have odd sizes, got 2"),
    ("nn.SpatialSubtractiveNormalization(2, {{1, 1, 1}, {1, 1}})(x)", {"x": "Bx2x4x4"},
     "must be a 1D or 2D tensor"),
    ("nn.SpatialSubtractiveNormalization(3)(x)", {"x": "Bx2x4x4"}, "expects 3 input planes, got 2"),
    ("nn.SpatialDilatedConvolution(1, 1, 3, 3, 1, 1, 0, 0, 2, 2)(x)", {"x": "Bx1x4x4"},
     "is too small for a 3x3 kernel dilated to 5x5"),
    ("nn.SpatialDilatedConvolution(1, 1, 3, 3, 1, 1, 0, 0, 0)(x)", {"x": "Bx1x4x4"},
     "dilations must be >= 1"),
    ("nn.SpatialLPPooling(1, 0, 2, 2)(x)", {"x": "Bx1x4x4"}, "pnorm must be > 0"),
    ("nn.SpatialLPPooling(1, 2, 5, 2)(x)", {"x": "Bx1x4x4"}, "smaller than the 2x5 window"),
    ("nn.TemporalMaxPooling(5)(x)", {"x": "Bx4x3"}, "smaller than the kernel size (5)"),
    ("nn.TemporalMaxPooling(1)(x)", {"x": "Bx3"}, "the time dimension cannot be the batch"),
    ("nn.SpatialDropout(1)(x)", {"x": "Bx1x4x4"}, "p must be in [0, 1)"),
    ("nn.SpatialDropout()(x)", {"x": "Bx4"}, "expects a 3D (CxHxW) or 4D (NxCxHxW) input"),
    ("cudnn.SpatialSoftMax()(x)", {"x": "Bx4"}, "cudnn.SpatialSoftMax: graphc takes the cudnn modules"),
])
def test_errors(body, shapes, message, tmp_path):
    spec = "require 'cudnn'\n" + make_spec(body, shapes)
    _, text = compile_error(spec, shapes=shape_opts(shapes))
    assert message in text
    assert "spec.lua:" in text  # located
