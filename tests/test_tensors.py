"""Spec-time tensors (graphc/frontend/tensor.py): a numpy-backed subset of torch.Tensor for
computing sizes and initial values. Each case prints Lua results to stderr and compares them
with the same computation in numpy; errors are located."""
import numpy as np
import pytest

from conftest import build, compile_error


def run(body, tmp_path, capsys):
    build(body + "\nreturn nn.Identity()", tmp_path, shapes={"input1": ("B", 1)})
    return capsys.readouterr().err.splitlines()


def test_construction_sizes_and_reductions(tmp_path, capsys):
    out = run("""
local t = torch.Tensor{{1, 2, 3}, {4, 5, 6}}
print(t:dim(), t:size(1), t:size(2), t:nElement(), #t:size(), (#t)[2])
print(t:sum(), t:max(), t:min(), t:mean(), t:prod())
print(t:sum(1)[1][3], t:sum(2)[2][1], t:max(2)[1][1], select(2, t:max(2))[2][1])
print(torch.Tensor(2, 3):sum(), torch.Tensor(4):nElement(), torch.zeros(2, 2):sum(), torch.ones(3):sum())
print(torch.Tensor({10, 20, 30}):sum(), torch.LongTensor{3, 4}[2], torch.type(torch.LongTensor(2)))
print(torch.range(1, 4):sum(), torch.range(0, 1, 0.25):nElement(), torch.linspace(0, 1, 5)[4])
print(torch.type(t), torch.isTensor(t), type(t))
""", tmp_path, capsys)
    assert out == ["2\t2\t3\t6\t2\t3", "21\t6\t1\t3.5\t720", "9\t15\t3\t3", "0\t4\t0\t3",
                   "60\t4\ttorch.LongTensor", "10\t5\t0.75", "torch.DoubleTensor\ttrue\tuserdata"]


def test_arithmetic_indexing_and_in_place_methods(tmp_path, capsys):
    out = run("""
local a = torch.Tensor{{1, 2}, {3, 4}}
local v = torch.Tensor{1, -1}
print((a * v)[1], (a * v)[2], (v * v), (a * a)[2][2], (a + 1)[1][1], (a - a):sum(), (a / 2)[2][2], (-a)[1][2])
print((2 * a)[2][1], (a + torch.Tensor{1, 1, 1, 1})[2][2])
a[1][1] = 10
a[2] = torch.Tensor{7, 8}
print(a[1][1], a[2][1], a:t()[1][2], a:view(4)[4], a:view(-1, 1):size(1), a:narrow(2, 2, 1):sum())
print(a:select(1, 2):sum(), a:clone():fill(1):sum(), a:sum(), a:clone():zero():sum())
local b = torch.Tensor(3):fill(2)
b:add(1):mul(3):div(9)
print(b:sum(), b:add(torch.Tensor{1, 2, 3}):sum(), b:add(2, torch.Tensor{1, 1, 1}):sum())
print(b:cmul(torch.Tensor{0, 1, 2}):sum(), #a:totable(), a:totable()[2][2], a:abs():sqrt():size(1))
""", tmp_path, capsys)
    assert out == ["-1\t-1\t2\t22\t2\t0\t2\t-2", "6\t5", "10\t7\t7\t8\t4\t10",
                   "15\t4\t27\t0", "3\t9\t15", "17\t2\t8\t2"]


def test_random_draws_are_seeded(tmp_path, capsys):
    out = run("""
torch.manualSeed(5)
local r = torch.rand(2, 3)
local n = torch.randn(4)
print(r[1][1], r[2][3], n[4])
torch.manualSeed(5)
print(torch.rand(2, 3)[1][1] == r[1][1], torch.Tensor(3):normal(1, 0.5):nElement())
""", tmp_path, capsys)
    g = np.random.default_rng(5)
    r = g.uniform(0, 1, (2, 3))
    n = g.standard_normal(4)
    assert out[0].split("\t") == ["%.14g" % r[0, 0], "%.14g" % r[1, 2], "%.14g" % n[3]]
    assert out[1] == "true\t3"


def test_print_shows_values_and_type(tmp_path, capsys):
    out = run("print(torch.Tensor{{1, 2}, {3, 4}})", tmp_path, capsys)
    assert out[-1] == "[torch.DoubleTensor of size 2x2]"
    assert out[0].startswith("[[1.")


def test_sizes_from_tensors_build_models(tmp_path):
    mod = build("""
local feature_maps = {4, 6, 2}
local n = torch.Tensor(feature_maps):sum()
local m = nn.Linear(n, 3)
m.weight:copy(torch.ones(3, n) * 0.5)
m.bias:copy(torch.range(1, 3))
return m
""", tmp_path)
    assert mod.PARAMETERS[0][1] == (3, 12)
    w = dict(mod.Model("float64").parameters())
    np.testing.assert_array_equal(w["linear1.weight"], np.full((3, 12), 0.5))
    np.testing.assert_array_equal(w["linear1.bias"], [1, 2, 3])


def test_criterion_weights_from_a_tensor(tmp_path):
    mod = build("""
local w = torch.ones(3)
w[1] = 0
local x = nn.Identity()()
local t = nn.Identity()()
return nn.gModule({x, t}, {nn.ClassNLLCriterion(w)({nn.LogSoftMax()(x), t})})
""", tmp_path, shapes={"input1": ("B", 3)})
    assert "weights=(0.0, 1.0, 1.0)" in mod.RESULT.source


@pytest.mark.parametrize("body, where, text", [
    ("local t = torch.Tensor(2, 3)\nprint(t[3])", "2:7", "index 3 out of range for a 2x3 tensor"),
    ("local t = torch.Tensor(2, 3)\nlocal u = t + torch.Tensor(4)", "2:13",
     "+: inconsistent tensor size (2x3 and 4)"),
    ("local t = torch.Tensor(2, 3)\nt:foo()", "2:1", "spec-time tensors have no method 'foo'"),
    ("local t = torch.Tensor(2, -1)", "1:11", "torch.Tensor: sizes must be whole numbers >= 0"),
    ("local t = torch.Tensor{{1, 2}, {3}}", "1:11", "the rows of the table have different lengths"),
    ("local t = torch.Tensor(2, 3)\nprint(t:narrow(2, 3, 2))", "2:7", "narrow(2, 3, 2) is out of range"),
    ("local t = torch.Tensor(2, 3) * torch.Tensor(2, 3)", "1:30",
     "tensor product of 2x3 and 2x3 tensors: sizes do not match"),
])
def test_tensor_errors_are_located(body, where, text):
    err, msg = compile_error(body + "\nreturn nn.Identity()")
    assert msg.startswith(f"spec.lua:{where}: error: "), msg
    assert text in msg, msg


def test_running_a_module_at_spec_time(tmp_path, capsys):
    out = run("""
local m = nn.Linear(3, 2)
m.weight:copy(torch.Tensor{{1, 0, 2}, {0, 1, -1}})
m.bias:fill(0.5)
local y = m:forward(torch.Tensor{1, 2, 3})
local gx = m:backward(torch.Tensor{1, 2, 3}, torch.Tensor{1, 10})
print(y[1], y[2], gx[1], gx[2], gx[3])
local yb = m:updateOutput(torch.ones(4, 3))
print(yb:size(1), yb:size(2), yb[4][1])
local ok, err = pcall(function() return m:forward(torch.ones(5)) end)
print(ok, err:find('Linear') ~= nil)
local s = nn.Sequential():add(nn.SplitTable(1)):add(nn.CAddTable())
print(s:forward(torch.Tensor{{1, 2}, {3, 4}})[2])
""", tmp_path, capsys)
    assert out == ["7.5\t-0.5\t1\t10\t-8", "4\t2\t3.5", "false\ttrue", "6"]
