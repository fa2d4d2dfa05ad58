"""Modules written in Python (graphc.plugin, --plugin): the shipped plugins (treelstm's
CRowAddTable, torch-ntm's addressing modules) against PyTorch and finite differences through
graphc.testing.check_module, a plugin with parameters, the NTM read head of
samples/corpus/ntm_head.lua against a PyTorch twin, and the errors and plumbing (CLI,
depfile, cache, the registry restored, a changed plugin refused at run time)."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import graphc
from graphc import cli
from graphc.ops import REGISTRY
from graphc.testing import check_module

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "samples" / "plugins"
NTM, TREELSTM = str(PLUGINS / "ntm.py"), str(PLUGINS / "treelstm.py")
MEMNN = str(PLUGINS / "memnn.py")


def positive(rng, shapes):
    return [rng.uniform(0.5, 2.0, s) for s in shapes]


# (plugin, Lua call, per-sample input shapes, inputs, the same in PyTorch)
CASES = {
    "CRowAddTable": (TREELSTM, "nn.CRowAddTable()", [(3, 4), (4,)], None,
                     lambda m, v: m + v.unsqueeze(-2)),
    "SmoothCosineSimilarity": (NTM, "nn.SmoothCosineSimilarity()", [(5, 3), (3,)], None,
                               lambda m, k: (m * k.unsqueeze(-2)).sum(-1)
                               / (m.norm(dim=-1) * k.norm(dim=-1, keepdim=True) + 1e-3)),
    "SmoothCosineSimilarity(0.5)": (NTM, "nn.SmoothCosineSimilarity(0.5)", [(5, 3), (3,)], None,
                                    lambda m, k: (m * k.unsqueeze(-2)).sum(-1)
                                    / (m.norm(dim=-1) * k.norm(dim=-1, keepdim=True) + 0.5)),
    "ScalarMulTable": (NTM, "nn.ScalarMulTable()", [(5,), (1,)], None, lambda v, s: v * s),
    "ScalarDivTable": (NTM, "nn.ScalarDivTable()", [(5,), (1,)], positive, lambda v, s: v / s),
    "PowTable": (NTM, "nn.PowTable()", [(5,), (1,)], positive, lambda v, p: v ** p),
    "CircularConvolution": (NTM, "nn.CircularConvolution()", [(6,), (3,)], None,
                            lambda v, k: sum(k[..., j:j + 1] * torch.roll(v, j - 1, -1)
                                             for j in range(3))),
    "CircularConvolution5": (NTM, "nn.CircularConvolution()", [(7,), (5,)], None,
                             lambda v, k: sum(k[..., j:j + 1] * torch.roll(v, j - 2, -1)
                                              for j in range(5))),
    "OuterProd": (NTM, "nn.OuterProd()", [(4,), (3,)], None,
                  lambda a, b: a.unsqueeze(-1) * b.unsqueeze(-2)),
    "Normalize": (NTM, "nn.Normalize()", [(5,)], positive, lambda x: x / x.sum(-1, keepdim=True)),
}


def test_memnn_linearnb_matches_finite_differences_and_pytorch(tmp_path):
    errors = check_module(MEMNN, "nn.LinearNB(4, 3)", [(4,)])
    assert max(errors.values()) < 1e-5
    spec = tmp_path / "nb.lua"
    spec.write_text("require 'nngraph'\nx = nn.Identity()()\n"
                    "return nn.gModule({x}, {nn.LinearNB(4, 3)(x)})\n")
    m = graphc.compile_file(spec, plugins=MEMNN, dtype="float64").Model(seed=1)
    assert [(n, s, i) for n, s, i in m.PARAMETERS] == [("linearnb1.weight", (3, 4), ("uniform", 0.5))]
    x = np.random.default_rng(0).standard_normal((5, 4))
    w = m.parameters()[0][1]
    np.testing.assert_allclose(m.forward(x), F.linear(torch.tensor(x), torch.tensor(w)).numpy(),
                               rtol=1e-13)


@pytest.mark.parametrize("name", sorted(CASES))
def test_plugin_module_matches_finite_differences_batch_and_not(name):
    plugin, call, shapes, make, _ = CASES[name]
    errors = check_module(plugin, call, shapes, make_inputs=make)
    assert set(errors) == {"batch", "no batch"} and max(errors.values()) < 1e-5


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("batched", [True, False])
def test_plugin_module_forward_matches_pytorch(name, batched, tmp_path):
    plugin, call, shapes, make, twin = CASES[name]
    xs_names = [f"x{i}" for i in range(1, len(shapes) + 1)]
    arg = xs_names[0] if len(shapes) == 1 else "{" + ", ".join(xs_names) + "}"
    spec = tmp_path / "one.lua"
    spec.write_text("require 'nngraph'\n" + "".join(f"local {x} = nn.Identity()()\n" for x in xs_names)
                    + f"return nn.gModule({{{', '.join(xs_names)}}}, {{{call}({arg})}})\n")
    lead = ("B",) if batched else ()
    mod = graphc.compile_file(spec, plugins=plugin, dtype="float64",
                              shapes={f"input{i}": lead + s for i, s in enumerate(shapes, 1)})
    rng = np.random.default_rng(3)
    full = [((4,) if batched else ()) + s for s in shapes]
    xs = (make or (lambda r, ss: [r.standard_normal(s) for s in ss]))(rng, full)
    out = mod.Model().forward(*xs)
    np.testing.assert_allclose(out, twin(*map(torch.tensor, xs)).numpy(), rtol=1e-12, atol=1e-14)


def test_a_plugin_module_with_parameters(tmp_path):
    """A Linear-like plugin: its parameters join PARAMETERS with their init, their gradients
    accumulate into the flat buffer, and check_module covers them."""
    plugin = tmp_path / "scaled.py"
    plugin.write_text(textwrap.dedent('''
        import numpy as np
        from graphc.plugin import B, Module, Param

        class ScaledLinear(Module):
            """y = scale * (x W^T)"""
            signature = "inputSize:int, outputSize:int, scale:num=2"
            params = (Param("weight", lambda a: (a["outputSize"], a["inputSize"]),
                            lambda a: ("uniform", 1 / a["inputSize"] ** 0.5)),
                      Param("gain", lambda a: (a["outputSize"],), ("const", 1.0)))

            def shape(attrs, in_shapes):
                return in_shapes[0][:-1] + (attrs["outputSize"],)

            def input_hint(attrs, slot, in_shapes):
                return (B, attrs["inputSize"])

            def forward(attrs, inputs, params):
                (x,), (w, gain) = inputs, params
                return attrs["scale"] * (x @ w.T) * gain

            def backward(attrs, inputs, params, output, grad_output):
                (x,), (w, gain) = inputs, params
                g = attrs["scale"] * grad_output
                x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
                lin = x2 @ w.T
                return [(g * gain) @ w, (g2 * gain).T @ x2, (g2 * lin).sum(0)]
    '''))
    errors = check_module(str(plugin), "nn.ScaledLinear(3, 4, 0.5)", [(3,)])
    assert max(errors.values()) < 1e-5
    spec = tmp_path / "s.lua"
    spec.write_text("require 'nngraph'\nx = nn.Identity()()\n"
                    "return nn.gModule({x}, {nn.ScaledLinear(3, 4)(x)})\n")
    mod = graphc.compile_file(spec, plugins=[str(plugin)])
    assert [(n, s) for n, s, _ in mod.PARAMETERS] == [("scaledlinear1.weight", (4, 3)),
                                                     ("scaledlinear1.gain", (4,))]
    assert mod.PARAMETERS[1][2] == ("const", 1.0)
    m = mod.Model()
    np.testing.assert_array_equal(m.parameters()[1][1], np.ones(4, np.float32))


# ---- the NTM read head (samples/corpus/ntm_head.lua) against PyTorch ---------------------

def test_ntm_read_head_matches_pytorch():
    mod = graphc.compile_file(ROOT / "samples" / "corpus" / "ntm_head.lua", plugins=NTM,
                              dtype="float64", shapes={"memory": "Bx8x5", "prev_weights": "Bx8"})
    m = mod.Model(seed=2)
    rng = np.random.default_rng(0)
    memory, control = rng.standard_normal((4, 8, 5)), rng.standard_normal((4, 6))
    prev = rng.dirichlet(np.ones(8), 4)
    weights, read = m.forward(memory, prev, control)
    gw, gr = rng.standard_normal(weights.shape), rng.standard_normal(read.shape)
    m.zeroGradParameters()
    grads = m.backward((memory, prev, control), (gw, gr))

    p = [torch.tensor(w, requires_grad=True) for _, w in m.parameters()]
    M, wp, c = (torch.tensor(a, requires_grad=True) for a in (memory, prev, control))
    key = torch.tanh(F.linear(c, p[0], p[1]))
    shift = torch.softmax(F.linear(c, p[2], p[3]), -1)
    beta = F.softplus(F.linear(c, p[4], p[5]))
    gate = torch.sigmoid(F.linear(c, p[6], p[7]))
    gamma = 1 + F.softplus(F.linear(c, p[8], p[9]))
    sim = (M * key.unsqueeze(1)).sum(-1) / (M.norm(dim=-1) * key.norm(dim=-1, keepdim=True) + 1e-3)
    gated = torch.softmax(sim * beta, -1) * gate + wp * (1 - gate)
    shifted = sum(shift[:, j:j + 1] * torch.roll(gated, j - 1, -1) for j in range(3))
    sharp = shifted ** gamma
    w_ref = sharp / sharp.sum(-1, keepdim=True)
    r_ref = (w_ref.unsqueeze(-1) * M).sum(1)
    np.testing.assert_allclose(weights, w_ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(read, r_ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    ((w_ref * torch.tensor(gw)).sum() + (r_ref * torch.tensor(gr)).sum()).backward()
    for mine, ref in zip(grads, (M, wp, c)):
        np.testing.assert_allclose(mine, ref.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(m.getParameters()[1],
                               np.concatenate([q.grad.numpy().ravel() for q in p]),
                               rtol=1e-9, atol=1e-11)


# ---- errors and plumbing -------------------------------------------------------------------

def _spec(tmp_path, body="nn.CRowAddTable()({m, v})"):
    spec = tmp_path / "t.lua"
    spec.write_text("require 'nngraph'\nm = nn.Identity()()\nv = nn.Identity()()\n"
                    f"y = {body}\nreturn nn.gModule({{m, v}}, {{y}})\n")
    return spec


def test_the_registry_is_as_before_after_a_compile_with_plugins(tmp_path):
    before = dict(REGISTRY)
    graphc.compile_file(_spec(tmp_path, "nn.CAddTable()({nn.Normalize()(m), v})"), plugins=NTM,
                        shapes={"input1": "Bx4", "input2": "Bx4"})
    assert REGISTRY == before and "SmoothCosineSimilarity" not in REGISTRY
    with pytest.raises(graphc.SpecError, match="unknown module nn.CRowAddTable"):
        graphc.compile_file(_spec(tmp_path), shapes={"input1": "Bx3x4", "input2": "Bx4"})


def test_a_plugin_may_not_take_a_builtin_name_unless_it_says_so(tmp_path):
    plugin = tmp_path / "clash.py"
    plugin.write_text("from graphc.plugin import Module\nclass Tanh(Module):\n"
                      "    def forward(a, i, p): return i[0]\n")
    with pytest.raises(graphc.SpecError, match="graphc already has nn.Tanh; set overrides_builtin"):
        graphc.compile_file(_spec(tmp_path, "nn.Tanh()(nn.CAddTable()({m, v}))"), plugins=str(plugin))


def test_a_plugin_module_without_forward_or_backward_is_refused_at_load(tmp_path):
    plugin = tmp_path / "half.py"
    plugin.write_text("from graphc.plugin import Module\nclass RowAdd(Module):\n"
                      "    def forward(a, i, p): return i[0]\n")
    with pytest.raises(graphc.SpecError, match="module RowAdd defines no backward"):
        graphc.compile_file(_spec(tmp_path, "nn.RowAdd()(nn.CAddTable()({m, v}))"),
                            plugins=str(plugin))


def test_plugin_shape_errors_are_located_at_the_node(tmp_path, capsys):
    spec = _spec(tmp_path)
    rc = cli.main(["compile", str(spec), "--plugin", TREELSTM, "--shape", "input1=Bx3x4",
                   "--shape", "input2=Bx5"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith(f"{spec}:4:5: error: nn.CRowAddTable: expects an NxD matrix and a D "
                          "vector, got Bx3x4 and Bx5"), err


def test_a_bad_plugin_file_is_a_clear_error(tmp_path):
    spec = _spec(tmp_path)
    with pytest.raises(graphc.SpecError, match="--plugin .*nope.py: cannot read it"):
        graphc.compile_file(spec, plugins=str(tmp_path / "nope.py"))
    bad = tmp_path / "my-mods.py"
    bad.write_text("")
    with pytest.raises(graphc.SpecError, match="must be a Python module name"):
        graphc.compile_file(spec, plugins=str(bad))
    broken = tmp_path / "broken_mods.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(graphc.SpecError, match="importing it raised RuntimeError: boom"):
        graphc.compile_file(spec, plugins=str(broken))


def test_cli_check_graph_and_depfile_know_the_plugin(tmp_path, capsys):
    spec = _spec(tmp_path)
    shapes = ["--shape", "input1=Bx3x4", "--shape", "input2=Bx4"]
    assert cli.main(["check", str(spec), "--plugin", TREELSTM] + shapes) == 0
    assert "nn.CRowAddTable" in capsys.readouterr().out
    assert cli.main(["graph", str(spec), "--plugin", TREELSTM, "-o", str(tmp_path / "g.dot")]
                    + shapes) == 0
    out = tmp_path / "t_gen.py"
    assert cli.main(["compile", str(spec), "--plugin", TREELSTM, "-o", str(out),
                     "--depfile", str(tmp_path / "t.d")] + shapes) == 0
    assert TREELSTM in (tmp_path / "t.d").read_text()
    assert "--plugin treelstm.py" in out.read_text().splitlines()[1]


def test_a_generated_file_imports_its_plugin_and_refuses_a_changed_one(tmp_path):
    """The CLI's output imports the plugin by name at run time (beside it, or on the path),
    and refuses a plugin file other than the one it was compiled with."""
    plugin = tmp_path / "treelstm.py"
    plugin.write_text(Path(TREELSTM).read_text())
    spec = _spec(tmp_path)
    assert cli.main(["compile", str(spec), "--plugin", str(plugin), "-o", str(tmp_path / "gen.py"),
                     "--shape", "input1=Bx3x4", "--shape", "input2=Bx4"]) == 0
    run = ("import numpy as np, gen; m = gen.Model(); "
           "print(m.forward(np.ones((2, 3, 4), 'float32'), np.ones((2, 4), 'float32')).sum())")
    r = subprocess.run([sys.executable, "-c", run], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and float(r.stdout) == pytest.approx(48.0), r.stderr
    plugin.write_text(Path(TREELSTM).read_text() + "\n# changed\n")
    r = subprocess.run([sys.executable, "-c", run], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and "is not the file this model was compiled with" in r.stderr


def test_load_caches_by_the_plugin_content(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    plugin = tmp_path / "rowadd.py"
    plugin.write_text(Path(TREELSTM).read_text())
    spec = _spec(tmp_path)
    shapes = {"input1": "Bx3x4", "input2": "Bx4"}
    first = graphc.load(spec, plugins=str(plugin), shapes=shapes)
    assert graphc.load(spec, plugins=str(plugin), shapes=shapes) is first
    record = next((tmp_path / "cache").glob("t_*.json")).read_text()
    assert str(plugin.resolve()) in record  # the plugin is one of the files the entry checks
