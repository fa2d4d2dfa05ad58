"""CUDA target ('elem' kernels and a fused pointwise rule) of the Torch7 image modules
(ops/padding_upsampling.py, ops/norm_dilated_lp.py, ReLU6, SpatialDropout), against the numpy
target in host emulation (tests/cuda_host.py), plus nvcc."""

import numpy as np
import pytest

from cuda_host import check_nvcc, compare_with_numpy_target


def _graph(*per_input):
    """A gModule with one input per argument (a list of module constructors), applying a new
    instance of each module to its input."""
    xs = ", ".join(f"x{k}" for k in range(len(per_input)))
    outs = ", ".join(f"({m})(x{k})" for k, mods in enumerate(per_input) for m in mods)
    return (f"require 'nngraph'\nrequire 'image'\nlocal {xs} = "
            f"{', '.join(['nn.Identity()()'] * len(per_input))}\n"
            f"return nn.gModule({{{xs}}}, {{{outs}}})\n")


# zero padding that crops, reflection up to size - 1, replication wider than the image;
# nearest upsampling; batched and CxHxW input
_PAD = [
    "nn.SpatialZeroPadding(1, 2, 3, 0)",
    "nn.SpatialZeroPadding(-1, 2, 1, -2)",
    "nn.SpatialReflectionPadding(3, 1, 2, 3)",
    "nn.SpatialReplicationPadding(5, 0, 1, 6)",
    "nn.SpatialUpSamplingNearest(3)",
    "nn.SpatialUpSamplingNearest(1)",
]
PAD = _graph(_PAD, _PAD)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_padding_upsampling(dtype, host):
    compare_with_numpy_target(PAD, {"input1": "Bx2x4x5", "input2": "3x4x4"}, dtype)


# LRN windows narrower and wider than the channels; subtractive normalization with the
# default 9x9 kernel (wider than the image), a 1D gaussian and a 2D kernel
_NORM = [
    "nn.SpatialCrossMapLRN(3, 0.5, 0.75, 2)",
    "nn.SpatialCrossMapLRN(7, 0.3)",
    "nn.SpatialCrossMapLRN(9, 0.2, 0.5, 1.5)",
    "nn.SpatialSubtractiveNormalization(5)",
    "nn.SpatialSubtractiveNormalization(5, image.gaussian1D(5))",
    "nn.SpatialSubtractiveNormalization(5, {{1, 0, 2}, {0.5, 1, 3}, {1, 1, 1}})",
]
NORM = _graph(_NORM, _NORM)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_normalization(dtype, host):
    compare_with_numpy_target(NORM, {"input1": "Bx5x4x6", "input2": "5x6x3"}, dtype)


# dilations and strides, padding, no bias; LP pooling p = 2 and 3 with overlapping and
# gapped windows (positive inputs: x^p of a negative x is NaN for fractional p)
_CONV = [
    "nn.SpatialDilatedConvolution(3, 2, 3, 2, 1, 2, 1, 0, 2, 3)",
    "nn.SpatialDilatedConvolution(3, 4, 2, 2, 2, 1, 2, 1):noBias()",
    "nn.SpatialDilatedConvolution(3, 2, 1, 1)",
]
_LP = [
    "nn.SpatialLPPooling(3, 2, 2, 2)",
    "nn.SpatialLPPooling(3, 3, 3, 2, 1, 2)",
    "nn.SpatialLPPooling(3, 2, 2, 3, 3, 1)",
]
CONV = _graph(_CONV, _CONV, [f"nn.Sequential():add(nn.Abs()):add({m})" for m in _LP])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dilated_conv_lp_pool(dtype, host):
    compare_with_numpy_target(CONV, {"input1": "Bx3x7x8", "input2": "3x6x9", "input3": "Bx3x7x8"},
                              dtype)


# temporal max pooling (gapped, overlapping, TxF), ReLU6 fused, spatial dropout training
# and evaluate
_TMAX = ["nn.TemporalMaxPooling(3)", "nn.TemporalMaxPooling(3, 2)", "nn.TemporalMaxPooling(2, 4)"]
TMAX = _graph(_TMAX, _TMAX, ["nn.ReLU6()", "nn.ReLU6(true)"])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_temporal_max_relu6(dtype, host):
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((3, 10, 4)).astype(dtype), rng.standard_normal((9, 3)).astype(dtype),
              (rng.standard_normal((3, 7)) * 5).astype(dtype)]
    compare_with_numpy_target(TMAX, {"input1": "Bx10x4", "input2": "9x3", "input3": "Bx7"}, dtype,
                              inputs=inputs)


DROPOUT = _graph(["nn.SpatialDropout(0.4)", "nn.SpatialDropout(0.3, true)"], ["nn.SpatialDropout()"])


@pytest.mark.parametrize("train", [True, False])
def test_spatial_dropout(train, host):
    compare_with_numpy_target(DROPOUT, {"input1": "Bx6x2x3", "input2": "5x2x2"}, "float64",
                              train=train, steps=2)


def test_nvcc(host, tmp_path):
    for text, shapes in ((PAD, {"input1": "Bx2x4x5", "input2": "3x4x4"}),
                         (NORM, {"input1": "Bx5x4x6", "input2": "5x6x3"}),
                         (CONV, {"input1": "Bx3x7x8", "input2": "3x6x9", "input3": "Bx3x7x8"}),
                         (TMAX, {"input1": "Bx10x4", "input2": "9x3", "input3": "Bx7"}),
                         (DROPOUT, {"input1": "Bx6x2x3", "input2": "5x2x2"})):
        check_nvcc(text, shapes, tmp_path)
