"""CUDA target ('elem' kernels) of the reductions and dimension shuffles in ops/reduce.py,
against the numpy target in host emulation (tests/cuda_host.py), plus nvcc."""
import shutil

import pytest

from cuda_host import HostBackend, check_nvcc, compare_with_numpy_target

import graphc_runtime.cuda as rt


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    assert shutil.which("g++"), "host emulation needs g++"
    old = rt.use_backend(HostBackend(tmp_path_factory.mktemp("cuda_reduce")))
    yield
    rt.use_backend(old)


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


def test_nvcc(tmp_path):
    check_nvcc(SUM_MEAN, {"input1": "Bx4x5"}, tmp_path)
