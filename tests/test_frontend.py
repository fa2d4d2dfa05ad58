"""Frontend tests: every construct of DESIGN section 2 (the Lua subset, the nn/nngraph
builders, model selection, -D), every spec error path with its message and location, and
the CLI contract of section 6 (exit codes, messages, atomic unchanged-aware output)."""
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import build, compile_error
from graphc import cli
from graphc.compiler import Options, compile_spec
from graphc.errors import SpecError
from graphc.frontend import lua as lua_core
from graphc.frontend.lua import LuaFunction, LuaTable
from graphc.frontend.nngraph import Interpreter
from graphc.frontend.nn import ModuleObj

ROOT = Path(__file__).resolve().parent.parent


# ---- helpers -------------------------------------------------------------------------

def run(src, path="spec.lua", defines=None):
    """Evaluate Lua text; return the interpreter (its scopes hold the results)."""
    it = Interpreter(path, src, defines)
    it.run()
    return it


def var(it, name):
    """A top-level local, else a global, after run()."""
    if name in it.top_scope.vars:
        return it.top_scope.vars[name]
    return it.globals.vars.get(name)


def lua(src, *names):
    """Evaluate `src`; the values of `names` (tables as Python lists/dicts)."""
    it = run(src)
    out = [_py(var(it, n)) for n in names]
    return out[0] if len(out) == 1 else out


def _py(v):
    if isinstance(v, LuaTable):
        n = v.length()
        if n == len(v.d):
            return [_py(x) for x in v.array()]
        return {k: _py(x) for k, x in v.d.items()}
    return v


NN = "require 'nn'\nrequire 'nngraph'\n"


def linear_of(n_expr, prelude=""):
    """A one-Linear gModule whose output size is the Lua expression n_expr."""
    return (NN + prelude + "\nlocal x = nn.Identity()()\n"
            f"local y = nn.Linear(3, {n_expr})(x)\nreturn nn.gModule({{x}}, {{y}})\n")


def out_size(mod):
    return mod.OUTPUTS[0][1][-1]


# ---- syntax and semantics --------------------------------------------------------------

def test_comments_numbers_strings_booleans_nil():
    src = """
    -- a line comment
    --[[ a long
         comment ]] local a = 1   --[==[ another ]==]
    b, c, d, e = 0x1F, 1e2, .5, 3.
    s1 = 'it\\'s\\t"x"\\n\\65\\\\'
    s2 = "double \\"q\\""
    s3 = [[long
string]]
    s4 = [==[has ]] inside]==]
    t, f, n = true, false, nil
    """
    it = run(src)
    assert var(it, "a") == 1 and var(it, "b") == 31 and var(it, "c") == 100
    assert var(it, "d") == 0.5 and var(it, "e") == 3
    assert var(it, "s1") == "it's\t\"x\"\nA\\"
    assert var(it, "s2") == 'double "q"'
    assert var(it, "s3") == "long\nstring"
    assert var(it, "s4") == "has ]] inside"
    assert var(it, "t") is True and var(it, "f") is False and var(it, "n") is None


def test_local_global_and_multiple_assignment():
    src = """
    g = 1
    local l = 2
    a, b, c = 1, 2          -- c gets nil
    p, q = 1, 2, 3          -- 3 is dropped
    a, b = b, a             -- swap: right side first
    local t = {1, 2}
    t[1], t[2] = t[2], t[1]
    local function set() g = 10; local l = 99 end
    set()
    l2 = l                   -- the local, untouched by set's own local
    do local g = 5 end       -- shadows in its block only
    """
    it = run(src)
    assert var(it, "g") == 10 and var(it, "l2") == 2
    assert (var(it, "a"), var(it, "b"), var(it, "c")) == (2, 1, None)
    assert (var(it, "p"), var(it, "q")) == (1, 2)
    assert _py(var(it, "t")) == [2, 1]
    assert "l" in it.top_scope.vars and "l" not in it.globals.vars
    assert "g" in it.globals.vars


def test_table_constructors_length_and_indexing():
    src = """
    local function three() return 1, 2, 3 end
    arr = {10, 20, 30}
    rec = {k = 'v', ['with space'] = 1, [1 + 1] = 'two', 'one'}
    exp = {three()}            -- the last call expands
    notexp = {three(), 'x'}     -- not last: one value
    par = {(three())}           -- parentheses truncate
    n1, n2, n3 = #arr, #exp, #''
    n4 = #'abc'
    nested = {a = {b = {c = 7}}}
    c1 = nested.a.b.c
    c2 = nested['a']['b']['c']
    key = 'k'
    c3 = rec[key]
    arr[#arr + 1] = 40
    n5 = #arr
    f = 2.0
    c4 = arr[f]                 -- 2.0 and 2 are the same key
    """
    it = run(src)
    assert _py(var(it, "arr")) == [10, 20, 30, 40]
    rec = var(it, "rec")
    assert rec["k"] == "v" and rec["with space"] == 1 and rec[2] == "two" and rec[1] == "one"
    assert _py(var(it, "exp")) == [1, 2, 3]
    assert _py(var(it, "notexp")) == [1, "x"]
    assert _py(var(it, "par")) == [1]
    assert [var(it, n) for n in ("n1", "n2", "n3", "n4", "n5")] == [3, 3, 0, 3, 4]
    assert [var(it, n) for n in ("c1", "c2", "c3", "c4")] == [7, 7, "v", 20]


def test_method_calls_and_call_sugar():
    src = """
    local obj = {n = 1}
    function obj:add(k) self.n = self.n + k; return self end
    obj:add(2):add(3)
    n = obj.n
    local function first(t) return t[1] end
    local function shout(s) return s .. '!' end
    a = first{5, 6}
    b = shout'hi'
    c = shout [[long]]
    d = ('abc'):upper()
    e = ('x'):rep(3)
    local s = 'hello'
    f = s:sub(2, 3)
    g = s:len()
    """
    assert lua(src, "n", "a", "b", "c", "d", "e", "f", "g") == [
        6, 5, "hi!", "long!", "ABC", "xxx", "el", 5]


def test_functions_closures_recursion_varargs():
    src = """
    function gf(x) return x + 1 end
    local function lf(x) return x * 2 end
    local M = {sub = {}}
    function M.sub.f(x) return x - 1 end
    local anon = function(a, b) return a .. b end
    local function counter()
      local c = 0
      return function() c = c + 1; return c end
    end
    local c1, c2 = counter(), counter()
    c1(); c1()
    local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
    local function count(...) return select('#', ...) end
    local function pass(...) return ... end
    local function second(...) return (select(2, ...)) end
    local function minmax(...)
      local t = {...}
      return math.min(unpack(t)), math.max(unpack(t))
    end
    r = {gf(1), lf(2), M.sub.f(3), anon('a', 1), c1(), c2(), fib(15)}
    v = {count(), count(nil), count(1, nil, 3), second(7, 8, 9)}
    lo, hi = minmax(4, 1, 9)
    p1, p2, p3 = pass(1, 2)
    local fns = {}
    for i = 1, 3 do fns[i] = function() return i end end
    cap = {fns[1](), fns[2](), fns[3]()}  -- each iteration has its own i
    """
    it = run(src)
    assert _py(var(it, "r")) == [2, 4, 2, "a1", 3, 1, 610]
    assert _py(var(it, "v")) == [0, 1, 3, 8]
    assert (var(it, "lo"), var(it, "hi")) == (1, 9)
    assert (var(it, "p1"), var(it, "p2"), var(it, "p3")) == (1, 2, None)
    assert _py(var(it, "cap")) == [1, 2, 3]
    assert isinstance(var(it, "gf"), LuaFunction)


def test_main_chunk_is_vararg():
    assert lua("n = select('#', ...)", "n") == 0


def test_control_flow():
    src = """
    local function sign(x)
      if x < 0 then return 'neg' elseif x == 0 then return 'zero' else return 'pos' end
    end
    s = {sign(-2), sign(0), sign(3)}
    down = {}
    for i = 10, 1, -3 do down[#down + 1] = i end
    fl = {}
    for x = 0, 1, 0.25 do fl[#fl + 1] = x end
    none = 0
    for i = 1, 0 do none = none + 1 end
    ip = {}
    for i, v in ipairs({'a', 'b', nil, 'd'}) do ip[#ip + 1] = i .. v end
    pk = {}
    for k, v in pairs({10, 20, x = 'y'}) do pk[#pk + 1] = tostring(k) .. '=' .. tostring(v) end
    w = 0
    while w < 5 do w = w + 2 end
    r = 0
    repeat local done = r >= 3; r = r + 1 until done   -- `until` sees the body's locals
    b = 0
    while true do b = b + 1; if b == 4 then break end end
    nb = 0
    for i = 1, 3 do
      for j = 1, 3 do if j == 2 then break end; nb = nb + 1 end
    end
    fb = nil
    for i, v in ipairs({5, 6, 7}) do if v == 6 then fb = i; break end end
    """
    it = run(src)
    assert _py(var(it, "s")) == ["neg", "zero", "pos"]
    assert _py(var(it, "down")) == [10, 7, 4, 1]
    assert _py(var(it, "fl")) == [0, 0.25, 0.5, 0.75, 1]
    assert var(it, "none") == 0
    assert _py(var(it, "ip")) == ["1a", "2b"]
    assert _py(var(it, "pk")) == ["1=10", "2=20", "x=y"]
    assert var(it, "w") == 6 and var(it, "r") == 4 and var(it, "b") == 4
    assert var(it, "nb") == 3 and var(it, "fb") == 2


def test_arithmetic_operators():
    src = """
    a = {7 + 2, 7 - 2, 7 * 2, 7 / 2, 7 % 3, -7 % 3, 7 % -3, -7 % -3, 5.5 % 2, -5.5 % 2}
    b = {2 ^ 10, 2 ^ -1, -2 ^ 2, 2 ^ 3 ^ 2, 1 + 2 * 3, (1 + 2) * 3, 10 / 4 * 2}
    c = {'10' + 5, '3' * '4', -'2'}
    inf, ninf = 1 / 0, -1 / 0
    nan = 0 / 0
    isnan = nan ~= nan
    big = 2 ^ 53 * 4
    """
    it = run(src)
    assert _py(var(it, "a")) == [9, 5, 14, 3.5, 1, 2, -2, -1, 1.5, 0.5]
    assert _py(var(it, "b")) == [1024, 0.5, -4, 512, 7, 9, 5]
    assert _py(var(it, "c")) == [15, 12, -2]
    assert var(it, "inf") == float("inf") and var(it, "ninf") == float("-inf")
    assert var(it, "isnan") is True
    assert var(it, "big") == 2.0 ** 55


def test_concat_comparison_logic_operators():
    src = """
    s = {1 .. 2, 'a' .. 1.5, 'x' .. 'y' .. 'z', 10 / 2 .. ''}
    cmp = {1 < 2, 2 <= 2, 3 > 4, 'a' < 'b', 'b' >= 'a', 1 == 1.0, '1' == 1, 1 ~= 2,
           {} == {}, nil == false}
    l = {nil and 1, false or 'd', 1 and 2, nil or false, 0 and 'zero is true'}
    tern = {true and 'a' or 'b', false and 'a' or 'b', 5 > 3 and 'big' or 'small'}
    nt = {not nil, not 0, not not 'x'}
    calls = 0
    local function bump() calls = calls + 1; return true end
    sc = false and bump() or (true or bump())   -- neither bump() runs
    len = #{1, 2, 3} + #'four'
    """
    it = run(src)
    assert _py(var(it, "s")) == ["12", "a1.5", "xyz", "5"]
    assert _py(var(it, "cmp")) == [True, True, False, True, True, True, False, True, False, False]
    assert var(it, "l").d == {2: "d", 3: 2, 4: False, 5: "zero is true"}  # [1] is nil
    assert _py(var(it, "tern")) == ["a", "b", "big"]
    assert _py(var(it, "nt")) == [True, False, True]
    assert var(it, "calls") == 0 and var(it, "sc") is True
    assert var(it, "len") == 7


def test_string_format_and_string_lib():
    src = r"""
    a = string.format('%d|%5.2f|%s|%q|%x|%X|%%|%-4d|%03d|%e|%g', 3, 3.14159, 'hi', 'a"b', 255,
                      255, 7, 5, 1234.5, 0.5)
    b = string.format('%s %s %s', nil, true, 1.5)
    c = string.format('%d', '42')
    d = {string.len('abc'), string.upper('a'), string.sub('hello', -3), string.rep('ab', 2),
         string.byte('A'), string.char(72, 105), ('x'):len()}
    """
    it = run(src)
    assert var(it, "a") == '3| 3.14|hi|"a\\"b"|ff|FF|%|7   |005|1.234500e+03|0.5'
    assert var(it, "b") == "nil true 1.5"
    assert var(it, "c") == "42"
    assert _py(var(it, "d")) == [3, "A", "llo", "abab", 65, "Hi", 1]


def test_math_library():
    src = """
    m = {math.floor(-3.5), math.ceil(3.2), math.abs(-2), math.sqrt(16), math.max(1, 5, 3),
         math.min(4, 2.5), math.pow(2, 3), math.fmod(-7, 3), math.exp(0), math.log(1),
         math.log(8, 2), math.log10(100), math.huge, -math.huge, math.floor(math.pi * 100),
         math.log(0)}
    i, f = math.modf(3.75)
    """
    it = run(src)
    assert _py(var(it, "m")) == [-4, 4, 2, 4, 5, 2.5, 8, -1, 1, 0, 3, 2, float("inf"),
                                 float("-inf"), 314, float("-inf")]
    assert (var(it, "i"), var(it, "f")) == (3, 0.75)


def test_table_library_and_unpack():
    src = """
    t = {1, 2, 3}
    table.insert(t, 4)          -- append
    table.insert(t, 1, 0)       -- at position 1
    table.insert(t, 3, 'mid')
    r1 = table.remove(t)        -- the last
    r2 = table.remove(t, 1)     -- the first
    r3 = table.remove({}, 1)    -- nothing
    r4 = table.remove({1}, 5)   -- out of bounds: nothing, the table kept
    s = table.concat(t, ',')
    s2 = table.concat({1, 2, 3}, '-', 2, 3)
    s3 = table.concat({})
    a, b = unpack({1, 2})
    c, d = table.unpack({3, 4, 5}, 2)
    e = select(-1, 'x', 'y')
    """
    it = run(src)
    assert _py(var(it, "t")) == [1, "mid", 2, 3]
    assert (var(it, "r1"), var(it, "r2"), var(it, "r3"), var(it, "r4")) == (4, 0, None, None)
    assert var(it, "s") == "1,mid,2,3" and var(it, "s2") == "2-3" and var(it, "s3") == ""
    assert (var(it, "a"), var(it, "b"), var(it, "c"), var(it, "d")) == (1, 2, 4, 5)
    assert var(it, "e") == "y"


def test_tostring_tonumber_type():
    src = """
    ts = {tostring(1), tostring(1.5), tostring(10 / 2), tostring(nil), tostring(true),
          tostring(1e15)}
    tn = {tonumber('12'), tonumber(' 3.5 '), tonumber('0x10'), tonumber('1e2'),
          tonumber('ff', 16), tonumber('101', 2), tonumber(7)}
    bad = tonumber('abc')
    ty = {type(1), type('s'), type({}), type(nil), type(true), type(print), type(function() end),
          type(nn.Linear(2, 2)), type(nn.Identity()())}
    tt = {torch.type(nn.Linear(2, 2)), torch.type(nn.Identity()()), torch.type(1)}
    """
    it = run(NN + src)
    assert _py(var(it, "ts")) == ["1", "1.5", "5", "nil", "true", "1e+15"]
    assert _py(var(it, "tn")) == [12, 3.5, 16, 100, 255, 5, 7]
    assert var(it, "bad") is None
    assert _py(var(it, "ty")) == ["number", "string", "table", "nil", "boolean", "function",
                                  "function", "table", "table"]
    assert _py(var(it, "tt")) == ["nn.Linear", "nngraph.Node", "number"]


def test_print_goes_to_stderr(capsys):
    run("print('hello', 1, nil, 2.5)\nprint()")
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == "hello\t1\tnil\t2.5\n\n"


def test_error_and_assert_are_located():
    e, text = compile_error("x = 1\nerror('boom')")
    assert text == "spec.lua:2:1: error: boom\n  error('boom')\n  ^"
    e, text = compile_error("local x = 1\nassert(x == 2, 'x must be 2')")
    assert text == "spec.lua:2:1: error: x must be 2\n  assert(x == 2, 'x must be 2')\n  ^"
    e, _ = compile_error("assert(nil)")
    assert e.message == "assertion failed!" and (e.loc.line, e.loc.col) == (1, 1)
    # error(msg, 2) blames the caller, as in Lua
    e, _ = compile_error("local function check(n)\n  if n < 0 then error('negative', 2) end\nend\n"
                         "check(1)\n  check(-1)")
    assert e.message == "negative" and (e.loc.line, e.loc.col) == (5, 3)
    # assert passes its arguments through
    assert lua("a, b = assert(1, 'm')", "a", "b") == [1, "m"]


def test_builtin_misuse_is_located_not_a_traceback():
    e, text = compile_error("x = 1\nlocal s = string.format('%d', {})")
    assert e.message == "bad argument #2 to 'format' (number expected, got table)"
    assert (e.loc.line, e.loc.col) == (2, 11)
    e, _ = compile_error("local s = table.concat(5)")
    assert e.message.startswith("bad arguments to 'concat'") and e.loc.line == 1
    e, _ = compile_error("local x = math.flor(2.5)")
    assert e.message == "attempt to call a nil value (field 'flor') (did you mean 'floor'?)"


# ---- require ---------------------------------------------------------------------------

def test_require_builtin_packages():
    it = run("local nn2 = require 'nn'\nrequire 'nngraph'\nrequire('torch')\nrequire 'optim'\n"
             "m = nn2.Linear(2, 3)")
    assert isinstance(var(it, "m"), ModuleObj) and var(it, "m").kind == "Linear"


def test_require_sibling_file(tmp_path):
    (tmp_path / "helpers.lua").write_text(
        "local H = {}\nH.width = 5\nfunction H.block(x, n)\n"
        "  return nn.Tanh()(nn.Linear(3, n)(x))\nend\nhelper_global = 'set'\nreturn H\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mod.lua").write_text("return {k = 2}\n")
    spec = (NN + "local H = require 'helpers'\nlocal H2 = require 'helpers'\n"
            "local S = require 'sub.mod'\n"
            "local x = nn.Identity()()\nlocal y = H.block(x, H.width * S.k)\n"
            "assert(H == H2 and helper_global == 'set')\nreturn nn.gModule({x}, {y})\n")
    mod = build(spec, tmp_path)
    assert out_size(mod) == 10
    assert sorted(Path(f).name for f in mod.RESULT.files) == ["helpers.lua", "mod.lua",
                                                              Path(mod.RESULT.files[0]).name]


def test_require_missing_file_is_located(tmp_path):
    e, text = compile_error(NN + "local h = require 'nohelpers'")
    assert (e.loc.line, e.loc.col) == (3, 11)
    assert "require 'nohelpers': no file" in e.message and "nohelpers.lua" in e.message
    assert text.endswith("  local h = require 'nohelpers'\n            ^")


def test_error_inside_required_file_points_into_it(tmp_path):
    (tmp_path / "bad.lua").write_text("local t = {}\nreturn t.x.y\n")
    spec = tmp_path / "spec.lua"
    spec.write_text("require 'bad'\n")
    with pytest.raises(SpecError) as info:
        compile_spec(str(spec), Options())
    e = info.value
    assert Path(e.loc.file).name == "bad.lua" and (e.loc.line, e.loc.col) == (2, 8)
    assert e.message == "attempt to index a nil value (field 'x')"


# ---- nngraph building ------------------------------------------------------------------

def test_node_call_forms_and_sugar(tmp_path):
    spec = NN + """
    local a = nn.Identity()()
    local b = nn.Identity()()
    local h1 = nn.Linear(3, 4)(a)                -- m(node)
    local h2 = nn.Linear(3, 4)(b)
    local s = nn.CAddTable()({h1, h2})          -- m({a, b})
    local s2 = nn.CMulTable(){s, h1}            -- m{...} sugar
    return nn.gModule({a, b}, {s2})
    """
    mod = build(spec, tmp_path)
    assert [n for n, _, _ in mod.INPUTS] == ["input1", "input2"]
    assert [s for _, s, _ in mod.INPUTS] == [("B", 3), ("B", 3)]
    assert mod.OUTPUTS[0][1] == ("B", 4)
    assert len(mod.PARAMETERS) == 4


def test_minus_chaining(tmp_path):
    spec = NN + """
    local x = - nn.Identity()                    -- an input
    local h = x - nn.Linear(3, 4) - nn.Tanh()    -- Tanh(Linear(x)), left-associative
    local y = {h, x - nn.Linear(3, 4)} - nn.CAddTable()
    return nn.gModule({x}, {y})
    """
    mod = build(spec, tmp_path)
    ir = mod.RESULT.graph
    assert [n.op for n in ir.nodes] == ["Linear", "Tanh", "Linear", "CAddTable"]
    assert mod.OUTPUTS[0][1] == ("B", 4)


def test_input_node_with_a_module(tmp_path):
    mod = build(NN + "local x = nn.Linear(3, 6)()\nlocal y = nn.Tanh()(x)\n"
                "return nn.gModule({x}, {y})", tmp_path)
    assert mod.INPUTS[0][1] == ("B", 3) and mod.OUTPUTS[0][1] == ("B", 6)


def test_split_multiple_assignment_and_table_collect(tmp_path):
    spec = NN + """
    local x = nn.Identity()()
    local pair = nn.ConcatTable():add(nn.Linear(3, 2)):add(nn.Linear(3, 5))(x)
    local a, b = pair:split(2)
    local both = {nn.ConcatTable():add(nn.Linear(3, 1)):add(nn.Linear(3, 1))(x):split(2)}
    assert(#both == 2)
    local y = nn.JoinTable(2)({a, b, both[1], both[2]})
    return nn.gModule({x}, {y})
    """
    mod = build(spec, tmp_path)
    assert mod.OUTPUTS[0][1] == ("B", 9)


def test_annotate_names_input_and_chains(tmp_path):
    spec = NN + """
    local img = nn.Identity()():annotate{name = 'image', description = 'pixels'}
    local h = nn.Linear(3, 4)(img):annotate{name = 'hid'}:annotate{
        graphAttributes = {color = 'red'}}
    local y = nn.Tanh()(h):annotate{name = 'out'}
    return nn.gModule({img}, {y})
    """
    mod = build(spec, tmp_path, shapes={"image": ("B", 3)})
    assert mod.INPUTS[0][0] == "image"
    assert mod.OUTPUTS[0][0] == "out"
    assert [n for n, _, _ in mod.PARAMETERS] == ["hid.weight", "hid.bias"]
    lin = mod.RESULT.graph.nodes[0]  # annotations are kept on the IR node
    assert lin.name == "hid" and lin.annotations == {"graphAttributes": {"color": "red"}}


def test_annotate_name_is_what_shape_option_uses(tmp_path):
    spec = NN + """
    local img = nn.Identity()():annotate{name = 'image'}
    local y = nn.SpatialConvolution(1, 2, 3, 3)(img)
    return nn.gModule({img}, {y})
    """
    mod = build(spec, tmp_path, shapes={"image": ("B", 1, 8, 8)})
    assert mod.INPUTS[0][:2] == ("image", ("B", 1, 8, 8))
    assert mod.OUTPUTS[0][1] == ("B", 2, 6, 6)


def test_sequential_add_chain(tmp_path):
    spec = NN + """
    local m = nn.Sequential():add(nn.Linear(3, 4)):add(nn.Tanh())
    m:add(nn.Linear(4, 2))
    """
    mod = build(spec, tmp_path)
    assert mod.INPUTS[0][1] == ("B", 3) and mod.OUTPUTS[0][1] == ("B", 2)
    assert [s for _, s, _ in mod.PARAMETERS] == [(4, 3), (4,), (2, 4), (2,)]


def test_shared_module_object_shares_parameters(tmp_path):
    spec = NN + """
    local x = nn.Identity()()
    local shared = nn.Linear(3, 3)
    local act = nn.Tanh()
    local y = act(shared(act(shared(x))))
    return nn.gModule({x}, {y})
    """
    mod = build(spec, tmp_path)
    assert [s for _, s, _ in mod.PARAMETERS] == [(3, 3), (3,)]
    assert [n.op for n in mod.RESULT.graph.nodes] == ["Linear", "Tanh", "Linear", "Tanh"]


def test_nested_gmodule_called_as_a_node(tmp_path):
    spec = NN + """
    local function block(n)
      local x = nn.Identity()()
      return nn.gModule({x}, {nn.Tanh()(nn.Linear(n, n)(x))})
    end
    local inner = block(3)
    local two_in = (function()
      local p, q = nn.Identity()(), nn.Identity()()
      return nn.gModule({p, q}, {nn.CAddTable()({p, q})})
    end)()
    local x = nn.Identity()()
    local y = two_in({inner(x), nn.Linear(3, 3)(x)})
    return nn.gModule({x}, {y})
    """
    mod = build(spec, tmp_path)
    assert mod.OUTPUTS[0][1] == ("B", 3)
    assert [s for _, s, _ in mod.PARAMETERS] == [(3, 3), (3,), (3, 3), (3,)]


def test_multi_output_nested_gmodule_split_and_identity_grouping(tmp_path):
    spec = NN + """
    local function two()
      local p = nn.Identity()()
      return nn.gModule({p}, {nn.Linear(3, 2)(p), nn.Linear(3, 4)(p)})
    end
    local x = nn.Identity()()
    local a, b = two()(x):split(2)
    local grouped = nn.Identity()({a, b})        -- a table-valued node
    local c, d = grouped:split(2)
    local ys = {}
    for i = 1, 2 do ys[i] = nn.Tanh()(nn.JoinTable(2)({c, d})) end
    return nn.gModule({x}, ys)
    """
    mod = build(spec, tmp_path)
    assert [s for _, s in mod.OUTPUTS] == [("B", 6), ("B", 6)]
    assert [s for _, s, _ in mod.PARAMETERS] == [(2, 3), (2,), (4, 3), (4,)]


def test_same_node_as_two_outputs(tmp_path):
    spec = NN + ("local x = nn.Identity()()\nlocal y = nn.Linear(3, 2)(x)\n"
                 "return nn.gModule({x}, {y, y})\n")
    mod = build(spec, tmp_path)
    assert [n for n, _ in mod.OUTPUTS][0] == "output1"
    m = mod.Model(dtype="float64", seed=0)
    import numpy as np
    x = np.ones((2, 3))
    y1, y2 = m.forward(x)
    g1 = m.backward((x,), (np.ones((2, 2)), np.zeros((2, 2))))
    g2 = m.backward((x,), (np.ones((2, 2)), np.ones((2, 2))))
    assert np.allclose(2 * g1, g2)  # both outputs' gradients are summed


def test_nested_gmodule_input_count_checked():
    e, _ = compile_error(NN + """local p, q = nn.Identity()(), nn.Identity()()
local inner = nn.gModule({p, q}, {nn.CAddTable()({p, q})})
local x = nn.Identity()()
local y = inner(x)
return nn.gModule({x}, {y})
""")
    assert e.message == "this gModule takes a table of 2 inputs, got one tensor"
    assert (e.loc.line, e.loc.col) == (6, 11)


def test_nngraph_debug_helpers_are_accepted(tmp_path):
    spec = NN + """
    nngraph.setDebug(true)
    local x = nn.Identity()()
    local y = nn.Linear(3, 2)(x)
    nngraph.annotateNodes()
    local m = nn.gModule({x}, {y})
    m.name = 'net'
    torch.manualSeed(1)
    return m:float()
    """
    assert build(spec, tmp_path).OUTPUTS[0][1] == ("B", 2)


def test_constructs_feed_module_sizes(tmp_path):
    """Evaluation results observed through the compiled model."""
    cases = [
        ("#{1, 2, 3, 4}", "", 4),
        ("n", "local n = 0\nfor i = 1, 10, 3 do n = n + 1 end", 4),
        ("t[2]", "local t = {}\nfor _, v in ipairs({5, 6}) do table.insert(t, v) end", 6),
        ("cfg.size or 9", "local cfg = {}", 9),
        ("cfg.size and 2 or 9", "local cfg = {size = false}", 9),
        ("math.floor(7 / 2)", "", 3),
        ("tonumber(string.format('%d', 8))", "", 8),
        ("f(3)", "local function f(...) return select('#', ...) + ... end", 4),
        ("sq(3)", "local function sq(x) if x > 0 then return x * x end end", 9),
    ]
    for expr, prelude, want in cases:
        assert out_size(build(linear_of(expr, prelude), tmp_path)) == want, expr


# ---- which model is compiled, -D -------------------------------------------------------

def test_returned_module_is_the_model(tmp_path):
    spec = NN + """
    local a = nn.Identity()()
    local first = nn.gModule({a}, {nn.Linear(3, 7)(a)})
    local b = nn.Identity()()
    local second = nn.gModule({b}, {nn.Linear(3, 5)(b)})
    return first
    """
    assert out_size(build(spec, tmp_path)) == 7


def test_last_top_level_container_without_return(tmp_path):
    spec = NN + """
    local a = nn.Identity()()
    local first = nn.gModule({a}, {nn.Linear(3, 7)(a)})
    local b = nn.Identity()()
    local second = nn.gModule({b}, {nn.Linear(3, 5)(b)})
    """
    assert out_size(build(spec, tmp_path)) == 5


CHAR_RNN = NN + """
local LSTM = {}
function LSTM.lstm(input_size, rnn_size)
  local x = nn.Identity()()
  local prev_h = nn.Identity()()
  local i2h = nn.Linear(input_size, 4 * rnn_size)(x)
  local h2h = nn.Linear(rnn_size, 4 * rnn_size)(prev_h)
  local sums = nn.CAddTable()({i2h, h2h})
  return nn.gModule({x, prev_h}, {nn.Tanh()(sums)})
end
return LSTM
"""


def test_entry_calls_a_builder(tmp_path):
    mod = build(CHAR_RNN, tmp_path, entry="LSTM.lstm(3, 4)")
    assert [s for _, s, _ in mod.INPUTS] == [("B", 3), ("B", 4)]
    assert mod.OUTPUTS[0][1] == ("B", 16)


def test_table_of_builders_without_entry_suggests_entry():
    e, _ = compile_error(CHAR_RNN)
    assert "builds no model" in e.message
    assert '--entry "LSTM.lstm(...)"' in e.message or "--entry" in e.message


def test_nothing_built_is_an_error():
    e, _ = compile_error(NN + "local x = 1\n")
    assert "spec.lua builds no model" in e.message


def test_no_model_messages():
    """Interpreter.no_model_error: what the file gave instead, and the --entry to use."""
    def msg(src):
        e = run(NN + src).no_model_error()
        return e.message, e.loc and (e.loc.line, e.loc.col)

    assert msg(CHAR_RNN[len(NN):]) == (
        "spec.lua builds no model: it returns a table of builder functions (LSTM.lstm); choose "
        "the model with --entry, e.g. --entry \"LSTM.lstm(...)\"", (13, 1))
    assert msg("local x = 1\nreturn x + 1") == (
        "spec.lua returns a number, not a model: return an nn.gModule or container, or choose "
        "the model with --entry EXPR", (4, 1))
    assert msg("function make() end") == (
        "spec.lua builds no model: it makes no nn.gModule or container at top level and returns "
        "none; return one, or choose the model with --entry, e.g. --entry \"make(...)\"", None)


def test_entry_errors_are_located_in_the_entry_text():
    e, _ = compile_error(CHAR_RNN, entry="LSTM.lstn(3, 4)")
    assert e.message == "attempt to call a nil value (field 'lstn') (did you mean 'lstm'?)"
    assert (e.loc.file, e.loc.line, e.loc.col) == ("<entry>", 1, 1)
    e, _ = compile_error(CHAR_RNN, entry="LSTM.lstm(3,")
    assert (e.loc.file, e.loc.col) == ("<entry>", 13)
    e, _ = compile_error(CHAR_RNN, entry="Lstm.lstm(3, 4)")
    assert e.message == "attempt to index a nil value (global 'Lstm') (did you mean 'LSTM'?)"
    assert (e.loc.file, e.loc.line, e.loc.col) == ("<entry>", 1, 1)


def test_define_overrides_top_level_assignment(tmp_path):
    spec = linear_of("rnn_size", "rnn_size = 2\nlocal layers = 1")
    assert out_size(build(spec, tmp_path)) == 2
    assert out_size(build(spec, tmp_path, defines={"rnn_size": 5})) == 5
    mod = build(spec, tmp_path, defines={"rnn_size": 5, "layers": 3})
    assert out_size(mod) == 5


def test_define_of_a_name_never_assigned():
    e, text = compile_error(linear_of("rnn_size", "rnn_size = 2"), defines={"rnn_sise": 5})
    assert e.loc is None
    assert e.message == ("-D rnn_sise=...: spec.lua never assigns 'rnn_sise' at top level, so "
                         "there is nothing to override (did you mean 'rnn_size'?); -D only "
                         "replaces a top-level assignment such as `rnn_sise = 2` or "
                         "`local rnn_sise = 2`")
    assert text.startswith("graphc: error: -D rnn_sise=...")


# ---- error paths: exact messages and locations ----------------------------------------------

def test_syntax_error():
    e, text = compile_error("local x = 1\nlocal y = = 2\n")
    assert text == ("spec.lua:2:11: error: unexpected '=', expected expression\n"
                    "  local y = = 2\n"
                    "            ^")


def test_unknown_module_did_you_mean():
    e, text = compile_error(NN + "local x = nn.Identity()()\nlocal y = nn.Linaer(3, 4)(x)\n")
    assert text == ("spec.lua:4:11: error: unknown module nn.Linaer (did you mean 'Linear'?)\n"
                    "  local y = nn.Linaer(3, 4)(x)\n"
                    "            ^")


def test_unsupported_torch_module():
    e, text = compile_error(NN + "local p = nn.SpatialFractionalMaxPooling(2, 2, 4, 4)\n")
    assert (e.loc.line, e.loc.col) == (3, 11)
    assert e.message.startswith("nn.SpatialFractionalMaxPooling is a Torch nn module that "
                                "graphc does not support")


def test_undefined_global_function():
    e, text = compile_error("local function build() end\nlocal m = biuld()\n")
    assert text == ("spec.lua:2:11: error: attempt to call a nil value (global 'biuld') "
                    "(did you mean 'build'?)\n"
                    "  local m = biuld()\n"
                    "            ^")


def test_shape_mismatch_points_at_consuming_node():
    e, text = compile_error(NN + "local x = nn.Identity()()\nlocal h = nn.Linear(3, 5)(x)\n"
                            "local y = nn.Linear(3, 4)(h)\nreturn nn.gModule({x}, {y})\n")
    assert (e.loc.line, e.loc.col) == (5, 11)
    assert "Bx5" in e.message and "nn.Linear" in e.message
    assert text.splitlines()[1:] == ["  local y = nn.Linear(3, 4)(h)", "            ^"]


def test_wrong_arity():
    e, text = compile_error(NN + "local m = nn.Linear(3)\n")
    assert text == ("spec.lua:3:11: error: nn.Linear: missing argument 'outputSize'; usage: "
                    "nn.Linear(inputSize, outputSize, bias=true)\n"
                    "  local m = nn.Linear(3)\n"
                    "            ^")
    e, _ = compile_error(NN + "local m = nn.Linear(3, 4, true, 5)\n")
    assert e.message == ("nn.Linear: too many arguments (4 given); usage: "
                         "nn.Linear(inputSize, outputSize, bias=true)")
    e, _ = compile_error(NN + "local m = nn.Linear(3, 'four')\n")
    assert e.message == "nn.Linear: argument 'outputSize' must be a number, got string"
    e, _ = compile_error(NN + "local m = nn.Linear(3, 4.5)\n")
    assert e.message == "nn.Linear: argument 'outputSize' must be a whole number, got 4.5"


def test_table_of_nodes_into_a_one_tensor_module():
    e, text = compile_error(NN + "local a = nn.Identity()()\nlocal b = nn.Identity()()\n"
                            "local y = nn.Linear(3, 4)({a, b})\nreturn nn.gModule({a, b}, {y})\n")
    assert (e.loc.line, e.loc.col) == (5, 11)
    assert e.message.startswith("nn.Linear expects one tensor as input, got a table of 2")
    assert "nn.JoinTable(2)({a, b})" in e.message


def test_several_arguments_to_a_module_call():
    e, _ = compile_error(NN + "local a = nn.Identity()()\nlocal y = nn.CAddTable()(a, a)\n")
    assert e.message == ("nn.CAddTable was called with 2 arguments: pass several inputs as one "
                         "table, m({input1, input2})")
    assert (e.loc.line, e.loc.col) == (4, 11)


def test_unused_graph_input_points_at_the_input():
    e, text = compile_error(NN + "local a = nn.Identity()()\nlocal b = nn.Identity()()\n"
                            "local y = nn.Linear(3, 4)(a)\nreturn nn.gModule({a, b}, {y})\n")
    assert text == ("spec.lua:4:11: error: graph input 2 ('b') is not used by any output of the "
                    "gModule: connect it, or remove it from the gModule's inputs\n"
                    "  local b = nn.Identity()()\n"
                    "            ^\n"
                    "spec.lua:6:8: note: the gModule is made here\n"
                    "  return nn.gModule({a, b}, {y})\n"
                    "         ^")


def test_same_node_twice_in_an_input_list():
    e, text = compile_error(NN + "local x = nn.Identity()()\nlocal y = nn.CMulTable()({x, x})\n")
    assert text.splitlines()[:3] == [
        "spec.lua:4:30: error: inputs[2] is the same node as inputs[1]: nngraph forbids passing "
        "a node twice; pass nn.Identity()(x) as the second copy",
        "  local y = nn.CMulTable()({x, x})",
        "                               ^"]
    assert text.splitlines()[3] == "spec.lua:4:27: note: inputs[1] is here"


def test_module_instead_of_a_node():
    e, text = compile_error(NN + "local y = nn.Tanh()(nn.Linear(3, 4))\n")
    assert text == ("spec.lua:3:21: error: the input is a module (nn.Linear), not a graph node: "
                    "did you forget the second parentheses, nn.Linear(...)(input)?\n"
                    "  local y = nn.Tanh()(nn.Linear(3, 4))\n"
                    "                      ^")
    e, _ = compile_error(NN + "local x = nn.Identity()()\n"
                         "local y = nn.CAddTable()({x, nn.Linear(3, 3)})\n")
    assert e.message.startswith("inputs[2] is a module (nn.Linear), not a graph node")
    assert (e.loc.line, e.loc.col) == (4, 30)
    e, _ = compile_error(NN + "local y = nn.Linear(3, 3) - nn.Tanh()\n")
    assert e.message.startswith("the left side of '-' is a module (nn.Linear), not a graph node")


def test_nil_and_misspelt_inputs():
    e, text = compile_error(NN + "local prev_h = nn.Identity()()\n"
                            "local y = nn.CAddTable()({prev_h, prev_c})\n")
    assert text == ("spec.lua:4:35: error: inputs[2] is nil: 'prev_c' is not defined "
                    "(did you mean 'prev_h'?)\n"
                    "  local y = nn.CAddTable()({prev_h, prev_c})\n"
                    "                                    ^")
    e, _ = compile_error(NN + "local x = nn.Identity()()\nlocal y = nn.Tanh()(xx)\n")
    assert e.message == "the input is nil: 'xx' is not defined (did you mean 'x'?)"
    assert (e.loc.line, e.loc.col) == (4, 21)
    e, _ = compile_error(NN + "local x = nn.Identity()()\nlocal y = nn.Tanh()({})\n")
    assert e.message.startswith("cannot pass an empty table of inputs")
    e, _ = compile_error(NN + "local x = nn.Identity()()\nlocal y = nn.Tanh()(x)\n"
                         "return nn.gModule({x}, {y, z})\n")
    assert e.message == "outputs[2] is nil: 'z' is not defined"
    assert (e.loc.line, e.loc.col) == (5, 28)
    e, _ = compile_error(NN + "local x = nn.Identity()()\nlocal y = nn.Tanh()(x)\n"
                         "return nn.gModule({}, {y})\n")
    assert e.message.startswith("nn.gModule needs at least one input node")


def test_gmodule_input_made_from_other_nodes():
    e, text = compile_error(NN + "local x = nn.Identity()()\nlocal h = nn.Tanh()(x)\n"
                            "return nn.gModule({h}, {nn.Tanh()(h)})\n")
    assert e.message.startswith("inputs[1] of nn.gModule is not a graph input")
    assert (e.loc.line, e.loc.col) == (5, 8)
    assert e.notes[0][0].line == 4


def test_node_not_reaching_the_inputs():
    e, _ = compile_error(NN + "local a = nn.Identity()()\nlocal b = nn.Identity()()\n"
                         "return nn.gModule({a}, {nn.Tanh()(a), b})\n")
    assert e.message == "this node has no inputs and is not an input of the gModule"
    assert (e.loc.line, e.loc.col) == (4, 11)


def test_split_output_unused():
    e, text = compile_error(NN + "local x = nn.Identity()()\n"
                            "local p = nn.ConcatTable():add(nn.Tanh()):add(nn.Tanh())(x)\n"
                            "local a, b = p:split(2)\nreturn nn.gModule({x}, {a})\n")
    assert text.splitlines()[:3] == [
        "spec.lua:5:14: error: 1 of the 2 outputs of split(2) is not used by the gModule's "
        "outputs (output 2 ('b')); nngraph requires every split output to be used",
        "  local a, b = p:split(2)",
        "               ^"]
    assert e.notes[0][0].line == 4


def test_split_argument_checked():
    e, _ = compile_error(NN + "local x = nn.Identity()()\nlocal a, b = x:split(0)\n")
    assert e.message == "node:split(n) needs a whole number n >= 1, got 0"
    e, _ = compile_error(NN + "local x = nn.Identity()()\nlocal a = x:splt(2)\n")
    assert e.message == "graph nodes have no field 'splt' (did you mean 'split'?)"


def test_infinite_loop_stops_with_located_error(monkeypatch):
    monkeypatch.setattr(lua_core, "MAX_STEPS", 2000)
    e, text = compile_error("local x = 0\nwhile true do\n  x = x + 1\nend\n")
    assert (e.loc.line, e.loc.col) in {(2, 1), (3, 3)}
    assert e.message.startswith("too many steps: evaluation stopped here after 2000 steps")
    e, _ = compile_error("local x = 0\nwhile true do end\n")
    assert (e.loc.line, e.loc.col) == (2, 1) and "too many steps" in e.message


def test_infinite_recursion_stops_with_located_error():
    e, text = compile_error("local function f(n)\n  return f(n + 1) + 1\nend\nf(1)\n")
    assert text.splitlines()[:3] == [
        f"spec.lua:2:10: error: too many nested calls (more than {lua_core.MAX_DEPTH}) calling "
        "function 'f': is the recursion infinite? (check its base case)",
        "    return f(n + 1) + 1",
        "           ^"]
    assert e.notes[0][0].line == 4
    # recursion within the limit works (and does not hit Python's own limit)
    assert lua("local function d(n) if n == 0 then return 0 end return 1 + d(n - 1) end\n"
               f"x = d({lua_core.MAX_DEPTH - 5})", "x") == lua_core.MAX_DEPTH - 5


def test_cannot_infer_shape_names_the_input():
    e, text = compile_error(NN + "local img = nn.Identity()()\n"
                            "local y = nn.SpatialConvolution(1, 2, 3, 3)(img)\n"
                            "return nn.gModule({img}, {y})\n")
    assert (e.loc.line, e.loc.col) == (3, 13)
    assert "input1" in e.message and "--shape input1=" in e.message


def test_shape_of_unknown_input_name():
    e, _ = compile_error(linear_of(4), shapes={"inptu1": ("B", 3)})
    assert "inptu1" in e.message and "input1" in e.message


def test_runtime_lua_errors_name_the_variable():
    e, text = compile_error("local t = nil\nlocal y = t.x\n")
    assert e.message == "attempt to index a nil value (local 't')"
    assert (e.loc.line, e.loc.col) == (2, 11)
    e, _ = compile_error("local cfg = {}\nlocal y = cfg.size * 2\n")
    assert e.message == "attempt to perform arithmetic on a nil value (field 'size')"
    assert (e.loc.line, e.loc.col) == (2, 20)
    e, _ = compile_error("local y = 'a' < 1\n")
    assert e.message == "attempt to compare string with number"
    e, _ = compile_error("local y = 'a' .. {}\n")
    assert e.message == "attempt to concatenate a table value"
    e, _ = compile_error("local y = #5\n")
    assert e.message == "attempt to get length of a number value"
    e, _ = compile_error("local opt = {}\nopt.a.b = 1\n")
    assert e.message == "attempt to index a nil value (field 'a')"
    e, _ = compile_error("local s = nil\ns:foo()\n")
    assert e.message == "attempt to call method 'foo' on a nil value (local 's')"
    e, _ = compile_error("break\n")
    assert e.message == "'break' outside a loop" and (e.loc.line, e.loc.col) == (1, 1)
    e, _ = compile_error("local f = function() break end\nfor i = 1, 2 do f() end\n")
    assert e.message == "'break' outside a loop" and (e.loc.line, e.loc.col) == (1, 22)
    e, _ = compile_error("local t = {}\nfor k, v in t do end\n")
    assert e.message == ("'for ... in' needs an iterator function, got a table: iterate a table "
                         "with pairs(t) or ipairs(t)") and (e.loc.line, e.loc.col) == (2, 1)
    e, _ = compile_error("for i = 1, 'x' do end\n")
    assert e.message == "'for' limit value must be a number, got string"
    e, _ = compile_error("local f = io.open('x')\n")
    assert e.message.startswith("io.open is not available in graphc specs")
    e, _ = compile_error("setmetatable({}, {})\n")
    assert e.message == "setmetatable is not available in graphc specs"


def test_no_python_exception_escapes_for_bad_specs():
    """Odd but legal-looking specs fail with SpecError, never another exception."""
    bad = [
        "local x = nn.Linear(3, 4)()()",
        "local x = nn.Identity()()\nlocal y = x + x",
        "local t = setmetatable({}, {})",
        "local x = nn.gModule(1, 2)",
        "local x = nn.Identity()()\nreturn nn.gModule(x)",
        "local x = nn.Identity()()\nx.data.module = 1",
        "local x = nn.Identity()()\nx.foo = 1",
        "local s = string.rep()",
        "local n = math.max()",
        "for k in pairs(nil) do end",
        "for k in 5 do end",
        "return nn.Linear(3, 4):nosuch()",
        "local m = nn.Sequential():add(5)",
        "local a = unpack(nil)",
        "local x = string.format('%y', 1)",
    ]
    for src in bad:
        try:
            compile_spec("spec.lua", Options(), text=NN + src)
        except SpecError as e:
            assert e.loc is None or e.loc.line >= 1, src
        else:  # pragma: no cover - every case above is an error
            pytest.fail(f"no error for {src!r}")


# ---- CLI ---------------------------------------------------------------------------------

GOOD = NN + "local x = nn.Identity()()\nlocal y = nn.Linear(3, 4)(x)\nreturn nn.gModule({x}, {y})\n"
BAD = NN + "local x = nn.Identity()()\nlocal y = nn.Linaer(3, 4)(x)\n"


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """Run the CLI cases as subprocesses, all at once (each start costs ~1 s)."""
    d = tmp_path_factory.mktemp("cli")
    (d / "good.lua").write_text(GOOD)
    (d / "bad.lua").write_text(BAD)
    cases = {
        "ok": ["compile", "good.lua", "-o", "out.py"],
        "spec_error": ["compile", "bad.lua", "-o", "bad_out.py"],
        "bad_flag": ["compile", "good.lua", "--frobnicate"],
    }
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("GRAPHC_TRACEBACK", None)
    procs = {k: subprocess.Popen([sys.executable, "-m", "graphc", *argv], cwd=d, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, argv in cases.items()}
    out = {}
    for k, p in procs.items():
        stdout, stderr = p.communicate(timeout=60)
        out[k] = (p.returncode, stdout, stderr)
    return d, out


def test_cli_success(cli_runs):
    d, out = cli_runs
    rc, stdout, stderr = out["ok"]
    assert rc == 0 and stderr == "" and stdout == ""
    assert "class Model" in (d / "out.py").read_text()


def test_cli_check_and_emit_ir(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("good.lua").write_text(GOOD)
    assert cli.main(["check", "good.lua"]) == 0
    stdout = capsys.readouterr().out
    assert "nn.Linear" in stdout and "inputs:  input1 (x): Bx3" in stdout  # its Lua variable too
    assert cli.main(["compile", "good.lua", "--emit", "ir"]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("graph good.lua\n")
    assert "input %input1: Bx3" in stdout and "Linear{" in stdout


def test_cli_spec_error(cli_runs):
    d, out = cli_runs
    rc, stdout, stderr = out["spec_error"]
    assert rc == 1 and stdout == ""
    assert stderr == ("bad.lua:4:11: error: unknown module nn.Linaer (did you mean 'Linear'?)\n"
                      "  local y = nn.Linaer(3, 4)(x)\n"
                      "            ^\n")
    assert "Traceback" not in stderr
    assert not (d / "bad_out.py").exists()


def test_cli_usage_errors(cli_runs, tmp_path, capsys, monkeypatch):
    rc, stdout, stderr = cli_runs[1]["bad_flag"]
    assert rc == 2 and "--frobnicate" in stderr and "Traceback" not in stderr
    monkeypatch.chdir(tmp_path)
    Path("good.lua").write_text(GOOD)
    assert cli.main(["compile", "good.lua", "--shape", "input1=Bxq"]) == 2
    assert "bad shape 'Bxq'" in capsys.readouterr().err
    assert cli.main(["compile", "nosuch.lua"]) == 2
    assert "no such file: nosuch.lua" in capsys.readouterr().err


def test_cli_output_is_atomic_and_kept_when_unchanged(tmp_path, capsys):
    spec = tmp_path / "m.lua"
    spec.write_text(GOOD)
    out = tmp_path / "m.py"
    assert cli.main(["compile", str(spec), "-o", str(out)]) == 0
    first = out.read_bytes()
    old = 1_000_000_000
    os.utime(out, (old, old))
    assert cli.main(["compile", str(spec), "-o", str(out)]) == 0
    assert out.stat().st_mtime == old  # same bytes: not rewritten
    assert out.read_bytes() == first
    # a changed spec rewrites it
    spec.write_text(GOOD.replace("Linear(3, 4)", "Linear(3, 5)"))
    assert cli.main(["compile", str(spec), "-o", str(out)]) == 0
    assert out.stat().st_mtime != old and out.read_bytes() != first
    second = out.read_bytes()
    # a failing compile leaves the old output untouched
    spec.write_text(BAD)
    os.utime(out, (old, old))
    assert cli.main(["compile", str(spec), "-o", str(out)]) == 1
    assert out.read_bytes() == second and out.stat().st_mtime == old
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    err = capsys.readouterr().err
    assert f"{spec}:4:11: error: unknown module nn.Linaer" in err


def test_cli_define_and_entry(tmp_path, capsys):
    spec = tmp_path / "lstm.lua"
    spec.write_text(CHAR_RNN)
    assert cli.main(["compile", str(spec), "--entry", "LSTM.lstm(3, 4)", "--emit", "ir"]) == 0
    assert "16" in capsys.readouterr().out
    spec2 = tmp_path / "d.lua"
    spec2.write_text(linear_of("rnn_size", "rnn_size = 2"))
    assert cli.main(["check", str(spec2), "-D", "rnn_size=6"]) == 0
    assert "outputs: output1 (y): Bx6" in capsys.readouterr().out
    assert cli.main(["check", str(spec2), "-D", "nosuch=6"]) == 2  # an option mistake: a usage error
    assert "-D nosuch=...: " in capsys.readouterr().err
    assert cli.main(["check", str(spec2), "-D", "1bad=6"]) == 2
    assert "bad -D name '1bad'" in capsys.readouterr().err
    assert cli.main(["check", str(spec), "--entry", "LSTM.lstm(3,"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("<entry>:1:13: error: ")
    assert err.splitlines()[1:] == ["  LSTM.lstm(3,", "              ^"]


def test_torch_class_files_load_and_their_builder_methods_compile(tmp_path):
    """Files written as torch.class modules (rnn's FastLSTM) load; --entry calls a builder
    method with a plain table as self."""
    spec = """
local Cell, parent = torch.class("nn.MyCell", "nn.Module")
Cell.usegraph = false

function Cell:__init(n)
   parent.__init(self)
end

function Cell:graph()
   local x = nn.Identity()()
   local y = nn.Tanh()(self.lin(x)):annotate{name = 'y'}
   return nn.gModule({x}, {y})
end

function Cell:build()
   self.lin = nn.Linear(self.n, 2)
   if self.usegraph then return self:graph() end
end
"""
    mod = build(spec, tmp_path, entry="Cell.build({n = 3, usegraph = true, graph = Cell.graph})")
    assert mod.PARAMETERS[0][1] == (2, 3) and mod.OUTPUTS[0][0] == "y"


def test_require_image_gaussian1d():
    """image.gaussian1D(size, sigma, amplitude, normalize, mean), positional or named: the
    Gaussian amplitude * exp(-((i - center) / (sigma size))^2 / 2), i = 1..size, center =
    mean size + 0.5 (independent of graphc's code: math here)."""
    a, b, c = lua("require 'image'\nlocal a = image.gaussian1D(5)\n"
                  "local b = image.gaussian1D{size = 4, sigma = 0.5, amplitude = 2, mean = 0.25}\n"
                  "local c = image.gaussian1D(3, 0.25, 1, true)\n", "a", "b", "c")

    def g(size, sigma=0.25, amplitude=1.0, mean=0.5):
        return [amplitude * math.exp(-((i - (mean * size + 0.5)) / (sigma * size)) ** 2 / 2)
                for i in range(1, size + 1)]
    a, b, c = (t.a.tolist() for t in (a, b, c))  # tensors, as Torch's
    assert a == pytest.approx(g(5), rel=1e-15)
    assert b == pytest.approx(g(4, 0.5, 2.0, 0.25), rel=1e-15)
    assert c == pytest.approx([v / sum(g(3)) for v in g(3)], rel=1e-15)
    with pytest.raises(SpecError, match="image.gaussian1D.*size a whole number >= 1"):
        lua("require 'image'\nlocal a = image.gaussian1D(0)\n", "a")
