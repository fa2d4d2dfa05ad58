"""CUDA target ('elem' kernels) of the distance, indexing and padding ops in ops/distance.py
and the matrix products in ops/matrix.py, against the numpy target in host emulation
(tests/cuda_host.py), plus nvcc. Each spec puts many ops in one graph: one g++ build per
spec and dtype."""

import numpy as np
import pytest

from cuda_host import check_nvcc, compare_with_numpy_target, load_text


# ---- row ops: {x1, x2} of N or RxN -----------------------------------------------------------

ROW_OPS = """
    nn.CosineDistance()({a, b}), nn.DotProduct()({a, b}),
    nn.PairwiseDistance(1)({a, b}), nn.PairwiseDistance(2)({a, b}),
    nn.PairwiseDistance(3)({a, b}), nn.PairwiseDistance(0.7)({a, b}),
    nn.Normalize(2)(a), nn.Normalize(1)(a), nn.Normalize(math.huge)(b),
    nn.Normalize(3, 1e-3)(b), nn.Normalize(1.5)(a)"""
ROWS = """
require 'nngraph'
local a, b = nn.Identity()(), nn.Identity()()
return nn.gModule({a, b}, {%s,
    nn.Bilinear(5, 5, 3)({a, b}), nn.Bilinear(5, 5, 2, false)({a, nn.Tanh()(b)})})
""" % ROW_OPS
# single vectors a, b (N), and Bilinear (2D only) on c, d with a fixed row count
UNBATCHED_ROWS = """
require 'nngraph'
local a, b, c, d = nn.Identity()(), nn.Identity()(), nn.Identity()(), nn.Identity()()
return nn.gModule({a, b, c, d}, {%s,
    nn.Bilinear(5, 5, 3)({c, d}), nn.CosineDistance()({c, d}), nn.Normalize(math.huge)(d)})
""" % ROW_OPS


def row_inputs(rows, dtype):
    """x1, x2 with the edge cases: equal rows (distance 0), equal elements (a zero difference),
    and a tie for the largest abs value (Normalize(math.huge) keeps the first)."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, rows, 5))
    b[0] = a[0]
    b[1, 2] = a[1, 2]
    b[2, 1] = 3.0
    b[2, 3] = -3.0
    return [a.astype(dtype), b.astype(dtype)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rows_batched(dtype, host):
    compare_with_numpy_target(ROWS, {"input1": "Bx5", "input2": "Bx5"}, dtype,
                              inputs=row_inputs(3, dtype))


def test_rows_unbatched(host):
    c, d = row_inputs(4, "float64")
    compare_with_numpy_target(UNBATCHED_ROWS, {"input1": "5", "input2": "5", "input3": "4x5",
                                               "input4": "4x5"}, inputs=[c[1], d[2], c, d])


# ---- MM, MV --------------------------------------------------------------------------------------

# a 3x4, b 4x5 and their transposes at, bt; v (4) and w (3) vectors; all with a batch or not.
PRODUCTS = """
require 'nngraph'
local a, b, at, bt, v, w = nn.Identity()(), nn.Identity()(), nn.Identity()(), nn.Identity()(),
                           nn.Identity()(), nn.Identity()()
local ins, outs = {a, b, at, bt, v, w}, {
    nn.MM()({a, b}), nn.MM(true)({at, b}), nn.MM(false, true)({a, bt}), nn.MM(true, true)({at, bt}),
    nn.MV()({a, v}), nn.MV(true)({a, w})}
%s
return nn.gModule(ins, outs)
"""
# B as the rows of a 2D left operand r: the gradients of b, bt and v sum over it
BATCH_ROWS = """
local r = nn.Identity()()
table.insert(ins, r)
for _, y in ipairs({nn.MM()({r, b}), nn.MM(false, true)({r, bt}), nn.MV()({r, v})}) do
  table.insert(outs, y)
end
"""


def _products(batch):
    return {f"input{k + 1}": batch + s for k, s in enumerate(("3x4", "4x5", "4x3", "5x4", "4", "3"))}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_products_batched(dtype, host):
    compare_with_numpy_target(PRODUCTS % "", _products("Bx"), dtype)


def test_products_2d(host):
    compare_with_numpy_target(PRODUCTS % BATCH_ROWS, {**_products(""), "input7": "Bx4"})


# ---- Index, Padding ------------------------------------------------------------------------------

INDEX_PAD = """
require 'nngraph'
local x, i = nn.Identity()(), nn.Identity()()
return nn.gModule({x, i}, {%s})
"""
# Bx4x5: Index along dims 2 and 3; Padding with nInputDim 2 (dim shifted past B): pad before /
# after, index from the start / from the end, a value; and nInputDim 3 (no shift).
BATCHED = INDEX_PAD % """
    nn.Index(2)({x, i}), nn.Index(3)({nn.Tanh()(x), i}),
    nn.Padding(1, -2, 2)(x), nn.Padding(2, 3, 2, 1.5)(x), nn.Padding(1, 2, 2, -1, 2)(x),
    nn.Padding(2, -1, 2, 0, 3)(x), nn.Padding(3, 1, 3)(x)"""
# 4x5: Index along both dims, and along dim 1 by indices j with the batch dim (the output's
# batch comes from them); Padding without nInputDim
UNBATCHED = """
require 'nngraph'
local x, i, j = nn.Identity()(), nn.Identity()(), nn.Identity()()
return nn.gModule({x, i, j}, {
    nn.Index(1)({x, i}), nn.Index(2)({x, i}), nn.Index(1)({nn.Tanh()(x), j}),
    nn.Padding(1, -2)(x), nn.Padding(2, 3, nil, 1.5)(x), nn.Padding(1, 1, nil, -1, 3)(x),
    nn.Padding(2, -1, nil, 0, 5)(x)})
"""
IDX = np.array([2, 4, 2, 1, 2, 1])  # repeats add up in the gradient; 3 is never picked


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_index_padding_batched(dtype, host):
    x = np.random.default_rng(5).standard_normal((3, 4, 5)).astype(dtype)
    compare_with_numpy_target(BATCHED, {"input1": "Bx4x5", "input2": "6"}, dtype, inputs=[x, IDX])


def test_index_padding_unbatched(host):
    x = np.random.default_rng(5).standard_normal((4, 5))
    compare_with_numpy_target(UNBATCHED, {"input1": "4x5", "input2": "6", "input3": "B"},
                              inputs=[x, IDX, np.array([4, 1, 4, 2, 3])])


def test_index_out_of_range(host):
    m = load_text(INDEX_PAD % "nn.Index(1)({x, i})", {"input1": "4x5", "input2": "2"}, "cuda").Model()
    with pytest.raises(ValueError, match="out of range 1..4"):
        m.forward(np.zeros((4, 5)), np.array([1, 5]))


def test_nvcc(tmp_path):
    """Every op, with each distinct C code path once."""
    check_nvcc("""
        require 'nngraph'
        local a, b, x, i, m = nn.Identity()(), nn.Identity()(), nn.Identity()(), nn.Identity()(),
                              nn.Identity()()
        return nn.gModule({a, b, x, i, m}, {
            nn.CosineDistance()({a, b}), nn.DotProduct()({a, b}), nn.PairwiseDistance(1)({a, b}),
            nn.PairwiseDistance(2)({a, b}), nn.PairwiseDistance(3)({a, b}), nn.Normalize(2)(a),
            nn.Normalize(math.huge)(b), nn.Normalize(3)(b), nn.Normalize(1.5)(a),
            nn.Bilinear(5, 5, 3)({a, b}), nn.Index(2)({x, i}), nn.Padding(2, -1, 2, 0, 3)(x),
            nn.MM(true)({m, x}), nn.MV()({x, a}), nn.MM(false, true)({nn.Tanh()(m), m})})
    """, {"input1": "Bx5", "input2": "Bx5", "input3": "Bx4x5", "input4": "6", "input5": "Bx4x3"},
        tmp_path)
