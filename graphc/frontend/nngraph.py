"""nngraph semantics on top of the Lua core: the `nn` table, modules (`nn.X(...)`), calling a
module on nodes (`m(x)`, `x - m`), nn.gModule, node:split / node:annotate, module methods,
and the error for a spec that builds no model. `Interpreter` is the spec evaluator the
compiler uses (lua.py runs the Lua, stdlib.py installs the standard library)."""
from __future__ import annotations

from pathlib import Path

from ..errors import SpecError, did_you_mean
from ..ops import REGISTRY
from . import ast as A
from . import stdlib
from .lua import (MAX_OBJECTS, MAX_VALUES, Builtin, LimitError, LuaFunction, LuaInterpreter,
                  LuaTable, _isnum, describe, tostring)
from .nn import ADDABLE, ModuleObj, NodeObj, check_attrs, make_module
from .objects import ObjectsMixin
from .tensor import Tensors

_NOOP_METHODS = ("cuda", "float", "double", "type", "clearState", "zeroGradParameters",
                 "inplace")


class Interpreter(ObjectsMixin, LuaInterpreter):
    def __init__(self, path: str, text: str, defines: dict | None = None,
                 prelude: tuple[str, str] | None = None, compile_module=None):
        """prelude: (path, text) of a Lua file run first in the spec's scope (--prelude).
        compile_module(module, shapes, path, spec text) -> numpy module source: how a spec
        runs a module at spec time (m:forward); the compiler passes its own (the frontend
        does not import the compiler: no import cycle)."""
        super().__init__(path, text, defines, prelude)
        self.compile_module = compile_module
        self.serial = 0
        self.objects = 0  # modules + graph nodes made so far (MAX_OBJECTS)
        self.modules: list[ModuleObj] = []  # every module, in constructor order
        stdlib.install(self)
        g = self.globals.vars
        self.nn = self._nn_lib()
        self.nngraph = LuaTable({
            "setDebug": Builtin("setDebug", lambda a, l: []),
            "annotateNodes": Builtin("annotateNodes", lambda a, l: []),
        })
        g["nn"], g["nngraph"] = self.nn, self.nngraph
        g["OneHot"] = self.nn["OneHot"]  # char-rnn's util/OneHot.lua defines this global
        torch = g["torch"]
        self.tensors = Tensors()  # torch.Tensor, rand, ...: spec-time tensors (tensor.py)
        for name, fn in self.tensors.functions().items():
            torch[name] = Builtin(name, fn)
        torch["class"] = Builtin("class", self.torch_class)
        torch["isTypeOf"] = Builtin("isTypeOf", self.is_type_of)
        torch["getmetatable"] = Builtin("getmetatable", lambda a, l: self.classes.get(a[0] if a else None))
        # torch/graph's graph.dot(g.fg, title [, file]): a spec never writes files
        g["graph"] = LuaTable({"dot": Builtin("graph.dot", _graph_dot)})
        self.cudnn = self._cudnn_lib()
        self.node_methods = {"split": Builtin("split", self.split),
                             "annotate": Builtin("annotate", self.annotate)}

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

    # ---- nn and nngraph ----------------------------------------------------------

    def count_object(self, loc):
        self.objects += 1
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
                        + did_you_mean(expr.name, self._visible_names(scope)))
            return f": '{expr.name}' holds nil here"
        if isinstance(expr, A.Index) and isinstance(expr.key, A.String):
            return f": field '{expr.key.value}' is nil (typo or bad index?)"
        return " (typo or bad index?)"

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
        return self.api_method(mod, key)

    def module_method_names(self, mod):
        names = list(_NOOP_METHODS) + ["training", "evaluate", "apply", "findModules",
                                       "listModules", "get", "size", "share", "clone", "reset"]
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

    def _nn_lib(self):
        t = LuaTable()
        # each module kind is a class (nn.Linear): calling it makes a module, and methods a
        # spec adds to it (or to nn.Module) reach its modules (objects.py)
        self.g_module_builtin = t["gModule"] = self.make_classes(t)
        for kind, op in REGISTRY.items():
            for alias in op.aliases:
                t[alias] = t[kind]
        t["ModuleFromCriterion"] = Builtin("nn.ModuleFromCriterion", module_from_criterion)
        # dpnn's LinearNoBias (FastLSTM): nn.Linear without a bias
        t["LinearNoBias"] = Builtin("nn.LinearNoBias", lambda a, l: self.new_module(
            "Linear", (list(a) + [None, None])[:2] + [False], l))
        return t


    def _cudnn_lib(self):
        """`require 'cudnn'`: cudnn's modules are the nn modules of the same name and
        semantics (graphc picks the target with --target); cudnn.convert(net, ...) returns
        net; settings such as cudnn.benchmark are plain fields. cudnn.version is the
        cuDNN that cudnn.torch's R5 bindings report (5105): files compare it to pick modules
        (fb.resnet.torch), and every choice they make computes the same."""
        t = LuaTable({k: self.nn[k] for k in CUDNN_MODULES})
        t["convert"] = Builtin("cudnn.convert", lambda a, l: a[0] if a else None)
        t["version"] = 5105
        return t


# The cudnn modules that are nn modules with the same arguments and semantics.
CUDNN_MODULES = ("SpatialConvolution", "SpatialFullConvolution", "SpatialMaxPooling",
                 "SpatialAveragePooling", "SpatialCrossMapLRN", "SpatialBatchNormalization",
                 "BatchNormalization", "TemporalConvolution", "ReLU", "Tanh", "Sigmoid",
                 "SoftMax", "LogSoftMax")


def module_from_criterion(args, loc):
    """nn.ModuleFromCriterion(crit): a criterion already works as a graph node here."""
    from ..ops.criterion import CRITERIA
    crit = args[0] if args else None
    if not isinstance(crit, ModuleObj) or crit.kind not in CRITERIA:
        raise SpecError(f"nn.ModuleFromCriterion expects a criterion such as nn.ClassNLLCriterion(), "
                        f"got {describe(crit)}", loc)
    return crit


def _graph_dot(args, loc):
    import sys
    print(f"{loc.file}:{loc.line}: note: graph.dot skipped (a spec never writes files); draw the "
          "model with `graphc graph FILE.lua`", file=sys.stderr)
    return []
