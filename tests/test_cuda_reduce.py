"""CUDA target ('elem' kernels) of the reductions and dimension shuffles in ops/reduce.py,
against the numpy target in host emulation (tests/cuda_host.py), plus nvcc."""

import re

import numpy as np
import pytest

from cuda_host import check_nvcc, compare_with_numpy_target


SUM_MEAN = """
require 'nngraph'
local x = nn.Identity()()
return nn.gModule({x}, {nn.Sum(2)(nn.Tanh()(x)), nn.Mean(3)(x), nn.Sum(2, nil, true, false)(x),
                        nn.Sum(-1)(nn.Sum(2)(x))})
"""


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sum_mean(dtype, host):
    compare_with_numpy_target(SUM_MEAN, {"input1": "Bx4x5"}, dtype)


def test_sum_mean_unbatched(host):
    compare_with_numpy_target("""
        require 'nngraph'
        local x = nn.Identity()()
        return nn.gModule({x}, {nn.Sum(1)(x), nn.Mean(1)(nn.Sum(2)(x))})
    """, {"input1": "3x4"})


# Max/Min (plain, negative dim, nInputDims), Transpose (pairs, chained, setNumInputDims),
# Replicate (middle, ndim, last), Squeeze (all, one dim, numInputDims, a dim not of size 1),
# Unsqueeze (plain, numInputDims, last), mixed with pointwise ops and with each other.
SHUFFLES = """
require 'nngraph'
local x = nn.Identity()()  -- Bx4x5
local v = nn.Identity()()  -- Bx4
local s = nn.Identity()()  -- Bx1x4x1
return nn.gModule({x, v, s}, {
  nn.Max(2)(nn.Tanh()(x)), nn.Min(-1)(x), nn.Max(1, 2)(x), nn.Min(1, 1)(v),
  nn.Transpose({2, 3})(x), nn.Transpose({1, 2}):setNumInputDims(2)(nn.Sigmoid()(x)),
  nn.Transpose({2, 3}, {3, 4})(nn.Replicate(2, 3)(x)),
  nn.Replicate(3, 2)(v), nn.Replicate(3, 1, 1)(nn.Tanh()(v)),
  nn.Squeeze()(s), nn.Squeeze(2)(s), nn.Max(2)(nn.Squeeze(1, 3)(s)), nn.Squeeze(3)(nn.Tanh()(x)),
  nn.Unsqueeze(2)(v), nn.Unsqueeze(1, 1)(nn.Max(3)(x)), nn.Sum(2)(nn.Unsqueeze(3)(v)),
  nn.Mean(2)(nn.Transpose({2, 3})(x))})
"""
SHUFFLE_SHAPES = {"input1": "Bx4x5", "input2": "Bx4", "input3": "Bx1x4x1"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_max_min_shuffles(dtype, host):
    compare_with_numpy_target(SHUFFLES, SHUFFLE_SHAPES, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_max_min_shuffles_unbatched(dtype, host):
    compare_with_numpy_target("""
        require 'nngraph'
        local x = nn.Identity()()  -- 5
        local m = nn.Identity()()  -- 3x4
        local s = nn.Identity()()  -- 1x4x1
        return nn.gModule({x, m, s}, {
          nn.Max()(x), nn.Min(-1)(nn.Tanh()(x)), nn.Max(2)(m), nn.Min(1)(m),
          nn.Transpose({1, 2})(m), nn.Replicate(2)(x), nn.Replicate(3, 2)(m),
          nn.Squeeze()(s), nn.Squeeze(3)(s), nn.Unsqueeze(1)(x), nn.Unsqueeze(3)(m)})
    """, {"input1": "5", "input2": "3x4", "input3": "1x4x1"}, dtype)


def test_max_min_ties_and_nan(host):
    # the first extreme wins (as numpy's argmax), and a NaN wins over numbers
    x = np.array([[[1, 3, 3, 0], [2, 2, 2, 2], [0, np.nan, 5, np.nan]]] * 2, dtype="float64")
    x[1] = -x[1]
    compare_with_numpy_target("""
        require 'nngraph'
        local x = nn.Identity()()
        return nn.gModule({x}, {nn.Max(3)(x), nn.Min(3)(x), nn.Max(2)(x), nn.Min(2)(x)})
    """, {"input1": "Bx3x4"}, inputs=[x])


def test_nvcc(tmp_path):
    src = check_nvcc("""
        require 'nngraph'
        local x = nn.Identity()()
        return nn.gModule({x}, {nn.Mean(-1)(x), nn.Max(2)(nn.Unsqueeze(1, 2)(x)),
                                nn.Transpose({2, 3})(nn.Squeeze(3)(x)), nn.Replicate(2, 3)(x)})
    """, {"input1": "Bx4x5"}, tmp_path)
    for op in ("Mean", "Max", "Transpose", "Replicate"):
        assert re.search(rf"^// .*  nn\.{op}\b", src, re.M), op  # its kernel's comment
