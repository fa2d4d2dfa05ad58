"""Recurrence: --unroll with a fixed T (one straight-line graph) and a free T (the runtime
Sequence loop), clone_many_times, vs a PyTorch loop, and the activation memory of BPTT."""
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from graphc.compiler import Options, compile_spec
from graphc.ir.graph import B

ROOT = Path(__file__).resolve().parent.parent
STATE = [("output1", "input2"), ("output2", "input3")]


def load(**opts):
    res = compile_spec(str(ROOT / "samples" / "lstm.lua"), Options(dtype="float64", **opts))
    ns = {}
    exec(compile(res.source, "gen", "exec"), ns)
    return ns


def torch_lstm(params, xs, c, h):
    W1, b1, W2, b2 = params
    outs = []
    for x in xs:
        pre = x @ W1.T + b1 + h @ W2.T + b2
        gates = torch.sigmoid(pre[:, :6])
        i, f, o = gates[:, 0:2], gates[:, 2:4], gates[:, 4:6]
        c = f * c + i * torch.tanh(pre[:, 6:8])
        h = o * torch.tanh(c)
        outs.append(h)
    return c, h


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    return rng.standard_normal((6, 4, 3)), rng.standard_normal((4, 2)), rng.standard_normal((4, 2)), \
        rng.standard_normal((4, 2)), rng.standard_normal((4, 2))


def test_fixed_and_free_unrolling_match_pytorch_bptt(data):
    xs, c0, h0, gc, gh = data
    fixed = load(unroll=6, state=STATE)["Model"](dtype="float64")
    free = load(unroll="T", state=STATE)["Sequence"](dtype="float64")
    assert len(fixed.INPUTS) == 3 and fixed.INPUTS[0][1] == (6, "B", 3)
    params = [torch.tensor(w, requires_grad=True) for _, w in fixed.parameters()]
    free.getParameters()[0][:] = fixed.getParameters()[0]
    tx, tc, th = (torch.tensor(a, requires_grad=True) for a in (xs, c0, h0))
    c, h = torch_lstm(params, tx, tc, th)
    (c * torch.tensor(gc) + h * torch.tensor(gh)).sum().backward()
    ref_grads = np.concatenate([p.grad.numpy().ravel() for p in params])
    for m in (fixed, free):
        oc, oh = m.forward(xs, c0, h0)
        np.testing.assert_allclose(oc, c.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(oh, h.detach().numpy(), rtol=1e-12)
        gx, gc0, gh0 = m.backward((xs, c0, h0), (gc, gh))
        np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(gc0, tc.grad.numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(gh0, th.grad.numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(m.getParameters()[1], ref_grads, rtol=1e-10, atol=1e-13)


def test_free_length_sequence_runs_any_length_with_one_set_of_weights(data):
    xs, c0, h0, gc, gh = data
    ns = load(unroll="T", state=STATE)
    seq = ns["Sequence"](dtype="float64")
    for steps in (1, 3, 6):
        seq.zeroGradParameters()
        c, h = seq.forward(xs[:steps], c0, h0)
        assert c.shape == (4, 2)
        seq.backward((xs[:steps], c0, h0), (gc, gh))
    assert seq.getParameters()[0].size == 56  # not T copies


def test_clone_many_times_shares_parameters_and_matches_the_sequence(data):
    from graphc_runtime import clone_many_times
    xs, c0, h0, gc, gh = data
    ns = load()
    proto = ns["Model"](dtype="float64")
    clones = clone_many_times(proto, 6)
    flat_w, flat_g = proto.getParameters()
    assert all(c.getParameters()[0] is flat_w and c.getParameters()[1] is flat_g for c in clones)
    c, h = c0, h0
    for t, m in enumerate(clones):
        c, h = m.forward(xs[t], c, h)
    dc, dh = gc, gh
    for t in reversed(range(6)):
        _, dc, dh = clones[t].backward((xs[t], *_inputs(clones, t, xs, c0, h0)), (dc, dh))
    seq = load(unroll="T", state=STATE)["Sequence"](dtype="float64")
    seq.getParameters()[0][:] = flat_w
    sc, sh = seq.forward(xs, c0, h0)
    gx, gc0, gh0 = seq.backward((xs, c0, h0), (gc, gh))
    np.testing.assert_allclose(c, sc, rtol=1e-12)
    np.testing.assert_allclose(seq.getParameters()[1], flat_g, rtol=1e-10)
    np.testing.assert_allclose(dc, gc0, rtol=1e-10)


def _inputs(clones, t, xs, c0, h0):
    """The (prev_c, prev_h) that clone t was given: the previous clone's outputs."""
    if t == 0:
        return c0, h0
    return clones[t - 1].output


def test_bptt_memory_grows_only_with_the_activations_bptt_needs(data):
    """Peak memory of forward+backward over T steps, minus the inputs: linear in T with the
    per-step slope of the saved activations, and no parameter copies."""
    rng = np.random.default_rng(0)
    ns = load(unroll="T", state=STATE, defines={"input_size": 64, "rnn_size": 64})
    seq = ns["Sequence"](dtype="float64")
    batch = 32
    c0, h0 = rng.standard_normal((batch, 64)), rng.standard_normal((batch, 64))
    peaks = {}
    for steps in (10, 20, 40):
        xs = rng.standard_normal((steps, batch, 64))
        seq.forward(xs, c0, h0)  # warm up (the memory plan's scratch arrays are made once)
        seq.backward((xs, c0, h0), (c0, h0))
        tracemalloc.start()
        seq.forward(xs, c0, h0)
        seq.backward((xs, c0, h0), (c0, h0))
        peaks[steps] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    per_step = (peaks[40] - peaks[20]) / 20
    assert abs((peaks[20] - peaks[10]) / 10 - per_step) < 0.1 * per_step  # linear in T
    # what one step keeps for its backward: pre-activations (4H), gates (3H) and the rest
    row = batch * 64 * 8  # bytes of one B x H float64 array
    assert per_step < 16 * row, (per_step, row)
    assert per_step > 4 * row
    print(f"BPTT activation memory: {per_step / 1024:.1f} KiB per step at B={batch}, H=64 "
          f"({per_step / row:.1f} B x H arrays); peak at T=40: {peaks[40] / 2**20:.2f} MiB")


SHARED_INPUT = """
x = nn.Identity()()
h = nn.Identity()()
gate = nn.Sigmoid()(nn.Linear(3, 3)(x))                -- state-independent: hoisted
mixed = nn.CMulTable()({x, h})                          -- x is read per step too
next_h = nn.Tanh()(nn.CAddTable()({nn.Linear(3, 3)(mixed), gate}))
return nn.gModule({x, h}, {next_h, nn.Square()(next_h)})
"""
INDEX_TARGET = """
x = nn.Identity()()
idx = nn.Identity()()
h = nn.Identity()()
target = nn.Select(2, 1)(idx)                           -- an index value: stays per step
nh = nn.Tanh()(nn.CAddTable()({nn.Linear(3, 4)(x), nn.Linear(4, 4)(h)}))
return nn.gModule({x, idx, h}, {nh, nn.ClassNLLCriterion()({nn.LogSoftMax()(nh), target})})
"""
LOSS_STATE = """
x = nn.Identity()()
t = nn.Identity()()
acc = nn.Identity()()
p = nn.Linear(300, 300)(x)
loss = nn.MSECriterion()({nn.Tanh()(nn.MulConstant(2)(nn.SoftMax()(p))), t})
return nn.gModule({x, t, acc}, {nn.CAddTable()({acc, nn.View(1)(loss)}), loss})
"""
NAMED_LIKE_INPUT = """
x = nn.Identity()():annotate{name='x'}
h = nn.Identity()():annotate{name='h'}
a = nn.Linear(3, 3)(x):annotate{name='x'}               -- the projection is named x too
return nn.gModule({x, h}, {nn.Tanh()(nn.CAddTable()({a, nn.Linear(3, 3)(h)}))})
"""
# case: (options, index inputs' classes)
SPLIT_CASES = {
    "lstm": (dict(spec="samples/lstm.lua", state=STATE), 0),
    "shared_input": (dict(text=SHARED_INPUT, state=[("output1", "input2")]), 0),
    "charrnn": (dict(spec="samples/charrnn.lua", entry="LSTM.lstm(7, 5, 2, 0)", shapes={"input1": (B,)},
                     state=[(f"output{k}", f"input{k + 1}") for k in range(1, 5)]), 7),
    # found by review: an index value read per step, a model whose outputs lack B (its
    # backward's batch size comes from an input), a projection named like a --no-grad input
    "index_target": (dict(text=INDEX_TARGET, state=[("output1", "input3")], shapes={"input2": (B, 2)}), 4),
    "loss_state": (dict(text=LOSS_STATE, state=[("output1", "input3")],
                        shapes={"input1": (B, 300), "input2": (B, 300), "input3": (1,)}), 0),
    "named_like_input": (dict(text=NAMED_LIKE_INPUT, state=[("output1", "h")], shapes={"x": (B, 3)},
                              no_grad=["x"]), 0),
}


def sequence_module(case, optimize):
    opts, _ = SPLIT_CASES[case]
    opts = dict(opts)
    spec, text = opts.pop("spec", "inline.lua"), opts.pop("text", None)
    res = compile_spec(str(ROOT / spec) if text is None else spec,
                       Options(dtype="float64", unroll="T", optimize=optimize, **opts), text=text)
    ns = {"SOURCE": res.source}
    exec(compile(res.source, case, "exec"), ns)
    return ns


@pytest.mark.parametrize("case", sorted(SPLIT_CASES))
def test_sequence_runs_the_state_independent_part_once_with_the_same_results(case):
    """-O1 splits the step: the part that does not depend on the state (the input
    projection) runs once over all T*B rows; results equal the plain per-step loop (-O0)."""
    fast_ns, plain_ns = sequence_module(case, True), sequence_module(case, False)
    assert fast_ns["Sequence"].PREFIX is not None and plain_ns["Sequence"].PREFIX is None
    src = fast_ns["SOURCE"]
    prefix_class = src[src.index("class _SequencePrefix"):src.index("class _SequenceRest")]
    assert "nn.Linear" in prefix_class and "@" in prefix_class
    fast, plain = fast_ns["Sequence"](dtype="float64", seed=3), plain_ns["Sequence"](dtype="float64", seed=3)
    rng = np.random.default_rng(5)
    steps, batch, classes = 4, 3, SPLIT_CASES[case][1]
    state_inputs = {i for _, i in fast.STATE}
    xs = []
    for k, (_, shape, kind) in enumerate(fast.step.INPUTS):
        dims = [batch if d == "B" else d for d in shape]
        if k in state_inputs:  # the initial state
            xs.append(rng.standard_normal(dims))
        elif kind == "index":
            xs.append(rng.integers(1, classes + 1, [steps] + dims))
        else:
            xs.append(rng.standard_normal([steps] + dims))
    out_fast, out_plain = fast.forward(*xs), plain.forward(*xs)
    out_fast, out_plain = (out_fast, out_plain) if isinstance(out_fast, tuple) else ((out_fast,), (out_plain,))
    for a, b in zip(out_fast, out_plain):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    gys = tuple(rng.standard_normal(o.shape) for o in out_fast)
    for _ in range(2):  # gradients accumulate over backward calls alike
        g_fast, g_plain = fast.backward(tuple(xs), gys), plain.backward(tuple(xs), gys)
    g_fast, g_plain = (g_fast, g_plain) if isinstance(g_fast, tuple) else ((g_fast,), (g_plain,))
    for a, b in zip(g_fast, g_plain):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(fast.getParameters()[1], plain.getParameters()[1], rtol=1e-11, atol=1e-13)


def test_no_grad_on_a_state_input_of_a_sequence_is_refused():
    from graphc.errors import SpecError
    with pytest.raises(SpecError, match="--no-grad input3: a state input's gradient carries"):
        compile_spec(str(ROOT / "samples" / "lstm.lua"), Options(unroll="T", state=STATE, no_grad=["input3"]))


def test_a_step_without_a_state_independent_product_is_not_split():
    text = """
h = nn.Identity()()
return nn.gModule({h}, {nn.Tanh()(nn.Linear(3, 3)(h))})
"""
    res = compile_spec("inline.lua", Options(unroll="T", state=[("output1", "input1")], shapes={"input1": (B, 3)}),
                       text=text)
    assert "PREFIX" not in res.source and "_SequencePrefix" not in res.source
