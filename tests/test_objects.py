"""Torch's module objects at spec time (graphc/frontend/objects.py): parameters as tensors and
their initialisation after construction, the nn.Module methods that walk and tie modules,
torch.class classes and methods added to nn classes. Compiled results are checked against
PyTorch and finite differences; each error is checked for its location and wording."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import build, central_differences, compile_error


def params(mod):
    return [(name, shape, init) for name, shape, init in mod.PARAMETERS]


# ---- initialisation after construction ------------------------------------------------------


def test_each_initialiser_lands_in_the_init_column(tmp_path):
    mod = build("""
local a = nn.Linear(3, 4)
a.weight:normal(0, 0.5)
a.bias:normal(2, 0.25)
local b = nn.Linear(4, 4)
b.weight:uniform(-0.1, 0.1)
b.bias:uniform(1, 3)
local c = nn.Linear(4, 2)
c.weight:fill(0.5)
c.bias:zero()
c.bias:copy(torch.Tensor{7, 8})
return nn.Sequential():add(a):add(b):add(c)
""", tmp_path)
    assert [i for _, _, i in params(mod)] == [
        ("normal", 0.5), ("normal_mean", 2.0, 0.25), ("uniform", 0.1), ("uniform_range", 1.0, 3.0),
        ("const", 0.5), ("values", (7.0, 8.0))]
    m = mod.Model("float64", seed=11)
    r = np.random.default_rng(11)
    w = [v for _, v in m.parameters()]
    np.testing.assert_array_equal(w[0], r.normal(0, 0.5, (4, 3)))
    np.testing.assert_array_equal(w[1], r.normal(2, 0.25, (4,)))
    np.testing.assert_array_equal(w[2], r.uniform(-0.1, 0.1, (4, 4)))
    np.testing.assert_array_equal(w[3], r.uniform(1, 3, (4,)))
    np.testing.assert_array_equal(w[4], np.full((2, 4), 0.5))
    np.testing.assert_array_equal(w[5], [7.0, 8.0])
    # deterministic: same seed, same weights; reset(seed) redraws the same way
    again = mod.Model("float64", seed=11)
    np.testing.assert_array_equal(m.getParameters()[0], again.getParameters()[0])
    m.reset(11)
    np.testing.assert_array_equal(m.getParameters()[0], again.getParameters()[0])


def test_copy_of_a_table_and_of_a_parameter(tmp_path):
    mod = build("""
local a = nn.Linear(2, 3)
a.weight:copy(torch.Tensor{{1, 2}, {3, 4}, {5, 6}})
local b = nn.Linear(3, 3)
local c = nn.Linear(3, 3)
c.weight:copy(b.weight)   -- same values, separate parameters
return nn.Sequential():add(a):add(b):add(c)
""", tmp_path)
    inits = dict((n, i) for n, _, i in params(mod))
    assert inits["linear1.weight"] == ("values", (1.0, 2.0, 3.0, 4.0, 5.0, 6.0))
    assert inits["linear3.weight"] == ("same_as", "linear2.weight")
    m = mod.Model("float64", seed=1)
    w = dict(m.parameters())
    np.testing.assert_array_equal(w["linear1.weight"], [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(w["linear3.weight"], w["linear2.weight"])
    assert not np.shares_memory(w["linear3.weight"], w["linear2.weight"])
    # readable in the generated text: the values four to a line inside PARAMETERS
    assert "('values', (\n        1.0, 2.0, 3.0, 4.0,\n        5.0, 6.0,\n    ))" in mod.RESULT.source


def test_reset_restores_torch_defaults_or_scales_them(tmp_path):
    mod = build("""
local a = nn.Linear(4, 2)
a.weight:fill(3)
a:reset()
local b = nn.Linear(2, 2)
b:reset(0.1)
local e = nn.LookupTable(5, 2)
e:reset(0.3)
local net = nn.Sequential():add(nn.ParallelTable():add(nn.Sequential():add(a):add(b)):add(e))
net:add(nn.JoinTable(2))
net:get(1):reset(0.2)   -- a container resets its modules
return net
""", tmp_path, shapes={"input1": [("B", 4), ("B",)]})
    inits = [i for _, _, i in params(mod)]
    s = 0.2 * math.sqrt(3)
    assert inits == [("uniform", s), ("uniform", s), ("uniform", s), ("uniform", s),
                     ("normal", 0.2)]


def test_module_fields_and_walking_methods(tmp_path, capsys):
    build("""
local net = nn.Sequential()
net:add(nn.SpatialConvolution(3, 8, 5, 3, 2, 1))
net:add(nn.ReLU())
net:add(nn.Sequential():add(nn.View(8 * 2 * 3)):add(nn.Linear(48, 4)))
local conv = net:get(1)
print(conv.nInputPlane, conv.nOutputPlane, conv.kW, conv.kH, conv.dW, conv.dH)
print(conv.weight:size(1), conv.weight:size(2), conv.weight:size(3), conv.weight:size(4))
print(#conv.weight:size(), conv.weight:nElement(), conv.weight:dim(), conv.bias:nElement())
print(net:size(), #net.modules, torch.type(net.modules[3]), net:get(3):get(2).weight:size(2))
local found, containers = net:findModules('nn.Linear')
print(#found, containers[1] == net:get(3), #net:listModules())
local seen = {}
net:apply(function(m) table.insert(seen, torch.type(m)) end)
print(table.concat(seen, ' '))
assert(net:cuda() == net and net:float() == net and net:type('torch.FloatTensor') == net)
assert(conv.weight:cuda() == conv.weight and torch.typename(conv.weight) == 'torch.DoubleTensor')
return net
""", tmp_path, shapes={"input1": ("B", 3, 4, 9)})
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["3\t8\t5\t3\t2\t1", "8\t3\t3\t5", "4\t360\t4\t8", "3\t3\tnn.Sequential\t48",
                     "1\ttrue\t6",
                     "nn.Sequential nn.SpatialConvolution nn.ReLU nn.Sequential nn.View nn.Linear"]


def test_gmodule_modules_in_nngraph_order(tmp_path, capsys):
    build("""
local x = nn.Identity()()
local y = nn.Identity()()
local h = nn.Tanh()(nn.CAddTable()({nn.Linear(3, 2)(x), y}))
local g = nn.gModule({x, y}, {h})
local names = {}
for i = 1, g:size() do table.insert(names, torch.type(g:get(i))) end
print(table.concat(names, ' '))
return g
""", tmp_path)
    # nngraph's worked example: modules = [Identity(x), Linear, Identity(y), CAddTable, Tanh]
    assert capsys.readouterr().err.strip() == \
        "nn.Identity nn.Linear nn.Identity nn.CAddTable nn.Tanh"


def test_bias_nil_and_nobias_drop_the_bias(tmp_path):
    mod = build("""
local a = nn.Linear(3, 4)
a.bias = nil
assert(a.bias == nil)
local c = nn.SpatialConvolution(2, 2, 1, 1)
c:noBias()
return nn.Sequential():add(a):add(nn.View(2, 2, 1)):add(c)
""", tmp_path)
    assert [n for n, _, _ in params(mod)] == ["linear1.weight", "spatialconvolution1.weight"]


# ---- tying: share, clone, assignment, node.data.module ------------------------------------


TIED = """
local x = nn.Identity()()
local a = nn.Linear(3, 3)
local b = nn.Linear(3, 3)
b.weight:fill(9)          -- replaced by a's weight once tied
local h1 = nn.Tanh()(a(x))
local h2 = b(h1)
local out = nn.gModule({x}, {h2})
%s
return out
"""


@pytest.mark.parametrize("tie", [
    "b:share(a, 'weight', 'bias', 'gradWeight', 'gradBias')",
    "h2.data.module:share(h1.data.module.modules and a or a, 'weight', 'bias')",
    "b.weight = a.weight; b.bias = a.bias",
    "b.weight:set(a.weight); b.bias:set(a.bias)",
    "local p = out:parameters(); p[3]:set(p[1]); p[4]:set(p[2])",  # lstm-play's tying by position
])
def test_tied_weights_match_pytorch_and_finite_differences(tie, tmp_path, rng):
    mod = build(TIED % tie, tmp_path)
    assert [n for n, _, _ in params(mod)] == ["linear1.weight", "linear1.bias"]
    m = mod.Model("float64", seed=0)
    w, g = m.getParameters()
    x = rng.standard_normal((4, 3))
    gy = rng.standard_normal((4, 3))
    y = m.forward(x)
    m.zeroGradParameters()
    gx = m.backward(x, gy)
    W = torch.tensor(w[:9].reshape(3, 3), requires_grad=True)
    bias = torch.tensor(w[9:], requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.linear(torch.tanh(F.linear(tx, W, bias)), W, bias)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(g, np.concatenate([W.grad.numpy().ravel(), bias.grad.numpy()]),
                               rtol=1e-10)  # both uses' gradients summed

    def loss():
        return float((m.forward(x) * gy).sum())
    np.testing.assert_allclose(g, central_differences(loss, w), rtol=1e-6, atol=1e-8)


def test_clone_copies_values_or_shares(tmp_path):
    mod = build("""
local x = nn.Identity()()
local a = nn.Linear(2, 2)
a.bias:fill(0.5)
local copy = a:clone()
local tied = a:clone('weight', 'bias')
local y = nn.CAddTable()({a(x), copy(x), tied(x)})
return nn.gModule({x}, {y})
""", tmp_path)
    assert [(n, i[0]) for n, _, i in params(mod)] == [
        ("linear1.weight", "uniform"), ("linear1.bias", "const"),
        ("linear2.weight", "same_as"), ("linear2.bias", "same_as")]
    m = mod.Model("float64", seed=5)
    w = dict(m.parameters())
    np.testing.assert_array_equal(w["linear2.weight"], w["linear1.weight"])
    np.testing.assert_array_equal(w["linear2.bias"], [0.5, 0.5])


def test_container_share_and_gmodule_clone(tmp_path, rng):
    mod = build("""
local function mlp()
  return nn.Sequential():add(nn.Linear(3, 4)):add(nn.Tanh()):add(nn.Linear(4, 3))
end
local f, g = mlp(), mlp()
g:share(f, 'weight', 'bias')            -- child by child
local x = nn.Identity()()
local cell = nn.gModule({x}, {f(x)})
local step2 = cell:clone('weight', 'bias')
local y = nn.Identity()()
return nn.gModule({y}, {g(step2(cell(y)))})
""", tmp_path)
    assert [n for n, _, _ in params(mod)] == ["linear1.weight", "linear1.bias", "linear2.weight",
                                              "linear2.bias"]
    m = mod.Model("float64", seed=0)
    w, g = m.getParameters()
    x, gy = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    m.forward(x)
    m.zeroGradParameters()
    m.backward(x, gy)

    def loss():
        return float((m.forward(x) * gy).sum())
    np.testing.assert_allclose(g, central_differences(loss, w), rtol=1e-6, atol=1e-8)


# ---- classes -------------------------------------------------------------------------------


def test_torch_class_instances_inherit_methods_and_fields(tmp_path, capsys):
    mod = build("""
function nn.Module:tag(t) self.tagged = t; return self end
function nn.Linear:fanIn() return self.weight:size(2) end
local Proj, parent = torch.class('nn.Proj', 'nn.Linear')
Proj.scale = 2
function Proj:__init(n) parent.__init(self, n, n * self.scale, false); self.n = n end
function Proj:describe() return torch.type(self) .. ' ' .. self.n .. ' ' .. self:fanIn() end
local Wide = torch.class('nn.Wide', 'nn.Proj')
Wide.scale = 3
local p, w = nn.Proj(2), nn.Wide(4):tag('w')
print(p:describe(), w:describe(), w.tagged, nn.Tanh():tag('t').tagged)
print(torch.isTypeOf(w, 'nn.Proj'), torch.isTypeOf(w, nn.Linear), torch.isTypeOf(p, 'nn.Wide'))
local net = nn.Sequential():add(p):add(nn.Linear(4, 4)):add(w)
print(#net:findModules('nn.Wide'), #net:findModules('nn.Linear'))
return net
""", tmp_path)
    assert capsys.readouterr().err.splitlines() == [
        "nn.Proj 2 2\tnn.Wide 4 4\tw\tt", "true\ttrue\tfalse", "1\t1"]
    assert [(n, s) for n, s, _ in params(mod)] == [
        ("proj1.weight", (4, 2)), ("wide1.weight", (12, 4)), ("linear1.weight", (4, 4)),
        ("linear1.bias", (4,))]  # constructor order


def test_class_derived_from_gmodule_and_sequential(tmp_path, rng):
    mod = build("""
local Block, parent = torch.class('nn.Block', 'nn.Sequential')
function Block:__init(n)
  parent.__init(self)
  self:add(nn.Linear(n, n)):add(nn.Tanh())
end
local Res, gparent = torch.class('nn.Res', 'nn.gModule')
function Res:__init(n)
  local x = nn.Identity()()
  gparent.__init(self, {x}, {nn.CAddTable()({x, nn.Block(n)(x)})})
end
local x = nn.Identity()()
return nn.gModule({x}, {nn.Res(3)(nn.Res(3)(x))})
""", tmp_path)
    m = mod.Model("float64", seed=0)
    w = m.getParameters()[0]
    x = rng.standard_normal((2, 3))
    W = [torch.tensor(w[i:i + 9].reshape(3, 3)) for i in (0, 12)]
    b = [torch.tensor(w[i + 9:i + 12]) for i in (0, 12)]
    t = torch.tensor(x)
    for k in (1, 0):  # Lua makes the outer nn.Res(3) (the callee) before the inner one
        t = t + torch.tanh(F.linear(t, W[k], b[k]))
    np.testing.assert_allclose(m.forward(x), t.numpy(), rtol=1e-12)


def test_class_methods_building_graphs(tmp_path):
    """rnn's FastLSTM pattern: the base class's __init calls a builder method a subclass
    defines; modules are fields; a method returns a gModule (compiled with --entry)."""
    spec = """
local Base, parent = torch.class('nn.Base', 'nn.Module')
function Base:__init(i, o) parent.__init(self); self.inputSize, self.outputSize = i, o
  self.model = self:buildModel() end
local Cell, cparent = torch.class('nn.Cell', 'nn.Base')
function Cell:__init(i, o) cparent.__init(self, i, o) end
function Cell:buildModel()
  self.i2h = nn.Linear(self.inputSize, self.outputSize)
  return nn.Sequential():add(self.i2h):add(nn.Sigmoid())
end
function Cell:graph()
  local x = nn.Identity()()
  return nn.gModule({x}, {nn.Sigmoid()(self.i2h(x))})
end
cell = nn.Cell(3, 2)
"""
    a = build(spec, tmp_path, entry="cell.model")
    b = build(spec, tmp_path, entry="cell:graph()")
    assert [s for _, s, _ in params(a)] == [s for _, s, _ in params(b)] == [(2, 3), (2,)]


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body, where, text", [
    ("local m = nn.Linear(2, 3)\nm.weight:copy(torch.Tensor{1, 2})\nreturn m",
     "2:1", "nn.Linear.weight:copy: it has 6 elements (3x2), the source 2"),
    ("local m = nn.Linear(2, 3)\nm.weight:uniform(1, -1)\nreturn m",
     "2:1", "uniform(1, -1): a must be <= b"),
    ("local m = nn.Linear(2, 3)\nm.weight = 3\nreturn m",
     "2:1", "nn.Linear.weight can be set to nil (no weight) or to another module's parameter"),
    ("local m = nn.BatchNormalization(3)\nm.bias = nil\nreturn m",
     "2:1", "graphc cannot remove the bias of nn.BatchNormalization"),
    ("local a, b = nn.Linear(2, 3), nn.Linear(3, 3)\nb:share(a, 'weight')\nreturn a",
     "2:1", "nn.Linear:share(nn.Linear, 'weight'): the shapes differ (3x3 and 3x2)"),
    ("local m = nn.Linear(2, 3)\nm.weight:addmm(1)\nreturn m",
     "2:1", "tensors at spec time (nn.Linear.weight) have no 'addmm' here"),
    ("local C = torch.class('nn.C', 'nn.LSTM')\nreturn nn.Linear(2, 2)",
     "1:11", "torch.class('nn.C', 'nn.LSTM'): no class 'nn.LSTM' is defined"),
    ("local C = torch.class('nn.C', 'nn.Module')\nreturn nn.Sequential():add(nn.C())",
     "2:28", "nn.C is a class derived from nn.Module, which computes nothing graphc can compile"),
    ("local C = torch.class('nn.C', 'nn.Linear')\nfunction C:__init() end\n"
     "return nn.Sequential():add(nn.C())",
     "3:28", "nn.C derives from nn.Linear but its __init never called parent.__init"),
    ("local m = nn.Sequential():add(nn.Linear(2, 2))\nreturn m:get(2)",
     "2:8", "nn.Sequential:get(2): it has 1 modules"),
])
def test_object_errors_are_located(body, where, text):
    err, msg = compile_error(body)
    assert msg.startswith(f"spec.lua:{where}: error: "), msg
    assert text in msg, msg


def test_print_of_a_module_is_torchs_description(tmp_path, capsys):
    build("""
local net = nn.Sequential():add(nn.Linear(3, 4)):add(nn.Tanh())
net:add(nn.ConcatTable():add(nn.Linear(4, 2, false)):add(nn.Identity()))
print(net)
return net
""", tmp_path)
    assert capsys.readouterr().err.splitlines() == [
        "nn.Sequential {", "  [input -> (1) -> (2) -> (3) -> output]", "  (1): nn.Linear(3 -> 4)",
        "  (2): nn.Tanh", "  (3): nn.ConcatTable {", "    (1): nn.Linear(4 -> 2 without bias)",
        "    (2): nn.Identity", "  }", "}"]


def test_same_spec_same_bytes(tmp_path):
    """Recorded inits, spec-time tensors, classes and ties: the generated text is a function
    of the spec alone."""
    spec = """
torch.manualSeed(3)
local C, parent = torch.class('nn.Lin', 'nn.Linear')
function C:__init(a, b) parent.__init(self, a, b) end
local a, b = nn.Lin(3, 3), nn.Linear(3, 3)
a.weight:copy(torch.randn(3, 3))
b:share(a, 'weight')
b.bias:normal(1, 0.1)
return nn.Sequential():add(a):add(b):add(a:clone())
"""
    from graphc.compiler import Options, compile_spec
    path = str(tmp_path / "same.lua")
    one, two = (compile_spec(path, Options(), text=spec).source for _ in range(2))
    assert one == two
    assert "('same_as', 'lin1.weight')" in one and one.count("('values'") == 1


def test_a_second_local_is_a_new_variable(tmp_path, capsys):
    """Lua semantics the class files rely on: `local parent` declared again (a second
    torch.class in the same scope) does not change what earlier closures see."""
    build("""
local A, parent = torch.class('nn.A', 'nn.Linear')
function A:__init(n) parent.__init(self, n, n) end
local B, parent = torch.class('nn.B', 'nn.A')
function B:__init(n) parent.__init(self, n) end
local x = 1
local function get() return x end
local x = x + 1
print(get(), x, torch.type(nn.B(2)))
top_level = 'seen by --entry'
return nn.B(3)
""", tmp_path)
    assert capsys.readouterr().err.splitlines() == ["1\t2\tnn.B"]
