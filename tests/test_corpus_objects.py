"""The corpus specs that use Torch's module objects at spec time (samples/corpus/msr_init.lua,
dcgan_init.lua, tied_memory.lua, class_cell.lua) against hand-written PyTorch twins, with the
helpers and tolerances of test_corpus.py: forward outputs, input gradients and the flat
parameter gradient must agree for random weights; and the initialisation each spec records
after construction must be what the generated Model draws."""
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from test_corpus import compare, compiled, lin, linear

# ---- msr_init.lua: findModules, Torch's fields, normal/zero/fill, bias = nil, get(i) ---------


def _bn_eval(x, p, name, eps):
    c = x.shape[1]
    return F.batch_norm(x, torch.zeros(c, dtype=x.dtype), torch.ones(c, dtype=x.dtype),
                        p[name + ".weight"], p[name + ".bias"], training=False, eps=eps)


def conv_layout(name, out, inp, bias=True):
    return [(name + ".weight", (out, inp, 3, 3))] + ([(name + ".bias", (out,))] if bias else [])


def bn_layout(name, n):
    return [(name + ".weight", (n,)), (name + ".bias", (n,))]


MSR_LAYOUT = (conv_layout("c1", 4, 3, bias=False) + bn_layout("b1", 4) + conv_layout("c2", 4, 4)
              + bn_layout("b2", 4) + conv_layout("c3", 6, 4) + bn_layout("b3", 6)
              + lin("l1", 10, 24) + bn_layout("b4", 10) + lin("l2", 5, 10))


def msr_twin(xs, p):
    (x,) = xs

    def block(x, conv, bn, bias=True):
        x = F.conv2d(x, p[conv + ".weight"], p[conv + ".bias"] if bias else None, padding=1)
        return torch.relu(_bn_eval(x, p, bn, 1e-3))
    x = block(x, "c1", "b1", bias=False)  # Dropout: the identity in evaluate mode
    x = F.max_pool2d(block(x, "c2", "b2"), 2)
    x = F.max_pool2d(block(x, "c3", "b3"), 2)
    x = x.reshape(x.shape[0], 24)
    x = torch.relu(_bn_eval(linear(x, p, "l1"), p, "b4", 1e-5))
    return [linear(x, p, "l2")]


def test_msr_init(rng):
    mod = compiled("msr_init.lua", shapes=("input1=Bx3x8x8",))
    compare(mod, msr_twin, MSR_LAYOUT, rng, train=False)


def test_msr_init_records_the_initialisation():
    mod = compiled("msr_init.lua", shapes=("input1=Bx3x8x8",))
    inits = {name: init for name, _, init in mod.PARAMETERS}
    he = lambda n_out: ("normal", math.sqrt(2 / (3 * 3 * n_out)))  # noqa: E731
    assert inits["spatialconvolution1.weight"] == he(4)
    assert "spatialconvolution1.bias" not in inits  # v.bias = nil
    assert inits["spatialconvolution3.weight"] == he(6)
    for name in ("spatialconvolution2.bias", "spatialconvolution3.bias",
                 "spatialbatchnormalization3.bias", "linear2.bias"):
        assert inits[name] == ("const", 0.0), name
    assert inits["spatialbatchnormalization1.weight"] == ("const", 1.0)
    # untouched modules keep Torch's defaults
    assert inits["linear1.weight"] == ("uniform", 1 / math.sqrt(24))
    assert inits["batchnormalization1.weight"] == ("uniform01", 1.0)
    m = mod.Model("float64", seed=7)
    w = dict(m.parameters())
    # the first parameter is the first draw from the seeded generator
    want = np.random.default_rng(7).normal(0.0, he(4)[1], (4, 3, 3, 3))
    np.testing.assert_array_equal(w["spatialconvolution1.weight"], want)
    np.testing.assert_array_equal(w["spatialbatchnormalization2.weight"], np.ones(4))
    np.testing.assert_array_equal(w["linear2.bias"], np.zeros(5))


# ---- dcgan_init.lua: net:apply(weights_init), torch.type + string find, normal(mean, std) ----

DCGAN_LAYOUT = [("f1.weight", (5, 8, 4, 4)), ("f1.bias", (8,))] + bn_layout("bn", 8) + \
    [("f2.weight", (8, 3, 4, 4)), ("f2.bias", (3,))]


def dcgan_twin(xs, p):
    (z,) = xs
    x = z.reshape(z.shape[0], 5, 1, 1)
    x = F.conv_transpose2d(x, p["f1.weight"], p["f1.bias"])
    x = torch.relu(F.batch_norm(x, None, None, p["bn.weight"], p["bn.bias"], training=True,
                                eps=1e-5))
    x = F.conv_transpose2d(x, p["f2.weight"], p["f2.bias"], stride=2, padding=1)
    return [torch.tanh(x)]


def test_dcgan_init(rng):
    mod = compiled("dcgan_init.lua", shapes=("input1=Bx5",))
    compare(mod, dcgan_twin, DCGAN_LAYOUT, rng)


def test_dcgan_init_records_the_initialisation():
    mod = compiled("dcgan_init.lua", shapes=("input1=Bx5",))
    assert [init for _, _, init in mod.PARAMETERS] == [
        ("normal", 0.02), ("const", 0.0), ("normal_mean", 1.0, 0.02), ("const", 0.0),
        ("normal", 0.02), ("const", 0.0)]
    m = mod.Model("float64", seed=3)
    r = np.random.default_rng(3)  # draws in flat order; constants draw nothing
    w = [v for _, v in m.parameters()]
    np.testing.assert_array_equal(w[0], r.normal(0.0, 0.02, (5, 8, 4, 4)))
    np.testing.assert_array_equal(w[2], r.normal(1.0, 0.02, (8,)))
    np.testing.assert_array_equal(w[4], r.normal(0.0, 0.02, (8, 3, 4, 4)))
    assert not w[1].any() and not w[5].any()


# ---- tied_memory.lua: a torch.class LinearNB, node.data.module:share after build -------------

MEM_ENTRY = "build_model({nwords = 7, edim = 4, memsize = 3, nhop = 3})"
MEM_LAYOUT = [("A.weight", (7, 4)), ("B.weight", (7, 4)), ("C.weight", (4, 4)), ("z.weight", (7, 4))]


def memory_twin(xs, p):
    q, target, context = xs
    A = F.embedding(context - 1, p["A.weight"])  # B x M x d
    Bm = F.embedding(context - 1, p["B.weight"])
    h = q
    for _ in range(3):  # every hop uses the one shared C
        P = torch.softmax(torch.bmm(h[:, None, :], A.transpose(1, 2))[:, 0, :], dim=1)
        h = F.linear(h, p["C.weight"]) + torch.bmm(P[:, None, :], Bm)[:, 0, :]
    pred = F.log_softmax(F.linear(h, p["z.weight"]), dim=1)
    return [F.nll_loss(pred, target - 1, reduction="sum").reshape(1)]


def test_tied_memory(rng):
    mod = compiled("tied_memory.lua", MEM_ENTRY, ("input1=Bx4", "input3=Bx3"))
    compare(mod, memory_twin, MEM_LAYOUT, rng, index_high=3)
    assert [n for n, _, _ in mod.PARAMETERS] == ["Ain.weight", "Bin.weight", "C.weight", "z.weight"]


# ---- class_cell.lua: nn.Module methods, a gModule class, a subclass, clone('weight', 'bias') --

CELL_LAYOUT = (lin("z_i2h", 4, 3) + lin("z_h2h", 4, 4, bias=False) + lin("c_i2h", 4, 3)
               + lin("c_h2h", 4, 4, bias=False) + lin("scores", 2, 4))


def cell_twin(xs, p):
    x1, x2, h0 = xs

    def cell(x, h):
        z = torch.sigmoid(linear(x, p, "z_i2h") + linear(h, p, "z_h2h", bias=False))
        c = F.softsign(linear(x, p, "c_i2h") + linear(h, p, "c_h2h", bias=False))
        return (1 - z) * h + z * c
    h2 = cell(x2, cell(x1, h0))
    return [linear(h2, p, "scores"), h2]


def test_class_cell(rng):
    mod = compiled("class_cell.lua")
    compare(mod, cell_twin, CELL_LAYOUT, rng)
    assert len(mod.PARAMETERS) == 8  # the clone's step adds no parameters


# ---- char_cnn_sizes.lua: torch.Tensor(t):sum() for a size, torch.randn values copied in ------

CNN_ENTRY = "CharCNN.model(6, 3, {2, 3}, {4, 5}, 7, 5)"
CNN_LAYOUT = [("emb.weight", (6, 3)), ("c1.weight", (2, 12)), ("c1.bias", (2,)),
              ("c2.weight", (3, 15)), ("c2.bias", (3,)), ("out.weight", (5, 5)), ("out.bias", (5,))]


def cnn_twin(xs, p):
    (chars,) = xs
    x = F.embedding(chars - 1, p["emb.weight"]).transpose(1, 2)  # B x 3 x 7

    def conv(name, maps, width):  # Torch's TemporalConvolution weight: out x (kW * in)
        w = p[name + ".weight"].reshape(maps, width, 3).permute(0, 2, 1)
        return torch.tanh(F.conv1d(x, w, p[name + ".bias"])).amax(dim=2)
    h = torch.cat([conv("c1", 2, 4), conv("c2", 3, 5)], dim=1)
    return [linear(h, p, "out")]


def test_char_cnn_sizes(rng):
    mod = compiled("char_cnn_sizes.lua", CNN_ENTRY, ("input1=Bx7",))
    compare(mod, cnn_twin, CNN_LAYOUT, rng, index_high=6)


def test_char_cnn_sizes_embeddings_are_the_specs_values():
    mod = compiled("char_cnn_sizes.lua", CNN_ENTRY, ("input1=Bx7",))
    kind, values = mod.PARAMETERS[0][2]
    assert kind == "values" and len(values) == 18
    # torch.manualSeed(123) then torch.randn(6, 3) * 0.1: numpy's generator seeded with 123
    want = np.random.default_rng(123).standard_normal((6, 3)) * 0.1
    np.testing.assert_array_equal(np.array(values).reshape(6, 3), want)
    np.testing.assert_array_equal(dict(mod.Model("float64").parameters())["lookuptable1.weight"], want)


# ---- nngraph_run.lua: the nngraph README's build-then-run blocks ------------------------------

RUN_LAYOUT = lin("h1", 5, 6) + lin("h2", 3, 4) + lin("hh1", 1, 5) + lin("hh2", 1, 3)


def run_twin(xs, p):
    x1, x2 = xs
    madd = (linear(torch.tanh(linear(x1, p, "h1")), p, "hh1")
            + linear(torch.tanh(linear(x2, p, "h2")), p, "hh2"))
    return [torch.sigmoid(madd), torch.tanh(madd)]


def test_nngraph_run(rng):
    compare(compiled("nngraph_run.lua"), run_twin, RUN_LAYOUT, rng)


def test_nngraph_run_at_spec_time_runs_the_generated_model(tmp_path, capsys):
    """The spec's gmod:updateOutput / updateGradInput ran the module as compiled (float64,
    seed 0) on torch.rand's data (the generator seeded with 0): the same numbers here."""
    from conftest import build
    text = (Path(__file__).resolve().parent.parent / "samples" / "corpus" / "nngraph_run.lua").read_text()
    capsys.readouterr()
    mod = build(text, tmp_path, shapes={"input1": (6,), "input2": (4,)})
    err = capsys.readouterr().err
    assert "graph.dot skipped (a spec never writes files)" in err
    m = mod.Model("float64", seed=0)
    g = np.random.default_rng(0)
    x1, x2 = g.uniform(0, 1, 6), g.uniform(0, 1, 4)
    oa, ob = m.forward(x1, x2)
    printed = [float(s.strip("[]")) for s in err.split() if s.startswith("[") and s.endswith("]")
               and s.strip("[]").replace(".", "").replace("-", "").isdigit()]
    np.testing.assert_allclose(printed, [oa[0], ob[0]], rtol=1e-7)
