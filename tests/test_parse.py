"""Tests for the Lua 5.1 parser (grammar/lua.lark + graphc/frontend/parse.py)."""
import time

import pytest

from graphc.errors import Loc, SpecError
from graphc.frontend import ast
from graphc.frontend.parse import parse

FILE = "t.lua"


def L(line, col):
    return Loc(FILE, line, col)


def block(src):
    return parse(src, FILE)


def stats(src):
    return block(src).stats


def expr(src):
    """The single value of `x = <src>`."""
    (stat,) = stats("x = " + src)
    (value,) = stat.values
    return value


def sx(node):
    """A node as a small loc-free nested tuple, for readable comparisons."""
    if isinstance(node, ast.Number):
        return node.value
    if isinstance(node, ast.String):
        return ("s", node.value)
    if isinstance(node, ast.Name):
        return node.name
    if isinstance(node, ast.Nil):
        return "nil"
    if isinstance(node, ast.Bool):
        return node.value
    if isinstance(node, ast.Vararg):
        return "..."
    if isinstance(node, ast.BinOp):
        return (node.op, sx(node.left), sx(node.right))
    if isinstance(node, ast.UnOp):
        return (node.op, sx(node.operand))
    if isinstance(node, ast.Paren):
        return ("()", sx(node.expr))
    if isinstance(node, ast.Index):
        return ("[]", sx(node.obj), sx(node.key))
    if isinstance(node, ast.Call):
        return ("call", sx(node.func), *map(sx, node.args))
    if isinstance(node, ast.MethodCall):
        return (":" + node.method, sx(node.obj), *map(sx, node.args))
    if isinstance(node, ast.Table):
        return ("{}", *map(sx, node.items))
    if isinstance(node, ast.Positional):
        return sx(node.value)
    if isinstance(node, ast.Named):
        return ("=", node.key, sx(node.value))
    if isinstance(node, ast.Keyed):
        return ("[]=", sx(node.key), sx(node.value))
    if isinstance(node, ast.Function):
        return ("function", node.params, node.is_vararg, len(node.body.stats))
    raise AssertionError(f"no sx for {node!r}")


def error_of(src):
    with pytest.raises(SpecError) as info:
        parse(src, FILE)
    return info.value.message, info.value.loc


# ---- literals --------------------------------------------------------------------


def test_simple_literals():
    assert expr("nil") == ast.Nil(L(1, 5))
    assert expr("true") == ast.Bool(L(1, 5), True)
    assert expr("false") == ast.Bool(L(1, 5), False)


@pytest.mark.parametrize("src, value", [
    ("42", 42), ("0", 0), ("0x1F", 31), ("0XfF", 255), ("3.5", 3.5), ("3.", 3.0),
    (".5", 0.5), ("1e3", 1000.0), ("2E-2", 0.02), ("1.5e+2", 150.0),
])
def test_numbers(src, value):
    node = expr(src)
    assert node == ast.Number(L(1, 5), value)
    assert type(node.value) is type(value)


@pytest.mark.parametrize("src, value", [
    ('"abc"', "abc"),
    ("'abc'", "abc"),
    (r'"a\nb\tc"', "a\nb\tc"),
    (r'"q\"q\'q"', "q\"q'q"),
    (r"'q\'q\"q'", "q'q\"q"),
    (r'"back\\slash"', "back\\slash"),
    (r'"\65\066\0067"', "AB\x067"),
    (r'"\a\b\f\r\v"', "\a\b\f\r\v"),
    ('"line\\\nnext"', "line\nnext"),  # backslash-newline
    (r'"\q"', "q"),  # Lua 5.1: an unknown escape stands for the character
    ('""', ""),
    ("[[long]]", "long"),
    ("[[\nfirst newline dropped]]", "first newline dropped"),
    ("[[\n\nonly one]]", "\nonly one"),
    ("[==[a ]] b ]=] c]==]", "a ]] b ]=] c"),
    ("[[no \\n escapes]]", "no \\n escapes"),
    ("[[]]", ""),
])
def test_strings(src, value):
    assert expr(src) == ast.String(L(1, 5), value)


def test_multiline_long_string_positions():
    (s1, s2) = stats("x = [[a\nb\nc]]\ny = 1")
    assert s1.values[0].value == "a\nb\nc"
    assert s2.loc == L(4, 1)


# ---- operators -----------------------------------------------------------------


@pytest.mark.parametrize("src, tree", [
    ("-2^2", ("-", ("^", 2, 2))),
    ("2^3^2", ("^", 2, ("^", 3, 2))),
    ("2^-3", ("^", 2, ("-", 3))),
    ("2^-3^2", ("^", 2, ("-", ("^", 3, 2)))),
    ("-x^y^z", ("-", ("^", "x", ("^", "y", "z")))),
    ("a..b..c", ("..", "a", ("..", "b", "c"))),
    ("a .. b + c", ("..", "a", ("+", "b", "c"))),
    ("a or b and c", ("or", "a", ("and", "b", "c"))),
    ("a and b or c", ("or", ("and", "a", "b"), "c")),
    ("a or b or c", ("or", ("or", "a", "b"), "c")),
    ("not a == b", ("==", ("not", "a"), "b")),
    ("not not a", ("not", ("not", "a"))),
    ("1 + 2 * 3", ("+", 1, ("*", 2, 3))),
    ("(1 + 2) * 3", ("*", ("()", ("+", 1, 2)), 3)),
    ("a - b - c", ("-", ("-", "a", "b"), "c")),
    ("a / b * c % d", ("%", ("*", ("/", "a", "b"), "c"), "d")),
    ("-a * b", ("*", ("-", "a"), "b")),
    ("#t + 1", ("+", ("#", "t"), 1)),
    ("a < b == c", ("==", ("<", "a", "b"), "c")),
    ("a <= b", ("<=", "a", "b")),
    ("a >= b", (">=", "a", "b")),
    ("a > b", (">", "a", "b")),
    ("a ~= b", ("~=", "a", "b")),
    ("a == b and c ~= d", ("and", ("==", "a", "b"), ("~=", "c", "d"))),
    ("1 < 2 .. 3", ("<", 1, ("..", 2, 3))),
    ("a - -b", ("-", "a", ("-", "b"))),
])
def test_precedence_and_associativity(src, tree):
    assert sx(expr(src)) == tree


def test_nngraph_chain_is_left_associative():
    assert sx(expr("x - nn.Linear(3,4) - nn.Tanh()")) == (
        "-",
        ("-", "x", ("call", ("[]", "nn", ("s", "Linear")), 3, 4)),
        ("call", ("[]", "nn", ("s", "Tanh"))),
    )


def test_binop_loc_is_the_operator():
    node = expr("a +\n  b * c")
    assert node.loc == L(1, 7)
    assert node.right.loc == L(2, 5)
    assert expr("a .. b").loc == L(1, 7)
    assert expr("a or b").loc == L(1, 7)
    assert expr("-a").loc == L(1, 5)  # UnOp: its operator is its first token


# ---- indexing, calls, tables ---------------------------------------------------------


def test_index_forms():
    node = expr("a.b[1]['c']")
    assert sx(node) == ("[]", ("[]", ("[]", "a", ("s", "b")), 1), ("s", "c"))
    assert node.obj.obj == ast.Index(L(1, 5), ast.Name(L(1, 5), "a"), ast.String(L(1, 7), "b"))


def test_calls_and_sugar():
    assert sx(expr("f()")) == ("call", "f")
    assert sx(expr("f(1, 'a', ...)")) == ("call", "f", 1, ("s", "a"), "...")
    assert sx(expr("f{1, 2}")) == ("call", "f", ("{}", 1, 2))
    assert sx(expr("f'str'")) == ("call", "f", ("s", "str"))
    assert sx(expr('f"str"')) == ("call", "f", ("s", "str"))
    assert sx(expr("f[[str]]")) == ("call", "f", ("s", "str"))
    assert sx(expr("o:m(1)")) == (":m", "o", 1)
    assert sx(expr("o:m{a = 1}")) == (":m", "o", ("{}", ("=", "a", 1)))
    assert sx(expr("o:m'x'")) == (":m", "o", ("s", "x"))
    assert sx(expr("a.b:c(d):e()")) == (":e", (":c", ("[]", "a", ("s", "b")), "d"))
    assert sx(expr("(f)(x)")) == ("call", ("()", "f"), "x")


def test_nngraph_call_sugar():
    (stat,) = stats("m:annotate{name='x'}")
    assert isinstance(stat, ast.CallStat)
    assert sx(stat.call) == (":annotate", "m", ("{}", ("=", "name", ("s", "x"))))
    (stat,) = stats("require 'nn'")
    assert sx(stat.call) == ("call", "require", ("s", "nn"))
    assert sx(expr("nn.CAddTable(){a, b}")) == (
        "call", ("call", ("[]", "nn", ("s", "CAddTable"))), ("{}", "a", "b"))


def test_call_loc_is_start_of_whole_call():
    node = expr("nn.Linear(3,2)(x)")
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Call)
    assert node.loc == node.func.loc == L(1, 5)
    assert node.args == (ast.Name(L(1, 20), "x"),)
    method = expr("  a.b:c()")
    assert method.loc == L(1, 7)


def test_call_on_next_line_continues_the_call():
    # `f\n(g)` is one call (Lua 5.2+ behaviour; 5.1 called it ambiguous)
    (stat,) = stats("f\n(g)")
    assert sx(stat.call) == ("call", "f", "g")


def test_table_constructors():
    assert sx(expr("{}")) == ("{}",)
    assert sx(expr("{1, 2; 3,}")) == ("{}", 1, 2, 3)
    assert sx(expr("{x = 1, ['y'] = 2; [3] = f(), 4;}")) == (
        "{}", ("=", "x", 1), ("[]=", ("s", "y"), 2), ("[]=", 3, ("call", "f")), 4)
    assert sx(expr("{{}, {a = {b}}}")) == ("{}", ("{}",), ("{}", ("=", "a", ("{}", "b"))))
    assert expr("{x = 1}") == ast.Table(L(1, 5), (ast.Named("x", ast.Number(L(1, 10), 1)),))


# ---- statements --------------------------------------------------------------------


def test_local_and_assignment():
    local, bare, assign, index_assign = stats(
        "local a, b = 1, 2\nlocal c\na, b = b, a\nt.x[1] = nil")
    assert local == ast.Local(L(1, 1), ("a", "b"),
                              (ast.Number(L(1, 14), 1), ast.Number(L(1, 17), 2)))
    assert bare == ast.Local(L(2, 1), ("c",), ())
    assert assign == ast.Assign(L(3, 1), (ast.Name(L(3, 1), "a"), ast.Name(L(3, 4), "b")),
                                (ast.Name(L(3, 8), "b"), ast.Name(L(3, 11), "a")))
    assert sx(index_assign.targets[0]) == ("[]", ("[]", "t", ("s", "x")), 1)


def test_local_from_method_call():
    (stat,) = stats("local n1, n2 = x:split(2)")
    assert stat.names == ("n1", "n2")
    assert sx(stat.values[0]) == (":split", "x", 2)


def test_functions():
    f_stat, lf, dotted, method, anon = stats(
        "function fib(n) return n end\n"
        "local function f(a, ...) end\n"
        "function a.b.c() end\n"
        "function a.b:m(x) return self end\n"
        "g = function(...) return ... end\n")
    assert isinstance(f_stat, ast.FunctionStat)
    assert f_stat.target == ast.Name(L(1, 10), "fib")
    assert f_stat.func.params == ("n",) and f_stat.func.name == "fib"
    assert f_stat.func.loc == L(1, 1)

    assert isinstance(lf, ast.LocalFunction)
    assert lf.loc == L(2, 1) and lf.name == "f"
    assert lf.func.loc == L(2, 7)
    assert (lf.func.params, lf.func.is_vararg, lf.func.name) == (("a",), True, "f")

    assert sx(dotted.target) == ("[]", ("[]", "a", ("s", "b")), ("s", "c"))
    assert dotted.func.name == "a.b.c"

    assert method.target == ast.Index(
        L(4, 10),
        ast.Index(L(4, 10), ast.Name(L(4, 10), "a"), ast.String(L(4, 12), "b")),
        ast.String(L(4, 14), "m"))
    assert method.func.params == ("self", "x")
    assert method.func.name == "a.b:m"
    assert method.func.body.stats == (ast.Return(L(4, 19), (ast.Name(L(4, 26), "self"),)),)

    func = anon.values[0]
    ret = ast.Return(L(5, 19), (ast.Vararg(L(5, 26)),))
    assert func == ast.Function(L(5, 5), (), True, ast.Block(L(5, 19), (ret,)))


def test_empty_blocks_take_the_owner_loc():
    (stat,) = stats("  function f() end")
    assert stat.func.body == ast.Block(L(1, 3), ())
    assert block("") == ast.Block(L(1, 1), ())
    assert block("-- nothing\n").loc == L(1, 1)


def test_control_flow():
    src = """
if a then f() elseif b then g() elseif c then else h() end
if a then end
for i = 1, 10 do f(i) end
for i = 10, 1, -1 do end
for k, v in pairs(t) do end
while x do x = x - 1 end
repeat local y = 1 until y
do local z end
"""
    if1, if2, numfor, numfor_step, genfor, wh, rep, do = stats(src)
    assert if1.loc == L(2, 1)
    assert [sx(cond) for cond, _ in if1.branches] == ["a", "b", "c"]
    assert [len(body.stats) for _, body in if1.branches] == [1, 1, 0]
    assert len(if1.orelse.stats) == 1
    assert if2.orelse is None and len(if2.branches) == 1

    assert (numfor.var, sx(numfor.start), sx(numfor.stop), numfor.step) == ("i", 1, 10, None)
    assert sx(numfor.body.stats[0].call) == ("call", "f", "i")
    assert sx(numfor_step.step) == ("-", 1)

    assert genfor.names == ("k", "v")
    assert [sx(e) for e in genfor.exprs] == [("call", "pairs", "t")]

    assert sx(wh.cond) == "x" and isinstance(wh.body.stats[0], ast.Assign)
    assert isinstance(rep.body.stats[0], ast.Local) and sx(rep.cond) == "y"
    assert rep.loc == L(8, 1)
    assert do == ast.Do(L(9, 1), ast.Block(L(9, 4), (ast.Local(L(9, 4), ("z",), ()),)))


def test_return_and_break():
    assert stats("return") == (ast.Return(L(1, 1), ()),)
    assert stats("return;") == (ast.Return(L(1, 1), ()),)
    (ret,) = stats("return 1, 2;")
    assert [sx(v) for v in ret.values] == [1, 2]
    (loop,) = stats("while true do break end")
    assert loop.body.stats == (ast.Break(L(1, 15)),)
    (loop,) = stats("while true do f() break; end")
    assert isinstance(loop.body.stats[1], ast.Break)


def test_comments_and_semicolons():
    src = """#!/usr/bin/env lua
-- a line comment
;;
local a = 1; local b = 2 -- trailing
--[[ a long
comment ]] local c = 3
--[==[ another ]] one ]==]
f(a) ; f(b);
--[= not long: a line comment
x = a--[[inline]]+b
"""
    result = stats(src)
    assert [type(s).__name__ for s in result] == [
        "Local", "Local", "Local", "CallStat", "CallStat", "Assign"]
    assert result[2].loc == L(6, 12)
    assert sx(result[5].values[0]) == ("+", "a", "b")


def test_crlf_line_endings():
    result = stats("local a = 1\r\nlocal b = [[\r\nx]]\r\n")
    assert result[1].loc == L(2, 1)
    assert result[1].values[0].value == "x"


def test_keywords_are_reserved_but_prefixes_are_names():
    assert sx(expr("endx + nil_ + ifs")) == ("+", ("+", "endx", "nil_"), "ifs")


# ---- errors --------------------------------------------------------------------------


@pytest.mark.parametrize("src, message, loc", [
    ("function f()\n  x = 1\n",
     "unexpected end of file, expected 'end' (to close 'function' at 1:1)", (2, 8)),
    ("while x do\n  if y then\n    f()\n  end\n",
     "unexpected end of file, expected 'end' (to close 'while' at 1:1)", (4, 6)),
    ("if a then\n  for i = 1, 2 do f() end\n",
     "unexpected end of file, expected 'end' (to close 'if' at 1:1)", (2, 26)),
    ("while f(function() return 1 end) do\n  g()\n",
     "unexpected end of file, expected 'end' (to close 'while' at 1:1)", (2, 6)),
    ("repeat f()", "unexpected end of file, expected 'until' (to close 'repeat' at 1:1)",
     (1, 11)),
    ("local y = f(1, 2\nlocal z = 3",
     "unexpected 'local', expected ')' (to close '(' at 1:12)", (2, 1)),
    ("f(a b)", "unexpected 'b', expected ')' (to close '(' at 1:2)", (1, 5)),
    ("t = {1, 2", "unexpected end of file, expected '}' (to close '{' at 1:5)", (1, 10)),
    ("x = a[1", "unexpected end of file, expected ']' (to close '[' at 1:6)", (1, 8)),
    ("function f() return 1 x end",
     "unexpected 'x', expected 'end' (to close 'function' at 1:1)", (1, 23)),
    ("x = ", "unexpected end of file, expected expression", (1, 4)),
    ("x = }", "unexpected '}', expected expression", (1, 5)),
    ("f(a,)", "unexpected ')', expected expression", (1, 5)),
    ("local = 3", "unexpected '=', expected one of: name, 'function'", (1, 7)),
    ("local end = 1", "unexpected 'end', expected one of: name, 'function'", (1, 7)),
    ("if x", "unexpected end of file, expected 'then'", (1, 5)),
    ("while x", "unexpected end of file, expected 'do'", (1, 8)),
    ("for k, v do end", "unexpected 'do', expected 'in'", (1, 10)),
    ("x = 1 )", "unexpected ')', expected one of: statement, end of file", (1, 7)),
    ("a, b", "unexpected end of file, expected one of: '=', ',', '(', '.', ':', '[', ...",
     (1, 5)),
    ("return 1 f()", "unexpected 'f', expected one of: end of file, ';'", (1, 10)),
    ("x = $", "unexpected character '$'", (1, 5)),
    ("x = 1 ~ 2", "unexpected character '~'", (1, 7)),
    ("x = 'abc\n'", "unfinished string", (1, 5)),
    ('\nx = "abc', "unfinished string", (2, 5)),
    ("x = [==[abc]]", "unfinished long string", (1, 5)),
    ("x = 1 --[[ abc", "unfinished long comment", (1, 7)),
    ("x = 3x", "malformed number near '3x'", (1, 5)),
    ("x = 1..2", "malformed number near '1..2'", (1, 5)),
    ("x = '\\256'", "escape sequence too large", (1, 5)),
    ("f() = 1", "cannot assign to this expression", (1, 1)),
    ("a, (b) = 1, 2", "cannot assign to this expression", (1, 4)),
    ("x", "syntax error: expression statement must be a function call", (1, 1)),
    ("f()\n  a.b", "syntax error: expression statement must be a function call", (2, 3)),
    ("(f)", "syntax error: expression statement must be a function call", (1, 1)),
])
def test_syntax_errors(src, message, loc):
    assert error_of(src) == (message, L(*loc))


def test_error_format_has_caret():
    with pytest.raises(SpecError) as info:
        parse("local a = 1\nlocal b = (a +\n", "m.lua")
    text = info.value.format({"m.lua": "local a = 1\nlocal b = (a +\n"})
    assert text.splitlines()[0] == "m.lua:2:15: error: unexpected end of file, expected expression"


def test_no_lark_exception_escapes_on_truncated_input():
    for cut in range(0, len(LSTM_SRC), 41):
        try:
            parse(LSTM_SRC[:cut], FILE)
        except SpecError as e:
            assert e.loc is not None and e.loc.line >= 1 and e.loc.col >= 1


# ---- a realistic model file ----------------------------------------------------------

LSTM_SRC = """\
-- A char-rnn style multi-layer LSTM, built with nngraph.
require 'nn'
require 'nngraph'

local LSTM = {}

--[[ inputs:  x, prev_c[L], prev_h[L] for each layer L
     outputs: next_c[L], next_h[L], then the log-probabilities ]]
function LSTM.lstm(input_size, rnn_size, n, dropout)
  dropout = dropout or 0

  -- there will be 2*n+1 inputs
  local inputs = {}
  table.insert(inputs, nn.Identity()()) -- x
  for L = 1, n do
    table.insert(inputs, nn.Identity()()) -- prev_c[L]
    table.insert(inputs, nn.Identity()()) -- prev_h[L]
  end

  local x, input_size_L
  local outputs = {}
  for L = 1, n do
    local prev_h = inputs[L*2+1]
    local prev_c = inputs[L*2]
    if L == 1 then
      x = inputs[1]
      input_size_L = input_size
    else
      x = outputs[(L-1)*2]
      if dropout > 0 then x = nn.Dropout(dropout)(x):annotate{name='drop_' .. L} end
      input_size_L = rnn_size
    end
    -- evaluate the input sums at once for efficiency
    local i2h = nn.Linear(input_size_L, 4 * rnn_size)(x):annotate{name='i2h_'..L}
    local h2h = nn.Linear(rnn_size, 4 * rnn_size)(prev_h):annotate{name='h2h_'..L}
    local all_input_sums = nn.CAddTable()({i2h, h2h})

    local reshaped = nn.Reshape(4, rnn_size)(all_input_sums)
    local n1, n2, n3, n4 = nn.SplitTable(2)(reshaped):split(4)
    local in_gate = nn.Sigmoid()(n1)
    local forget_gate = nn.Sigmoid()(n2)
    local out_gate = nn.Sigmoid()(n3)
    local in_transform = nn.Tanh()(n4)
    local next_c = nn.CAddTable()({
        nn.CMulTable()({forget_gate, prev_c}),
        nn.CMulTable()({in_gate, in_transform})
      })
    local next_h = nn.CMulTable()({out_gate, nn.Tanh()(next_c)})

    table.insert(outputs, next_c)
    table.insert(outputs, next_h)
  end

  local top_h = outputs[#outputs]
  if dropout > 0 then top_h = nn.Dropout(dropout)(top_h) end
  local proj = nn.Linear(rnn_size, input_size)(top_h):annotate{name='decoder'}
  local logsoft = nn.LogSoftMax()(proj)
  table.insert(outputs, logsoft)

  return nn.gModule(inputs, outputs)
end

return LSTM
"""


def test_lstm_builder_file():
    chunk = parse(LSTM_SRC, "LSTM.lua")
    kinds = [type(s).__name__ for s in chunk.stats]
    assert kinds == ["CallStat", "CallStat", "Local", "FunctionStat", "Return"]
    func_stat = chunk.stats[3]
    assert func_stat.loc == Loc("LSTM.lua", 9, 1)
    assert sx(func_stat.target) == ("[]", "LSTM", ("s", "lstm"))
    func = func_stat.func
    assert func.name == "LSTM.lstm"
    assert func.params == ("input_size", "rnn_size", "n", "dropout")

    body = func.body.stats
    assert isinstance(body[-1], ast.Return)
    assert sx(body[-1].values[0]) == ("call", ("[]", "nn", ("s", "gModule")), "inputs", "outputs")
    layer_loop = body[6]
    assert isinstance(layer_loop, ast.NumFor) and layer_loop.loc == Loc("LSTM.lua", 22, 3)
    by_name = {s.names[0]: s for s in layer_loop.body.stats if isinstance(s, ast.Local)}
    i2h = by_name["i2h"].values[0]
    assert isinstance(i2h, ast.MethodCall) and i2h.method == "annotate"
    assert sx(i2h.args[0]) == ("{}", ("=", "name", ("..", ("s", "i2h_"), "L")))
    assert i2h.loc == Loc("LSTM.lua", 34, 17)
    split = by_name["n1"]
    assert split.names == ("n1", "n2", "n3", "n4")
    assert sx(split.values[0])[:1] == (":split",) and sx(split.values[0])[-1] == 4
    branch = layer_loop.body.stats[2]
    assert isinstance(branch, ast.If) and branch.orelse is not None
    assert sx(branch.branches[0][0]) == ("==", "L", 1)
    assert sx(chunk.stats[4].values[0]) == "LSTM"


def test_parse_is_fast():
    src = "\n".join([LSTM_SRC.replace("return LSTM\n", "")] + ["x = y"] * 40)
    assert len(src.splitlines()) >= 100
    parse(src, FILE)  # warm up: the parser is built once per process
    best = min(_timed(lambda: parse(src, FILE)) for _ in range(3))
    assert best < 0.25  # typically ~20 ms; generous for loaded CI machines


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
