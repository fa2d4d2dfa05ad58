"""The Lua core of the spec interpreter: values (tables, functions, scopes), statements,
expressions and calls of the Lua 5.1 subset of DESIGN section 2, with the resource limits.

It knows the nn objects (nn.py) only as values: calling a module, `x - m` chaining and
module fields are handed to the nngraph Interpreter (nngraph.py), which also installs the
standard library (stdlib.py). Specs cannot reach files (other than `require` of a sibling
.lua), the network or Python.
"""
from __future__ import annotations

import math
import re
import sys
from contextlib import contextmanager

from ..errors import Loc, OptionError, SpecError, did_you_mean
from . import ast as A
from . import tensor as T
from .nn import ModuleObj, NodeObj, ParamRef, lua_type, module_text, unknown_module
from .parse import parse
from .tensor import TensorObj
from .values import Builtin, ClassObj, LuaFunction, LuaTable

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
        return v.typename
    if isinstance(v, NodeObj):
        return "nngraph.Node"
    if isinstance(v, ParamRef):
        return "torch.DoubleTensor"
    if isinstance(v, TensorObj):
        return v.typename
    return lua_type(v)


def describe(v) -> str:
    if isinstance(v, (ModuleObj, NodeObj)):
        return repr(v)
    if isinstance(v, ParamRef):
        return f"tensor ({v!r})"
    if isinstance(v, TensorObj):
        return f"tensor ({v!r})"
    if isinstance(v, ClassObj):
        return f"class {v.typename}"
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
    if isinstance(v, TensorObj):
        return v.text()
    if isinstance(v, ModuleObj):
        return module_text(v)
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



class LuaInterpreter:
    """Runs Lua: statements, expressions, calls. The nngraph Interpreter subclass supplies
    the globals (nn, the standard library) and the module/node semantics the core calls:
    call_module, g_module_builtin, module_method(_names), node_methods, nn, string_lib,
    forbidden_libs."""

    def __init__(self, path: str, text: str, defines: dict | None = None,
                 prelude: tuple[str, str] | None = None):
        self.path = path
        self.sources = {path: text}
        self.files = [path]  # the spec, the prelude and every file they require (--depfile)
        self.prelude = prelude  # --prelude (path, text): run first, in the spec's top scope
        if prelude is not None:
            self.sources[prelude[0]] = prelude[1]
            self.files.append(prelude[0])
        # -D name=v replaces a top-level assignment of name; -D name.f.g=v sets field f.g of
        # the table a top-level assignment gives name (and replaces `name.f = ...` there)
        self.defines = {k: v for k, v in (defines or {}).items() if "." not in k}
        self.field_defines: dict[str, dict] = {}
        for k, v in (defines or {}).items():
            if "." in k:
                base, *fields = k.split(".")
                self.field_defines.setdefault(base, {})[tuple(fields)] = v
        self.define_names_seen: set[str] = set()
        self.steps = 0
        self.depth = 0
        self.call_stack: list = []  # (call-site Loc, function name) of the Lua calls in progress
        self.last_loc = None  # the statement being run (to locate a Python RecursionError)
        self.loaded: dict[str, object] = {}
        self.globals = Scope()
        self.top_scope = None
        self.returned = []
        self.return_loc = None  # the top-level `return` statement, if the file has one

    # ---- entry points ----------------------------------------------------------

    def run(self):
        chunk = parse(self.sources[self.path], self.path)
        first = parse(self.prelude[1], self.prelude[0]) if self.prelude else None
        self._check_defines([c for c in (first, chunk) if c is not None])
        self.top_scope = Scope(self.globals)
        self.top_scope.vars["..."] = []  # the main chunk is a vararg function (no arguments)
        with self._evaluating():
            if first is not None:
                try:
                    self.exec_block(first, self.top_scope, top=True)
                except _Return as r:
                    raise SpecError("a --prelude file runs before the spec and cannot return: it "
                                    "only sets what the spec reads", r.loc) from None
                except _Break as b:
                    raise SpecError("'break' outside a loop", b.loc) from None
            try:
                self.exec_block(chunk, self.top_scope, top=True)
            except _Return as r:
                self.returned = r.values
                self.return_loc = r.loc
            except _Break as b:
                raise SpecError("'break' outside a loop", b.loc) from None
        return self.returned

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

    def _check_defines(self, chunks: list):
        assigned = set()
        for chunk in chunks:
            for st in chunk.stats:
                if isinstance(st, A.Local):
                    assigned.update(st.names)
                elif isinstance(st, A.Assign):
                    assigned.update(t.name for t in st.targets if isinstance(t, A.Name))
        where = self.path + (f" (or its prelude {self.prelude[0]})" if self.prelude else "")
        for name in list(self.defines) + list(self.field_defines):
            if name not in assigned:
                hint = did_you_mean(name, assigned)
                if name in self.field_defines:
                    fields = ".".join(next(iter(self.field_defines[name])))
                    raise OptionError(f"-D {name}.{fields}=...: {where} never assigns '{name}' at "
                                    f"top level, so there is no table to set the field of{hint}; "
                                    f"-D NAME.FIELD sets a field of the table a top-level "
                                    f"assignment such as `{name} = {{...}}` gives")
                raise OptionError(f"-D {name}=...: {where} never assigns '{name}' at top level, "
                                f"so there is nothing to override{hint}; -D only replaces a top-"
                                f"level assignment such as `{name} = 2` or `local {name} = 2`")

    def _set_fields(self, name, table, loc):
        """-D name.f=v: set field f of the table just assigned to `name` at top level."""
        for fields, value in self.field_defines.get(name, {}).items():
            text = f"-D {name}.{'.'.join(fields)}"
            t = table
            for k, f in enumerate(fields):
                if not isinstance(t, LuaTable):
                    what = ".".join((name,) + fields[:k])
                    raise SpecError(f"{text}: {what} is a {describe(t)} here, not a table with "
                                    "fields to set", loc)
                if k == len(fields) - 1:
                    t[f] = value
                else:
                    t = t[f]

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
            t = type(st)
            if (t is A.Local and any(n in scope.vars for n in st.names)) or \
                    (t is A.LocalFunction and st.name in scope.vars):
                # a second `local x` is a new variable: closures made before keep the old
                # one (`local C, parent = torch.class(...)` twice in one scope)
                scope = Scope(scope)
                if top and self.top_scope is not None and scope.parent is self.top_scope:
                    self.top_scope = scope  # --entry sees the file's last bindings
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
                if top and name in self.field_defines:
                    self._set_fields(name, v, st.loc)
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
                    if top and tg.name in self.field_defines:
                        self._set_fields(tg.name, v, tg.loc)
                else:
                    if top and isinstance(tg.obj, A.Name) and isinstance(key, str):
                        # `opt.rnn_size = 128` at top level: -D opt.rnn_size=8 wins
                        v = self.field_defines.get(tg.obj.name, {}).get((key,), v)
                    if not isinstance(obj, _INDEXABLE):
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
            self.set_module_index(obj, key, v, loc)  # `conv.name = 'c1'`, `m.bias = nil`
        elif isinstance(obj, ClassObj):  # `function nn.Module:reuseMem() ... end`
            if v is None:
                obj.members.pop(key, None)
            else:
                obj.members[key] = v
        elif isinstance(obj, ParamRef):
            raise SpecError(f"cannot set fields on a tensor ({obj!r})", loc)
        elif isinstance(obj, TensorObj):
            T.set_index(obj, key, v, loc)
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
                                    + did_you_mean(e.func.key.value, keys), e.loc)
            return self.call(fn, args, e.loc, self._callee_name(e.func, scope), scope)
        if t is A.MethodCall:
            obj = self.eval(e.obj, scope)
            if not isinstance(obj, (str,) + _INDEXABLE):
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
            hint = did_you_mean(e.name, self._visible_names(scope))
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
            if not isinstance(obj, (str,) + _INDEXABLE):
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
            if v is None and obj is getattr(self, "cudnn", None) and str(key)[:1].isupper():
                taken = ", ".join(sorted(k for k in obj.d if str(k)[:1].isupper()))
                other = "" if key in self.nn.d else " (not supported either)"
                raise SpecError(f"cudnn.{key}: graphc takes the cudnn modules that are nn modules "
                                f"of the same semantics ({taken}); write nn.{key}{other}", loc)
            if v is None and obj is self.globals.vars.get("torch") and isinstance(key, str):
                raise SpecError(f"torch.{key} is not available in graphc specs: a spec builds the "
                                "model; create data and run it with the generated Model in Python", loc)
            return v
        if isinstance(obj, str):
            return self.string_lib[key]
        if isinstance(obj, ClassObj):
            return self.class_index(obj, key, loc)
        if isinstance(obj, ParamRef):
            return self.tensor_index(obj, key, loc, method)
        if isinstance(obj, TensorObj):
            if isinstance(key, str):
                return Builtin(key, self.tensors.method(obj, key, loc))
            return T.index(obj, key, loc)
        if isinstance(obj, ModuleObj):
            found, v = self.module_field(obj, key)
            if found:
                return v
            m = self.module_method(obj, key)
            if m is None and method:
                run = key in ("getParameters", "gradParameters", "updateParameters")
                hint = (": training is the generated module's job (Model.getParameters, "
                        "graphc_runtime.optim)" if run else
                        did_you_mean(str(key), self.module_method_names(obj)))
                raise SpecError(f"nn.{obj.kind} has no method '{key}' in a spec{hint}", loc)
            return m
        if isinstance(obj, NodeObj):
            m = self.node_methods.get(key)
            if m is None:
                if key == "data":
                    return self.node_data(obj)
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
        if isinstance(a, TensorObj) or isinstance(b, TensorObj):
            return T.arith(op, a, b, e.loc)
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
            if isinstance(v, TensorObj):  # Torch: #t is the size
                return LuaTable.of(list(v.a.shape))
            raise SpecError(f"attempt to get length of a {describe(v)} value", e.loc)
        if isinstance(v, ModuleObj):  # nngraph: -m is m()
            return self.call_module(v, [], e.loc)
        if isinstance(v, TensorObj):
            return TensorObj(-v.a)
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
            hint = did_you_mean(g, self._visible_names(scope) if scope else self.globals.vars)
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

    def _visible_names(self, scope) -> set:
        names, s = set(), scope
        while s is not None:
            names.update(k for k in s.vars if k != "...")
            s = s.parent
        return names


_INDEXABLE = (LuaTable, ModuleObj, NodeObj, ClassObj, ParamRef, TensorObj)


def _remember_name(v, name):
    if isinstance(v, NodeObj) and v.var_name is None:
        v.var_name = name


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


def _isnum(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eq(a, b):
    if _isnum(a) and _isnum(b):
        return a == b
    if isinstance(a, ParamRef):  # m.weight == m.weight: the same parameter (after ties too)
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, (str, bool)) or a is None:
        return a == b
    return a is b


def _tonumber(s: str):
    s = s.strip()
    try:
        if s.lower().startswith(("0x", "-0x")):
            return int(s, 16)
        f = float(s)
        return _norm(f) if "." not in s and "e" not in s.lower() else f
    except ValueError:
        return None
