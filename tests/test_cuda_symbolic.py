"""Symbolic batch dims (B*k) on the CUDA target, in host emulation: every case of
test_symbolic_shapes.py (View's -1 and setNumInputDims folds, Reshape, nn.Bottle) and a
model with B*k outputs and B*k scratch-sized arrays, against the numpy target (forward,
input and parameter gradients), float64 and float32."""
import pytest

from cuda_host import compare_with_numpy_target
from test_symbolic_shapes import CASES, FOLD, WIDE, make_spec


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
