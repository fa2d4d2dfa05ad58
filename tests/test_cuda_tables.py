"""CUDA target of the table ops in ops/table.py (SplitTable, Stack, MixtureTable; SelectTable,
NarrowTable and FlattenTable, which make no IR node) against the numpy target in host
emulation (tests/cuda_host.py), plus nvcc."""

import re

import numpy as np
import pytest

from cuda_host import check_nvcc, compare_with_numpy_target


# SplitTable: a positive, a negative and an nInputDims dim; outputs with no gradient (t's 1st
# and 3rd, left out by SelectTable); batched and unbatched inputs. Stack of batched steps
# (3xBx4: B second, as --unroll's per-step outputs) and of unbatched ones.
SPLIT_STACK = """
require 'nngraph'
local x = nn.Identity()()  -- Bx3x4
local y = nn.Identity()()  -- 4x2
local a, b, c = nn.SplitTable(2)(nn.Tanh()(x)):split(3)
local t = nn.SplitTable(-1)(x)
local u = nn.SplitTable(1, 2)(x)
local p, q = nn.SplitTable(-1)(y):split(2)
return nn.gModule({x, y}, {nn.Sigmoid()(a), b, nn.Max(1, 1)(c), nn.SelectTable(2)(t),
                           nn.SelectTable(-1)(t), nn.Stack()(u), nn.Stack()({nn.Tanh()(p), q})})
"""


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_split_stack(dtype, host):
    compare_with_numpy_target(SPLIT_STACK, {"input1": "Bx3x4", "input2": "4x2"}, dtype)


def test_split_unbatched(host):
    compare_with_numpy_target("""
        require 'nngraph'
        local x = nn.Identity()()
        local a, b, c = nn.SplitTable(1)(x):split(3)
        return nn.gModule({x}, {nn.Tanh()(a), b, c, nn.SelectTable(1)(nn.SplitTable(1, 1)(x))})
    """, {"input1": "3x4"})


def test_split_virtual_output_gradients(host):
    compare_with_numpy_target("""
        require 'nngraph'
        local x = nn.Identity()()
        local a, b, c = nn.SplitTable(2)(nn.Reshape(3, 2)(nn.Linear(4, 6)(x))):split(3)
        local t = nn.FlattenTable()(nn.Identity()({a, nn.Identity()({b, c})}))
        local s = nn.CAddTable()(nn.NarrowTable(2, 2)(t))
        return nn.gModule({x}, {nn.CMulTable()({s, nn.SelectTable(-3)(t)})})
    """, {"input1": "Bx4"})


# MixtureTable: experts as a table and as one tensor; a batched (Bxn), a 1D (n) and a fixed
# 2D (2xn) gater; a 1D gater with batched experts (its gradient sums over the batch).
MIXTURES = """
require 'nngraph'
local g = nn.Identity()()   -- Bx3
local e1 = nn.Identity()()  -- Bx2x4
local e2 = nn.Identity()()
local e3 = nn.Identity()()
local et = nn.Identity()()  -- Bx3x4
local w = nn.Identity()()   -- 2
local v = nn.Identity()()   -- 3
local u1 = nn.Identity()()  -- 4
local u2 = nn.Identity()()
local u3 = nn.Identity()()
local ut = nn.Identity()()  -- 3x4
local h = nn.Identity()()   -- 2x3
local f1 = nn.Identity()()  -- 2x5
local f2 = nn.Identity()()
local f3 = nn.Identity()()
local ht = nn.Identity()()  -- 2x3x5
return nn.gModule({g, e1, e2, e3, et, w, v, u1, u2, u3, ut, h, f1, f2, f3, ht}, {
  nn.MixtureTable()({nn.SoftMax()(g), nn.Identity()({e1, e2, e3})}),
  nn.MixtureTable()({nn.Tanh()(g), et}),
  nn.MixtureTable()({w, nn.Identity()({nn.Tanh()(e1), e2})}),
  nn.MixtureTable()({v, nn.Identity()({u1, u2, u3})}),
  nn.MixtureTable()({nn.Tanh()(v), ut}),
  nn.MixtureTable()({h, nn.Identity()({f1, f2, f3})}),
  nn.MixtureTable()({nn.Tanh()(h), ht})})
"""
MIXTURE_SHAPES = {"input1": "Bx3", "input2": "Bx2x4", "input3": "Bx2x4", "input4": "Bx2x4",
                  "input5": "Bx3x4", "input6": "2", "input7": "3", "input8": "4", "input9": "4",
                  "input10": "4", "input11": "3x4", "input12": "2x3", "input13": "2x5",
                  "input14": "2x5", "input15": "2x5", "input16": "2x3x5"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mixture(dtype, host):
    compare_with_numpy_target(MIXTURES, MIXTURE_SHAPES, dtype)


# SelectTable, NarrowTable, FlattenTable: no IR node, so no code; the ops around them compile.
STRUCTURAL = """
require 'nngraph'
local t = nn.Identity()()
local f = nn.FlattenTable()(t)
local s = nn.CAddTable()(nn.NarrowTable(2, 2)(f))
return nn.gModule({t}, {nn.CMulTable()({s, nn.SelectTable(-3)(f)}),
                        nn.Tanh()(nn.SelectTable(-1)(nn.NarrowTable(1, -1)(f))),
                        nn.SelectTable(1)(nn.SelectTable(2)(t))})
"""


def test_structural(host):
    a, b, c, d = np.random.default_rng(1).standard_normal((4, 3, 4))
    compare_with_numpy_target(STRUCTURAL, {"input1": "{Bx4,{Bx4,Bx4},Bx4}"}, inputs=[[a, [b, c], d]])


def test_nvcc(tmp_path):
    src = check_nvcc("""
        require 'nngraph'
        local x = nn.Identity()()  -- Bx3x4
        local g = nn.Identity()()  -- Bx3
        local y = nn.Identity()()  -- 4x2
        local p, q = nn.SplitTable(-1)(y):split(2)
        return nn.gModule({x, g, y}, {
          nn.SelectTable(2)(nn.SplitTable(2)(x)),
          nn.MixtureTable()({g, x}),
          nn.MixtureTable()({g, nn.Identity()({nn.Sum(2)(x), nn.Max(2)(x), nn.Min(2)(x)})}),
          nn.Stack()({p, q})})
    """, {"input1": "Bx3x4", "input2": "Bx3", "input3": "4x2"}, tmp_path)
    for op in ("SplitTable", "MixtureTable", "Stack"):
        assert re.search(rf"^// .*  nn\.{op}\b", src, re.M), op  # its kernel's comment
