"""CUDA target ('elem' kernels) of the criteria in ops/criterion.py, against the numpy target
in host emulation (tests/cuda_host.py), plus nvcc."""

import numpy as np
import pytest

from cuda_host import check_nvcc, compare_with_numpy_target, load_text


# The prediction x and a target t of the same element count but another shape; Tanh on t
# makes a computed target (its zero gradient flows back), ReLU gives KL some t = 0, Sigmoid
# makes probabilities for BCE. Every criterion with sizeAverage true and false.
REGRESSION = """
require 'nngraph'
local x = nn.Identity()()
local t = nn.Identity()()
local px, pt = nn.Sigmoid()(x), nn.Sigmoid()(t)
local out = {}
for _, sa in ipairs({true, false}) do
  table.insert(out, nn.MSECriterion(sa)({x, t}))
  table.insert(out, nn.AbsCriterion(sa)({x, nn.Tanh()(t)}))
  table.insert(out, nn.SmoothL1Criterion(sa)({x, t}))
  table.insert(out, nn.DistKLDivCriterion(sa)({x, nn.ReLU()(t)}))
  table.insert(out, nn.BCECriterion(nil, sa)({px, pt}))
  table.insert(out, nn.BCECriterion(WEIGHTS, sa)({px, pt}))
end
return nn.gModule({x, t}, out)
"""


def regression(n_weights):
    return REGRESSION.replace("WEIGHTS", "{" + ", ".join(str(0.5 + 0.25 * k)
                                                          for k in range(n_weights)) + "}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_regression_batched(dtype, host):
    compare_with_numpy_target(regression(6), {"input1": "Bx6", "input2": "Bx2x3"}, dtype, batch=4)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_regression_unbatched(dtype, host):
    compare_with_numpy_target(regression(3), {"input1": "2x3", "input2": "6"}, dtype)


EDGES = """
require 'nngraph'
local x = nn.Identity()()
local t = nn.Identity()()
return nn.gModule({x, t}, {nn.AbsCriterion(false)({x, t}), nn.SmoothL1Criterion()({x, t}),
                           nn.BCECriterion()({x, t}), nn.BCECriterion({1, 2, 3}, false)({x, t})})
"""


def test_edges(host):
    # x = t: Abs's gradient is +scale; |x - t| = 1: SmoothL1's linear branch; probabilities
    # 0 and 1: BCE's eps keeps logs and gradients finite, as in numpy
    x = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.25]])
    t = np.array([[0.0, 0.0, 0.5], [0.0, 1.0, 1.0]])
    compare_with_numpy_target(EDGES, {"input1": "Bx3", "input2": "Bx3"}, inputs=[x, t])


# Class criteria share x (rows of 4 scores) and the 1-based targets t: weights with a zero
# and a negative one make the total weight 0 or negative for some targets; ignoreIndex 3
# and 2 skip rows (every row for some targets).
CLASS = """
require 'nngraph'
local x = nn.Identity()()
local t = nn.Identity()()
return nn.gModule({x, t}, {
  nn.ClassNLLCriterion()({x, t}),
  nn.ClassNLLCriterion(nil, false)({x, t}),
  nn.ClassNLLCriterion({1, 0.5, 2, 0.25})({x, t}),
  nn.ClassNLLCriterion({1, 0, 2, -1}, false, 3)({x, t}),
  nn.ClassNLLCriterion({1, 0, 2, -1}, true, 3)({x, t}),
  nn.ClassNLLCriterion(nil, true, 2)({x, t}),
  nn.CrossEntropyCriterion()({x, t}),
  nn.CrossEntropyCriterion({2, 0, 0.5, 3}, false)({x, t}),
  nn.CrossEntropyCriterion({2, 0, 0.5, -3})({nn.Tanh()(x), t}),
})
"""


def _scores(seed, shape, dtype):
    return (3 * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


# [2, 1, 3, 2, 4]: the weighted ClassNLLs' total weight is 0, the last CrossEntropy's -0.5;
# [2, 2, 2, 2, 2]: every row ignored by ClassNLL(nil, true, 2), total weight 0 for the
# weighted ones
@pytest.mark.parametrize("dtype,t", [("float64", [2, 1, 3, 2, 4]), ("float64", [2, 2, 2, 2, 2]),
                                     ("float32", [2, 1, 3, 2, 4])])
def test_class_batched(dtype, t, host):
    compare_with_numpy_target(CLASS, {"input1": "Bx4", "input2": "B"}, dtype,
                              inputs=[_scores(1, (5, 4), dtype), np.array(t)])


# 2: total weight 0, ignored by one; 4: a negative total weight
@pytest.mark.parametrize("dtype,t", [("float64", 2), ("float32", 4)])
def test_class_unbatched(dtype, t, host):
    compare_with_numpy_target(CLASS, {"input1": "4", "input2": "1"}, dtype,
                              inputs=[_scores(2, (4,), dtype), np.array([t])])


# The default ignoreIndex -100 (CrossEntropy's always) skips rows without a range error.
IGNORED = """
require 'nngraph'
local x = nn.Identity()()
local t = nn.Identity()()
return nn.gModule({x, t}, {nn.ClassNLLCriterion({1, 2, 3})({x, t}),
                           nn.CrossEntropyCriterion()({x, t})})
"""


def test_class_ignore_index_default(host):
    compare_with_numpy_target(IGNORED, {"input1": "Bx3", "input2": "B"},
                              inputs=[_scores(3, (4, 3), "float64"), np.array([-100, 2, 3, -100])])


def _errors(spec, shapes, inputs):
    """For each of `inputs` (argument lists), the ValueError messages of the numpy and the
    CUDA target's forward."""
    out = []
    models = [load_text(spec, shapes, target).Model(dtype="float64")
              for target in ("numpy", "cuda")]
    for args in inputs:
        msgs = []
        for m in models:
            with pytest.raises(ValueError) as e:
                m.forward(*args)
            msgs.append(str(e.value))
        out.append(msgs)
    return out


def test_class_target_out_of_range(host):
    x = np.zeros((4, 3))
    targets = ([1, 4, 0, 2], [0, 9, 2, 1], [-100, 3, 3, -1])
    for ref, got in _errors(IGNORED, {"input1": "Bx3", "input2": "B"},
                            [[x, np.array(t)] for t in targets]):
        assert got == ref and "is out of range 1..3 (class indices are 1-based)" in got
    one = IGNORED.replace("nn.ClassNLLCriterion({1, 2, 3})({x, t}),", "")  # CrossEntropy's
    [(ref, got)] = _errors(one, {"input1": "Bx3", "input2": "B"}, [[x, np.array([1, 2, 3, 4])]])
    assert got == ref and "nn.CrossEntropyCriterion (targets input2): target 4" in got


def test_bce_input_out_of_range(host):
    for ref, got in _errors(EDGES, {"input1": "Bx3", "input2": "Bx3"},
                            [[np.array(x), np.full((2, 3), 0.5)]
                             for x in ([[0.5, 1.5, 0], [0.2, -0.25, 1]],
                                       [[0.5, 0.5, 0.5], [np.nan, 0.1, 2]])]):
        assert got == ref and "input value should be between 0~1" in got


# Every criterion once (weights and sizeAverage variants), for nvcc.
ALL = """
require 'nngraph'
local x = nn.Identity()()
local t = nn.Identity()()
local c = nn.Identity()()
local px, pt = nn.Sigmoid()(x), nn.Sigmoid()(t)
return nn.gModule({x, t, c}, {
  nn.MSECriterion()({x, t}), nn.AbsCriterion(false)({x, t}), nn.SmoothL1Criterion()({x, t}),
  nn.DistKLDivCriterion()({x, t}), nn.BCECriterion()({px, pt}),
  nn.BCECriterion({1, 2, 3, 4}, false)({px, pt}),
  nn.ClassNLLCriterion()({x, c}), nn.ClassNLLCriterion({1, 2, 3, 4}, false, 2)({x, c}),
  nn.CrossEntropyCriterion()({x, c}), nn.CrossEntropyCriterion({1, 2, 3, 4}, false)({x, c}),
})
"""


def test_nvcc(tmp_path):
    check_nvcc(ALL, {"input1": "Bx4", "input2": "Bx2x2", "input3": "B"}, tmp_path)
