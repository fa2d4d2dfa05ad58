"""CUDA target ('elem' kernels) of SpatialAveragePooling, SpatialFullConvolution and
TemporalConvolution (ops/avgpool_fullconv_temporal.py), against the numpy target in host emulation
(tests/cuda_host.py), plus nvcc."""

import pytest

from cuda_host import check_nvcc, compare_with_numpy_target


def _graph(*per_input):
    """A gModule with one input per argument (a list of module constructors), applying a new
    instance of each module to its input."""
    xs = ", ".join(f"x{k}" for k in range(len(per_input)))
    outs = ", ".join(f"({m})(x{k})" for k, mods in enumerate(per_input) for m in mods)
    return (f"require 'nngraph'\nlocal {xs} = {', '.join(['nn.Identity()()'] * len(per_input))}\n"
            f"return nn.gModule({{{xs}}}, {{{outs}}})\n")


# every divisor rule: no padding, padding counted / not counted, ceil-mode windows that
# overhang the padded input (and, with no padding, the input); batched and CxHxW input
_AVG = [
    "nn.SpatialAveragePooling(2, 2)",
    "nn.SpatialAveragePooling(3, 2, 2, 1, 1, 1)",
    "nn.SpatialAveragePooling(3, 2, 2, 1, 1, 1):setCountExcludePad()",
    "nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1):ceil()",
    "nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1):ceil():setCountExcludePad()",
    "nn.SpatialAveragePooling(2, 3, 2, 2):ceil()",
    "nn.SpatialAveragePooling(2, 2, 3, 3):ceil()",
]
AVG = _graph(_AVG, _AVG)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_avg_pool(dtype, host):
    compare_with_numpy_target(AVG, {"input1": "Bx2x7x6", "input2": "2x6x7"}, dtype)


# stride 1 and > 1, padding, adj (output padding), no bias; paddings so large that some
# weights and input pixels reach no output cell; batched, CxHxW and a fixed batch of 2
_FULL = [
    "nn.SpatialFullConvolution(2, 3, 3, 3)",
    "nn.SpatialFullConvolution(2, 3, 3, 4, 2, 3, 1, 1, 1, 2)",
    "nn.SpatialFullConvolution(2, 2, 2, 3, 3, 2, 0, 1, 2, 0):noBias()",
    "nn.SpatialFullConvolution(2, 1, 5, 5, 1, 1, 2, 2)",
    "nn.SpatialFullConvolution(2, 2, 5, 4, 2, 2, 3, 2, 1, 1)",
]
FULL = _graph(_FULL, _FULL, _FULL)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_full_conv(dtype, host):
    compare_with_numpy_target(FULL, {"input1": "Bx2x4x3", "input2": "2x3x4", "input3": "2x2x1x2"},
                              dtype)


# stride 1 and > 1, a stride that leaves trailing frames unused; BxTxF and TxF input; and
# kW = dW = 1 on a BxF input (B frames: the time dim is the batch dim)
_TEMPORAL = [
    "nn.TemporalConvolution(4, 3, 3)",
    "nn.TemporalConvolution(4, 2, 2, 3)",
    "nn.TemporalConvolution(4, 5, 1, 2)",
]
TEMPORAL = _graph(_TEMPORAL, _TEMPORAL, ["nn.TemporalConvolution(4, 3, 1)"])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_temporal_conv(dtype, host):
    compare_with_numpy_target(TEMPORAL, {"input1": "Bx8x4", "input2": "7x4", "input3": "Bx4"},
                              dtype)


ALL = """
require 'nngraph'
local x = nn.Identity()()
local t = nn.Identity()()
local p = nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1):ceil():setCountExcludePad()(x)
local f = nn.SpatialFullConvolution(2, 3, 3, 4, 2, 3, 1, 1, 1, 2)(nn.Tanh()(p))
return nn.gModule({x, t}, {f, nn.TemporalConvolution(4, 3, 3, 2)(nn.Tanh()(t))})
"""


def test_all_together(host):
    compare_with_numpy_target(ALL, {"input1": "Bx2x7x6", "input2": "Bx9x4"}, "float32")


def test_nvcc(tmp_path):
    check_nvcc(ALL, {"input1": "Bx2x7x6", "input2": "Bx9x4"}, tmp_path)
