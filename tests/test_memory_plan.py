"""The numpy target's memory plan (graphc/passes/memory.py), a pass over the IR: which values
are written into scratch arrays, which arrays are reused, that nothing a caller keeps is
ever reused, and the generated code that writes them (`out=`)."""
from pathlib import Path

import numpy as np
import pytest

from graphc.compiler import Options, compile_spec
from graphc.ir.graph import B
from graphc.passes.memory import plan_memory

ROOT = Path(__file__).resolve().parent.parent


def planned(body, optimize=True, shape=(B, 300)):
    """(graph, source) of `body` (Lua over the input x, setting `out`) compiled float64."""
    spec = f"local x = nn.Identity()()\n{body}\nreturn nn.gModule({{x}}, {{out}})\n"
    res = compile_spec("inline.lua", Options(dtype="float64", optimize=optimize,
                                             shapes={"input1": shape}), text=spec)
    return res.graph, res.source


def slot(g, name):
    """(part, k) of the forward value (node output) called `name`, or None."""
    values = [v for n in g.nodes + g.grad_nodes for v in n.outputs if v.name == name]
    assert len(values) == 1, name
    return g.memory.scratch.get(values[0])


def test_a_dead_array_is_reused_after_the_node_that_reads_it_last():
    g, src = planned("""
local a = nn.Linear(300, 300)(x)
local b = nn.Linear(300, 300)(x)
local s = nn.CAddTable()({a, b})
local t = nn.Linear(300, 300)(nn.Tanh()(s))
local out = nn.Tanh()(nn.CAddTable()({t, x}))""")
    assert [slot(g, n) for n in ("a", "b", "s")] == [
        ("forward", 0), ("forward", 1), ("forward", 2)]  # never the slot of its own operand
    assert slot(g, "t") == ("forward", 0)  # a and b died at s's node
    assert slot(g, "tanh1") is None and slot(g, "out") is None  # the backward reads them
    assert g.memory.slots["forward"] == [(B, 300)] * 3
    assert "a = np.matmul(input1, w_a_weight.T, out=_scratch[0])\n        a += w_a_bias" in src
    assert "s = np.add(a, b, out=_scratch[2])" in src


def test_a_view_keeps_its_base_alive():
    g, _ = planned("""
local a = nn.Linear(300, 600)(x)
local v = nn.Narrow(2, 1, 300)(a)
local b = nn.Linear(300, 600)(x)
local out = nn.Tanh()(nn.CAddTable()({v, nn.Narrow(2, 301, 300)(b)}))""")
    assert slot(g, "a") is not None and slot(g, "b") is not None
    assert slot(g, "a") != slot(g, "b")  # a is still read through v


def test_values_that_leave_the_call_and_their_bases_get_no_scratch():
    g, src = planned("""
local a = nn.Linear(300, 600)(x)
local s = nn.CAddTable()({a, nn.Linear(300, 600)(x)})
local out = nn.Narrow(2, 1, 300)(s)""")
    assert slot(g, "a") is not None
    assert slot(g, "s") is None  # the output is a view of it
    g, _ = planned("local out = nn.Linear(300, 300)(x)")
    assert slot(g, "out") is None  # the output itself


def test_small_arrays_and_O0_are_left_to_numpy():
    g, src = planned("local out = nn.Tanh()(nn.CAddTable()({nn.Linear(8, 31)(x), nn.Linear(8, 31)(x)}))",
                     shape=(B, 8))
    assert g.memory.scratch == {} and "_scratch" not in src  # 31 and 8 x 31 < MIN_ELEMENTS
    g, src = planned("local out = nn.Tanh()(nn.CAddTable()({nn.Linear(300, 300)(x), x}))", optimize=False)
    assert g.memory is None and "_scratch" not in src


def test_gradient_accumulation_multiplies_into_scratch_freed_at_once():
    g, src = planned("local h = nn.Tanh()(nn.Linear(300, 300)(x))\nlocal out = nn.Tanh()(nn.Linear(300, 300)(h))")
    grads = [(g.params[i].name, g.memory.scratch.get(v)) for i, v in g.param_grads]
    k = g.memory.slots["backward"].index((300, 300))
    assert grads == [("linear2.weight", ("backward", k)), ("linear2.bias", None),
                     ("linear1.weight", ("backward", k)), ("linear1.bias", None)]  # one slot
    # (the `else:` branch: the buffer is not pending zero, tests/test_lazy_zero.py)
    assert f"rt.matmul_into(grad_linear2.T, h, _scratch[{k}])\n            g_linear2_weight += _scratch[{k}]" in src


def test_the_pass_is_pure_and_deterministic():
    g, _ = planned("local out = nn.Tanh()(nn.CAddTable()({nn.Linear(300, 300)(x), x}))")
    plain = g.__class__(**{**g.__dict__, "memory": None})
    again = plan_memory(plain)
    assert plain.memory is None and again.nodes is plain.nodes
    assert again.memory == plan_memory(plain).memory == g.memory


def test_the_plan_reads_the_ir_not_generated_text():
    text = (ROOT / "graphc" / "passes" / "memory.py").read_text()
    assert "import ast" not in text and "import re" not in text


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
    from graphc.passes import memory
    from op_harness import check_forward_backward_vs_torch
    monkeypatch.setattr(memory, "MIN_ELEMENTS", 1)
    cases = __import__(module).CASES
    criteria = getattr(__import__(module), "CRITERIA", ())
    check_forward_backward_vs_torch(cases[case], tmp_path, rng, case.startswith(criteria))


def test_unrolled_lstm_with_joined_gradients_in_scratch_matches_O0():
    """--unroll: the per-step gate gradients joined by np.concatenate and the steps' i2h
    gradients joined by np.stack write into scratch arrays, and a step's gradient that is
    read only by the final np.stack (through an alias) keeps its array until then."""
    state = [("output1", "input2"), ("output2", "input3"), ("output3", "input4"), ("output4", "input5")]
    results = []
    for optimize in (True, False):
        res = compile_spec(str(ROOT / "benchmarks" / "specs" / "charrnn_lstm.lua"),
                           Options(entry="LSTM.lstm(65, 128, 2, 0)", unroll=4, state=state,
                                   dtype="float64", optimize=optimize))
        if optimize:
            assert "np.stack([grad_i2h_1_1, grad_i2h_1_2, grad_i2h_1_3, grad_i2h_1_4], 0, out=_scratch[" in res.source
        ns = {}
        exec(compile(res.source, "unrolled", "exec"), ns)
        m = ns["Model"](dtype="float64", seed=0)
        calls = []
        for batch in (5, 3, 5):
            rng = np.random.default_rng(batch)
            dims = [[batch if d == B else d for d in v.shape] for v in res.graph.inputs]
            xs = [rng.integers(1, 66, s) if v.dtype == "index" else rng.standard_normal(s)
                  for v, s in zip(res.graph.inputs, dims)]
            m.zeroGradParameters()
            out = m.forward(*xs)
            grads = m.backward(tuple(xs), tuple(np.ones_like(o) for o in out))
            calls.append([a.copy() for a in out] + [g.copy() for g in grads if g is not None]
                         + [m.getParameters()[1].copy()])
        results.append(calls)
    for fast, plain in zip(*results):
        for a, b in zip(fast, plain):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
