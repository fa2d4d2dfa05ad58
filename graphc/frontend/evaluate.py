"""A tree-walking interpreter for the Lua 5.1 subset of DESIGN section 2.

It runs the spec the way Torch would, except that `nn.X(...)` builds ModuleObj
descriptions and calling a module on nodes builds NodeObj graph nodes (nn.py). Specs
cannot reach files (other than `require` of a sibling .lua), the network or Python.
"""
from __future__ import annotations

import math
import re
import sys
from contextlib import contextmanager
from pathlib import Path

from ..errors import Loc, SpecError, did_you_mean
from . import ast as A
from .nn import (ADDABLE, CONTAINERS, ModuleObj, NodeObj, check_attrs, lua_type, make_module,
                 unknown_module)
from .parse import parse
from .values import Builtin, LuaFunction, LuaTable
from ..ops import REGISTRY

MAX_STEPS = 1_000_000  # statements + loop iterations before "too many steps" (~4 s)
MAX_DEPTH = 200  # nested Lua calls
MAX_OBJECTS = 50_000  # modules + graph nodes a spec may create (each is far costlier than a step)
MAX_STRING = 10_000_000  # characters in one string
MAX_VALUES = 1_000_000  # values one unpack / split may produce


class LimitError(SpecError):
    """A resource limit: not catchable by pcall."""
_PY_RECURSION = 40_000  # Python frames allowed while evaluating (each Lua call takes ~10-30)


class _Break(Exception):
    def __init__(self, loc=None):
        super().__init__("break")
        self.loc = loc


class _Return(Exception):
    def __init__(self, values, loc=None):
        self.values = values
        self.loc = loc


class Scope:
    __slots__ = ("vars", "parent")

    def __init__(self, parent=None):
        self.vars, self.parent = {}, parent

    def find(self, name):
        s = self
        while s is not None:
            if name in s.vars:
                return s
            s = s.parent
        return None


def torch_type(v) -> str:
    """torch.type(): the class name for modules and nodes, else type()."""
    if isinstance(v, ModuleObj):
        return f"nn.{v.kind}"
    if isinstance(v, NodeObj):
        return "nngraph.Node"
    return lua_type(v)


def describe(v) -> str:
    if isinstance(v, (ModuleObj, NodeObj)):
        return repr(v)
    return lua_type(v)


def tostring(v) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if math.isnan(v):
            return "nan"
        return "%.14g" % v
    if isinstance(v, str):
        return v
    return f"{describe(v)}: 0x{id(v) & 0xffffff:06x}"


def truthy(v) -> bool:
    return v is not None and v is not False


def _norm(x):
    """Lua has one number type; keep integral results as int for readable messages/shapes."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 2**53:
        return int(x)
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) >= 2**53:
        return float(x)  # Lua numbers are doubles
    return x


class Interpreter:
    def __init__(self, path: str, text: str, defines: dict | None = None):
        self.path = path
        self.sources = {path: text}
        self.files = [path]  # the spec and every file it requires (for --depfile)
        self.defines = dict(defines or {})
        self.define_names_seen: set[str] = set()
        self.steps = 0
        self.depth = 0
        self.call_stack: list = []  # (call-site Loc, function name) of the Lua calls in progress
        self.last_loc = None  # the statement being run (to locate a Python RecursionError)
        self.serial = 0
        self.modules: list[ModuleObj] = []  # every module, in constructor order
        self.loaded: dict[str, object] = {}
        self.globals = Scope()
        self._install_builtins()
        self.top_scope = None
        self.returned = []
        self.return_loc = None  # the top-level `return` statement, if the file has one

    # ---- entry points ----------------------------------------------------------

    def run(self):
        chunk = parse(self.sources[self.path], self.path)
        self._check_defines(chunk)
        self.top_scope = Scope(self.globals)
        self.top_scope.vars["..."] = []  # the main chunk is a vararg function (no arguments)
        with self._evaluating():
            try:
                self.exec_block(chunk, self.top_scope, top=True)
            except _Return as r:
                self.returned = r.values
                self.return_loc = r.loc
            except _Break as b:
                raise SpecError("'break' outside a loop", b.loc) from None
        return self.returned

    def no_model_error(self, returned=None) -> SpecError:
        """The error for a spec that yields no model (no --entry, no module returned, no
        top-level container): says what the file did give and which --entry to use."""
        returned = self.returned if returned is None else returned
        name = Path(self.path).name
        value = returned[0] if returned else None
        scope = self.top_scope or self.globals
        if isinstance(value, LuaTable):
            fns = [k for k, v in value.d.items() if isinstance(k, str)
                   and isinstance(v, (LuaFunction, Builtin))]
            var = next((k for k, v in scope.vars.items() if v is value), None)
            if var is None:
                var = next((k for k, v in self.globals.vars.items() if v is value), "M")
            if fns:
                listed = ", ".join(f"{var}.{f}" for f in fns[:5]) + (", ..." if len(fns) > 5 else "")
                return SpecError(f"{name} builds no model: it returns a table of builder functions "
                                 f"({listed}); choose the model with --entry, e.g. "
                                 f"--entry \"{var}.{fns[0]}(...)\"", self.return_loc)
        if returned and value is not None:
            return SpecError(f"{name} returns a {describe(value)}, not a model: return an "
                             "nn.gModule or container, or choose the model with --entry EXPR",
                             self.return_loc)
        fns = [k for k, v in list(scope.vars.items()) + list(self.globals.vars.items())
               if isinstance(v, LuaFunction)]
        example = f"{fns[0]}(...)" if fns else "build(...)"
        return SpecError(f"{name} builds no model: it makes no nn.gModule or container at top "
                         "level and returns none; return one, or choose the model with --entry, "
                         f"e.g. --entry \"{example}\"")

    def eval_entry(self, expr: str):
        """--entry EXPR: evaluated in the scope of the spec's top level, after run()."""
        name = "<entry>"
        self.sources[name] = expr
        prefix = "return "
        try:
            block = parse(prefix + expr, name)
        except SpecError as e:
            raise _unshift_error(e, name, len(prefix)) from None
        block = _unshift(block, name, len(prefix))  # locations relative to EXPR itself
        with self._evaluating():
            try:
                self.exec_block(block, Scope(self.top_scope or self.globals))
            except _Return as r:
                return r.values
            except _Break as b:
                raise SpecError("'break' outside a loop", b.loc) from None
        return []

    @contextmanager
    def _evaluating(self):
        """Room for deep (but bounded: MAX_DEPTH) Lua recursion; a Python RecursionError
        (pathological nesting) becomes a located error."""
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, _PY_RECURSION))
        try:
            yield
        except RecursionError:
            raise SpecError("the spec nests too deeply to evaluate (expressions, tables or "
                            "calls nested thousands deep)", self.last_loc) from None
        finally:
            sys.setrecursionlimit(old)

    def _check_defines(self, chunk: A.Block):
        assigned = set()
        for st in chunk.stats:
            if isinstance(st, A.Local):
                assigned.update(st.names)
            elif isinstance(st, A.Assign):
                assigned.update(t.name for t in st.targets if isinstance(t, A.Name))
        for name in self.defines:
            if name not in assigned:
                hint = did_you_mean(name, assigned)
                raise SpecError(f"-D {name}=...: {self.path} never assigns '{name}' at top level, "
                                f"so there is nothing to override{hint}; -D only replaces a top-"
                                f"level assignment such as `{name} = 2` or `local {name} = 2`")

    # ---- statements --------------------------------------------------------------

    def tick(self, loc):
        self.steps += 1
        self.last_loc = loc
        if self.steps > MAX_STEPS:
            raise LimitError(f"too many steps: evaluation stopped here after {MAX_STEPS} steps; "
                            "is this loop (or recursion) infinite?", loc)

    def exec_block(self, block: A.Block, scope: Scope, top=False):
        for st in block.stats:
            self.tick(st.loc)
            self.exec_stat(st, scope, top)

    def exec_stat(self, st, scope: Scope, top=False):
        t = type(st)
        if t is A.Local:
            vals = self.eval_list(st.values, scope, len(st.names))
            for name, v in zip(st.names, vals):
                if top and name in self.defines:
                    v = self.defines[name]
                _remember_name(v, name)
                scope.vars[name] = v
        elif t is A.Assign:
            # Lua evaluates all right-hand sides before assigning.
            targets = [(tg, self.eval(tg.obj, scope), self.eval(tg.key, scope))
                       if isinstance(tg, A.Index) else (tg, None, None) for tg in st.targets]
            vals = self.eval_list(st.values, scope, len(st.targets))
            for (tg, obj, key), v in zip(targets, vals):
                if isinstance(tg, A.Name):
                    if top and tg.name in self.defines:
                        v = self.defines[tg.name]
                    _remember_name(v, tg.name)
                    self.set_name(tg.name, v, scope)
                else:
                    if not isinstance(obj, (LuaTable, ModuleObj, NodeObj)):
                        raise SpecError(f"attempt to index a {describe(obj)} value"
                                        + self._named(tg.obj, scope, obj), tg.loc)
                    self.set_index(obj, key, v, tg.loc)
        elif t is A.CallStat:
            self.eval_multi(st.call, scope)
        elif t is A.If:
            for cond, body in st.branches:
                if truthy(self.eval(cond, scope)):
                    self.exec_block(body, Scope(scope))
                    return
            if st.orelse is not None:
                self.exec_block(st.orelse, Scope(scope))
        elif t is A.NumFor:
            self.exec_numfor(st, scope)
        elif t is A.GenFor:
            self.exec_genfor(st, scope)
        elif t is A.While:
            try:
                while truthy(self.eval(st.cond, scope)):
                    self.tick(st.loc)
                    self.exec_block(st.body, Scope(scope))
            except _Break:
                pass
        elif t is A.Repeat:
            try:
                while True:
                    self.tick(st.loc)
                    inner = Scope(scope)
                    self.exec_block(st.body, inner)
                    if truthy(self.eval(st.cond, inner)):
                        break
            except _Break:
                pass
        elif t is A.Do:
            self.exec_block(st.body, Scope(scope))
        elif t is A.FunctionStat:
            fn = LuaFunction(st.func, scope)
            if isinstance(st.target, A.Name):
                self.set_name(st.target.name, fn, scope)
            else:
                obj = self.eval(st.target.obj, scope)
                self.set_index(obj, self.eval(st.target.key, scope), fn, st.target.loc)
        elif t is A.LocalFunction:
            scope.vars[st.name] = None
            scope.vars[st.name] = LuaFunction(st.func, scope)
        elif t is A.Return:
            raise _Return(self.eval_list(st.values, scope), st.loc)
        elif t is A.Break:
            raise _Break(st.loc)
        else:  # pragma: no cover - the parser builds only the types above
            raise SpecError(f"unsupported statement {t.__name__}", st.loc)

    def exec_numfor(self, st: A.NumFor, scope):
        start, stop = self.eval(st.start, scope), self.eval(st.stop, scope)
        step = 1 if st.step is None else self.eval(st.step, scope)
        for what, v in (("initial", start), ("limit", stop), ("step", step)):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise SpecError(f"'for' {what} value must be a number, got {describe(v)}", st.loc)
        if step == 0:
            raise SpecError("'for' step is zero", st.loc)
        i = start
        try:
            while (i <= stop) if step > 0 else (i >= stop):
                self.tick(st.loc)
                inner = Scope(scope)
                inner.vars[st.var] = _norm(i)
                self.exec_block(st.body, inner)
                i += step
        except _Break:
            pass

    def exec_genfor(self, st: A.GenFor, scope):
        vals = self.eval_list(st.exprs, scope, 3)
        fn, state, ctl = vals
        if not isinstance(fn, (LuaFunction, Builtin)):
            hint = (": iterate a table with pairs(t) or ipairs(t)" if isinstance(fn, LuaTable)
                    else "")
            raise SpecError(f"'for ... in' needs an iterator function, got a {describe(fn)}"
                            f"{hint}", st.loc)
        try:
            while True:
                self.tick(st.loc)
                res = self.call(fn, [state, ctl], st.loc)
                res = (res + [None] * len(st.names))[: max(len(st.names), 1)]
                if res[0] is None:
                    break
                ctl = res[0]
                inner = Scope(scope)
                for name, v in zip(st.names, res):
                    inner.vars[name] = v
                self.exec_block(st.body, inner)
        except _Break:
            pass

    def set_name(self, name, v, scope):
        s = scope.find(name)
        (s if s is not None else self.globals).vars[name] = v

    def set_index(self, obj, key, v, loc):
        if isinstance(obj, LuaTable):
            if key is None:
                raise SpecError("table index is nil", loc)
            if isinstance(key, float) and math.isnan(key):
                raise SpecError("table index is NaN", loc)
            obj[key] = v
        elif isinstance(obj, ModuleObj):
            obj.fields[key] = v  # e.g. `conv.name = 'c1'`
            if isinstance(key, str) and key in obj.attrs:  # `crit.sizeAverage = false` sets it
                set_module_field(obj, key, v, loc)
        elif isinstance(obj, NodeObj):
            raise SpecError("cannot set fields on a graph node; use node:annotate{...}", loc)
        else:
            raise SpecError(f"attempt to index a {describe(obj)} value", loc)

    # ---- expressions -------------------------------------------------------------

    def eval_list(self, exprs, scope, want=None):
        """Evaluate an expression list; the last one may expand to several values."""
        out = []
        for i, e in enumerate(exprs):
            if i == len(exprs) - 1 and type(e) in (A.Call, A.MethodCall, A.Vararg):
                out.extend(self.eval_multi(e, scope))
            else:
                out.append(self.eval(e, scope))
        if want is not None:
            out = (out + [None] * want)[:want]
        return out

    def eval_multi(self, e, scope):
        t = type(e)
        if t is A.Call:
            fn = self.eval(e.func, scope)
            args = self.eval_list(e.args, scope)
            if isinstance(fn, ModuleObj):
                return [self.call_module(fn, args, e.loc, e.args, scope)]
            if fn is self.g_module_builtin:
                return [self.g_module(args, e.loc, e.args, scope)]
            if fn is None and isinstance(e.func, A.Index) and isinstance(e.func.key, A.String) \
                    and isinstance(e.func.obj, A.Name):
                obj = self.eval(e.func.obj, scope)  # a plain variable: no side effects
                if isinstance(obj, LuaTable):
                    keys = [k for k in obj.d if isinstance(k, str)]
                    raise SpecError(f"attempt to call a nil value (field '{e.func.key.value}')"
                                    + _suggest(e.func.key.value, keys), e.loc)
            return self.call(fn, args, e.loc, self._callee_name(e.func, scope), scope)
        if t is A.MethodCall:
            obj = self.eval(e.obj, scope)
            if not isinstance(obj, (LuaTable, str, ModuleObj, NodeObj)):
                raise SpecError(f"attempt to call method '{e.method}' on a {describe(obj)} value"
                                + self._named(e.obj, scope, obj), e.loc)
            fn = self.index(obj, e.method, e.loc, method=True)
            args = self.eval_list(e.args, scope)
            return self.call(fn, [obj] + args, e.loc, f"method '{e.method}'")
        if t is A.Vararg:
            s = scope.find("...")
            if s is None:
                raise SpecError("cannot use '...' outside a vararg function", e.loc)
            return list(s.vars["..."])
        return [self.eval(e, scope)]

    def _callee_name(self, f, scope=None):
        if isinstance(f, A.Name):
            local = scope is not None and scope.find(f.name) not in (None, self.globals)
            return f"{'local' if local else 'global'} '{f.name}'"
        if isinstance(f, A.Index) and isinstance(f.key, A.String):
            return f"field '{f.key.value}'"
        if isinstance(f, A.MethodCall):
            return f"method '{f.method}'"
        return None

    def _named(self, e, scope, value) -> str:
        """' (global 'x')' naming the expression a bad value came from, with a did-you-mean
        for a nil variable."""
        name = self._callee_name(e, scope)
        if name is None:
            return ""
        hint = ""
        if value is None and isinstance(e, A.Name) and scope is not None and scope.find(e.name) is None:
            hint = _suggest(e.name, self._visible_names(scope))
        return f" ({name}){hint}"

    def eval(self, e, scope):
        t = type(e)
        if t is A.Name:
            s = scope.find(e.name)
            return (s or self.globals).vars.get(e.name)
        if t is A.Number or t is A.String or t is A.Bool:
            return e.value
        if t is A.Nil:
            return None
        if t is A.Index:
            obj = self.eval(e.obj, scope)
            if not isinstance(obj, (LuaTable, str, ModuleObj, NodeObj)):
                raise SpecError(f"attempt to index a {describe(obj)} value"
                                + self._named(e.obj, scope, obj), e.loc)
            return self.index(obj, self.eval(e.key, scope), e.loc)
        if t is A.Call or t is A.MethodCall or t is A.Vararg:
            vals = self.eval_multi(e, scope)
            return vals[0] if vals else None
        if t is A.BinOp:
            return self.binop(e, scope)
        if t is A.UnOp:
            return self.unop(e, scope)
        if t is A.Table:
            return self.table(e, scope)
        if t is A.Function:
            return LuaFunction(e, scope)
        if t is A.Paren:
            return self.eval(e.expr, scope)
        raise SpecError(f"unsupported expression {t.__name__}", e.loc)  # pragma: no cover

    def table(self, e: A.Table, scope):
        t = LuaTable()
        n = 1
        for i, item in enumerate(e.items):
            if isinstance(item, A.Positional):
                last = i == len(e.items) - 1
                if last and type(item.value) in (A.Call, A.MethodCall, A.Vararg):
                    for v in self.eval_multi(item.value, scope):
                        t[n] = v
                        n += 1
                else:
                    t[n] = self.eval(item.value, scope)
                    n += 1
            elif isinstance(item, A.Named):
                t[item.key] = self.eval(item.value, scope)
            else:
                k = self.eval(item.key, scope)
                if k is None:
                    raise SpecError("table index is nil", e.loc)
                t[k] = self.eval(item.value, scope)
        return t

    def index(self, obj, key, loc, method=False):
        if isinstance(obj, LuaTable) and id(obj) in self.forbidden_libs:
            lib = self.forbidden_libs[id(obj)]
            raise SpecError(f"{lib}.{tostring(key)} is not available in graphc specs: a spec cannot "
                            "reach files, the OS or the host (only `require` of .lua files beside "
                            "the spec)", loc)
        if isinstance(obj, LuaTable):
            v = obj[key]
            if v is None and obj is self.nn and isinstance(key, str):
                raise unknown_module(key, loc)
            if v is None and obj is self.globals.vars.get("torch") and isinstance(key, str):
                raise SpecError(f"torch.{key} is not available in graphc specs: a spec builds the "
                                "model; create data and run it with the generated Model in Python", loc)
            return v
        if isinstance(obj, str):
            return self.string_lib[key]
        if isinstance(obj, ModuleObj):
            if key in obj.fields:
                return obj.fields[key]
            m = self.module_method(obj, key)
            if m is None and method:
                run = key in ("forward", "backward", "updateOutput", "updateGradInput",
                              "accGradParameters", "getParameters", "parameters")
                hint = (": running a model is the generated module's job (Model.forward, "
                        "Model.backward, Model.getParameters)" if run else
                        did_you_mean(str(key), self.module_method_names(obj)))
                raise SpecError(f"nn.{obj.kind} has no method '{key}' in a spec{hint}", loc)
            return m
        if isinstance(obj, NodeObj):
            m = self.node_methods.get(key)
            if m is None:
                if key == "data":
                    raise SpecError("node.data is not available in graphc; use annotate{name=...} "
                                    "and the generated module's PARAMETERS", loc)
                raise SpecError(f"graph nodes have no field '{key}'"
                                + did_you_mean(str(key), self.node_methods), loc)
            return m
        what = "index" if not method else "call method '%s' on" % key
        raise SpecError(f"attempt to {what} a {describe(obj)} value", loc)

    def binop(self, e: A.BinOp, scope):
        op = e.op
        if op == "and":
            a = self.eval(e.left, scope)
            return self.eval(e.right, scope) if truthy(a) else a
        if op == "or":
            a = self.eval(e.left, scope)
            return a if truthy(a) else self.eval(e.right, scope)
        a, b = self.eval(e.left, scope), self.eval(e.right, scope)
        if op == "-" and isinstance(b, ModuleObj):  # nngraph chaining: x - m, {a, b} - m
            if isinstance(a, ModuleObj):
                raise SpecError(f"the left side of '-' is a module (nn.{a.kind}), not a graph node: "
                                f"start a chain from a node, e.g. `local x = - nn.{a.kind}(...)` "
                                f"or `nn.{a.kind}(...)() - nn.{b.kind}(...)`", e.loc)
            return self.call_module(b, [a], e.loc, (e.left,), scope)
        if op == "==":
            return _eq(a, b)
        if op == "~=":
            return not _eq(a, b)
        if op == "..":
            for v in (a, b):
                if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                    raise SpecError(f"attempt to concatenate a {describe(v)} value", e.loc)
            text = tostring(a) + tostring(b) if len(str(a)) + len(str(b)) <= MAX_STRING else None
            if text is None:
                raise LimitError(f"string too long (more than {MAX_STRING} characters)", e.loc)
            return text
        if op in ("<", "<=", ">", ">="):
            if not ((_isnum(a) and _isnum(b)) or (isinstance(a, str) and isinstance(b, str))):
                raise SpecError(f"attempt to compare {describe(a)} with {describe(b)}", e.loc)
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        x = self.tonumber_arith(a, e.loc, e.left, scope)
        y = self.tonumber_arith(b, e.loc, e.right, scope)
        try:
            if op == "+":
                return _norm(x + y)
            if op == "-":
                return _norm(x - y)
            if op == "*":
                return _norm(x * y)
            if op == "/":
                if y == 0:
                    return math.nan if x == 0 else math.copysign(math.inf, x) * math.copysign(1, y)
                return _norm(x / y)
            if op == "%":
                if y == 0:
                    return math.nan
                if isinstance(x, int) and isinstance(y, int):
                    return x % y  # Python's % takes the divisor's sign, as Lua's does
                return _norm(x - math.floor(x / y) * y)
            if op == "^":
                return _norm(float(x) ** float(y))
        except OverflowError:
            return math.inf
        raise SpecError(f"unknown operator {op}", e.loc)  # pragma: no cover

    def tonumber_arith(self, v, loc, expr=None, scope=None):
        if _isnum(v):
            return v
        if isinstance(v, str):
            n = _tonumber(v)
            if n is not None:
                return n
        named = self._named(expr, scope, v) if expr is not None else ""
        raise SpecError(f"attempt to perform arithmetic on a {describe(v)} value{named}", loc)

    def unop(self, e: A.UnOp, scope):
        v = self.eval(e.operand, scope)
        if e.op == "not":
            return not truthy(v)
        if e.op == "#":
            if isinstance(v, str):
                return len(v.encode("utf-8"))
            if isinstance(v, LuaTable):
                return v.length()
            raise SpecError(f"attempt to get length of a {describe(v)} value", e.loc)
        if isinstance(v, ModuleObj):  # nngraph: -m is m()
            return self.call_module(v, [], e.loc)
        return _norm(-self.tonumber_arith(v, e.loc, e.operand, scope))

    # ---- calls -----------------------------------------------------------------

    def call(self, fn, args, loc, name=None, scope=None):
        if isinstance(fn, Builtin):
            try:
                res = fn.fn(args, loc)
            except (TypeError, ValueError, IndexError, KeyError, AttributeError,
                    ZeroDivisionError, OverflowError) as e:
                # a builtin given arguments it cannot use: say so here, never a traceback
                got = ", ".join(describe(a) for a in args) or "no arguments"
                raise SpecError(f"bad arguments to '{fn.name}' (got {got})", loc) from e
            return res if isinstance(res, list) else [res]
        if isinstance(fn, LuaFunction):
            return self.call_lua(fn, args, loc)
        if isinstance(fn, ModuleObj):
            return [self.call_module(fn, args, loc)]
        what = f" ({name})" if name else ""
        hint = ""
        if fn is None and name and name.startswith("global '"):
            g = name[8:-1]
            hint = _suggest(g, self._visible_names(scope) if scope else self.globals.vars)
        raise SpecError(f"attempt to call a {describe(fn)} value{what}{hint}", loc)

    def call_lua(self, fn: LuaFunction, args, loc):
        node = fn.node
        if len(self.call_stack) >= MAX_DEPTH:
            what = f"function '{node.name}'" if node.name else "a function"
            raise SpecError(f"too many nested calls (more than {MAX_DEPTH}) calling {what}: "
                            "is the recursion infinite? (check its base case)", loc,
                            [(self.call_stack[0][0], "the outermost call is here")])
        scope = Scope(fn.scope)
        for i, p in enumerate(node.params):
            scope.vars[p] = args[i] if i < len(args) else None
        if node.is_vararg:
            scope.vars["..."] = list(args[len(node.params):])
        self.call_stack.append((loc, node.name))
        self.depth = len(self.call_stack)
        try:
            self.exec_block(node.body, scope)
            return []
        except _Return as r:
            return r.values
        except _Break as b:
            raise SpecError("'break' outside a loop", b.loc) from None
        finally:
            self.call_stack.pop()
            self.depth = len(self.call_stack)

    # ---- nn and nngraph ----------------------------------------------------------

    def pcall(self, args, loc):
        """pcall(f, ...): true and f's results, or false and the error message."""
        if not args:
            raise SpecError("bad argument #1 to 'pcall' (value expected)", loc)
        steps, depth = self.steps, self.depth
        try:
            return [True] + self.call(args[0], list(args[1:]), loc)
        except LimitError:
            raise  # resource limits are not catchable
        except SpecError as e:
            self.depth = depth
            return [False, e.message]

    def count_object(self, loc):
        self.objects = getattr(self, "objects", 0) + 1
        if self.objects > MAX_OBJECTS:
            raise LimitError(f"too many modules and graph nodes (more than {MAX_OBJECTS}); is this "
                             "loop infinite?", loc)

    def new_module(self, kind, args, loc):
        self.count_object(loc)
        self.serial += 1
        mod = make_module(kind, args, loc, self.serial)
        self.modules.append(mod)
        return mod

    def call_module(self, mod: ModuleObj, args, loc, exprs=(), scope=None) -> NodeObj:
        """`m(node)`, `m({n1, n2})` or `m()`: a graph node (nngraph's Module:__call__).
        `exprs`/`scope` (the argument expressions, when known) locate and name bad inputs."""
        self.count_object(loc)
        if len(args) > 1:
            raise SpecError(f"nn.{mod.kind} was called with {len(args)} arguments: pass several "
                            "inputs as one table, m({input1, input2})", loc)
        inputs = []
        if args:
            a = args[0]
            expr = exprs[0] if exprs else None
            if isinstance(a, NodeObj):
                inputs = [a]
            elif isinstance(a, LuaTable):
                elems = self._elements(a, expr, scope, loc)
                if not elems:
                    raise SpecError("cannot pass an empty table of inputs; to make a graph input "
                                    "leave the second parentheses empty: nn.Identity()()", loc)
                first = {}
                for i, v, e in elems:
                    self._check_node(v, f"inputs[{i}]", e, loc, scope)
                    where = e.loc if e is not None else loc
                    if v in first:
                        j, wj = first[v]
                        raise SpecError(f"inputs[{i}] is the same node as inputs[{j}]: nngraph "
                                        "forbids passing a node twice; pass nn.Identity()(x) as "
                                        "the second copy", where, [(wj, f"inputs[{j}] is here")]
                                        if wj is not where else [])
                    first[v] = (i, where)
                    inputs.append(v)
            else:
                self._check_node(a, "the input", expr, loc, scope)
        mod.contained = True
        return NodeObj(mod, inputs, loc)

    def _elements(self, t: LuaTable, expr, scope, loc):
        """[(i, value, element expr or None)] for the array part of `t`, holes included: a
        table constructor's nil elements (a misspelt variable) count, as table.maxn would."""
        n = max([k for k in t.d if isinstance(k, int)] + [0])
        pos = []
        if isinstance(expr, A.Table):
            pos = [it.value for it in expr.items if isinstance(it, A.Positional)]
            multi = bool(pos) and type(pos[-1]) in (A.Call, A.MethodCall, A.Vararg)
            n = max(n, len(pos) - (1 if multi else 0))
        out = []
        for i in range(1, n + 1):
            e = pos[i - 1] if i <= len(pos) else (pos[-1] if pos and multi else None)
            out.append((i, t[i], e))
        return out

    def _check_node(self, v, what, expr, loc, scope):
        """Raise a located error unless v is a graph node; `expr` is what produced it."""
        if isinstance(v, NodeObj):
            return
        where = expr.loc if expr is not None else loc
        if v is None:
            raise SpecError(f"{what} is nil{self._why_nil(expr, scope)}", where)
        if isinstance(v, ModuleObj):
            raise SpecError(f"{what} is a module (nn.{v.kind}), not a graph node: did you forget "
                            f"the second parentheses, nn.{v.kind}(...)(input)?", where)
        raise SpecError(f"{what} should be a graph node but is a {describe(v)}", where)

    def _why_nil(self, expr, scope) -> str:
        if isinstance(expr, A.Name) and scope is not None:
            s = scope.find(expr.name)
            if s is None:
                return (f": '{expr.name}' is not defined"
                        + _suggest(expr.name, self._visible_names(scope)))
            return f": '{expr.name}' holds nil here"
        if isinstance(expr, A.Index) and isinstance(expr.key, A.String):
            return f": field '{expr.key.value}' is nil (typo or bad index?)"
        return " (typo or bad index?)"

    def _visible_names(self, scope) -> set:
        names, s = set(), scope
        while s is not None:
            names.update(k for k in s.vars if k != "...")
            s = s.parent
        return names

    def module_method(self, mod: ModuleObj, key):
        if key in ("add",) and mod.kind in ADDABLE:
            def add(args, loc):
                child = args[1] if len(args) > 1 else None
                if not isinstance(child, ModuleObj):
                    raise SpecError(f"nn.{mod.kind}:add expects a module, got {describe(child)}", loc)
                child.contained = True
                mod.children.append(child)
                return mod
            return Builtin("add", add)
        op = REGISTRY.get(mod.kind)
        if op is not None and key in op.methods:
            def method(args, loc, fn=op.methods[key]):
                fn(mod.attrs, *args[1:])
                check_attrs(mod, loc)
                return mod
            return Builtin(key, method)
        if key in _NOOP_METHODS:
            return Builtin(key, lambda args, loc: mod)
        if key == "training" or key == "evaluate":
            return Builtin(key, lambda args, loc: mod)
        return None

    def module_method_names(self, mod):
        names = list(_NOOP_METHODS)
        op = REGISTRY.get(mod.kind)
        if op is not None:
            names += list(op.methods)
        if mod.kind in ADDABLE:
            names.append("add")
        return names

    def g_module(self, args, loc, exprs=(), scope=None):
        if len(args) < 2:
            raise SpecError("nn.gModule expects two tables: nn.gModule(inputs, outputs)", loc)
        exprs = tuple(exprs) + (None, None)
        ins = self._node_list(args[0], "inputs", loc, exprs[0], scope)
        outs = self._node_list(args[1], "outputs", loc, exprs[1], scope)
        if not ins:
            raise SpecError("nn.gModule needs at least one input node, e.g. "
                            "local x = nn.Identity()() ... nn.gModule({x}, {y})", loc)
        if not outs:
            raise SpecError("nn.gModule needs at least one output node", loc)
        seen = {}
        for i, n in enumerate(ins, 1):
            if n.inputs or n.select >= 0:
                raise SpecError(f"inputs[{i}] of nn.gModule is not a graph input: it was made from "
                                "other nodes (a graph input is made with no inputs, as in "
                                "nn.Identity()())", loc, [(n.loc, "that node was made here")])
            if n in seen:
                raise SpecError(f"inputs[{i}] of nn.gModule is the same node as inputs[{seen[n]}]",
                                loc)
            seen[n] = i
        mod = self.new_module("gModule", [], loc)
        mod.inputs, mod.outputs = ins, outs
        for n in ins + outs:
            n.module and setattr(n.module, "contained", True)
        return mod

    def _node_list(self, v, what, loc, expr=None, scope=None):
        if isinstance(v, NodeObj):
            return [v]
        if not isinstance(v, LuaTable):
            where = expr.loc if expr is not None else loc
            if v is None:
                raise SpecError(f"nn.gModule {what} is nil{self._why_nil(expr, scope)}", where)
            raise SpecError(f"nn.gModule {what} must be a node or a table of nodes, got "
                            f"{describe(v)}", where)
        out = []
        for i, x, e in self._elements(v, expr, scope, loc):
            self._check_node(x, f"{what}[{i}]", e, loc, scope)
            out.append(x)
        return out

    def split(self, args, loc):
        node = args[0]
        if not isinstance(node, NodeObj):
            raise SpecError("split must be called as node:split(n)", loc)
        n = args[1] if len(args) > 1 else None
        if not _isnum(n) or n != int(n) or n < 1:
            raise SpecError(f"node:split(n) needs a whole number n >= 1, got {tostring(n)}", loc)
        if n > MAX_VALUES:
            raise LimitError(f"node:split({tostring(n)}): too many outputs (at most {MAX_VALUES})", loc)
        node.split_n = int(n)
        outs = [NodeObj(None, [node], loc, select=i) for i in range(int(n))]
        node.split_outputs = outs
        return outs

    def annotate(self, args, loc):
        node = args[0]
        t = args[1] if len(args) > 1 else None
        if not isinstance(node, NodeObj) or not isinstance(t, LuaTable):
            raise SpecError("annotate must be called as node:annotate{name = ..., ...}", loc)
        known = ("name", "description", "graphAttributes")
        for k, v in t.d.items():
            if k not in known:  # nngraph keeps any key, but a near-miss is surely a typo
                import difflib
                close = difflib.get_close_matches(str(k), known, n=1, cutoff=0.75)
                if close:
                    raise SpecError(f"annotate: unknown key '{k}' (did you mean '{close[0]}'?)", loc)
            if k == "graphAttributes" and isinstance(v, LuaTable):
                v = {str(a): tostring(b) for a, b in v.d.items()}
            elif isinstance(v, LuaTable):
                raise SpecError(f"annotate: '{k}' must be a string or number", loc)
            node.annotations[str(k)] = v if isinstance(v, dict) else tostring(v)
        return node

    # ---- the global environment ------------------------------------------------

    def _install_builtins(self):
        g = self.globals.vars
        b = lambda name, fn: Builtin(name, fn)  # noqa: E731

        def lua_print(args, loc):
            print("\t".join(tostring(a) for a in args), file=sys.stderr)
            return []

        def lua_error(args, loc):
            # error(msg [, level]): level 1 (default) is the error() call, level 2 the call
            # of the function that called error(), and so on.
            msg = args[0] if args else None
            level = args[1] if len(args) > 1 and _isnum(args[1]) else 1
            where = loc
            if level >= 2 and len(self.call_stack) >= level - 1:
                where = self.call_stack[-(int(level) - 1)][0]
            raise SpecError(tostring(msg) if msg is not None else "error() called with no message",
                            where)

        def lua_assert(args, loc):
            if not args or not truthy(args[0]):
                msg = args[1] if len(args) > 1 else "assertion failed!"
                raise SpecError(tostring(msg), loc)
            return list(args)

        def ipairs(args, loc):
            t = args[0] if args else None
            if not isinstance(t, LuaTable):
                raise SpecError(f"bad argument #1 to 'ipairs' (table expected, got {describe(t)})", loc)

            def step(a, l):
                i = a[1] + 1
                v = t[i]
                return [None] if v is None else [i, v]
            return [Builtin("ipairs_iter", step), t, 0]

        def pairs(args, loc):
            t = args[0] if args else None
            if not isinstance(t, LuaTable):
                raise SpecError(f"bad argument #1 to 'pairs' (table expected, got {describe(t)})", loc)
            # Deterministic order: the array part first, then other keys in insertion order.
            n = t.length()
            keys = list(range(1, n + 1)) + [k for k in t.d if not (isinstance(k, int) and 1 <= k <= n)]
            it = iter(keys)

            def step(a, l):
                for k in it:
                    if k in t.d:
                        return [k, t.d[k]]
                return [None]
            return [Builtin("pairs_iter", step), t, None]

        def unpack(args, loc):
            t = args[0] if args else None
            if not isinstance(t, LuaTable):
                raise SpecError(f"bad argument #1 to 'unpack' (table expected, got {describe(t)})", loc)
            i = int(args[1]) if len(args) > 1 and args[1] is not None else 1
            j = int(args[2]) if len(args) > 2 and args[2] is not None else t.length()
            if j - i + 1 > MAX_VALUES:
                raise LimitError(f"too many results to unpack ({j - i + 1}; at most {MAX_VALUES})", loc)
            return [t[k] for k in range(i, j + 1)]

        def select(args, loc):
            n = args[0] if args else None
            if n == "#":
                return len(args) - 1
            if not _isnum(n):
                raise SpecError("bad argument #1 to 'select' (number expected)", loc)
            n = int(n)
            return list(args[n:]) if n > 0 else list(args[len(args) + n:])

        def lua_tonumber(args, loc):
            v = args[0] if args else None
            if _isnum(v):
                return v
            if isinstance(v, str):
                if len(args) > 1 and args[1] is not None:
                    try:
                        return int(v.strip(), int(args[1]))
                    except ValueError:
                        return None
                return _tonumber(v)
            return None

        def require(args, loc):
            name = args[0] if args else None
            if not isinstance(name, str):
                raise SpecError("require expects a module name string", loc)
            if name in ("nn", "nngraph", "torch", "optim"):
                return {"nn": self.nn, "nngraph": self.nngraph}.get(name, LuaTable())
            if name in self.loaded:
                return self.loaded[name]
            base = Path(self.path).parent
            path = base / (name.replace(".", "/") + ".lua")
            if not path.is_file():
                raise SpecError(f"require '{name}': no file {path} next to the spec (graphc loads "
                                "only .lua files beside the spec, and nn, nngraph, torch, optim)", loc)
            text = path.read_text(encoding="utf-8")
            p = str(path)
            self.sources[p] = text
            if p not in self.files:
                self.files.append(p)
            self.loaded[name] = True  # guards against require cycles
            chunk = parse(text, p)
            try:
                self.exec_block(chunk, Scope(self.globals))
                res = None
            except _Return as r:
                res = r.values[0] if r.values else None
            self.loaded[name] = True if res is None else res
            return self.loaded[name]

        g.update({
            "print": b("print", lua_print), "error": b("error", lua_error),
            "assert": b("assert", lua_assert), "type": b("type", lambda a, l: lua_type(a[0] if a else None)),
            "tostring": b("tostring", lambda a, l: tostring(a[0] if a else None)),
            "tonumber": b("tonumber", lua_tonumber), "ipairs": b("ipairs", ipairs),
            "pairs": b("pairs", pairs), "unpack": b("unpack", unpack), "select": b("select", select),
            "pcall": b("pcall", self.pcall),
            "require": b("require", require),
            "rawget": b("rawget", lambda a, l: a[0][a[1]]),
            "rawequal": b("rawequal", lambda a, l: a[0] is a[1] or (_isnum(a[0]) and a[0] == a[1])),
        })
        for name in ("setmetatable", "getmetatable", "loadstring", "dofile", "loadfile", "load",
                     "module", "setfenv", "getfenv", "collectgarbage"):
            g[name] = Builtin(name, _unsupported(name))
        self.forbidden_libs = {}  # id -> name: libraries a spec may not touch
        for name in ("io", "os", "debug", "coroutine", "package"):
            g[name] = LuaTable()
            self.forbidden_libs[id(g[name])] = name
        g["table"] = self._table_lib()
        g["math"] = self._math_lib()
        self.string_lib = self._string_lib()
        g["string"] = self.string_lib
        g["table"]["unpack"] = g["unpack"]
        self.nn = self._nn_lib()
        self.nngraph = LuaTable({
            "setDebug": Builtin("setDebug", lambda a, l: []),
            "annotateNodes": Builtin("annotateNodes", lambda a, l: []),
        })
        g["nn"], g["nngraph"] = self.nn, self.nngraph
        g["OneHot"] = self.nn["OneHot"]  # char-rnn's util/OneHot.lua defines this global
        def tensor_of(args, loc):  # torch.Tensor{1, 2, 3}: a table of numbers is all a spec needs
            t = args[0] if args else None
            if not isinstance(t, LuaTable) or not all(_isnum(v) for v in t.array()):
                raise SpecError("graphc supports torch.Tensor{...} with a table of numbers only "
                                "(specs build models, not data)", loc)
            return LuaTable.of(t.array())

        def filled(value):
            def make(args, loc):
                if len(args) != 1 or not _isnum(args[0]) or args[0] != int(args[0]) or args[0] < 0:
                    raise SpecError("torch.ones/zeros take one size here: torch.ones(n)", loc)
                return LuaTable.of([value] * int(args[0]))
            return make

        classes: dict = {}

        def torch_class(args, loc):
            """torch.class('nn.X', 'nn.Parent'): plain tables for the class and its parent, so
            files that define builders as class methods (rnn's FastLSTM) load and their
            methods can be called with --entry; nothing is instantiated."""
            name = args[0] if args else None
            if not isinstance(name, str):
                raise SpecError("torch.class expects a class name string", loc)
            parent = args[1] if len(args) > 1 else None
            cls = classes.setdefault(name, LuaTable({"__typename": name}))
            base = classes.setdefault(parent, LuaTable({"__typename": parent})) if isinstance(parent, str) else None
            return [cls, base]

        g["torch"] = LuaTable({"manualSeed": Builtin("manualSeed", lambda a, l: []),
                               "class": Builtin("class", torch_class),
                               "Tensor": Builtin("Tensor", tensor_of),
                               "ones": Builtin("ones", filled(1)), "zeros": Builtin("zeros", filled(0)),
                               "type": Builtin("type", lambda a, l: torch_type(a[0] if a else None)),
                               "setdefaulttensortype": Builtin("setdefaulttensortype", lambda a, l: [])})
        self.node_methods = {"split": Builtin("split", self.split),
                             "annotate": Builtin("annotate", self.annotate)}

    def _nn_lib(self):
        t = LuaTable()
        for kind in list(REGISTRY) + [c for c in CONTAINERS if c != "gModule"]:
            t[kind] = Builtin(f"nn.{kind}", lambda a, l, k=kind: self.new_module(k, a, l))
        self.g_module_builtin = t["gModule"] = Builtin("nn.gModule", self.g_module)
        t["ModuleFromCriterion"] = Builtin("nn.ModuleFromCriterion", module_from_criterion)
        # dpnn's LinearNoBias (FastLSTM): nn.Linear without a bias
        t["LinearNoBias"] = Builtin("nn.LinearNoBias", lambda a, l: self.new_module(
            "Linear", (list(a) + [None, None])[:2] + [False], l))
        return t

    def _table_lib(self):
        def insert(args, loc):
            t = args[0] if args else None
            if not isinstance(t, LuaTable):
                raise SpecError(f"bad argument #1 to 'insert' (table expected, got {describe(t)})", loc)
            if len(args) == 2:
                t[t.length() + 1] = args[1]
            elif len(args) == 3:
                pos, n = args[1], t.length()
                if not _isnum(pos) or not 1 <= pos <= n + 1:
                    raise SpecError("bad argument #2 to 'insert' (position out of bounds)", loc)
                for i in range(n, int(pos) - 1, -1):
                    t[i + 1] = t[i]
                t[pos] = args[2]
            else:
                raise SpecError("wrong number of arguments to 'insert'", loc)
            return []

        def remove(args, loc):
            t = args[0] if args else None
            if not isinstance(t, LuaTable):
                raise SpecError(f"bad argument #1 to 'remove' (table expected, got {describe(t)})", loc)
            n = t.length()
            pos = int(args[1]) if len(args) > 1 and args[1] is not None else n
            if not 1 <= pos <= n:  # Lua 5.1: nothing to remove
                return []
            v = t[pos]
            for i in range(pos, n):
                t[i] = t[i + 1]
            t[n] = None
            return [v]

        def concat(args, loc):
            t = args[0]
            sep = args[1] if len(args) > 1 and args[1] is not None else ""
            i = int(args[2]) if len(args) > 2 and args[2] is not None else 1
            j = int(args[3]) if len(args) > 3 and args[3] is not None else t.length()
            parts = []
            for k in range(i, j + 1):
                v = t[k]
                if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                    raise SpecError(f"invalid value (at index {k}) in table for 'concat'", loc)
                parts.append(tostring(v))
            return tostring(sep).join(parts)

        def getn(args, loc):
            return args[0].length()

        return LuaTable({"insert": Builtin("insert", insert), "remove": Builtin("remove", remove),
                         "concat": Builtin("concat", concat), "getn": Builtin("getn", getn)})

    def _math_lib(self):
        def num1(name, fn):
            def f(args, loc):
                x = args[0] if args else None
                if not _isnum(x):
                    raise SpecError(f"bad argument #1 to '{name}' (number expected, got {describe(x)})", loc)
                try:
                    return _norm(fn(x))
                except (ValueError, OverflowError):
                    return math.nan
            return Builtin(name, f)

        def minmax(fn):
            def f(args, loc):
                if not args or not all(_isnum(a) for a in args):
                    raise SpecError("bad argument to 'math.min/max' (numbers expected)", loc)
                return fn(args)
            return f

        t = LuaTable({
            "pi": math.pi, "huge": math.inf,
            "floor": num1("floor", math.floor), "ceil": num1("ceil", math.ceil),
            "abs": num1("abs", abs), "sqrt": num1("sqrt", math.sqrt), "exp": num1("exp", math.exp),
            "log": Builtin("log", lambda a, l: _log(a[0], a[1] if len(a) > 1 else None)),
            "log10": Builtin("log10", lambda a, l: _log(a[0], 10)), "sin": num1("sin", math.sin),
            "cos": num1("cos", math.cos), "tan": num1("tan", math.tan), "asin": num1("asin", math.asin),
            "acos": num1("acos", math.acos), "atan": num1("atan", math.atan),
            "tanh": num1("tanh", math.tanh), "sinh": num1("sinh", math.sinh), "cosh": num1("cosh", math.cosh),
            "deg": num1("deg", math.degrees), "rad": num1("rad", math.radians),
            "max": Builtin("max", minmax(max)), "min": Builtin("min", minmax(min)),
            "pow": Builtin("pow", lambda a, l: _norm(float(a[0]) ** float(a[1]))),
            "fmod": Builtin("fmod", lambda a, l: _norm(math.fmod(a[0], a[1]))),
            "modf": Builtin("modf", lambda a, l: [_norm(float(math.trunc(a[0]))), a[0] - math.trunc(a[0])]),
            "random": Builtin("random", _unsupported("math.random (specs must be deterministic)")),
        })
        return t

    def _string_lib(self):
        def fmt(args, loc):
            if not args or not isinstance(args[0], str):
                raise SpecError("bad argument #1 to 'format' (string expected)", loc)
            return _lua_format(args[0], args[1:], loc)

        def s1(name, fn):
            return Builtin(name, lambda a, l: fn(tostring(a[0]), *a[1:]))

        def sub(s, i=1, j=-1):
            n = len(s)
            i = int(i) if i is not None else 1
            j = int(j) if j is not None else -1
            i = n + i + 1 if i < 0 else max(i, 1)
            j = n + j + 1 if j < 0 else min(j, n)
            return s[i - 1:j] if i <= j else ""

        return LuaTable({
            "format": Builtin("format", fmt), "len": s1("len", len), "upper": s1("upper", str.upper),
            "lower": s1("lower", str.lower), "rep": Builtin("rep", _string_rep),
            "sub": s1("sub", sub), "reverse": s1("reverse", lambda s: s[::-1]),
            "byte": s1("byte", lambda s, i=1: ord(s[int(i) - 1]) if s else None),
            "char": Builtin("char", lambda a, l: "".join(chr(int(c)) for c in a)),
        })


_NOOP_METHODS = ("cuda", "float", "double", "type", "clearState", "reset", "zeroGradParameters",
                 "inplace")


def module_from_criterion(args, loc):
    """nn.ModuleFromCriterion(crit): a criterion already works as a graph node here."""
    from ..ops.criterion import CRITERIA
    crit = args[0] if args else None
    if not isinstance(crit, ModuleObj) or crit.kind not in CRITERIA:
        raise SpecError(f"nn.ModuleFromCriterion expects a criterion such as nn.ClassNLLCriterion(), "
                        f"got {describe(crit)}", loc)
    return crit


def set_module_field(mod: ModuleObj, key: str, v, loc):
    """A spec assigning a constructor argument after construction (`crit.sizeAverage = false`)."""
    from .nn import _SIG, _coerce
    op = REGISTRY.get(mod.kind)
    if op is None:
        return
    for item in op.signature.split(","):
        m = _SIG.fullmatch(item.strip())
        if m and m.group(1) == key:
            mod.attrs[key] = v if v is None else _coerce(v, m.group(2), mod.kind, key, loc)
            check_attrs(mod, loc)
            return


def _string_rep(args, loc):
    s, n = tostring(args[0] if args else None), args[1] if len(args) > 1 else None
    if not _isnum(n):
        raise SpecError("bad argument #2 to 'rep' (number expected)", loc)
    if len(s) * max(int(n), 0) > MAX_STRING:
        raise LimitError(f"string.rep: string too long (more than {MAX_STRING} characters)", loc)
    return s * max(int(n), 0)


def _remember_name(v, name):
    if isinstance(v, NodeObj) and v.var_name is None:
        v.var_name = name


def _suggest(name: str, candidates) -> str:
    """did_you_mean, trying a case-insensitive match first (Lstm -> LSTM)."""
    same = sorted(c for c in set(candidates) if c.lower() == name.lower() and c != name)
    return f" (did you mean '{same[0]}'?)" if same else did_you_mean(name, candidates)


def _shift_loc(loc, file, cols):
    if isinstance(loc, Loc) and loc.file == file and loc.line == 1:
        return Loc(file, 1, max(loc.col - cols, 1))
    return loc


def _unshift(node, file, cols):
    """Move every first-line location in an AST `cols` columns left (undoes a parsed prefix)."""
    if isinstance(node, Loc):
        return _shift_loc(node, file, cols)
    if isinstance(node, tuple):
        return tuple(_unshift(x, file, cols) for x in node)
    if isinstance(node, A.Node):
        return node.replace(**{n: _unshift(getattr(node, n), file, cols) for n in node._fields})
    return node


def _unshift_error(e: SpecError, file, cols) -> SpecError:
    def fix_text(m):
        return f"at 1:{max(int(m.group(1)) - cols, 1)}"
    msg = re.sub(r"at 1:(\d+)", fix_text, e.message) if e.loc and e.loc.file == file else e.message
    return SpecError(msg, _shift_loc(e.loc, file, cols),
                     [(_shift_loc(l, file, cols), t) for l, t in e.notes])


def _unsupported(name):
    def f(args, loc):
        raise SpecError(f"{name} is not available in graphc specs", loc)
    return f


def _isnum(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eq(a, b):
    if _isnum(a) and _isnum(b):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, (str, bool)) or a is None:
        return a == b
    return a is b


def _log(x, base=None):
    if not _isnum(x) or (base is not None and not _isnum(base)):
        raise TypeError("number expected")
    if x == 0:
        return -math.inf
    if x < 0:
        return math.nan
    return _norm(math.log(x) if base is None else math.log(x) / math.log(base))


def _tonumber(s: str):
    s = s.strip()
    try:
        if s.lower().startswith(("0x", "-0x")):
            return int(s, 16)
        f = float(s)
        return _norm(f) if "." not in s and "e" not in s.lower() else f
    except ValueError:
        return None


def _lua_quote(s: str) -> str:
    """string.format('%q', s): a Lua string literal that reads back as s."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\0":
            out.append("\\000")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _lua_format(fmt: str, args, loc):
    out, i, ai = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < len(fmt) and fmt[j] in "-+ #0123456789.":
            j += 1
        if j >= len(fmt):
            raise SpecError("invalid format string to 'format'", loc)
        conv = fmt[j]
        spec = fmt[i:j + 1]
        if conv == "%":
            out.append("%")
        else:
            if ai >= len(args):
                raise SpecError(f"bad argument #{ai + 2} to 'format' (no value)", loc)
            v = args[ai]
            ai += 1
            if conv in "diouxXeEfgGc":
                n = v if _isnum(v) else (_tonumber(v) if isinstance(v, str) else None)
                if n is None:
                    raise SpecError(f"bad argument #{ai + 1} to 'format' (number expected, got "
                                    f"{describe(v)})", loc)
                v = n
            if conv in "di":
                out.append((spec[:-1] + "d") % int(v))
            elif conv in "feEgGxXoc":
                out.append(spec % (int(v) if conv in "xXoc" else float(v)))
            elif conv == "q":
                out.append(_lua_quote(tostring(v)))
            elif conv == "s":
                out.append(spec % tostring(v))
            else:
                raise SpecError(f"invalid option '%{conv}' to 'format'", loc)
        i = j + 1
    return "".join(out)
