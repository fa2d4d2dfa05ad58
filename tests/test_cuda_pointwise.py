"""CUDA target of ops/pointwise.py's ops beyond plain fused expressions: SoftMin, PReLU, Mul,
CMul, CAdd, Add, CMaxTable, CMinTable ('elem' kernels), SoftPlus and LogSigmoid (fused) and
Copy/Contiguous (no node), against the numpy target in host emulation (tests/cuda_host.py),
plus nvcc. Each spec covers many variants at once (one g++ build per spec and dtype)."""

import numpy as np
import pytest

from cuda_host import check_nvcc, compare_with_numpy_target


def gmodule(n_inputs, *outputs):
    """A gModule of inputs x1..xn and the given output expressions."""
    xs = [f"x{k + 1}" for k in range(n_inputs)]
    decl = "".join(f"local {x} = nn.Identity()()\n" for x in xs)
    return (f"require 'nngraph'\n{decl}"
            f"return nn.gModule({{{', '.join(xs)}}}, {{{', '.join(outputs)}}})\n")


def normal(shapes, dtype, scale=1.0, batch=3, seed=1):
    """Inputs of `shapes` (input name -> shape text), standard normal times `scale`."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal([batch if d == "B" else int(d) for d in s.split("x")]) * scale)
            .astype(dtype) for s in shapes.values()]


DTYPES = ["float64", "float32"]

# ---- SoftPlus, LogSigmoid (fused), Copy, Contiguous -----------------------------------------

SMOOTH = gmodule(2, "nn.SoftPlus()(x1)", "nn.SoftPlus(2)(nn.Copy()(x1))",
                 "nn.SoftPlus(0.5)(nn.Contiguous()(x1))", "nn.LogSigmoid()(x1)",
                 "nn.LogSigmoid()(nn.SoftPlus(3)(x1))", "nn.SoftPlus()(x2)", "nn.LogSigmoid()(x2)")
SMOOTH_SHAPES = {"input1": "Bx4x5", "input2": "7"}


@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus_logsigmoid(dtype, host):
    # x1 * 15: both sides of SoftPlus's threshold (beta x > 20); x2 (unbatched): no overflow
    x1 = normal(SMOOTH_SHAPES, dtype, 15)[0]
    x2 = np.array([-800, -30, -1e-3, 0, 2, 30, 800], dtype)
    compare_with_numpy_target(SMOOTH, SMOOTH_SHAPES, dtype, inputs=[x1, x2])


# ---- SoftMin --------------------------------------------------------------------------------

# the softmax axis: 2-D dim 2, 3-D (CxHxW) dim 1 (B for a Bx4x5 batch), 4-D dim 2, 1-D all
SOFTMIN_SHAPES = {"input1": "Bx5", "input2": "Bx3x4x5", "input3": "3x4x5", "input4": "4x5",
                  "input5": "7", "input6": "Bx4x5", "input7": "Bx6"}
SOFTMIN = gmodule(7, "nn.SoftMin()(nn.Tanh()(x1))", "nn.SoftMin()(x1)", "nn.SoftMin()(x2)",
                  "nn.SoftMin()(x3)", "nn.SoftMin()(x4)", "nn.SoftMin()(x5)", "nn.SoftMin()(x6)",
                  "nn.SoftMin()(x7)")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmin(dtype, host):
    xs = normal(SOFTMIN_SHAPES, dtype)
    xs[-1] *= 50  # exp(-x) alone would overflow: shifted by the row's min, as numpy
    compare_with_numpy_target(SOFTMIN, SOFTMIN_SHAPES, dtype, inputs=xs)


# ---- PReLU ----------------------------------------------------------------------------------

# shared weight (2-D, 3-D); one per plane: 2-D and 4-D batches (a size-1 dim too), 1-D
# (the plane dim is dim 1), 3-D (dim 2)
PRELU_SHAPES = {"input1": "Bx4x5", "input2": "Bx4", "input3": "Bx3x4x5", "input4": "4",
                "input5": "3x4x5", "input6": "Bx3x1x5"}
PRELU = gmodule(6, "nn.PReLU()(x1)", "nn.PReLU(0)(x5)", "nn.PReLU(4)(x2)", "nn.PReLU(3)(x3)",
                "nn.PReLU(4)(x4)", "nn.PReLU(4)(x5)", "nn.PReLU(3)(x6)")


@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu(dtype, host):
    # two steps: the parameter gradients add up
    compare_with_numpy_target(PRELU, PRELU_SHAPES, dtype, steps=2)


# ---- Mul, CMul, CAdd, Add -------------------------------------------------------------------

PARAM_SHAPES = {"input1": "3x4", "input2": "5", "input3": "Bx4x5", "input4": "3x4x5",
                "input5": "Bx1x5", "input6": "Bx2x3x2", "input7": "Bx4", "input8": "Bx2x3"}
PARAM_OPS = [
    "nn.Mul()(x3)", "nn.Mul()(x1)",
    # the same element count as the input: elementwise
    "nn.CMul(3, 4)(x1)", "nn.CAdd(12)(x1)", "nn.CMul(5)(x2)", "nn.CAdd(5)(x2)",
    # as many dims: size-1 dims broadcast (also over B)
    "nn.CMul(1, 4, 1)(x3)", "nn.CAdd(1, 1, 1)(x3)", "nn.CMul(3, 1, 5)(x4)", "nn.CAdd(1, 4, 1)(x4)",
    "nn.CMul(1, 1, 5)(x5)", "nn.CAdd(1, 1, 5)(x5)",
    # else applied to each row
    "nn.CMul(4, 5)(x3)", "nn.CAdd(20)(x3)", "nn.CMul(4)(x1)", "nn.CAdd(4)(x1)",
    "nn.CMul(3, 2, 2)(x6)", "nn.CAdd(12)(x6)",
    # a one-element parameter meets every element, in each of the cases above
    "nn.CMul(1, 1)(x4)", "nn.CAdd(1)(x3)", "nn.CMul(1, 1, 1)(x6)", "nn.CAdd(1, 1)(x2)",
    "nn.CMul(1)(x7)", "nn.CAdd(1, 1, 1)(x4)",
    # Add: per sample (a Bx2x3 batch as Bx6; 1-D input elementwise; 2-D per row), scalar
    "nn.Add(4)(x7)", "nn.Add(6)(x8)", "nn.Add(5)(x2)", "nn.Add(4)(x1)",
    "nn.Add(6, true)(x8)", "nn.Add(1, true)(x7)", "nn.Add(3, true)(x1)",
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_mul_cmul_cadd_add(dtype, host):
    compare_with_numpy_target(gmodule(8, *PARAM_OPS), PARAM_SHAPES, dtype, steps=2)


# ---- CMaxTable, CMinTable -------------------------------------------------------------------

SELECT_SHAPES = {"input1": "Bx4", "input2": "Bx4", "input3": "Bx2x2", "input4": "5"}
SELECT = gmodule(4, "nn.CMaxTable()({x1, x2})", "nn.CMinTable()({x1, x2, x3})",
                 "nn.CMaxTable()({nn.Tanh()(x2), x3, x1})",
                 "nn.CMaxTable()({x4, nn.Identity()(x4)})", "nn.CMinTable()({x4, nn.Abs()(x4)})")


def test_cmax_cmin(host):
    compare_with_numpy_target(SELECT, SELECT_SHAPES, "float32")


def test_cmax_cmin_ties_nan(host):
    # small integers: many ties, won by the first input (value and gradient); a NaN wins, as
    # in np.argmax / np.argmin
    rng = np.random.default_rng(3)
    xs = [rng.integers(-1, 2, s).astype("float64") for s in [(3, 4), (3, 4), (3, 2, 2), (5,)]]
    xs[0][0, 1] = xs[1][1, 2] = xs[2][2, 1, 1] = xs[3][3] = np.nan
    compare_with_numpy_target(SELECT, SELECT_SHAPES, inputs=xs)


# ---- nvcc -----------------------------------------------------------------------------------

# one of each kernel kind: SoftMin's three, PReLU per plane, each parameter map, both selects
ALL = gmodule(
    1, "nn.LogSigmoid()(nn.SoftPlus(2)(nn.Copy()(nn.Contiguous()(x1))))", "nn.SoftMin()(x1)",
    "nn.PReLU(4)(x1)", "nn.Mul()(x1)", "nn.CMul(1, 4, 1)(x1)", "nn.CAdd(20)(x1)",
    "nn.CMaxTable()({x1, nn.Tanh()(x1), nn.Identity()(x1)})", "nn.CMinTable()({x1, nn.Tanh()(x1)})")


def test_nvcc(tmp_path):
    check_nvcc(ALL, {"input1": "Bx4x5"}, tmp_path)
