"""The corpus-style specs (samples/corpus/*.lua) against hand-written PyTorch twins.

Each spec in samples/corpus/ is our own small model written with the Lua constructs of a real
nngraph model (char-rnn, practical6, neuraltalk2, lstm-char-cnn, spro's attention GRU,
pix2pix, Element-Research/rnn's FastLSTM, the nngraph README and tests). Each is compiled in
float64 through the same entry points the CLI uses (--entry / --shape / -D); the PyTorch twin
gets the very same flat parameter vector, sliced in PARAMETERS order, and forward outputs,
input gradients and the flat parameter gradient must agree to ~1e-9 for random inputs and
random output gradients.

Each twin's LAYOUT lists the parameters in the order the spec constructs the modules (weight
then bias, Torch shapes); the test checks graphc's PARAMETERS against it before slicing, so a
change in parameter order fails loudly here.

A few cases exercise constructs of the real files beyond plain nn (a global `OneHot` as
char-rnn's files use it, nn.LinearNoBias, nn.MixtureTable): full comparisons like the rest.

Every test runs on the numpy target and on the CPU target (--target cpu, built at -O0).
"""
import math
import re
import shlex
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphc.compiler import Options, compile_spec, parse_define, parse_shape
from graphc.errors import SpecError
from graphc_runtime.module import concrete_shape

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "samples" / "corpus"

RTOL, ATOL = 1e-9, 1e-11
BATCH = 4


# ---- compiling ------------------------------------------------------------------------------


def _load(res, name):
    mod = types.ModuleType(f"corpus_{name}")
    exec(compile(res.source, f"<generated {name}>", "exec"), mod.__dict__)
    return mod


_cache = {}
TARGET = "numpy"  # set per test by the `target` fixture below


@pytest.fixture(autouse=True, params=["numpy", "cpu"])
def target(request, monkeypatch):
    """Each test once per code target (conftest's `target` does the CPU target's set-up)."""
    if request.param == "cpu":
        from cuda_host import require_cpu_target
        require_cpu_target()
        monkeypatch.setenv("GRAPHC_CPU_CXXFLAGS", "-O0")
    monkeypatch.setattr(f"{__name__}.TARGET", request.param)
    return request.param


def compiled(spec, entry=None, shapes=(), defines=(), text=None, prelude=None, plugins=()):
    """Compile samples/corpus/<spec> (or `text`) in float64, after `prelude` and with
    `plugins` (paths under the repository) if given; cached per arguments."""
    key = (spec, entry, tuple(shapes), tuple(defines), text, prelude, tuple(plugins), TARGET)
    if key not in _cache:
        opts = Options(entry=entry, dtype="float64", target=TARGET,
                       shapes={k: parse_shape(v) for k, v in (s.split("=", 1) for s in shapes)},
                       defines=dict(parse_define(d) for d in defines),
                       prelude=None if prelude is None else str(ROOT / prelude),
                       plugins=[str(ROOT / p) for p in plugins])
        path = str(CORPUS / spec) if text is None else spec
        res = compile_spec(path, opts, text=text) if text is not None else compile_spec(path, opts)
        _cache[key] = _load(res, re.sub(r"\W", "_", f"{spec}_{len(_cache)}"))
    return _cache[key]


# ---- nesting helpers (INPUT_STRUCTURE / OUTPUT_STRUCTURE) ----------------------------------


def _struct(mod, which):
    s = getattr(mod, f"{which}_STRUCTURE", None)
    n = len(getattr(mod, which + "S"))
    return tuple(range(n)) if s is None else s


def nest(flat, struct):
    def build(s):
        return flat[s] if isinstance(s, int) else [build(x) for x in s]
    return tuple(build(s) for s in struct)


def flatten(value, struct):
    out = {}

    def walk(v, s):
        if isinstance(s, int):
            out[s] = v
        else:
            assert isinstance(v, (list, tuple)) and len(v) == len(s), (type(v), s)
            for x, t in zip(v, s):
                walk(x, t)
    walk(value if len(struct) > 1 else (value,), struct)
    return [out[i] for i in range(len(out))]


# ---- the comparison -------------------------------------------------------------------------


def torch_params(mod, flat_w, layout):
    """Slice the flat vector into leaf tensors keyed by the layout's labels, after checking
    graphc's PARAMETERS (shapes, and weight/bias kind) against the layout."""
    got = [(name, tuple(shape)) for name, shape, _ in mod.PARAMETERS]
    want = [(label, tuple(shape)) for label, shape in layout]
    assert [s for _, s in got] == [s for _, s in want], (got, want)
    for (name, _), (label, _) in zip(got, want):
        assert name.rsplit(".", 1)[-1] == label.rsplit(".", 1)[-1], (name, label)
    params, offset = {}, 0
    for label, shape in layout:
        n = math.prod(shape)
        params[label] = torch.tensor(flat_w[offset:offset + n].reshape(shape), dtype=torch.float64,
                                     requires_grad=True)
        offset += n
    assert offset == flat_w.size
    return params


def make_inputs(mod, rng, batch, index_high):
    xs = []
    for _, shape, kind in mod.INPUTS:
        shape = concrete_shape(shape, batch)
        if kind == "index":
            xs.append(rng.integers(1, index_high + 1, shape))
        else:
            xs.append(rng.standard_normal(shape))
    return xs


def compare(mod, twin, layout, rng, *, train=True, batch=BATCH, index_high=None):
    m = mod.Model(dtype="float64", seed=0)
    if not train:
        m.evaluate()
    flat_w, flat_g = m.getParameters()
    flat_w[...] = rng.uniform(-0.5, 0.5, flat_w.shape)
    m.zeroGradParameters()

    in_struct, out_struct = _struct(mod, "INPUT"), _struct(mod, "OUTPUT")
    xs = make_inputs(mod, rng, batch, index_high)
    xs_before = [x.copy() for x in xs]
    out_shapes = [concrete_shape(s, batch) for _, s in mod.OUTPUTS]
    gs = [rng.standard_normal(s) for s in out_shapes]

    args = nest(xs, in_struct)
    outs = flatten(m.forward(*args), out_struct)
    gin = m.backward(args, nest(gs, out_struct))
    gins = flatten(gin, in_struct)
    for x, x0 in zip(xs, xs_before):
        np.testing.assert_array_equal(x, x0)  # inputs are never modified

    params = torch_params(mod, flat_w, layout)
    txs = [torch.tensor(x) if kind == "index" else torch.tensor(x, requires_grad=True)
           for x, (_, _, kind) in zip(xs, mod.INPUTS)]
    touts = twin(txs, params)
    assert len(outs) == len(touts) == len(gs)
    # outputs may repeat a value (the same node returned twice): sum their gradients via autograd
    torch.autograd.backward([t for t in touts], [torch.tensor(g) for g in gs])

    for o, t in zip(outs, touts):
        assert o.shape == tuple(t.shape)
        np.testing.assert_allclose(o, t.detach().numpy(), rtol=RTOL, atol=ATOL)
    assert len(gins) == len(txs)
    for g, t, (name, _, kind) in zip(gins, txs, mod.INPUTS):
        if kind == "index":
            assert g is None, name
            continue
        assert g.shape == t.shape, name
        want = t.grad.numpy() if t.grad is not None else np.zeros(t.shape)
        np.testing.assert_allclose(g, want, rtol=RTOL, atol=ATOL, err_msg=name)
    if layout:
        want = np.concatenate([
            (params[label].grad if params[label].grad is not None
             else torch.zeros(shape, dtype=torch.float64)).numpy().ravel()
            for label, shape in layout])
        np.testing.assert_allclose(flat_g, want, rtol=RTOL, atol=ATOL)
    else:
        assert flat_g.size == 0
    return m


def linear(x, p, name, bias=True):
    return F.linear(x, p[name + ".weight"], p[name + ".bias"] if bias else None)


def lin(name, out, inp, bias=True):
    """Layout entries of a Linear(inp, out)."""
    return [(name + ".weight", (out, inp))] + ([(name + ".bias", (out,))] if bias else [])


def one_hot(idx, n):
    return F.one_hot(idx - 1, n).to(torch.float64)  # Torch indices are 1-based


def bn_train(x, p, name):
    return F.batch_norm(x, None, None, p[name + ".weight"], p[name + ".bias"], training=True,
                        eps=1e-5)


def bn_eval(x, p, name):
    c = x.shape[1]
    return F.batch_norm(x, torch.zeros(c, dtype=x.dtype), torch.ones(c, dtype=x.dtype),
                        p[name + ".weight"], p[name + ".bias"], training=False, eps=1e-5)


def lstm_update(pre, prev_c, rnn_size, order="ifoc"):
    """Gates from the 4*rnn_size pre-activations cut as Reshape(4, n) + SplitTable(2)."""
    chunk = {k: pre[:, j * rnn_size:(j + 1) * rnn_size] for j, k in enumerate(order)}
    i, f, o = torch.sigmoid(chunk["i"]), torch.sigmoid(chunk["f"]), torch.sigmoid(chunk["o"])
    c = f * prev_c + i * torch.tanh(chunk["c"])
    return c, o


# ---- char-rnn: LSTM, GRU, RNN -----------------------------------------------------------------


def char_lstm_layout(V, R, n, bn):
    layout = []
    for L in range(1, n + 1):
        if bn:
            layout += [(f"bnx{L}.weight", (4 * R,)), (f"bnx{L}.bias", (4 * R,)),
                       (f"bnh{L}.weight", (4 * R,)), (f"bnh{L}.bias", (4 * R,)),
                       (f"bnc{L}.weight", (R,)), (f"bnc{L}.bias", (R,))]
        layout += lin(f"i2h{L}", 4 * R, V if L == 1 else R) + lin(f"h2h{L}", 4 * R, R, bias=False)
    return layout + lin("decoder", V, R)


def char_lstm_twin(V, R, n, bn):
    def twin(xs, p):
        outs = []
        x = one_hot(xs[0], V)
        for L in range(1, n + 1):
            prev_c, prev_h = xs[2 * L - 1], xs[2 * L]
            if L > 1:
                x = outs[-1]
            a = linear(x, p, f"i2h{L}")
            b = linear(prev_h, p, f"h2h{L}", bias=False)
            if bn:
                a, b = bn_train(a, p, f"bnx{L}"), bn_train(b, p, f"bnh{L}")
            c, o = lstm_update(a + b, prev_c, R)
            h = o * torch.tanh(bn_train(c, p, f"bnc{L}") if bn else c)
            outs += [c, h]
        return outs + [F.log_softmax(linear(outs[-1], p, "decoder"), dim=1)]
    return twin


@pytest.mark.parametrize("bn", [False, True], ids=["dropout_eval", "batchnorm_train"])
def test_char_lstm(bn, rng):
    # dropout 0.5 compared in evaluation mode; the batch-norm variant (no dropout) in training mode
    entry = "CharLSTM.step(5, 3, 2, 0, true)" if bn else "CharLSTM.step(5, 3, 2, 0.5)"
    mod = compiled("char_lstm.lua", entry)
    assert mod.INPUTS[0][2] == "index"
    compare(mod, char_lstm_twin(5, 3, 2, bn), char_lstm_layout(5, 3, 2, bn), rng, train=bn,
            index_high=5)


def test_char_lstm_names_its_layers():
    mod = compiled("char_lstm.lua", "CharLSTM.step(5, 3, 2, 0.5)")
    names = [n for n, _, _ in mod.PARAMETERS]
    assert names[:3] == ["i2h_1.weight", "i2h_1.bias", "h2h_1.weight"]
    assert names[-2:] == ["decoder.weight", "decoder.bias"]


def char_gru_layout(V, R, n):
    layout = []
    for L in range(1, n + 1):
        nin = V if L == 1 else R
        layout += (lin(f"zx{L}", R, nin) + lin(f"zh{L}", R, R) + lin(f"rx{L}", R, nin)
                   + lin(f"rh{L}", R, R) + lin(f"ch{L}", R, R) + lin(f"cx{L}", R, nin))
    return layout + lin("decoder", V, R)


def char_gru_twin(V, R, n):
    def twin(xs, p):
        outs = []
        x = one_hot(xs[0], V)
        for L in range(1, n + 1):
            prev_h = xs[L]
            if L > 1:
                x = outs[-1]
            z = torch.sigmoid(linear(x, p, f"zx{L}") + linear(prev_h, p, f"zh{L}"))
            r = torch.sigmoid(linear(x, p, f"rx{L}") + linear(prev_h, p, f"rh{L}"))
            cand = torch.tanh(linear(x, p, f"cx{L}") + linear(r * prev_h, p, f"ch{L}"))
            outs.append(z * cand + (1 - z) * prev_h)
        return outs + [F.log_softmax(linear(outs[-1], p, "decoder"), dim=1)]
    return twin


def test_char_gru(rng):
    mod = compiled("char_gru.lua", "CharGRU.step(5, 3, 2, 0.5)")
    compare(mod, char_gru_twin(5, 3, 2), char_gru_layout(5, 3, 2), rng, train=False, index_high=5)


def test_char_rnn(rng):
    I, R, n = 3, 4, 2
    layout = []
    for L in range(1, n + 1):
        layout += lin(f"x{L}", R, I if L == 1 else R) + lin(f"h{L}", R, R)

    def twin(xs, p):
        outs, x = [], xs[0]
        for L in range(1, n + 1):
            x = torch.tanh(linear(x, p, f"x{L}") + linear(xs[L], p, f"h{L}"))
            outs.append(x)
        return outs

    mod = compiled("char_rnn.lua", "CharRNN.step(3, 4, 2)")
    compare(mod, twin, layout, rng)
    compare(mod, twin, layout, rng, batch=1)


# ---- practical6 and neuraltalk2 LSTMs ---------------------------------------------------------


def test_small_lstm(rng):
    I, R = 3, 4
    layout = []
    for g in "ifoc":
        layout += lin(f"{g}x", R, I) + lin(f"{g}h", R, R)

    def twin(xs, p):
        x, prev_c, prev_h = xs
        pre = {g: linear(x, p, f"{g}x") + linear(prev_h, p, f"{g}h") for g in "ifoc"}
        c = torch.sigmoid(pre["f"]) * prev_c + torch.sigmoid(pre["i"]) * torch.tanh(pre["c"])
        return [c, torch.sigmoid(pre["o"]) * torch.tanh(c)]

    mod = compiled("small_lstm.lua", "LSTM.lstm({input_size = 3, rnn_size = 4})")
    compare(mod, twin, layout, rng)


def test_caption_lstm(rng):
    I, O, R, n = 3, 6, 4, 2
    layout = []
    for L in range(1, n + 1):
        layout += lin(f"i2h{L}", 4 * R, I if L == 1 else R) + lin(f"h2h{L}", 4 * R, R)
    layout += lin("decoder", O, R)

    def twin(xs, p):
        outs, x = [], xs[0]
        for L in range(1, n + 1):
            if L > 1:
                x = outs[-1]
            c, o = lstm_update(linear(x, p, f"i2h{L}") + linear(xs[2 * L], p, f"h2h{L}"),
                               xs[2 * L - 1], R)
            outs += [c, o * torch.tanh(c)]
        return outs + [F.log_softmax(linear(outs[-1], p, "decoder"), dim=1)]

    mod = compiled("caption_lstm.lua", "LSTM.lstm(3, 6, 4, 2, 0.5)")
    m = compare(mod, twin, layout, rng, train=False)
    names = [n for n, _, _ in mod.PARAMETERS]
    assert names[-2:] == ["decoder.weight", "decoder.bias"]
    # dropout is live again in training mode: the outputs change from one forward to the next
    m.training()
    xs = make_inputs(mod, rng, BATCH, None)
    assert not np.allclose(m.forward(*xs)[-1], m.forward(*xs)[-1])


# ---- lstm-char-cnn's highway MLP: one nonlinearity instance reused in every layer ------------


@pytest.mark.parametrize("prelu", [False, True], ids=["relu", "shared_prelu"])
def test_highway(prelu, rng):
    S, layers, bias = 4, (3 if prelu else 2), (-1 if prelu else -2)
    # nn.PReLU() is an argument of the entry call, so it is constructed before the Linears
    layout = [("prelu.weight", (1,))] if prelu else []
    for i in range(1, layers + 1):
        layout += lin(f"h{i}", S, S) + lin(f"t{i}", S, S)

    def twin(xs, p):
        x = xs[0]
        for i in range(1, layers + 1):
            pre = linear(x, p, f"h{i}")
            h = F.prelu(pre, p["prelu.weight"]) if prelu else F.relu(pre)
            t = torch.sigmoid(linear(x, p, f"t{i}") + bias)
            x = t * h + (1 - t) * x
        return [x]

    entry = "Highway.mlp(4, 3, -1, nn.PReLU())" if prelu else "Highway.mlp(4, 2)"
    compare(compiled("highway.lua", entry), twin, layout, rng)


# ---- spro's attention GRU: input nodes holding modules, a table node, a closure ---------------

ATTN_SHAPES = ("input1=3", "input2=4", "input3=5x4")


def attention_layout(I, H, M):
    layout = lin("attn", M, I + 2 * H)
    for g in "zrc":
        layout += lin(f"{g}i", H, I) + lin(f"{g}h", H, H) + lin(f"{g}a", H, H)
    return layout


def attention_twin(xs, p):
    x, prev_h, encs = xs
    x, prev_h = x.reshape(-1), prev_h.reshape(-1)
    context = torch.cat([x, prev_h, encs.sum(0)])
    w = torch.softmax(linear(context, p, "attn"), dim=0)
    attended = (w[:, None] * encs).sum(0)

    def gate(g, i, h):
        return linear(i, p, f"{g}i") + linear(h, p, f"{g}h") + linear(attended, p, f"{g}a")
    z = torch.sigmoid(gate("z", x, prev_h))
    r = torch.sigmoid(gate("r", x, prev_h))
    cand = torch.tanh(gate("c", x, r * prev_h))
    return [z * cand + (1 - z) * prev_h, w]


def test_attention_gru_mv(rng):
    mod = compiled("attention_gru.lua", "AttentionGRU(3, 4, 5, 'mv')", ATTN_SHAPES)
    compare(mod, attention_twin, attention_layout(3, 4, 5), rng)


def test_attention_gru_mixture_table(rng):
    # the original's nn.MixtureTable({weights, table of encoder states})
    mod = compiled("attention_gru.lua", "AttentionGRU(3, 4, 5)", ATTN_SHAPES)
    compare(mod, attention_twin, attention_layout(3, 4, 5), rng)


# ---- global attention: the time steps folded into the batch (View -1, setNumInputDims, Bottle)

GLOBAL_ATTN_SHAPES = ("input1=Bx5x4", "input2=Bx4")


def global_attention_layout(H, A):
    return lin("proj", A, H) + lin("target", A, H) + [("out.weight", (H, 2 * H))]


def global_attention_twin(xs, p):
    context, query = xs
    keys = torch.tanh(linear(context, p, "proj"))  # every position: B x T x A
    target = linear(query, p, "target")
    attn = torch.softmax(torch.bmm(keys, target[:, :, None])[:, :, 0], dim=1)
    combined = torch.bmm(context.transpose(1, 2), attn[:, :, None])[:, :, 0]
    return [torch.tanh(F.linear(torch.cat([combined, query], 1), p["out.weight"])), attn]


@pytest.mark.parametrize("variant", ["view", "dims", "bottle", "reshape"])
def test_global_attention(variant, rng):
    mod = compiled("global_attention.lua", f"make_attention(5, 4, 3, '{variant}')",
                   GLOBAL_ATTN_SHAPES)
    compare(mod, global_attention_twin, global_attention_layout(4, 3), rng)
    compare(mod, global_attention_twin, global_attention_layout(4, 3), rng, batch=1)


# ---- pix2pix: `-` chains, skip joins, full convolutions, a Sequential built in a loop ---------


def unet_layout(inc, outc, g):
    def conv(name, o, i):
        return [(name + ".weight", (o, i, 4, 4)), (name + ".bias", (o,))]

    def full(name, i, o):  # SpatialFullConvolution weight: nInputPlane x nOutputPlane x kH x kW
        return [(name + ".weight", (i, o, 4, 4)), (name + ".bias", (o,))]

    def bn(name, c):
        return [(name + ".weight", (c,)), (name + ".bias", (c,))]
    return (conv("e1", g, inc)
            + conv("e2", 2 * g, g) + bn("b2", 2 * g)
            + conv("e3", 4 * g, 2 * g) + bn("b3", 4 * g)
            + conv("e4", 4 * g, 4 * g) + bn("b4", 4 * g)
            + full("d1", 4 * g, 4 * g) + bn("bd1", 4 * g)
            + full("d2", 8 * g, 2 * g) + bn("bd2", 2 * g)
            + full("d3", 4 * g, g) + bn("bd3", g)
            + full("d4", 2 * g, outc))


def unet_twin(train):
    bn = bn_train if train else bn_eval

    def twin(xs, p):
        def conv(x, name):
            return F.conv2d(x, p[name + ".weight"], p[name + ".bias"], stride=2, padding=1)

        def up(x, name):
            return F.conv_transpose2d(F.relu(x), p[name + ".weight"], p[name + ".bias"],
                                      stride=2, padding=1)

        def lrelu(x):
            return F.leaky_relu(x, 0.2)
        e1 = conv(xs[0], "e1")
        e2 = bn(conv(lrelu(e1), "e2"), p, "b2")
        e3 = bn(conv(lrelu(e2), "e3"), p, "b3")
        e4 = bn(conv(lrelu(e3), "e4"), p, "b4")
        d1 = torch.cat([bn(up(e4, "d1"), p, "bd1"), e3], 1)
        d2 = torch.cat([bn(up(d1, "d2"), p, "bd2"), e2], 1)
        d3 = torch.cat([bn(up(d2, "d3"), p, "bd3"), e1], 1)
        return [torch.tanh(up(d3, "d4"))]
    return twin


def test_unet_train_without_dropout(rng):
    mod = compiled("unet.lua", "unet(2, 1, 2)", ("input1=Bx2x16x16",), ("dropout=0",))
    compare(mod, unet_twin(True), unet_layout(2, 1, 2), rng)


def test_unet_eval(rng):
    mod = compiled("unet.lua", "unet(2, 1, 2)", ("input1=Bx2x16x16",))
    compare(mod, unet_twin(False), unet_layout(2, 1, 2), rng, train=False, batch=2)


def test_patch_discriminator(rng):
    ndf = 2
    layout = [("c1.weight", (ndf, 3, 4, 4)), ("c1.bias", (ndf,)),
              ("c2.weight", (2 * ndf, ndf, 4, 4)), ("c2.bias", (2 * ndf,)),
              ("n2.weight", (2 * ndf,)), ("n2.bias", (2 * ndf,)),
              ("c3.weight", (4 * ndf, 2 * ndf, 4, 4)), ("c3.bias", (4 * ndf,)),
              ("n3.weight", (4 * ndf,)), ("n3.bias", (4 * ndf,)),
              ("c4.weight", (1, 4 * ndf, 4, 4)), ("c4.bias", (1,))]

    def twin(xs, p):
        def conv(x, name, stride):
            return F.conv2d(x, p[name + ".weight"], p[name + ".bias"], stride=stride, padding=1)
        y = F.leaky_relu(conv(xs[0], "c1", 2), 0.2)
        y = F.leaky_relu(bn_train(conv(y, "c2", 2), p, "n2"), 0.2)
        y = F.leaky_relu(bn_train(conv(y, "c3", 1), p, "n3"), 0.2)
        return [torch.sigmoid(conv(y, "c4", 1))]

    mod = compiled("unet.lua", "patch_discriminator(2, 1, 2, 2)", ("input1=Bx3x16x16",))
    assert mod.OUTPUTS[0][1] == ("B", 1, 2, 2)
    compare(mod, twin, layout, rng)


def test_pix2pix_channel_mismatch_is_a_compile_error():
    # pix2pix's defineG_encoder_decoder feeds ngf channels into SpatialFullConvolution(ngf * 2, ...)
    # (a bug Torch only reports when the model runs); graphc reports it at the module.
    text = ("require 'nngraph'\n"
            "ngf = 2\n"
            "e1 = - nn.SpatialConvolution(3, ngf, 4, 4, 2, 2, 1, 1)\n"
            "d1 = e1 - nn.ReLU(true) - nn.SpatialFullConvolution(ngf * 2, 3, 4, 4, 2, 2, 1, 1)\n"
            "netG = nn.gModule({e1}, {d1 - nn.Tanh()})\n")
    with pytest.raises(SpecError) as info:
        compiled("mismatch.lua", shapes=("input1=Bx3x16x16",), text=text)
    msg = info.value.format({"mismatch.lua": text})
    assert msg.startswith("mismatch.lua:4:"), msg
    assert "SpatialFullConvolution" in msg.splitlines()[0]


# ---- Element-Research/rnn FastLSTM: fields holding modules, nngraph and container builds ------

FAST_LAYOUT = lin("i2g", 16, 3) + lin("o2g", 16, 4, bias=False)


def fast_lstm_twin(xs, p):
    x, prev_h, prev_c = xs
    pre = linear(x, p, "i2g") + linear(prev_h, p, "o2g", bias=False)
    c, o = lstm_update(pre, prev_c, 4, order="icfo")
    return [o * torch.tanh(c), c]


def test_fast_lstm_nngraph(rng):
    mod = compiled("fast_lstm.lua", "FastLSTM.new(3, 4, true):buildModel()")
    compare(mod, fast_lstm_twin, FAST_LAYOUT, rng)
    assert [n for n, _, _ in mod.PARAMETERS] == ["i2h.weight", "i2h.bias", "h2h.weight"]


def test_fast_lstm_containers(rng):
    mod = compiled("fast_lstm.lua", "FastLSTM.new(3, 4, false):buildModel()",
                   ("input1={Bx3,Bx4,Bx4}",))
    compare(mod, fast_lstm_twin, FAST_LAYOUT, rng)


def test_fast_lstm_builds_agree(rng):
    graph = compiled("fast_lstm.lua", "FastLSTM.new(3, 4, true):buildModel()").Model("float64")
    seq = compiled("fast_lstm.lua", "FastLSTM.new(3, 4, false):buildModel()",
                   ("input1={Bx3,Bx4,Bx4}",)).Model("float64")
    seq.getParameters()[0][...] = graph.getParameters()[0]
    xs = [rng.standard_normal(s) for s in [(2, 3), (2, 4), (2, 4)]]
    a, b = graph.forward(*xs), seq.forward(xs)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


# ---- the nngraph README and test_nngraph.lua patterns -----------------------------------------

EX = "nngraph_examples.lua"


def test_readme_mlp(rng):
    # Lua evaluates nn.Linear(4, 1) (the called expression) before its argument's Linear(4, 4)
    layout = lin("in", 4, 5) + lin("out", 1, 4) + lin("mid", 4, 4)

    def twin(xs, p):
        y = torch.tanh(linear(torch.tanh(linear(xs[0], p, "in")), p, "mid"))
        return [linear(y, p, "out")]
    compare(compiled(EX, "mlp()"), twin, layout, rng)


def test_readme_two_in_two_out(rng):
    layout = lin("a", 5, 5) + lin("b", 3, 3) + lin("sa", 2, 5) + lin("sb", 2, 3)

    def twin(xs, p):
        s = (linear(torch.tanh(linear(xs[0], p, "a")), p, "sa")
             + linear(torch.tanh(linear(xs[1], p, "b")), p, "sb"))
        return [torch.sigmoid(s), torch.tanh(s)]
    compare(compiled(EX, "two_in_two_out()"), twin, layout, rng)


def test_container_as_node(rng):
    def twin(xs, p):
        x = xs[0]
        return [torch.cat([linear(x[0], p, "l1"), linear(x[1], p, "l2")])]
    mod = compiled(EX, "container_node()", ("input1=2x4",))
    compare(mod, twin, lin("l1", 3, 4) + lin("l2", 2, 4), rng)


def test_dense_skip_joins(rng):
    layout = lin("l1", 2, 1) + lin("l2", 4, 3) + lin("l3", 5, 6)

    def twin(xs, p):
        x = xs[0]
        l1 = torch.tanh(linear(x, p, "l1"))
        l2 = torch.tanh(linear(torch.cat([x, l1]), p, "l2"))
        return [torch.tanh(linear(torch.cat([l1, l2]), p, "l3"))]
    compare(compiled(EX, "dense()", ("input1=1",)), twin, layout, rng)


def test_table_input_split(rng):
    def twin(xs, p):
        x, h, c = xs
        return [x * h + h * c, x * h * c]
    mod = compiled(EX, "table_input()", ("input1=Bx3", "input2={Bx3,Bx3}"))
    compare(mod, twin, [], rng)


def test_split_and_used_whole(rng):
    def twin(xs, p):
        h, c = xs
        return [h, h, c, torch.sigmoid(c)]
    mod = compiled(EX, "split_and_whole()", ("input1={Bx4,Bx4}",))
    compare(mod, twin, [], rng)


def test_table_module_as_input_node(rng):
    def twin(xs, p):
        return [xs[0].sum(0)]
    compare(compiled(EX, "table_module_input()", ("input1=3x4",)), twin, [], rng)


def test_sequential_on_table_input(rng):
    def twin(xs, p):
        j = torch.cat(xs, 1)
        return [torch.tanh(j) + j]
    compare(compiled(EX, "sequential_on_table()", ("input1={Bx2,Bx3,Bx2}",)), twin, [], rng)


def test_cmul_input_node_returned_twice(rng):
    def twin(xs, p):
        y = xs[0] * p["w.weight"]
        return [y, y]
    compare(compiled(EX, "cmul_fanout()", ("input1=Bx6",)), twin, [("w.weight", (6,))], rng)


def test_annotated_names(rng):
    mod = compiled(EX, "annotated()")
    assert [n for n, _, _ in mod.INPUTS] == ["Input"]
    assert [n for n, _ in mod.OUTPUTS] == ["Out"]

    def twin(xs, p):
        return [linear(torch.sigmoid(linear(xs[0], p, "h")), p, "o")]
    compare(mod, twin, lin("h", 4, 4) + lin("o", 2, 4), rng)


# ---- Torch7 image and sequence modules, cudnn, --prelude (issue 15) ---------------------------


def conv_layout(name, nout, nin, kh, kw):
    return [(name + ".weight", (nout, nin, kh, kw)), (name + ".bias", (nout,))]


def gaussian1d(size, sigma=0.25, mean=0.5):
    """Torch's image.gaussian1D: exp(-((i - center) / (sigma size))^2 / 2), i = 1..size."""
    center = mean * size + 0.5
    return [math.exp(-((i - center) / (sigma * size)) ** 2 / 2) for i in range(1, size + 1)]


def subtractive_normalization(x, kernel):
    """Torch7's SpatialSubtractiveNormalization: x minus the kernel-weighted mean of the
    neighbourhood over all channels, divided by the kernel's weight inside the image."""
    k = torch.tensor(kernel, dtype=torch.float64)
    w = k.expand(1, x.shape[1], *k.shape)
    pad = (k.shape[0] // 2, k.shape[1] // 2)
    mean = F.conv2d(x, w, padding=pad)
    coef = F.conv2d(torch.ones_like(x[:1]), w, padding=pad)
    return x - mean / coef


def lp_pool2(x, k):
    """SpatialLPPooling(p = 2, k x k windows, stride k): sqrt of each window's sum of squares."""
    return torch.sqrt(F.avg_pool2d(x * x, k) * (k * k))


@pytest.mark.parametrize("size", ["small", "tiny"])
def test_convnet_tutorial_with_a_prelude(size, rng):
    defines = ("opt.size=tiny",) if size == "tiny" else ()
    mod = compiled("convnet_tutorial.lua", shapes=("input1=Bx3x16x16",), defines=defines,
                   prelude="samples/corpus/preludes/tutorial_opts.lua")
    s1, s2, s3 = (4, 4, 8) if size == "tiny" else (8, 8, 16)
    g = gaussian1d(5)
    kernel = [[a * b for b in g] for a in g]  # a 1-D kernel acts as its outer product
    layout = (conv_layout("c1", s1, 3, 3, 3) + conv_layout("c2", s2, s1, 3, 3)
              + lin("l1", s3, s2 * 4) + lin("l2", 10, s3))

    def twin(xs, p):
        h = subtractive_normalization(lp_pool2(torch.tanh(
            F.conv2d(xs[0], p["c1.weight"], p["c1.bias"])), 2), kernel)
        h = subtractive_normalization(lp_pool2(torch.tanh(
            F.conv2d(h, p["c2.weight"], p["c2.bias"])), 2), kernel)
        h = torch.tanh(linear(h.reshape(h.shape[0], -1), p, "l1"))
        return [linear(h, p, "l2")]
    compare(mod, twin, layout, rng, train=False)


def test_char_tdnn_takes_float_character_indices(rng):
    entry = ("TDNN.encoder(10, {char_vocab_size = 12, char_vec_size = 5, feature_maps = {3, 4, 2}, "
             "kernels = {1, 2, 3}})")
    mod = compiled("char_tdnn.lua", entry, ("input1=Bx10",))
    kernels, maps = (1, 2, 3), (3, 4, 2)
    layout = [("embedded.weight", (12, 5))]
    for k, m in zip(kernels, maps):
        layout += [(f"conv{k}.weight", (m, k * 5)), (f"conv{k}.bias", (m,))]

    def twin(xs, p):
        e = F.embedding(xs[0] - 1, p["embedded.weight"])  # B x 10 x 5
        outs = []
        for k in kernels:
            w = p[f"conv{k}.weight"]
            wc = w.reshape(w.shape[0], k, 5).permute(0, 2, 1)  # frames k * F + f
            conv = F.conv1d(e.transpose(1, 2), wc, p[f"conv{k}.bias"])
            outs.append(torch.tanh(conv).max(2).values)
        return [torch.cat(outs, 1)]
    m = compare(mod, twin, layout, rng, index_high=12)
    # Torch's char-CNN feeds the characters as a float tensor: the same numbers
    idx = rng.integers(1, 13, (3, 10))
    np.testing.assert_array_equal(m.forward(idx.astype(np.float64)), m.forward(idx))


def test_alexnet_lrn_with_cudnn_modules(rng):
    mod = compiled("alexnet_lrn.lua", shapes=("input1=Bx3x17x17",))
    layout = conv_layout("c1", 8, 3, 3, 3) + conv_layout("c2", 12, 8, 3, 3) + lin("l", 10, 48)

    def twin(xs, p):
        h = F.relu(F.conv2d(xs[0], p["c1.weight"], p["c1.bias"], stride=2, padding=1))
        h = F.max_pool2d(F.local_response_norm(h, 5, 0.0001, 0.75, 1), 3, 2)
        h = F.relu6(F.conv2d(F.pad(h, (1, 1, 1, 1)), p["c2.weight"], p["c2.bias"]))
        h = F.pad(h * 0.8, (-1, -1, -1, -1))  # SpatialDropout(0.2) at evaluation: x (1 - p)
        return [F.log_softmax(linear(h.reshape(h.shape[0], -1), p, "l"), 1)]
    compare(mod, twin, layout, rng, train=False)
    assert compiled("alexnet_lrn.lua", shapes=("input1=Bx3x17x17",),
                    defines=("nClasses=4",)).OUTPUTS[0][1] == ("B", 4)


def test_style_net(rng):
    mod = compiled("style_net.lua", "StyleNet.build(4)", ("input1=Bx3x12x12",))
    w = 4
    layout = (conv_layout("c1", w, 3, 5, 5) + conv_layout("c2", 2 * w, w, 3, 3)
              + conv_layout("d", 2 * w, 2 * w, 3, 3) + conv_layout("c3", w, 2 * w, 3, 3)
              + conv_layout("c4", 3, w, 9, 9))

    def twin(xs, p):
        def block(x, name, k, stride):
            pad = k // 2
            return F.relu(F.conv2d(F.pad(x, (pad,) * 4, mode="reflect"), p[name + ".weight"],
                                   p[name + ".bias"], stride=stride))
        h = block(xs[0], "c1", 5, 1)
        h = block(h, "c2", 3, 2)
        h = h + F.conv2d(F.pad(h, (2,) * 4, mode="replicate"), p["d.weight"], p["d.bias"],
                         dilation=2)
        h = block(F.interpolate(h, scale_factor=2, mode="nearest"), "c3", 3, 1)
        h = F.conv2d(F.pad(h, (4,) * 4, mode="reflect"), p["c4.weight"], p["c4.bias"])
        return [torch.tanh(h)]
    compare(mod, twin, layout, rng)


# ---- constructs of the real files beyond plain nn: char-rnn's global OneHot, dpnn's LinearNoBias --


def test_global_onehot_as_char_rnn_uses_it(rng):
    # char-rnn's model files call a global `OneHot` (a torch.class from util/OneHot.lua)
    text = ("require 'nngraph'\n"
            "local x = nn.Identity()()\n"
            "local y = nn.Linear(5, 2)(OneHot(5)(x))\n"
            "return nn.gModule({x}, {y})\n")
    mod = compiled("onehot.lua", text=text)

    def twin(xs, p):
        return [linear(one_hot(xs[0], 5), p, "l")]
    compare(mod, twin, lin("l", 2, 5), rng, index_high=5)


def test_linear_no_bias_as_fastlstm_uses_it(rng):
    # Element-Research/rnn (dpnn) nn.LinearNoBias(inputSize, outputSize)
    text = ("require 'nngraph'\n"
            "local x = nn.Identity()()\n"
            "return nn.gModule({x}, {nn.LinearNoBias(3, 4)(x)})\n")
    mod = compiled("nobias.lua", text=text)

    def twin(xs, p):
        return [linear(xs[0], p, "l", bias=False)]
    compare(mod, twin, lin("l", 4, 3, bias=False), rng)


# ---- every command in the spec headers works ------------------------------------------------


def header_commands():
    cmds = []
    for path in sorted(CORPUS.glob("*.lua")):
        header = path.read_text().split("\nrequire")[0].replace("\\\n--", " ")
        for line in header.splitlines():
            m = re.search(r"graphc compile (\S+) (.*)", line)
            if m:
                cmds.append((path.name, m.group(1), shlex.split(m.group(2))))
    return cmds


def test_every_corpus_spec_has_a_header_command():
    named = {name for name, _, _ in header_commands()}
    assert named == {p.name for p in CORPUS.glob("*.lua")}
    assert len(named) >= 10


@pytest.mark.parametrize("name,path,args", header_commands(),
                         ids=[f"{n}:{' '.join(a)}" for n, _, a in header_commands()])
def test_header_command_compiles(name, path, args, tmp_path, monkeypatch):
    """The command in each spec's header, run as written (from the repository root) through
    the CLI, with its -o sent to tmp_path; the module it writes imports and runs."""
    from graphc import cli
    assert path == f"samples/corpus/{name}"
    args = list(args)
    if "-o" in args:
        del args[args.index("-o"):args.index("-o") + 2]
    monkeypatch.chdir(ROOT)
    out = tmp_path / "gen.py"
    assert cli.main(["compile", path, *args, "-o", str(out)]) == 0
    mod = types.ModuleType(f"corpus_{name}")
    exec(compile(out.read_text(), str(out), "exec"), mod.__dict__)
    assert mod.OUTPUTS and mod.Model(dtype="float64").getParameters()[0].dtype == np.float64
