"""CUDA target ('elem' kernels) of LookupTable, OneHot (ops/lookup.py), Dropout and
(Spatial)BatchNormalization (ops/regularize.py), against the numpy target in host emulation
(tests/cuda_host.py), plus nvcc."""

import numpy as np
import pytest

from cuda_host import (assert_close, check_nvcc, compare_with_numpy_target, host_array,
                       load_text)


def _module(body):
    return f"require 'nngraph'\nlocal x = nn.Identity()()\nreturn nn.gModule({{x}}, {{{body}}})\n"


# ---- LookupTable, OneHot ----------------------------------------------------------------------

LOOKUP = """
require 'nngraph'
local i, j = nn.Identity()(), nn.Identity()()
return nn.gModule({i, j}, {nn.LookupTable(7, 4)(i), nn.LookupTable(7, 3, 2)(i), nn.OneHot(7)(i),
                           nn.LookupTable(7, 3, 2)(j), nn.OneHot(7)(j)})
"""
IDX = np.array([[1, 2, 7, 2, 5], [3, 3, 3, 1, 2], [7, 6, 2, 4, 1]])  # repeats, padding row 2
IDX1 = np.array([2, 2, 7, 1, 3, 2])  # unbatched


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lookup_onehot(dtype, host):
    compare_with_numpy_target(LOOKUP, {"input1": "Bx5", "input2": "6"}, dtype, inputs=[IDX, IDX1])


@pytest.mark.parametrize("op", ["LookupTable", "OneHot"])
@pytest.mark.parametrize("bad", [8, 0])
def test_index_out_of_range(op, bad, host):
    # the same error, naming the module, from both targets
    spec = _module("nn.LookupTable(7, 4)(x)" if op == "LookupTable" else "nn.OneHot(7)(x)")
    idx = IDX.copy()
    idx[1, 3] = bad
    msgs = []
    for target in ("numpy", "cuda"):
        model = load_text(spec, {"input1": "Bx5"}, target).Model()
        with pytest.raises(ValueError) as e:
            model.forward(idx)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1] == (f"nn.{op} (input input1): index {bad} is out of range 1..7 "
                                  "(indices are 1-based) at position [1, 3]")


@pytest.mark.parametrize("op", ["LookupTable", "OneHot"])
def test_float_indices(op, host):
    # Torch's convention: floats holding integers are indices; both targets take them and
    # refuse a fraction with the same error
    spec = _module("nn.LookupTable(7, 4)(x)" if op == "LookupTable" else "nn.OneHot(7)(x)")
    outs, msgs = [], []
    for target in ("numpy", "cuda"):
        model = load_text(spec, {"input1": "Bx5"}, target).Model(dtype="float64")
        outs.append(host_array(model.forward(IDX.astype(np.float32))))
        np.testing.assert_array_equal(outs[-1], host_array(model.forward(IDX)))
        bad = IDX.astype(np.float64)
        bad[0, 2] = 2.5
        with pytest.raises(ValueError) as e:
            model.forward(bad)
        msgs.append(str(e.value))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert msgs[0] == msgs[1] == ("input 'input1': index 2.5 at position [0, 2] is not a whole "
                                  "number (float indices must hold integers)")


# ---- Dropout ----------------------------------------------------------------------------------

DROPOUT = """
require 'nngraph'
local x, u = nn.Identity()(), nn.Identity()()
return nn.gModule({x, u}, {nn.Dropout(0.3)(nn.Tanh()(x)), nn.Dropout(0)(x), nn.Dropout(0.4, true)(x),
                           nn.Dropout(0, true)(x), nn.Dropout(0.5, false, false, true)(x),
                           nn.Dropout(0.3)(u), nn.Dropout(0, false, false, true)(x),
                           nn.Dropout(0.2, true, false, true)(u)})
"""


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("train", [True, False])
def test_dropout(dtype, train, host):
    # two steps: both targets draw the same masks from the same RNG, step after step
    ref, cuda = compare_with_numpy_target(DROPOUT, {"input1": "Bx6", "input2": "4x5"}, dtype,
                                          train=train, steps=2)
    out = cuda.forward(np.ones((3, 6), dtype), np.ones((4, 5), dtype))
    assert ((host_array(out[0]) == 0).any() and (host_array(out[5]) == 0).any()) == train


# ---- BatchNormalization, SpatialBatchNormalization ---------------------------------------------

# 2-D (batched, fixed batch), 4-D, 3-D (CxHxW: several channels, one pixel, one channel),
# affine or not, and an input that is a fused intermediate (kept for the backward)
BN = """
require 'nngraph'
local x1, x2, x3, x4, x5, x6 = nn.Identity()(), nn.Identity()(), nn.Identity()(), nn.Identity()(),
                               nn.Identity()(), nn.Identity()()
return nn.gModule({x1, x2, x3, x4, x5, x6}, {
  nn.BatchNormalization(4)(nn.Tanh()(x1)), nn.BatchNormalization(4, 1e-3, 0.2, false)(x1),
  nn.SpatialBatchNormalization(3)(x2), nn.SpatialBatchNormalization(3, 1e-5, 0.1, false)(x2),
  nn.SpatialBatchNormalization(3)(nn.ReLU()(nn.Tanh()(x2))),
  nn.SpatialBatchNormalization(3, 1e-4, 0.3)(x3), nn.SpatialBatchNormalization(3)(x4),
  nn.BatchNormalization(4)(x5), nn.SpatialBatchNormalization(1)(x6)})
"""
BN_SHAPES = {"input1": "Bx4", "input2": "Bx3x2x5", "input3": "3x4x5", "input4": "3x1x1",
             "input5": "5x4", "input6": "1x4x5"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch", [3, 1])
def test_batchnorm_train(dtype, batch, host):
    # two steps: the running statistics (buffers) carry over and are compared. A batch of one
    # normalizes with the running statistics and leaves them alone.
    compare_with_numpy_target(BN, BN_SHAPES, dtype, batch=batch, steps=2)


def test_batchnorm_evaluate(host):
    ref, cuda = compare_with_numpy_target(BN, BN_SHAPES, steps=1)  # moves the running stats
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal([3 if d == "B" else d for d in s]) for _, s, _ in ref.INPUTS]
    for m in (ref, cuda):
        m.evaluate()
    gy = tuple(rng.standard_normal(np.shape(o)) for o in ref.forward(*xs))

    def compare(what):
        outs = [m.forward(*xs) for m in (ref, cuda)]
        for k, (a, b) in enumerate(zip(*outs)):
            assert_close(a, b, "float64", f"{what}: output {k + 1}")
        if what.startswith("train"):  # the backward uses the statistics its forward used
            for m in (ref, cuda):
                m.evaluate()
        grads = [m.backward(tuple(xs), gy) for m in (ref, cuda)]
        for k, (a, b) in enumerate(zip(*grads)):
            assert_close(a, b, "float64", f"{what}: gradient of input {k + 1}")
        assert_close(ref.getParameters()[1], cuda.getParameters()[1], "float64",
                     f"{what}: parameter gradients")
        for a, b in zip(ref._buffers, cuda._buffers):
            assert_close(a, b, "float64", f"{what}: buffers")

    compare("evaluate")
    for m in (ref, cuda):
        m.training()
    compare("train forward, evaluate backward")


# ---- nvcc -------------------------------------------------------------------------------------

ALL = """
require 'nngraph'
local i, x, v, c = nn.Identity()(), nn.Identity()(), nn.Identity()(), nn.Identity()()
return nn.gModule({i, x, v, c}, {nn.LookupTable(10, 8, 1)(i), nn.OneHot(10)(i),
                                 nn.Dropout(0.2)(nn.SpatialBatchNormalization(4)(x)),
                                 nn.BatchNormalization(6, 1e-5, 0.1, false)(v),
                                 nn.SpatialBatchNormalization(3)(c)})
"""


def test_nvcc(tmp_path):
    check_nvcc(ALL, {"input1": "Bx5", "input2": "Bx4x3x5", "input3": "Bx6", "input4": "3x4x5"}, tmp_path)


def test_spatial_batchnorm_of_1x1_images(host):
    """4-D input with H = W = 1 (a U-net's bottleneck): the per-(row, channel) partial sums
    must cover one row each, not the whole channel (found by the corpus U-net)."""
    for train in (True, False):
        compare_with_numpy_target("""
            require 'nn'
            return nn.Sequential():add(nn.SpatialBatchNormalization(3)):add(nn.Tanh())
        """, {"input1": "Bx3x1x1"}, batch=4, train=train, steps=2)
