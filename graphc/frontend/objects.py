"""Torch's module objects at spec time: what a spec may do to a module after making it.

* Parameters are tensors: `m.weight`, `m.bias` (a ParamRef) with size/nElement/dim and the
  in-place initialisers normal/uniform/fill/zero/copy; `m.bias = nil` drops a bias;
  `m.weight = other.weight` ties it.
* The nn.Module methods that walk, re-initialise and tie modules: apply, findModules,
  listModules, get, size, `.modules`, reset(stdv), share, clone; Torch's fields are the
  constructor arguments under their Torch names (m.kW, m.nOutputPlane).
* Classes: torch.class('pkg.Name', 'pkg.Parent') makes a ClassObj; calling it makes an
  instance (a ModuleObj whose kind is its nearest built-in ancestor's), `parent.__init(self,
  ...)` binds a built-in parent's arguments, and methods added to nn classes
  (`function nn.Module:reuseMem() ... end`) reach every module.

What a spec records lands in ModuleObj.inits (an init per parameter slot, replacing the op's
default) and ModuleObj.shared (slot -> the module and slot it is tied to); lower.py turns
them into PARAMETERS' init column and shared parameter Values. Nothing here runs a module.
"""
from __future__ import annotations

import math

from ..errors import SpecError
from ..ops import REGISTRY
from ..ops.criterion import CRITERIA
from .lua import Builtin, ClassObj, LuaFunction, LuaTable, _isnum, describe, tostring
from .tensor import TensorObj
from .nn import (ADDABLE, CONTAINER_SIGNATURES, CONTAINERS, ModuleObj, NodeObj, ParamRef,
                 check_attrs, make_module, resolve, set_module_field)

# Torch's gradient fields name the same slot as their parameter (share accepts both)
GRAD_SLOTS = {"gradWeight": "weight", "gradBias": "bias"}
# The abstract base classes: their Lua-added methods come after graphc's own module methods
BASE_CLASSES = ("nn.Module", "nn.Container", "nn.Criterion")
API_METHODS = ("apply", "findModules", "listModules", "get", "size", "share", "clone", "reset",
               "forward", "updateOutput", "backward", "updateGradInput", "accGradParameters",
               "parameters")
TENSOR_METHODS = ("size", "nElement", "numel", "dim", "nDimension", "normal", "uniform", "fill",
                  "zero", "copy", "set", "type", "cuda", "float", "double")


def param_spec(mod: ModuleObj, slot: str):
    """The ParamSpec of one of the module's present parameter slots, or None."""
    op = REGISTRY.get(mod.kind)
    if op is None or not mod.bound:
        return None
    return next((p for p in op.active_params(mod.attrs) if p.name == slot), None)


def slot_names(mod: ModuleObj) -> tuple:
    """Every parameter slot the module's op can have (present or not)."""
    op = REGISTRY.get(mod.kind)
    return tuple(p.name for p in op.params) if op is not None else ()


def shape_of(ref: ParamRef, loc) -> tuple:
    mod, slot = resolve(ref.module, ref.slot)
    spec = param_spec(mod, slot)
    if spec is None:
        raise SpecError(f"{ref!r} no longer exists (its module has no {slot})", loc)
    return tuple(spec.shape(mod.attrs))


def _num(v, what, loc, default=None):
    if v is None and default is not None:
        return default
    if not _isnum(v):
        raise SpecError(f"{what} must be a number, got {describe(v)}", loc)
    return float(v)


def _flat_numbers(v, loc) -> list:
    """The numbers of a (nested) table, row-major: `torch.Tensor{{1, 2}, {3, 4}}`."""
    if _isnum(v):
        return [float(v)]
    if isinstance(v, TensorObj):
        return [float(x) for x in v.a.ravel()]
    if isinstance(v, LuaTable):
        return [x for e in v.array() for x in _flat_numbers(e, loc)]
    raise SpecError(f"copy: expected a tensor or a table of numbers, got {describe(v)}", loc)


class ObjectsMixin:
    """The nngraph Interpreter's object API (it supplies call, modules, classes, nn, serial)."""

    # ---- reading and writing module fields -------------------------------------------

    def module_field(self, mod: ModuleObj, key):
        """(found, value) for `m.key` before graphc's built-in methods: fields the spec set,
        parameters, Torch's fields (constructor arguments), `.modules`, class members."""
        if key in mod.fields:
            return True, mod.fields[key]
        if isinstance(key, str):
            if param_spec(mod, key) is not None:
                return True, ParamRef(mod, key)
            if key in slot_names(mod) or key in GRAD_SLOTS:
                return True, None  # a dropped bias; gradients are the generated module's
            if key == "modules" and (mod.kind in CONTAINERS or mod.cls is not None):
                return True, LuaTable.of(self.children_of(mod))
            if key in ("fg", "bg") and mod.kind == "gModule":  # for graph.dot (skipped)
                return True, LuaTable({"graph": key})
            if key in mod.attrs:
                v = mod.attrs[key]
                return True, _lua_value(v)
        return self.class_member(mod, key, base=False)

    def class_member(self, mod: ModuleObj, key, base: bool):
        """A member of the module's class chain: base=False the classes below nn.Module /
        nn.Container (a torch.class, nn.Linear), base=True those base classes."""
        cls = mod.cls or self.classes.get(f"nn.{mod.kind}")
        while cls is not None:
            if (cls.typename in BASE_CLASSES) == base and key in cls.members:
                return True, cls.members[key]
            cls = cls.parent
        return False, None

    def set_module_index(self, mod: ModuleObj, key, v, loc):
        """`m.key = v`: `m.bias = nil` drops the bias, `m.weight = other.weight` ties it; other
        keys are fields (a constructor argument's name sets that argument)."""
        if isinstance(key, str) and key in slot_names(mod):
            if v is None:
                self.drop_param(mod, key, loc)
                mod.fields.pop(key, None)
                return
            if isinstance(v, ParamRef):
                self.tie(mod, key, v.module, v.slot, loc, f"{mod!r}.{key} = {v!r}")
                return
            raise SpecError(f"{mod!r}.{key} can be set to nil (no {key}) or to another module's "
                            f"parameter (sharing it), not a {describe(v)}; to set its values use "
                            f"{mod!r}.{key}:copy(...) or :fill(...)", loc)
        mod.fields[key] = v
        if isinstance(key, str) and key in mod.attrs:  # `crit.sizeAverage = false` sets it
            set_module_field(mod, key, v, loc)

    def drop_param(self, mod: ModuleObj, slot: str, loc):
        if param_spec(mod, slot) is None:
            return  # already absent
        op = REGISTRY[mod.kind]
        if slot == "bias" and "noBias" in op.methods:
            op.methods["noBias"](mod.attrs)
            check_attrs(mod, loc)
            return
        raise SpecError(f"graphc cannot remove the {slot} of {mod!r}: only modules with "
                        "noBias() (Linear, SpatialConvolution, SpatialFullConvolution) can drop "
                        "their bias", loc)

    def node_data(self, node: NodeObj) -> LuaTable:
        """`node.data`: its module and annotations, as nngraph keeps them."""
        data = getattr(node, "_data", None)
        if data is None:
            data = node._data = LuaTable({"module": node.module,
                                          "annotations": LuaTable(dict(node.annotations))})
        return data

    # ---- nn.Module's methods ------------------------------------------------------------

    def children_of(self, mod: ModuleObj) -> list:
        """Torch's `m.modules`: a container's children; a gModule's node modules in nngraph's
        order (depth-first from the outputs, a module used twice listed twice)."""
        if mod.kind == "gModule":
            from .lower import _topo_order
            return [n.module for n in _topo_order(mod.outputs) if n.module is not None]
        if mod.kind in CONTAINERS:
            return list(mod.children)
        mods = mod.fields.get("modules")
        if isinstance(mods, LuaTable):
            return [m for m in mods.array() if isinstance(m, ModuleObj)]
        return []

    def api_method(self, mod: ModuleObj, key):
        """graphc's nn.Module methods (apply, share, ...), then Lua-added base-class methods."""
        if key in API_METHODS:
            return Builtin(key, lambda args, loc: getattr(self, "m_" + key)(mod, args[1:], loc))
        found, v = self.class_member(mod, key, base=True)
        return v if found else None

    def m_apply(self, mod, args, loc):
        fn = args[0] if args else None
        if not isinstance(fn, (LuaFunction, Builtin)):
            raise SpecError(f"{mod!r}:apply expects a function, got {describe(fn)}", loc)

        def visit(m):
            self.call(fn, [m], loc)
            for c in self.children_of(m):
                visit(c)
        visit(mod)
        return mod

    def m_findModules(self, mod, args, loc):
        name = args[0] if args else None
        if not isinstance(name, str):
            raise SpecError("findModules expects a type name such as 'nn.Linear'", loc)
        found, containers = [], []

        def visit(m, container):
            if m.typename == name:
                found.append(m)
                containers.append(container)
            for c in self.children_of(m):
                visit(c, m)
        visit(mod, mod)
        return [LuaTable.of(found), LuaTable.of(containers)]

    def m_listModules(self, mod, args, loc):
        out = []

        def visit(m):
            out.append(m)
            for c in self.children_of(m):
                visit(c)
        visit(mod)
        return LuaTable.of(out)

    def m_get(self, mod, args, loc):
        i = args[0] if args else None
        kids = self.children_of(mod)
        if not _isnum(i) or i != int(i) or not 1 <= i <= len(kids):
            raise SpecError(f"{mod!r}:get({tostring(i)}): it has {len(kids)} modules", loc)
        return kids[int(i) - 1]

    def m_size(self, mod, args, loc):
        return len(self.children_of(mod))

    def m_parameters(self, mod, args, loc):
        """m:parameters(): its parameters as tensors (weight then bias, module by module, as
        Torch's Container:parameters lists them), for initialising or tying them by position
        (`params[3]:set(params[1])`); graphc keeps the gradients, so there is no second table."""
        out = []

        def visit(m):
            op = REGISTRY.get(m.kind)
            if op is not None and m.bound:
                out.extend(ParamRef(m, p.name) for p in op.active_params(m.attrs) if p.trainable)
            for c in self.children_of(m):
                visit(c)
        visit(mod)
        return LuaTable.of(out)

    def m_reset(self, mod, args, loc):
        """Torch's reset(stdv): the default init again; with stdv, the uniform inits become
        U(-stdv*sqrt(3), stdv*sqrt(3)) (Linear, convolutions, CMul, ...) and the normal ones
        N(0, stdv^2) (LookupTable), as each module's reset does."""
        stdv = args[0] if args else None
        if stdv is not None:
            stdv = _num(stdv, "reset(stdv): stdv", loc)
        kids = self.children_of(mod)
        for c in kids:
            self.m_reset(c, [stdv], loc)
        op = REGISTRY.get(mod.kind)
        if op is None or not mod.bound:
            return mod
        for spec in op.active_params(mod.attrs):
            root, slot = resolve(mod, spec.name)
            root.inits.pop(slot, None)
            kind = spec.init(mod.attrs)[0]
            if stdv is not None and kind == "uniform":
                root.inits[slot] = ("uniform", stdv * math.sqrt(3))
            elif stdv is not None and kind == "normal":
                root.inits[slot] = ("normal", stdv)
        return mod

    def m_share(self, mod, args, loc):
        """m:share(other, 'weight', 'bias', ...): the named parameters become other's (one
        set of weights, gradients summed); a container shares child by child, as Torch's."""
        other = args[0] if args else None
        if not isinstance(other, ModuleObj):
            raise SpecError(f"{mod!r}:share expects a module, got {describe(other)}", loc)
        names = [n for n in args[1:]]
        for n in names:
            if not isinstance(n, str):
                raise SpecError(f"{mod!r}:share: parameter names must be strings such as "
                                f"'weight', got {describe(n)}", loc)
        kids, others = self.children_of(mod), self.children_of(other)
        if kids or others:
            if len(kids) != len(others):
                raise SpecError(f"{mod!r}:share({other!r}): they have {len(kids)} and "
                                f"{len(others)} modules", loc)
            for a, b in zip(kids, others):
                self.m_share(a, [b] + names, loc)
            return mod
        for n in names:
            slot = GRAD_SLOTS.get(n, n)
            if param_spec(mod, slot) is not None and param_spec(other, slot) is not None:
                self.tie(mod, slot, other, slot, loc, f"{mod!r}:share({other!r}, '{n}')")
        return mod

    def tie(self, mod, slot, other, oslot, loc, what):
        root = resolve(other, oslot)
        if root == (mod, slot) or resolve(mod, slot) == root:
            return
        mine = shape_of(ParamRef(mod, slot), loc)
        theirs = shape_of(ParamRef(*root), loc)
        if mine != theirs:
            raise SpecError(f"{what}: the shapes differ ({'x'.join(map(str, mine))} and "
                            f"{'x'.join(map(str, theirs))})", loc)
        if resolve(*root) == (mod, slot):
            raise SpecError(f"{what}: the two are already tied the other way round", loc)
        mod.shared[slot] = root
        mod.share_loc[slot] = loc

    def m_clone(self, mod, args, loc):
        """m:clone(...): a deep copy (same initial values, Torch copies them); with names,
        those parameters are shared with m, as Torch's clone(...) then share(...)."""
        for n in args:
            if not isinstance(n, str):
                raise SpecError(f"{mod!r}:clone: parameter names must be strings such as "
                                f"'weight', got {describe(n)}", loc)
        copy = self.deep_copy(mod, {}, loc)
        if args:
            self.m_share(copy, [mod] + list(args), loc)
        return copy

    def deep_copy(self, mod: ModuleObj, memo: dict, loc):
        if id(mod) in memo:
            return memo[id(mod)]
        self.count_object(loc)
        self.serial += 1
        c = ModuleObj(mod.kind, dict(mod.attrs), mod.loc, self.serial)
        memo[id(mod)] = c
        self.modules.append(c)
        c.fields, c.cls, c.bound, c.contained = dict(mod.fields), mod.cls, mod.bound, mod.contained
        c.children = [self.deep_copy(k, memo, loc) for k in mod.children]
        op = REGISTRY.get(mod.kind)
        if op is not None and mod.bound:
            for spec in op.active_params(mod.attrs):  # the copy starts from the same values
                c.inits[spec.name] = ("same_as", resolve(mod, spec.name))
        if mod.kind == "gModule":
            nodes: dict = {}

            def node(n):
                if n not in nodes:
                    new = NodeObj(self.deep_copy(n.module, memo, loc) if n.module else None,
                                  [node(i) for i in n.inputs], n.loc, n.select)
                    new.annotations, new.split_n, new.var_name = dict(n.annotations), n.split_n, n.var_name
                    nodes[n] = new
                return nodes[n]
            c.inputs = [node(n) for n in mod.inputs]
            c.outputs = [node(n) for n in mod.outputs]
            for old, new in list(nodes.items()):
                new.split_outputs = [nodes[s] for s in old.split_outputs if s in nodes]
        return c

    # ---- running a module at spec time ------------------------------------------------

    def spec_time_model(self, mod: ModuleObj, x, loc):
        """The generated Model (float64) for `mod` on input `x` (a tensor, or a table of
        them), compiled once per module and input shapes; its weights are drawn with seed 0
        from the module's initialisation as it is at that first call."""
        if mod.kind == "gModule":
            names = [n.name or f"input{i}" for i, n in enumerate(mod.inputs, 1)]
        else:
            names = ["input1"]
        args = x.array() if len(names) > 1 and isinstance(x, LuaTable) else [x]
        if len(args) != len(names):
            raise SpecError(f"{mod!r} takes {len(names)} inputs, got a table of {len(args)}", loc)
        shapes = {n: _shape_of(a, loc) for n, a in zip(names, args)}
        key = repr(sorted(shapes.items()))
        runs = mod.__dict__.setdefault("_spec_time_models", {})
        if key not in runs:
            import types
            if self.compile_module is None:
                raise SpecError(f"running {mod!r} at spec time needs graphc's compiler: compile "
                                "the spec (graphc.compile_spec) rather than evaluate it alone", loc)
            source = self.compile_module(mod, shapes, self.path, self.sources[self.path])
            ns = types.ModuleType("graphc_spec_time")
            exec(compile(source, f"<graphc: {mod!r} at spec time>", "exec"), ns.__dict__)
            runs[key] = ns.Model(dtype="float64", seed=0)
        model = runs[key]
        flat = [_to_numpy(a, k) for a, (_, _, k) in zip(_flat_args(args), model.INPUTS)]
        return model, _nest_like(flat, args)

    def m_forward(self, mod, args, loc):
        """m:forward(x), m:updateOutput(x): the module's output (tensors) for x."""
        model, xs = self.spec_time_model(mod, args[0] if args else None, loc)
        return _from_numpy(model.forward(*xs))

    m_updateOutput = m_forward

    def m_backward(self, mod, args, loc):
        """m:backward(x, gradOutput), m:updateGradInput(...): the input gradients (and the
        parameter gradients accumulate in the spec-time model, as accGradParameters)."""
        x, gy = (list(args) + [None, None])[:2]
        model, xs = self.spec_time_model(mod, x, loc)
        model.forward(*xs)
        gys = [_to_numpy(g, "float") for g in _flat_args([gy])]
        grads = model.backward(xs if len(xs) > 1 else xs[0], _nest_like(gys, [gy])[0])
        return _from_numpy(grads)

    m_updateGradInput = m_backward

    def m_accGradParameters(self, mod, args, loc):
        return []  # backward already accumulated the parameter gradients

    # ---- parameters as tensors --------------------------------------------------------

    def tensor_index(self, ref: ParamRef, key, loc, method):
        if key not in TENSOR_METHODS:
            raise SpecError(f"tensors at spec time ({ref!r}) have no '{tostring(key)}' here; "
                            f"they support {', '.join(TENSOR_METHODS)}", loc)
        return Builtin(key, lambda args, l: self._tensor_method(key, ref, args[1:], l))

    def _tensor_method(self, key, ref: ParamRef, args, loc):
        shape = shape_of(ref, loc)
        if key == "size":
            if args and args[0] is not None:
                d = args[0]
                if not _isnum(d) or d != int(d) or not 1 <= d <= len(shape):
                    raise SpecError(f"{ref!r}:size({tostring(d)}): it has {len(shape)} "
                                    "dimensions", loc)
                return shape[int(d) - 1]
            return LuaTable.of(list(shape))
        if key in ("nElement", "numel"):
            return math.prod(shape)
        if key in ("dim", "nDimension"):
            return len(shape)
        if key in ("type", "cuda", "float", "double"):
            return ref
        if key == "set":
            src = args[0] if args else None
            if not isinstance(src, ParamRef):
                raise SpecError(f"{ref!r}:set expects another module's parameter, got "
                                f"{describe(src)}", loc)
            self.tie(ref.module, ref.slot, src.module, src.slot, loc, f"{ref!r}:set({src!r})")
            return ref
        if key == "normal":
            mean = _num(args[0] if args else None, "normal(mean, std): mean", loc, 0.0)
            std = _num(args[1] if len(args) > 1 else None, "normal(mean, std): std", loc, 1.0)
            if std < 0:
                raise SpecError(f"{ref!r}:normal: std must be >= 0, got {tostring(std)}", loc)
            init = ("normal", std) if mean == 0 else ("normal_mean", mean, std)
        elif key == "uniform":
            a = _num(args[0] if args else None, "uniform(a, b): a", loc, 0.0)
            b = _num(args[1] if len(args) > 1 else None, "uniform(a, b): b", loc, 1.0)
            if a > b:
                raise SpecError(f"{ref!r}:uniform({tostring(a)}, {tostring(b)}): a must be <= b", loc)
            init = ("uniform", b) if a == -b else ("uniform_range", a, b)
        elif key in ("fill", "zero"):
            v = 0.0 if key == "zero" else _num(args[0] if args else None, "fill(value)", loc)
            init = ("const", v)
        else:  # copy
            src = args[0] if args else None
            if isinstance(src, ParamRef):
                if math.prod(shape_of(src, loc)) != math.prod(shape):
                    raise SpecError(f"{ref!r}:copy({src!r}): they have different numbers of "
                                    "elements", loc)
                init = ("same_as", resolve(src.module, src.slot))
            else:
                values = _flat_numbers(src, loc)
                if len(values) != math.prod(shape):
                    raise SpecError(f"{ref!r}:copy: it has {math.prod(shape)} elements "
                                    f"({'x'.join(map(str, shape))}), the source {len(values)}", loc)
                init = ("values", tuple(values))
        mod, slot = resolve(ref.module, ref.slot)
        mod.inits[slot] = init
        return ref

    # ---- classes -------------------------------------------------------------------------

    def make_classes(self, nn: LuaTable):
        """The nn classes: nn.Module, nn.Container, nn.Criterion and one per module kind."""
        self.classes: dict[str, ClassObj] = {}
        base = {}
        for name, kind, parent in (("nn.Module", "Module", None), ("nn.Container", "Container", "nn.Module"),
                                   ("nn.Criterion", "Criterion", "nn.Module")):
            cls = ClassObj(name, None, self.classes.get(parent) if parent else None, kind)
            cls.fn = lambda a, l, c=cls: self.instantiate(c, a, l)
            self.classes[name] = base[kind] = cls
            nn[kind] = cls
        for kind in list(REGISTRY) + [c for c in CONTAINERS if c != "gModule"]:
            parent = base["Container"] if kind in CONTAINERS else \
                base["Criterion"] if kind in CRITERIA else base["Module"]
            cls = ClassObj(f"nn.{kind}", lambda a, l, k=kind: self.new_module(k, a, l), parent, kind)
            self.classes[cls.typename] = cls
            nn[kind] = cls
        gm = ClassObj("nn.gModule", self.g_module, base["Container"], "gModule")
        self.classes["nn.gModule"] = gm
        return gm

    def class_index(self, cls: ClassObj, key, loc):
        found, v = cls.lookup(key)
        if found:
            return v
        if key == "__typename":
            return cls.typename
        builtin = cls
        while builtin is not None and builtin.kind is None:
            builtin = builtin.parent
        if key == "__init" and builtin is not None:
            return Builtin(f"{builtin.typename}.__init",
                           lambda args, l: self.builtin_init(builtin, args, l))
        if isinstance(key, str) and (key in API_METHODS or key in ("add", "noBias", "training",
                                                                     "evaluate", "type", "cuda")):
            # `parent.reset(self, stdv)`, `nn.Module.apply(m, f)`: the method of that object
            def unbound(args, l):
                obj = args[0] if args else None
                if not isinstance(obj, ModuleObj):
                    raise SpecError(f"{cls.typename}.{key} expects a module as its first "
                                    f"argument (self), got {describe(obj)}", l)
                fn = self.module_method(obj, key)
                if fn is None:
                    raise SpecError(f"{obj!r} has no method '{key}'", l)
                return self.call(fn, args, l)
            return Builtin(f"{cls.typename}.{key}", unbound)
        return None

    def instantiate(self, cls: ClassObj, args, loc) -> ModuleObj:
        """`Name(...)` for a torch.class: an instance of its nearest built-in ancestor's kind,
        then its __init (a Lua one, or the built-in parent's) with the arguments."""
        builtin = cls
        while builtin is not None and builtin.kind is None:
            builtin = builtin.parent
        kind = builtin.kind if builtin is not None else "Module"
        self.count_object(loc)
        self.serial += 1
        mod = ModuleObj(kind, {}, loc, self.serial)
        mod.cls = cls
        mod.bound = kind in ("Module", "Container", "Criterion") or \
            (kind in ADDABLE and not CONTAINER_SIGNATURES[kind])
        self.modules.append(mod)
        init = self.class_index(cls, "__init", loc)
        if init is not None:
            self.call(init, [mod] + list(args), loc, f"{cls.typename}.__init")
        return mod

    def builtin_init(self, cls: ClassObj, args, loc):
        """`parent.__init(self, ...)` for a built-in parent class: binds its arguments."""
        inst = args[0] if args else None
        if not isinstance(inst, ModuleObj):
            raise SpecError(f"{cls.typename}.__init expects the instance (self) first, got "
                            f"{describe(inst)}", loc)
        if cls.kind in ("Module", "Container", "Criterion"):
            return []
        if cls.kind == "gModule":
            gm = self.g_module(list(args[1:]), loc)
            self.modules.remove(gm)
            inst.inputs, inst.outputs = gm.inputs, gm.outputs
        else:
            inst.attrs = make_module(cls.kind, list(args[1:]), loc, inst.serial).attrs
        inst.kind, inst.bound = cls.kind, True
        return []

    def torch_class(self, args, loc):
        """torch.class('pkg.Name' [, 'pkg.Parent']): the new class (also set as pkg.Name) and
        its parent class."""
        name = args[0] if args else None
        parent = args[1] if len(args) > 1 else None
        if not isinstance(name, str) or not name:
            raise SpecError("torch.class expects a class name string", loc)
        pcls = None
        if parent is not None:
            if not isinstance(parent, str):
                raise SpecError("torch.class: the parent must be a class name string", loc)
            pcls = self.classes.get(parent)
            if pcls is None:
                raise SpecError(f"torch.class('{name}', '{parent}'): no class '{parent}' is "
                                "defined; define it first (in the file or in a --prelude file)", loc)
        cls = ClassObj(name, None, pcls)
        cls.fn = lambda a, l: self.instantiate(cls, a, l)
        self.classes[name] = cls
        pkg, _, short = name.rpartition(".")
        if pkg:
            table = self.nn if pkg == "nn" else self.globals.vars.get(pkg)
            if table is None:
                table = self.globals.vars[pkg] = LuaTable()
            if isinstance(table, LuaTable):
                table[short] = cls
        else:
            self.globals.vars[name] = cls
        return [cls, pcls]

    def is_type_of(self, args, loc):
        """torch.isTypeOf(obj, 'nn.Module'): obj's class is that class or derives from it."""
        obj, name = (list(args) + [None, None])[:2]
        if not isinstance(obj, ModuleObj):
            return False
        cls = obj.cls or self.classes.get(f"nn.{obj.kind}")
        name = name.typename if isinstance(name, ClassObj) else name
        while cls is not None:
            if cls.typename == name:
                return True
            cls = cls.parent
        return False


def _lua_value(v):
    """A constructor argument as Lua sees it (a tuple of sizes is a table)."""
    if isinstance(v, tuple):
        return LuaTable.of([_lua_value(x) for x in v])
    return v


def _shape_of(v, loc):
    if isinstance(v, TensorObj):
        return tuple(v.a.shape)
    if isinstance(v, LuaTable):
        return [_shape_of(x, loc) for x in v.array()]
    raise SpecError(f"running a module at spec time needs tensors as input, got {describe(v)}", loc)


def _flat_args(args):
    out = []
    for a in args:
        out.extend(_flat_args(a.array()) if isinstance(a, LuaTable) else [a])
    return out


def _nest_like(flat, args):
    it = iter(flat)

    def build(a):
        return [build(x) for x in a.array()] if isinstance(a, LuaTable) else next(it)
    return [build(a) for a in args]


def _to_numpy(v, kind):
    import numpy as np
    if not isinstance(v, TensorObj):
        raise SpecError(f"running a module at spec time needs tensors, got {describe(v)}")
    return v.a.astype(np.int64) if kind == "index" else v.a.astype(np.float64)


def _from_numpy(v):
    import numpy as np
    if v is None:
        return None
    if isinstance(v, np.ndarray):
        return TensorObj(np.array(v, dtype=np.float64))
    return LuaTable.of([_from_numpy(x) for x in v])
