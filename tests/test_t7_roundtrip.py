"""Torch7 files in: every sample and corpus spec is built in graphc, saved as a .t7 the way
Torch would (tests/t7_models.py, with the test-only writer), compiled from the .t7 and
loaded with Model.load_t7; forward and backward must match the model compiled from the Lua
source (float64, 1e-12). Plus the real gModule Torch wrote, --entry, the flat order and the
mismatch messages."""
import os
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from graphc import t7
from conftest import cli_options
from graphc.compiler import Options, compile_spec, parse_shape
from graphc.errors import SpecError
from t7_models import save_like_torch, spec_model
from t7_writer import save, tensor

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "t7"


def header_commands():
    """(spec path, args) of every `graphc compile` line in the samples' and corpus specs'
    headers (those marked as failing excluded)."""
    out = []
    for path in sorted((ROOT / "samples").glob("*.lua")) + sorted((ROOT / "samples" / "corpus").glob("*.lua")):
        header = path.read_text().split("\nrequire")[0].replace("\\\n--", " ")
        for line in header.splitlines():
            m = re.search(r"graphc compile (\S+) (.*)", line)
            if m and "fails" not in line:
                out.append((m.group(1), shlex.split(m.group(2))))
    return out


def options(args, **kw) -> Options:
    """The header command's options in float64; the step module is what a .t7 holds, so
    --unroll and --state (and -o) are left out."""
    kept, it = [], iter(args)
    for a in it:
        if a in ("-o", "--unroll", "--state"):
            next(it)
        else:
            kept.append(a)
    return cli_options(kept, dtype="float64", **kw)


def load_module(source: str, name: str):
    mod = types.ModuleType(name)
    exec(compile(source, f"<generated {name}>", "exec"), mod.__dict__)
    return mod


def random_inputs(cls, rng, batch=3, positive=False):
    """Random inputs; `positive`: floats in (0.1, 1) (an NTM head's weights and sharpening
    need them, else its outputs are NaN)."""
    xs = []
    for _, shape, kind in cls.INPUTS:
        dims = [batch if d == "B" else d for d in shape]
        xs.append(rng.integers(1, 3, dims) if kind == "index" else
                  rng.uniform(0.1, 1.0, dims) if positive else rng.standard_normal(dims))
    return xs


def run(model, xs, gys=None):
    """forward and backward on flat lists; returns (outputs, input grads, param grads)."""
    args = model._nest(list(xs), model._in_struct())
    args = args if len(model._in_struct()) > 1 else (args,)
    model.forward(*args)
    outs = model._flatten_outputs()
    if gys is None:
        return outs
    model.zeroGradParameters()
    grads = model.backward(args, model._nest(list(gys), model._out_struct()))
    grads = grads if len(model._in_struct()) > 1 else (grads,)
    flat_g = [g for g in _leaves(grads)]
    return outs, flat_g, model.getParameters()[1].copy()


def _leaves(s):
    if s is None or isinstance(s, np.ndarray):
        return [s]
    return [x for v in s for x in _leaves(v)]


def close(a, b, tol=1e-12):
    if a is None or b is None:
        assert a is None and b is None
        return
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


CASES = header_commands()


@pytest.mark.parametrize("spec,args", CASES, ids=[f"{Path(s).name}:{' '.join(a)}" for s, a in CASES])
def test_round_trip(spec, args, tmp_path):
    opts = options(args)
    src = load_module(compile_spec(str(ROOT / spec), opts).source, "src_model")
    m_src = src.Model(dtype="float64", seed=3)
    rng = np.random.default_rng(0)
    for b in m_src._buffers:  # running statistics that are not the initial ones
        b[...] = rng.uniform(0.5, 1.5, b.shape)
    m_src.evaluate()  # deterministic Dropout (its p and train flag travel in the file)
    top = spec_model(str(ROOT / spec), opts)
    path = tmp_path / "model.t7"
    save(path, save_like_torch(top, m_src, train=False))

    t7opts = options(args)
    t7opts.entry = None
    t7opts.prelude = None  # what the prelude set up is in the file's modules
    res = compile_spec(str(path), t7opts)
    m_t7 = load_module(res.source, "t7_model").Model(dtype="float64", seed=99)
    m_t7.load_t7(path)
    assert m_t7.train is False
    # a model compiled from a .t7 lays its flat parameters out as Torch's getParameters()
    order = [i for _, _, slots in m_t7.T7_MODULES for _, what, i in slots if what == "param"]
    assert order == list(range(len(m_t7.PARAMETERS)))
    # annotate names (inputs, outputs) and shapes travel in the file's nngraph annotations
    assert m_t7.INPUTS == m_src.INPUTS and m_t7.OUTPUTS == m_src.OUTPUTS
    assert sorted(m_t7.getParameters()[0]) == sorted(m_src.getParameters()[0])
    # the model compiled from source also loads the file (matched by structure)
    m_src2 = src.Model(dtype="float64", seed=7).load_t7(path)
    np.testing.assert_array_equal(m_src2.getParameters()[0], m_src.getParameters()[0])
    for b1, b2 in zip(m_src2._buffers, m_src._buffers):
        np.testing.assert_array_equal(b1, b2)

    xs = random_inputs(m_src, rng)
    with np.errstate(invalid="ignore"):
        outs = run(m_src, xs)
    if not all(np.isfinite(o).all() for o in outs):
        xs = random_inputs(m_src, rng, positive=True)
        outs = run(m_src, xs)
    assert all(np.isfinite(o).all() for o in outs)  # NaN == NaN would compare as equal
    gys = [rng.standard_normal(o.shape) for o in outs]
    o1, gi1, gp1 = run(m_src, xs, gys)
    o2, gi2, gp2 = run(m_t7, xs, gys)
    assert len(o1) == len(o2) and len(gi1) == len(gi2)
    for a, b in zip(o1, o2):
        close(a, b)
    for a, b in zip(gi1, gi2):
        close(a, b)
    # parameter gradients: same numbers, though the flat order may differ (Torch's order
    # in the .t7 model, constructor order in the source model): compare per module path
    src_by = _grads_by_path(m_src)
    t7_by = _grads_by_path(m_t7)
    assert src_by.keys() == t7_by.keys()
    for k in src_by:
        close(src_by[k], t7_by[k])


def _grads_by_path(model):
    out = {}
    for path, kind, slots in model.T7_MODULES:
        for field, what, i in slots:
            if what == "param":
                out[(path, field)] = model._grads[i]
    return out


# ---- the real gModule Torch wrote ---------------------------------------------------------


def test_real_gmodule_compiles_with_its_weights():
    path = DATA / "gmodule_with_linear_identity.t7"
    res = compile_spec(str(path), Options(dtype="float64"))
    mod = load_module(res.source, "real_g")
    assert [n for n, _, _ in mod.INPUTS] == ["input1", "input2"]
    m = mod.Model(dtype="float64").load_t7(path)
    g = t7.load(path)
    lin = g.modules[3]
    a, b = np.random.default_rng(0).standard_normal((2, 5, 1)), None
    a = a[0]
    b = np.random.default_rng(1).standard_normal((5, 2))
    # torch: mod = nn.gModule({a, b}, {nn.CAddTable(){b, nn.Linear(1,2)(a)}})
    np.testing.assert_allclose(m.forward(a, b), b + a @ lin.weight.T + lin.bias, rtol=1e-12)
    assert [k for _, k, _ in mod.T7_MODULES] == ["gModule", "Identity", "Identity", "Linear",
                                                 "CAddTable"]


def test_cli_compiles_a_t7_with_entry(tmp_path):
    g = t7.load(DATA / "gmodule_with_linear_identity.t7")
    ckpt = {"protos": {"rnn": g, "criterion": t7.TorchObject("nn.ClassNLLCriterion", 1,
                                                              t7.Table(sizeAverage=True))},
            "opt": {"rnn_size": 2, "model": "lstm"}, "vocab": {"a": 1, "b": 2}}
    path = tmp_path / "lm_lstm_epoch30.t7"
    save(path, ckpt)
    out = tmp_path / "rnn.py"
    r = subprocess.run([sys.executable, "-m", "graphc", "compile", str(path), "--entry",
                        "protos.rnn", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "T7_MODULES" in out.read_text()
    r = subprocess.run([sys.executable, "-m", "graphc", "compile", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "holds a table" in r.stderr and "--entry protos." in r.stderr
    back = t7.load(path)
    assert back["vocab"]["b"] == 2 and back["opt"]["model"] == "lstm"
    m = load_module(out.read_text(), "entry_model").Model(dtype="float64")
    m.load_t7(path, entry="protos.rnn")
    np.testing.assert_array_equal(m._weights[0], g.modules[3].weight)


# ---- load_t7: mismatches and the flat order -----------------------------------------------


def _lstm():
    opts = Options(dtype="float64")
    src = load_module(compile_spec(str(ROOT / "samples" / "lstm.lua"), opts).source, "lstm_src")
    return src, spec_model(str(ROOT / "samples" / "lstm.lua"), opts)


def test_load_t7_mismatch_names_the_first_module(tmp_path):
    src, top = _lstm()
    m = src.Model(dtype="float64")
    obj = save_like_torch(top, m)
    path = tmp_path / "lstm.t7"
    # a saved Linear of another size
    lin = next(x for x in obj.modules.array() if x.typename == "nn.Linear")
    lin.fields["weight"] = tensor(np.zeros((3, 3)))
    save(path, obj)
    before = m.getParameters()[0].copy()
    idx = [i for i, x in enumerate(obj.modules.array(), 1) if x is lin][0]
    with pytest.raises(ValueError, match=rf"modules\.{idx} \(nn\.Linear\) weight .* has shape 3x3 "
                                         r"in the file"):
        m.load_t7(path)
    np.testing.assert_array_equal(m.getParameters()[0], before)  # nothing changed
    # a module of another kind
    obj = save_like_torch(top, m)
    tanh = next(i for i, x in enumerate(obj.modules.array(), 1) if x.typename == "nn.Tanh")
    obj.modules[tanh].typename = "nn.ReLU"
    save(path, obj)
    with pytest.raises(ValueError, match=rf"the model has modules\.{tanh} \(nn\.Tanh\) where the "
                                         rf"file has modules\.{tanh} \(nn\.ReLU\)"):
        m.load_t7(path)


def test_load_t7_flat_getparameters_order(tmp_path):
    src, top = _lstm()
    m = src.Model(dtype="float64", seed=5)
    # Torch's getParameters(): modules in the saved tree's order, weight then bias
    flat = np.concatenate([m._weights[i].ravel() for _, _, slots in m.T7_MODULES
                           for _, what, i in slots if what == "param"])
    path = tmp_path / "flat.t7"
    save(path, flat.astype(np.float32))
    m2 = src.Model(dtype="float64", seed=6).load_t7(path, order="flat")
    np.testing.assert_allclose(m2.getParameters()[0], m.getParameters()[0], rtol=1e-6)
    with pytest.raises(ValueError, match="the flat vector has 3 numbers"):
        m2.load_t7(_saved(tmp_path, np.zeros(3)), order="flat")


def _saved(tmp_path, obj):
    p = tmp_path / "x.t7"
    save(p, obj)
    return p


def test_compile_errors_are_located(tmp_path):
    bad = t7.TorchObject("nn.gModule", 1, t7.Table(modules=t7.Table()))
    with pytest.raises(SpecError, match="x.t7: the file \\(nn.gModule\\): error: nn.gModule has "
                                        "no forwardnodes"):
        compile_spec(str(_saved(tmp_path, bad)), Options())
    unsupported = t7.TorchObject("nn.SpatialConvolutionLocal", 1, t7.Table())
    with pytest.raises(SpecError, match="nn.SpatialConvolutionLocal is a Torch nn module that "
                                        "graphc does not support"):
        compile_spec(str(_saved(tmp_path, unsupported)), Options())
    p = tmp_path / "trunc.t7"
    p.write_bytes((DATA / "gmodule_with_linear_identity.t7").read_bytes()[:500])
    with pytest.raises(SpecError, match=r"not a readable Torch7 file: .*offset \d+"):
        compile_spec(str(p), Options())


def test_ascii_t7_round_trip(tmp_path):
    src, top = _lstm()
    m = src.Model(dtype="float64", seed=4)
    path = tmp_path / "lstm_ascii.t7"
    save(path, save_like_torch(top, m), ascii=True)
    assert path.read_bytes()[:1].isdigit()
    m_t7 = load_module(compile_spec(str(path), Options(dtype="float64")).source, "ascii_m")
    m2 = m_t7.Model(dtype="float64", seed=1).load_t7(path)
    xs = random_inputs(m, np.random.default_rng(2))
    for a, b in zip(run(m, xs), run(m2, xs)):
        close(a, b)


# ---- constructor arguments from the fields Torch's constructors store -------------------


def _m(typename, **fields):
    return t7.TorchObject(typename, 1, t7.Table(fields))


def test_arguments_from_torch_fields(tmp_path):
    """Fields named as torch/nn's __init__ stores them (read from its source), not as
    graphc names its arguments."""
    from t7_writer import Storage
    rng = np.random.default_rng(0)
    conv_w = rng.standard_normal((4, 2 * 3 * 3))  # SpatialConvolutionMM's 2-D weight
    seq = _m("nn.Sequential", modules=t7.Table({
        1: _m("nn.SpatialConvolutionMM", nInputPlane=2, nOutputPlane=4, kW=3, kH=3, dW=1, dH=1,
              padW=1, padH=1, weight=conv_w),  # bias nil: :noBias()
        2: _m("nn.SpatialMaxPooling", kW=2, kH=2, dW=2, dH=2, padW=0, padH=0, ceil_mode=True),
        # View(-1):setNumInputDims(3): without numInputDims Torch's View(-1) flattens the
        # batch too (its batchsize() finds no batch when a size is -1), as graphc does
        3: _m("nn.View", size=Storage(np.array([-1], np.int64)), numElements=1,
              numInputDims=3),
        4: _m("nn.Narrow", dimension=2, index=3, length=5),
        5: _m("nn.HardTanh", min_val=-0.5, max_val=0.5, inplace=False),
        6: _m("nn.Dropout", p=0.25, v2=False, train=False, inplace=False,
              stochastic_inference=False),
        7: _m("nn.Threshold", threshold=0.1, val=-1.0, inplace=False),
        8: _m("nn.Power", pow=2),
        9: _m("nn.Replicate", nfeatures=3, dim=2),
    }))
    path = tmp_path / "seq.t7"
    save(path, seq)
    res = compile_spec(str(path), Options(dtype="float64", emit="ir",
                                          shapes={"input1": parse_shape("Bx2x5x5")}))
    attrs = {n.op: n.attrs for n in res.graph.nodes}
    assert attrs["SpatialConvolution"]["bias"] is False
    assert attrs["SpatialConvolution"]["padH"] == 1
    assert attrs["SpatialMaxPooling"]["ceil_mode"] is True
    assert attrs["Narrow"]["offset"] == 3 and attrs["Narrow"]["length"] == 5
    assert (attrs["HardTanh"]["min_value"], attrs["HardTanh"]["max_value"]) == (-0.5, 0.5)
    assert attrs["Dropout"]["p"] == 0.25 and attrs["Dropout"]["v1"] is True
    assert (attrs["Threshold"]["th"], attrs["Threshold"]["v"]) == (0.1, -1.0)
    assert attrs["Power"]["p"] == 2 and attrs["Replicate"]["nFeature"] == 3
    mod = load_module(compile_spec(str(path), Options(dtype="float64",
                      shapes={"input1": parse_shape("Bx2x5x5")})).source, "fields_m")
    m = mod.Model(dtype="float64").load_t7(path)
    assert m.train is False
    np.testing.assert_array_equal(m._weights[0], conv_w.reshape(4, 2, 3, 3))


def test_real_linear_reproduces_torchs_output():
    """cpp-torch's example: an nn.Linear, an input and the output Torch computed for it."""
    net = DATA / "cpptorch_linear_net.t7"
    x, y = t7.load(DATA / "cpptorch_linear_x.t7"), t7.load(DATA / "cpptorch_linear_y.t7")
    assert t7.load(net).typename == "nn.Linear" and x.dtype == np.float32
    mod = load_module(compile_spec(str(net), Options()).source, "cpptorch_linear")
    m = mod.Model().load_t7(net)  # float32, as Torch computed it
    np.testing.assert_allclose(m.forward(x), y, rtol=1e-6)
    assert y.tolist() == [12.0, 13.0]


# ---- the README's "Coming from Torch7" walk-through -------------------------------------


def test_readme_char_rnn_walkthrough(tmp_path):
    """A checkpoint shaped as char-rnn's train.lua saves it (its own OneHot class, float
    tensors, a byte-string vocabulary entry), taken through the README's steps."""
    text = (ROOT / "samples" / "data" / "tinyshakespeare.txt").read_text()[:3000]
    chars = sorted(set(text))
    vocab = {c: i for i, c in enumerate(chars, 1)}
    vocab["\xe9".encode("latin-1")] = len(vocab) + 1  # a single byte of a UTF-8 character
    rnn_size, layers = 16, 2
    opts = Options(dtype="float64", entry=f"LSTM.lstm({len(vocab)}, {rnn_size}, {layers}, 0.5)")
    spec = str(ROOT / "samples" / "charrnn.lua")
    trained = load_module(compile_spec(spec, opts).source, "charrnn_src").Model(seed=21)
    rnn = save_like_torch(spec_model(spec, opts), trained, train=False, dtype=np.float32,
                          typenames={"OneHot": "OneHot"})
    ckpt = {"protos": {"rnn": rnn, "criterion": t7.TorchObject(
                "nn.ClassNLLCriterion", 1, t7.Table(sizeAverage=True))},
            "opt": {"rnn_size": rnn_size, "num_layers": layers, "model": "lstm",
                    "dropout": 0.5, "seq_length": 50},
            "vocab": vocab, "epoch": 30.0, "i": 12000, "train_losses": {1: 4.2, 2: 3.9}}
    (tmp_path / "cv").mkdir()
    path = tmp_path / "cv" / "lm_lstm_epoch30.00_1.3950.t7"
    save(path, ckpt)
    # the README's commands and code, run as written (with this checkpoint's location)
    section = (ROOT / "README.md").read_text().split("## Coming from Torch7", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```console\n(.*?)```", section, re.S)[0]
    for line in commands.strip().splitlines():
        args = shlex.split(line.lstrip("$ "))
        assert args[:2] == ["graphc", "compile"]
        r = subprocess.run([sys.executable, "-m", "graphc", *args[1:]], capture_output=True,
                           text=True, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    sys.modules["char_rnn"] = load_module((tmp_path / "char_rnn.py").read_text(), "char_rnn")
    ns = {"print": lambda *a: None}
    cwd = Path.cwd()
    try:
        os.chdir(tmp_path)  # the README's relative paths
        exec(compile(blocks[0], "<README sampling>", "exec"), ns)
        exec(compile(blocks[1], "<README onnxruntime>", "exec"), ns)
    finally:
        os.chdir(cwd)
        del sys.modules["char_rnn"]
    assert len(ns["text"]) == 201 and all(isinstance(c, (str, bytes)) for c in ns["text"])
    assert ns["logp"].shape == (1, len(vocab))
    # one step of the numpy model, onnxruntime and the float64 model it was saved from
    ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install '.[onnx]'")
    sess = ort.InferenceSession(str(tmp_path / "char_rnn.onnx"), providers=["CPUExecutionProvider"])
    m = ns["m"]
    state = [np.zeros((1, rnn_size), np.float32) for _ in range(2 * layers)]
    ref_state = [s.astype(np.float64) for s in state]
    rng, x = np.random.default_rng(0), np.array([vocab["T"]])
    trained.evaluate()
    for _ in range(30):
        ort_out = sess.run(None, dict(zip([i.name for i in sess.get_inputs()], [x, *state])))
        *ref_state, ref_logp = trained.forward(x, *ref_state)
        *state, logp = m.forward(x, *state)
        np.testing.assert_allclose(ort_out[-1], logp, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(logp, ref_logp, rtol=1e-4, atol=1e-5)  # float32 weights
        p = np.exp(logp[0])
        x = np.array([rng.choice(len(p), p=p / p.sum()) + 1])


def test_sequence_loads_the_step_weights(tmp_path):
    src, top = _lstm()
    m = src.Model(dtype="float64", seed=8)
    path = tmp_path / "step.t7"
    save(path, save_like_torch(top, m))
    opts = Options(dtype="float64", unroll="T", state=[("output1", "input2"), ("output2", "input3")])
    seq_mod = load_module(compile_spec(str(path), opts).source, "seq_t7")
    seq = seq_mod.Sequence(dtype="float64", seed=1).load_t7(path)
    np.testing.assert_array_equal(seq.getParameters()[0], m.getParameters()[0])


def test_test_saver_writes_the_graph_torch_wrote(tmp_path):
    """The test-only saver, given the Lua that built the real gModule, lays out forwardnodes
    (modules, split and select nodes, input order) and `modules` exactly as Torch did."""
    spec = tmp_path / "real.lua"
    spec.write_text("a = nn.Identity()()\nb = nn.Identity()()\nc = nn.Linear(1, 2)(a)\n"
                    "mod = nn.gModule({a, b}, {nn.CAddTable()({b, c})})\nreturn mod\n")
    opts = Options(dtype="float64")
    model = load_module(compile_spec(str(spec), opts).source, "real_src").Model(dtype="float64")
    ours = save_like_torch(spec_model(str(spec), opts), model)
    real = t7.load(DATA / "gmodule_with_linear_identity.t7")

    def layout(g):
        nodes = g.forwardnodes.array()
        pos = {n.data: i for i, n in enumerate(nodes)}
        return [(n.data["module"].typename if "module" in n.data else None,
                 n.data.get("selectindex"), n.data.get("nSplitOutputs"),
                 [pos[d] for d in n.data["mapindex"].array()]) for n in nodes]
    assert layout(ours) == layout(real)
    assert [m.typename for m in ours.modules.array()] == [m.typename for m in real.modules.array()]
    assert layout(real)[0] == (None, None, None, [])  # the innode


def test_clones_sharing_weights_are_one_module(tmp_path):
    """Torch's clone('weight', 'bias') (an unrolled RNN's steps): distinct module objects
    whose parameters view the same storages compile to one module, as graphc shares a module
    used twice; a spec that uses one module twice loads the file."""
    from t7_writer import Storage, Tensor
    rng = np.random.default_rng(0)
    w, b = Storage(rng.standard_normal(6)), Storage(rng.standard_normal(2))

    def linear():
        return _m("nn.Linear", weight=Tensor(w, (2, 3)), bias=Tensor(b, (2,)),
                  gradWeight=tensor(np.zeros((2, 3))), gradBias=tensor(np.zeros(2)))
    other = _m("nn.Linear", weight=tensor(rng.standard_normal((2, 3))), bias=tensor(np.zeros(2)))
    ct = _m("nn.ConcatTable", modules=t7.Table({1: linear(), 2: linear(), 3: other}))
    path = tmp_path / "clones.t7"
    save(path, ct)
    mod = load_module(compile_spec(str(path), Options(dtype="float64")).source, "clones")
    assert [s for _, s, _ in mod.PARAMETERS] == [(2, 3), (2,), (2, 3), (2,)]
    m = mod.Model(dtype="float64").load_t7(path)
    x = rng.standard_normal((4, 3))
    y1, y2, y3 = m.forward(x)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(y1, x @ w.array.reshape(2, 3).T + b.array, rtol=1e-12)
    m.zeroGradParameters()
    m.backward(x, [np.ones((4, 2))] * 3)
    np.testing.assert_allclose(m._grads[1], 2 * 4 * np.ones(2))  # both uses add up
    spec = tmp_path / "shared.lua"
    spec.write_text("local l = nn.Linear(3, 2)\nlocal c = nn.ConcatTable()\nc:add(l)\nc:add(l)\n"
                    "c:add(nn.Linear(3, 2))\nreturn c\n")
    src = load_module(compile_spec(str(spec), Options(dtype="float64")).source, "shared_src")
    s = src.Model(dtype="float64").load_t7(path)
    np.testing.assert_array_equal(s.getParameters()[0], m.getParameters()[0])
