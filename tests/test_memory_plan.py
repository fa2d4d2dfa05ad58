"""The numpy backend's memory plan (graphc/backends/memory.py): which statements write into
scratch arrays, which arrays are reused, and that nothing a caller keeps is ever reused."""
from pathlib import Path

import numpy as np
import pytest

from graphc.backends.memory import plan_memory
from graphc.compiler import Options, compile_spec

ROOT = Path(__file__).resolve().parent.parent
ROW = ("B", 300)
SHAPES = {n: ROW for n in "xyabcdev"} | {"g": (300, 300)}


def slot_of(lines, name):
    """The scratch slot a rewritten `name = np.f(..., out=_scratch[k])` writes, else None."""
    for line in lines:
        if line.startswith(f"{name} = ") and "out=_scratch[" in line:
            return int(line.split("out=_scratch[")[1].split("]")[0])
    return None


def plan(lines, leaving=(), shapes=SHAPES):
    blocks, slots = plan_memory([lines], shapes, set(leaving))
    return blocks[0], slots


def test_a_dead_array_is_reused_and_operators_become_out_calls():
    lines, slots = plan(["a = x * y", "b = np.tanh(a)", "c = b + x", "d = c - 1"])
    assert lines[0] == "a = np.multiply(x, y, out=_scratch[0])"
    assert lines[1] == "b = np.tanh(a, out=_scratch[1])"
    assert slot_of(lines, "c") == 0  # a died at b's statement
    assert slot_of(lines, "d") == 1  # never the slot of its own operand c
    assert slots == [ROW, ROW]


def test_a_view_keeps_its_base_alive():
    lines, _ = plan(["a = x * y", "v = a[:, 0:2]", "b = x + y", "c = v * 2"])
    assert slot_of(lines, "a") is not None and slot_of(lines, "b") is not None
    assert slot_of(lines, "a") != slot_of(lines, "b")  # a is still read through v


def test_arrays_that_leave_the_call_and_their_bases_get_no_scratch():
    lines, slots = plan(["a = x * y", "v = a[:, 0:2]", "b = x + y"], leaving={"v", "b"})
    assert lines == ["a = x * y", "v = a[:, 0:2]", "b = x + y"] and slots == []


def test_unknown_shapes_rebinding_and_small_arrays_are_left_alone():
    src = ["a = x.reshape(-1) * 2", "e = x @ g", "e = e.reshape(3, -1)", "b = y[0] + 1"]
    lines, slots = plan(src)
    assert lines == src and slots == []
    small = {"x": ("B", 8), "a": ("B", 8)}
    assert plan(["a = x * 2"], shapes=small) == (["a = x * 2"], [])


def test_gradient_accumulation_multiplies_into_scratch():
    lines, slots = plan(["g += x.T @ y"])
    assert lines == ["rt.matmul_into(x.T, y, _scratch[0])", "g += _scratch[0]"]
    assert slots == [(300, 300)]


def test_matmul_into_multiplies_a_product_over_one_row(rng):
    from graphc_runtime import kernels as rt
    for rows in (1, 3):
        a, b = rng.standard_normal((rows, 5)), rng.standard_normal((rows, 4))
        out = np.empty((5, 4))
        assert rt.matmul_into(a.T, b, out) is out
        np.testing.assert_allclose(out, a.T @ b, rtol=1e-14)


def test_outputs_and_gradients_survive_later_calls(rng):
    src = compile_spec(str(ROOT / "samples" / "lstm.lua"),
                       Options(dtype="float64", defines={"input_size": 64, "rnn_size": 64})).source
    assert "out=_scratch[" in src
    ns = {}
    exec(compile(src, "lstm", "exec"), ns)
    m = ns["Model"](dtype="float64")

    def call(batch):
        xs = [rng.standard_normal((batch, 64)) for _ in range(3)]
        out = m.forward(*xs)
        grads = m.backward(tuple(xs), tuple(rng.standard_normal(o.shape) for o in out))
        return [a.copy() for a in out + grads], list(out + grads)

    first, first_arrays = call(5)
    for batch in (5, 7, 5):  # same and other batch sizes reuse or add scratch arrays
        call(batch)
    for kept, now in zip(first, first_arrays):
        np.testing.assert_array_equal(kept, now)
    assert sorted(m._scratch) == [("backward", 5), ("backward", 7), ("forward", 5), ("forward", 7)]
    assert m.clone_shared()._scratch == {}


def _both(spec, shapes, rng, *xs_kinds):
    """Forward and backward of `spec` with and without the plan (-O1 vs -O0), float64."""
    results = []
    for optimize in (True, False):
        res = compile_spec("inline.lua", Options(dtype="float64", optimize=optimize, shapes=shapes), text=spec)
        ns = {}
        exec(compile(res.source, "inline", "exec"), ns)
        m = ns["Model"](dtype="float64", seed=1)
        xs = [np.random.default_rng(3).standard_normal(s) if k == "float" else
              np.random.default_rng(3).integers(1, 11, s) for s, k in xs_kinds]
        out = m.forward(*xs)
        outs = out if isinstance(out, tuple) else (out,)
        grads = m.backward(tuple(xs), tuple(np.ones_like(o) for o in outs))
        grads = grads if isinstance(grads, tuple) else (grads,)
        results.append(([o.copy() for o in outs], [g for g in grads if g is not None],
                        m.getParameters()[1].copy(), res.source))
    return results


def test_a_loss_output_without_the_batch_dim_takes_the_batch_size_from_an_input(rng):
    """No output has B (a criterion's loss): the backward's scratch arrays are sized from
    an input (they were sized 0 and the backward failed)."""
    from graphc.ir.graph import B
    spec = """
x = nn.Identity()()
t = nn.Identity()()
h = nn.ReLU()(nn.Linear(20, 300)(x))
m = nn.gModule({x, t}, {nn.CrossEntropyCriterion()({nn.Linear(300, 10)(h), t})})
"""
    (fast, plain) = _both(spec, {"input1": (B, 20), "input2": (B,)}, rng, ((7, 20), "float"), ((7,), "index"))
    assert "_scratch_arrays(SCRATCH, 'backward', input1.shape[0])" in fast[3]
    for a, b in zip(fast[0] + fast[1] + [fast[2]], plain[0] + plain[1] + [plain[2]]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_a_spec_value_named_like_the_plan_constant_is_mangled(rng):
    from graphc.ir.graph import B
    spec = """
x = nn.Identity()()
SCRATCH = nn.Tanh()(nn.Linear(300, 300)(x))
m = nn.gModule({x}, {nn.Square()(SCRATCH)})
"""
    (fast, plain) = _both(spec, {"input1": (B, 300)}, rng, ((2, 300), "float"))
    assert "v_SCRATCH" in fast[3]
    np.testing.assert_allclose(fast[2], plain[2], rtol=1e-12, atol=1e-14)


OP_TESTS = [(mod, case) for mod in ("test_ops", "test_ops_more", "test_ops_torch7_image")
            for case in sorted(__import__(mod).CASES)]


@pytest.mark.parametrize("module, case", OP_TESTS, ids=[f"{m}-{c}" for m, c in OP_TESTS])
def test_every_op_against_torch_with_scratch_for_every_array(module, case, tmp_path, rng, monkeypatch):
    """The op tests' cases are small, so the plan would leave them to numpy: with the size
    threshold at 1, every candidate array goes to scratch, and each op's forward, input and
    parameter gradients (and their accumulation) still match PyTorch (the op-test harness's
    check, tests/op_harness.py, on the case tables of test_ops, test_ops_more and
    test_ops_torch7_image)."""
    from graphc.backends import memory
    from op_harness import check_forward_backward_vs_torch
    monkeypatch.setattr(memory, "MIN_ELEMENTS", 1)
    cases = __import__(module).CASES
    criteria = getattr(__import__(module), "CRITERIA", ())
    check_forward_backward_vs_torch(cases[case], tmp_path, rng, case.startswith(criteria))
