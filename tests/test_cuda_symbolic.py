"""Symbolic batch dims (B*k) on the CUDA target, in host emulation: every case of
test_symbolic_shapes.py (View's -1 and setNumInputDims folds, Reshape, nn.Bottle), a
model with B*k outputs and B*k scratch-sized arrays, a loss over folded rows, and
BatchNormalization and Dropout inside a Bottle, against the numpy target (forward,
input and parameter gradients), float64 and float32."""
import numpy as np
import pytest

from cuda_host import compare_with_numpy_target
from test_symbolic_shapes import CASES, FOLD, SEQUENCE_LOSS, WIDE, make_spec


@pytest.mark.parametrize("case", sorted(CASES))
def test_case_matches_the_numpy_target(case, host):
    body, shapes, _, _ = CASES[case]
    named = {f"input{i + 1}": s for i, s in enumerate(shapes.values())}
    compare_with_numpy_target(make_spec(body, shapes), named, name=case.lower())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("text,shape", [(FOLD, "Bx5x4"), (WIDE, "Bx5x64")], ids=["fold", "wide"])
def test_product_outputs_match_the_numpy_target(text, shape, dtype, host):
    for batch in (3, 1):
        compare_with_numpy_target(text, {"input1": shape}, dtype=dtype, batch=batch, name="fold")


def test_sequence_loss_matches_the_numpy_target(host):
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((3, 5, 4)), rng.integers(1, 7, (3, 5))]
    compare_with_numpy_target(SEQUENCE_LOSS, {"input1": "Bx5x4", "input2": "Bx5"}, inputs=inputs)


BOTTLED_BATCHNORM = """
local x = nn.Identity()()
local m = nn.Sequential():add(nn.Linear(4, 3)):add(nn.BatchNormalization(3)):add(nn.Dropout(0.3))
return nn.gModule({x}, {nn.Bottle(m)(x)})
"""


@pytest.mark.parametrize("train", [True, False])
def test_bottled_batchnorm_and_dropout_match_the_numpy_target(train, host):
    compare_with_numpy_target(BOTTLED_BATCHNORM, {"input1": "Bx5x4"}, train=train, steps=2)
