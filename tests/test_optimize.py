"""Every optimization leaves results unchanged: the optimized generated code is compared
with the plain (-O0) code in float64, on the samples and on op-level cases."""
from pathlib import Path

import numpy as np
import pytest

from graphc.compiler import Options, compile_spec, parse_shape

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "lstm": ("samples/lstm.lua", {}, None),
    "rnn": ("samples/rnn.lua", {}, None),
    "lenet": ("samples/lenet.lua", {"input1": "Bx1x32x32"}, None),
    "charrnn": ("samples/charrnn.lua", {"input1": "B"}, "LSTM.lstm(7, 5, 2, 0)"),
    "overlapping_slices": ("inline", {"input1": "Bx6"}, None),
    "picked_steps": ("inline", {"input1": "Bx4x3"}, None),
    "lstm_unrolled": ("samples/lstm.lua", {}, None),
}
INLINE = {
    "overlapping_slices": """
x = nn.Identity()()
a = nn.Narrow(2, 1, 4)(x)
b = nn.Narrow(2, 3, 2)(x)
c = nn.Narrow(2, 6, 1)(x)
m = nn.gModule({x}, {nn.Tanh()(a), nn.Sigmoid()(b), nn.Square()(c)})
""",
    "picked_steps": """
x = nn.Identity()()
a = nn.Select(2, 1)(x)
b = nn.Select(2, -1)(x)
m = nn.gModule({x}, {nn.Tanh()(a), nn.Sigmoid()(b), nn.Square()(nn.Select(2, 2)(x))})
""",
}
UNROLL = {"lstm_unrolled": dict(unroll=5, state=[("output1", "input2"), ("output2", "input3")])}


def module(case, optimize):
    spec, shapes, entry = CASES[case]
    opts = Options(dtype="float64", optimize=optimize, entry=entry,
                   shapes={k: parse_shape(v) for k, v in shapes.items()}, **UNROLL.get(case, {}))
    if spec == "inline":
        res = compile_spec("inline.lua", opts, text=INLINE[case])
    else:
        res = compile_spec(str(ROOT / spec), opts)
    ns = {}
    exec(compile(res.source, case, "exec"), ns)
    return ns, res.source


@pytest.mark.parametrize("case", sorted(CASES))
def test_optimized_code_matches_the_plain_code(case, rng):
    (fast, fast_src), (plain, plain_src) = module(case, True), module(case, False)
    assert fast_src != plain_src or case == "lenet"  # something was optimized
    a, b = fast["Model"](dtype="float64", seed=1), plain["Model"](dtype="float64", seed=1)
    xs = [rng.integers(1, 7, [3 if d == "B" else d for d in s]) if kind == "index" else
          rng.standard_normal([3 if d == "B" else d for d in s]) for _, s, kind in fast["INPUTS"]]
    oa, ob = a.forward(*xs), b.forward(*xs)
    oa, ob = (oa, ob) if isinstance(oa, tuple) else ((oa,), (ob,))
    for p, q in zip(oa, ob):
        np.testing.assert_allclose(p, q, rtol=1e-13, atol=1e-15)
    gys = tuple(rng.standard_normal(o.shape) for o in oa)
    ga, gb = a.backward(tuple(xs), gys), b.backward(tuple(xs), gys)
    ga, gb = (ga, gb) if isinstance(ga, tuple) else ((ga,), (gb,))
    for p, q in zip(ga, gb):
        if p is None:
            assert q is None
        else:
            np.testing.assert_allclose(p, q, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(a.getParameters()[1], b.getParameters()[1], rtol=1e-12, atol=1e-15)


def test_lstm_gate_gradients_are_joined_without_zero_padding():
    _, src = module("lstm", True)
    backward = src[src.index("def _backward"):]
    assert "zeros_like" not in backward and backward.count("np.concatenate") == 2


def test_sequence_step_gradients_are_stacked_once():
    """The unrolled LSTM's hoisted input projection is picked per step (Select); its
    gradient is one np.stack of the steps' gradients, not one zero-padded full-size array
    per step summed (quadratic in the number of steps)."""
    _, src = module("lstm_unrolled", True)
    backward = src[src.index("def _backward"):]
    assert "zeros_like" not in backward
    assert backward.count("np.stack") == 1
    _, partial = module("picked_steps", True)  # 3 of 4 steps picked: added into one buffer
    backward = partial[partial.index("def _backward"):]
    assert backward.count("np.zeros(") == 1 and "zeros_like" not in backward


def test_no_grad_inputs_skip_their_gradient_work():
    plain = compile_spec(str(ROOT / "samples" / "lstm.lua"), Options(dtype="float64")).source
    res = compile_spec(str(ROOT / "samples" / "lstm.lua"),
                       Options(dtype="float64", no_grad=["input1", "input3"]))
    src = res.source[res.source.index("def _backward"):]
    assert "w_i2h_weight" not in src and "w_h2h_weight" not in src  # no x @ W for them
    assert src.count("@") == plain[plain.index("def _backward"):].count("@") - 2
    ns = {}
    exec(compile(res.source, "lstm", "exec"), ns)
    m = ns["Model"](dtype="float64")
    xs = [np.ones((2, 3)), np.ones((2, 2)), np.ones((2, 2))]
    m.forward(*xs)
    g1, g2, g3 = m.backward(tuple(xs), (np.ones((2, 2)), np.ones((2, 2))))
    assert g1 is None and g3 is None and g2.shape == (2, 2)
