"""--emit onnx: every sample and corpus spec (their header commands) exported and run in
onnxruntime against the numpy target in evaluate mode (float32, 1e-5 relative); weights from
the seed, from --weights (Model.save) and from a .t7; unexportable ops are located errors."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graphc.backends.onnx import RULES
from graphc.compiler import Options, compile_spec, parse_shape
from graphc.errors import SpecError
from test_t7_roundtrip import CASES, load_module, options, random_inputs, run
from t7_models import save_like_torch, spec_model
from t7_writer import save

onnx = pytest.importorskip("onnx", reason="needs onnx: pip install '.[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install '.[onnx]'")

ROOT = Path(__file__).resolve().parent.parent


def session(data: bytes):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def compare(model, data, rng, batch=3):
    """onnxruntime vs the numpy Model (float32) on random inputs."""
    sess = session(data)
    xs = random_inputs(model, rng, batch)
    xs = [x if x.dtype.kind == "i" else x.astype(np.float32) for x in xs]
    want = run(model, xs)
    got = sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), xs)})
    assert [o.name for o in sess.get_outputs()] == [n for n, _ in model.OUTPUTS]
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert np.isfinite(b).all()  # NaN == NaN would compare as equal
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def export(spec, opts):
    o = Options(**{**opts.__dict__, "dtype": "float32"})
    o.emit = "onnx"
    return compile_spec(str(spec), o).source


@pytest.mark.parametrize("spec,args", CASES, ids=[f"{Path(s).name}:{' '.join(a)}" for s, a in CASES])
def test_every_sample_exports(spec, args):
    opts = options(args)
    graph = compile_spec(str(ROOT / spec), Options(**{**opts.__dict__, "emit": "ir"})).graph
    missing = [n for n in graph.nodes if n.op not in RULES]
    if missing:  # modules without an ONNX form (plugins): the located error names the first
        with pytest.raises(SpecError, match=rf"nn.{missing[0].op} has no ONNX form") as e:
            export(ROOT / spec, opts)
        assert e.value.loc == missing[0].loc
        return
    data = export(ROOT / spec, opts)
    m = onnx.load_from_string(data)
    assert m.opset_import[0].version >= 17
    src = compile_spec(str(ROOT / spec), Options(**{**opts.__dict__, "dtype": "float32"}))
    model = load_module(src.source, "onnx_ref").Model(seed=0).evaluate()
    for inp, (_, shape, _) in zip(m.graph.input, model.INPUTS):
        dims = inp.type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == list(shape)
    assert {i.name for i in m.graph.initializer} >= {n for n, _, _ in model.PARAMETERS}
    compare(model, data, np.random.default_rng(1))
    if any(d == "B" for _, s, _ in model.INPUTS for d in s):
        compare(model, data, np.random.default_rng(2), batch=7)  # the batch is symbolic


def test_weights_file_and_t7_weights(tmp_path):
    spec = ROOT / "samples" / "corpus" / "char_lstm.lua"
    args = ["--entry", "CharLSTM.step(5, 3, 2, 0, true)"]  # with BatchNormalization
    opts = options(args)
    opts.dtype = "float32"
    model = load_module(compile_spec(str(spec), opts).source, "w_ref").Model(seed=11)
    rng = np.random.default_rng(0)
    for b in model._buffers:
        b[...] = rng.uniform(0.5, 1.5, b.shape)
    model.evaluate()
    wfile = tmp_path / "w.npz"
    model.save(wfile)
    out = tmp_path / "m.onnx"
    r = subprocess.run([sys.executable, "-m", "graphc", "compile", str(spec), *args, "--emit",
                        "onnx", "--weights", str(wfile), "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    compare(model, out.read_bytes(), rng)
    # a .t7 carries its own weights and running statistics
    t7file = tmp_path / "m.t7"
    save(t7file, save_like_torch(spec_model(str(spec), opts), model, train=False))
    o = Options(emit="onnx")
    compare(model, compile_spec(str(t7file), o).source, rng)
    # a weights file of another model is refused, naming the file
    other = load_module(compile_spec(str(ROOT / "samples" / "lstm.lua"), Options()).source, "o")
    other.Model().save(tmp_path / "other.npz")
    with pytest.raises(SpecError, match="--weights .*other.npz: .*do not match"):
        compile_spec(str(spec), Options(**{**opts.__dict__, "emit": "onnx",
                                           "weights": str(tmp_path / "other.npz")}))


def test_unexportable_op_is_a_located_error(tmp_path):
    p = tmp_path / "crit.lua"
    p.write_text("local x = nn.Identity()()\n"
                 "local y = nn.Linear(3, 2)(x)\n"
                 "local n = nn.Normalize(2)(y)\n"
                 "return nn.gModule({x}, {n})\n")
    with pytest.raises(SpecError) as e:
        compile_spec(str(p), Options(emit="onnx"))
    assert str(e.value.loc).endswith("crit.lua:3:11")
    assert "nn.Normalize has no ONNX form" in e.value.message


def test_cli_needs_an_output(tmp_path):
    r = subprocess.run([sys.executable, "-m", "graphc", "compile", str(ROOT / "samples" / "rnn.lua"),
                        "--emit", "onnx"], capture_output=True, text=True)
    assert r.returncode == 2 and "-o OUT.onnx" in r.stderr


# every rule the samples do not reach, on a small spec: (module line(s), --shape of input1)
OP_CASES = {
    "CSubTable": ("local y = nn.CSubTable()({x, nn.Tanh()(x)})", "Bx3"),
    "CDivTable": ("local y = nn.CDivTable()({x, nn.AddConstant(3)(nn.Abs()(x))})", "Bx3"),
    "unary": ("local y = nn.SoftSign()(nn.Log()(nn.Exp()(nn.Square()(nn.Contiguous()(x)))))", "Bx3"),
    "ELU/HardTanh/Clamp": ("local y = nn.Clamp(-0.2, 0.3)(nn.HardTanh(-1, 2)(nn.ELU(0.7)(x)))", "Bx3"),
    "AveragePooling": ("local y = nn.SpatialAveragePooling(2, 2, 2, 2)(x)", "Bx2x6x6"),
    "AveragePooling3D": ("local y = nn.SpatialAveragePooling(3, 3, 1, 1, 1, 1)(x)", "2x5x5"),
    "MaxPooling3D": ("local y = nn.SpatialMaxPooling(2, 2)(x)", "2x4x4"),
    "Conv3D": ("local y = nn.SpatialConvolution(2, 3, 3, 3, 1, 1, 1)(x)", "2x5x5"),
    "MM": ("local y = nn.MM(false, true)({x, nn.Tanh()(x)})", "Bx3x4"),
    "LinearRank1": ("local y = nn.Linear(3, 2)(x)", "3"),
    "BatchNorm1D": ("local y = nn.BatchNormalization(3, 1e-3, 0.1, false)(x)", "Bx3"),
    "SpatialBatchNorm3D": ("local y = nn.SpatialBatchNormalization(2)(x)", "2x3x3"),
    "PReLU4D": ("local y = nn.PReLU(2)(x)", "Bx2x3x3"),
    "SoftMax4D": ("local y = nn.LogSoftMax()(nn.SoftMax()(x))", "Bx2x3x3"),
    "DropoutV1": ("local y = nn.Dropout(0.3, true)(x)", "Bx3"),
    "SoftPlus": ("local y = nn.SoftPlus(2)(nn.MulConstant(8)(x))", "Bx3"),
    "Sum": ("local y = nn.Sum(2)(x)", "Bx3x4"),
    "SumKeep": ("local y = nn.Sum(3, nil, false, false)(x)", "Bx3x4"),
    "Mean": ("local y = nn.Mean(2, 2)(x)", "Bx3x4"),
    "MaxMin": ("local y = nn.CAddTable()({nn.Max(3)(x), nn.Min(3)(x)})", "Bx3x4"),
    "Transpose": ("local y = nn.Transpose({2, 3})(x)", "Bx3x4"),
    "SqueezeUnsqueeze": ("local y = nn.Unsqueeze(2)(nn.Squeeze(3)(x))", "Bx3x1"),
    "PowerSqrtThreshold": ("local y = nn.Threshold(0.5, -2)(nn.Sqrt()(nn.Power(2)(x)))", "Bx3"),
    "Mul": ("local y = nn.Mul()(x)", "Bx3"),
    "SoftPlus1": ("local y = nn.SoftPlus()(nn.MulConstant(12)(x))", "Bx3"),
    "MVtrans": ("local y = nn.MV(true)({x, nn.Select(2, 1)(x)})", "Bx3x3"),
    "ViewFold": ("local y = nn.View(-1, 5, 2)(nn.Linear(3, 2)(nn.View(-1, 3)(x)))", "Bx5x3"),
    "ViewFoldOutput": ("local y = nn.Tanh()(nn.View(-1):setNumInputDims(1)(x))", "Bx5x3"),
}


@pytest.mark.parametrize("name", sorted(OP_CASES))
def test_op_rules(name, tmp_path):
    line, shape = OP_CASES[name]
    p = tmp_path / "op.lua"
    p.write_text(f"local x = nn.Identity()()\n{line}\nreturn nn.gModule({{x}}, {{y}})\n")
    opts = Options(shapes={"input1": parse_shape(shape)})
    model = load_module(compile_spec(str(p), opts).source, "op_ref").Model(seed=0).evaluate()
    for b in model._buffers:  # running statistics that are not the initial ones
        b[...] = np.random.default_rng(3).uniform(0.5, 1.5, b.shape)
    model.save(tmp_path / "w.npz")
    opts.weights = str(tmp_path / "w.npz")
    compare(model, export(p, opts), np.random.default_rng(4))


def test_readme_lists_the_exportable_modules():
    text = " ".join((ROOT / "README.md").read_text().split())
    listed = text.split("the exportable ones are ", 1)[1].split(" (every sample", 1)[0]
    names = sorted(re.split(r", | and ", listed))
    assert names == sorted(set(RULES) | {"Identity"})


def test_unrolled_sequence_exports():
    opts = Options(unroll=3, state=[("output1", "input2"), ("output2", "input3")])
    spec = ROOT / "samples" / "lstm.lua"
    model = load_module(compile_spec(str(spec), opts).source, "unrolled").Model(seed=0)
    compare(model, export(spec, opts), np.random.default_rng(5))
    with pytest.raises(SpecError, match="exports one step"):
        export(spec, Options(unroll="T", state=opts.state))
