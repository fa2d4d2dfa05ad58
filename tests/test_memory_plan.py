"""The numpy backend's memory plan (graphc/backends/memory.py): which statements write into
scratch arrays, which arrays are reused, and that nothing a caller keeps is ever reused."""
from pathlib import Path

import numpy as np

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
