"""Turn a module saved by Torch7 (`torch.save(net)`, read by graphc.t7) into the objects a
spec builds (ModuleObj/NodeObj), so lower.py gives the same IR a Lua spec would.

Constructor arguments are recovered from the fields Torch's constructors store (most have
the argument's name; RENAMED lists the others, DERIVED the sizes only parameter shapes
hold). An nn.gModule is rebuilt from its `forwardnodes`: each nngraph.Node's `data.module`,
its inputs in `data.mapindex` order, `nSplitOutputs`/`selectindex` for split outputs, and
`data.annotations`.
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import Loc, SpecError
from ..ops import REGISTRY
from .lua import LuaTable
from .nn import CONTAINERS, ModuleObj, NodeObj, bind_args, check_attrs, resolve
from graphc_runtime.t7 import (T7Error, Table, TorchObject, _kind_of, field_path, load,
                                shared_key)


class T7Loc(Loc):
    """A place in a .t7 file: the file and the object path (`protos.rnn.modules.3`)."""

    def __init__(self, file: str, where: str):
        super().__init__(file, 0, 0)
        object.__setattr__(self, "where", where)

    def __str__(self):
        return f"{self.file}: {self.where}"


# (kind, graphc argument) -> the field Torch's constructor stores it in
RENAMED = {
    ("Narrow", "offset"): "index", ("HardTanh", "min_value"): "min_val",
    ("HardTanh", "max_value"): "max_val", ("Clamp", "min_value"): "min_val",
    ("Clamp", "max_value"): "max_val", ("PairwiseDistance", "p"): "norm",
    ("Power", "p"): "pow", ("Replicate", "nFeature"): "nfeatures", ("Reshape", "sizes"): "size",
    ("View", "sizes"): "size", ("Sqrt", "b"): "eps", ("Threshold", "th"): "threshold",
    ("Threshold", "v"): "val", ("Dropout", "stochasticInference"): "stochastic_inference",
    ("CAdd", "size"): "size", ("CMul", "size"): "size",
}


def _shape(t, dim):
    return int(t.shape[dim]) if isinstance(t, np.ndarray) and t.ndim > dim else None


# arguments only the parameter shapes tell: kind -> {argument: fields -> value}
DERIVED = {
    "Linear": {"inputSize": lambda f: _shape(f.get("weight"), 1),
               "outputSize": lambda f: _shape(f.get("weight"), 0),
               "bias": lambda f: isinstance(f.get("bias"), np.ndarray) and f["bias"].size > 0},
    "LookupTable": {"nIndex": lambda f: _shape(f.get("weight"), 0),
                    "nOutput": lambda f: _shape(f.get("weight"), 1)},
    "Bilinear": {"inputSize1": lambda f: _shape(f.get("weight"), 1),
                 "inputSize2": lambda f: _shape(f.get("weight"), 2),
                 "outputSize": lambda f: _shape(f.get("weight"), 0),
                 "bias": lambda f: isinstance(f.get("bias"), np.ndarray) and f["bias"].size > 0},
    "Add": {"inputSize": lambda f: int(f["bias"].size) if isinstance(f.get("bias"), np.ndarray)
            else None},
    "BatchNormalization": {"nOutput": lambda f: _n(f.get("running_mean"))},
    "SpatialBatchNormalization": {"nOutput": lambda f: _n(f.get("running_mean"))},
    "Dropout": {"v1": lambda f: not f["v2"] if "v2" in f else None},
    "CAdd": {"size": lambda f: tuple(f["bias"].shape) if isinstance(f.get("bias"), np.ndarray)
             else None},
    # Torch's SpatialLPPooling is a Sequential: Square or Power(pnorm) first; its newest
    # version keeps no nInputPlane (which neither Torch nor graphc uses: 0 when absent)
    "SpatialLPPooling": {"pnorm": lambda f: _lp_pnorm(f.get("modules")),
                         "nInputPlane": lambda f: f.get("nInputPlane", 0)},
    "CMul": {"size": lambda f: tuple(f["weight"].shape) if isinstance(f.get("weight"),
                                                                        np.ndarray) else None},
}



def _lp_pnorm(modules):
    first = modules.get(1) if isinstance(modules, Table) else None
    kind = _kind_of(first)
    if kind == "Square":
        return 2
    return first.get("pow") if kind == "Power" else None


def _n(t):
    return int(t.size) if isinstance(t, np.ndarray) else None


def _lua_value(v):
    """A field's value as a spec would give the argument (a LongStorage size -> numbers)."""
    if isinstance(v, np.ndarray):
        return tuple(v.tolist()) if v.ndim == 1 else v
    if isinstance(v, Table):
        return tuple(_lua_value(x) for x in v.array())
    return v


class Importer:
    def __init__(self, path: str):
        self.path = path
        self.serial = 0
        self.modules: dict[int, ModuleObj] = {}  # id(torch object) -> its ModuleObj
        self.keep = []  # the saved objects, alive while their id() keys `modules`
        self.shared: dict = {}  # shared_key -> ModuleObj: clones that share their weights

    def loc(self, where: str) -> T7Loc:
        return T7Loc(self.path, where)

    def module(self, obj, where: str) -> ModuleObj:
        if id(obj) in self.modules:  # the same Torch module twice: shared weights
            return self.modules[id(obj)]
        key = shared_key(obj) if isinstance(obj, TorchObject) else None
        if key is not None and key in self.shared:  # a clone sharing weight and bias
            self.modules[id(obj)] = self.shared[key]
            self.keep.append(obj)
            return self.shared[key]
        kind = _kind_of(obj)
        if kind is None:
            raise SpecError(f"expected an nn module here, found {_what(obj)}", self.loc(where))
        f = obj.fields
        loc = self.loc(f"{where} ({obj.typename})")
        if kind == "ModuleFromCriterion":  # a criterion used as a graph node
            return self.module(f.get("criterion"), where + ".criterion")
        self.serial += 1
        if kind in CONTAINERS:
            attrs = {}
            if kind == "Concat":
                attrs = {"dimension": f.get("dimension")}
            elif kind == "Parallel":
                attrs = {"inputDimension": f.get("inputDimension"),
                         "outputDimension": f.get("outputDimension")}
            elif kind == "Bottle":  # Torch's __init sets both (nOutputDim = nInputDim if nil)
                attrs = {"nInputDim": f.get("nInputDim"), "nOutputDim": f.get("nOutputDim")}
            if any(v is None for v in attrs.values()):
                raise SpecError(f"{obj.typename} lacks its {', '.join(attrs)} fields", loc)
            mod = ModuleObj(kind, attrs, loc, self.serial)
        elif kind in REGISTRY:
            attrs = self.arguments(kind, f, loc)
            self.method_state(kind, f, attrs, loc)
            mod = ModuleObj(kind, attrs, loc, self.serial)
            check_attrs(mod, loc)
        else:
            from .nn import unknown_module
            raise unknown_module(kind, loc)
        mod.t7 = obj  # the saved module: its weights and running state (Model.load_t7)
        self.modules[id(obj)] = mod
        if shared_key(obj) is not None:
            self.shared[shared_key(obj)] = mod
        self.keep.append(obj)
        if kind == "gModule":
            self.gmodule(mod, obj, where)
        elif kind in CONTAINERS:
            children = f.get("modules")
            if not isinstance(children, Table):
                raise SpecError(f"{obj.typename} has no modules table", loc)
            mod.children = [self.module(c, f"{where}.modules.{i}")
                            for i, c in enumerate(children.array(), 1)]
        mod.contained = True
        return mod

    def arguments(self, kind: str, f: Table, loc) -> dict:
        """The constructor arguments, as bind_args gives them for a spec."""
        op = REGISTRY[kind]
        args = []
        derived = DERIVED.get(kind, {})
        items = [s.strip() for s in op.signature.split(",") if s.strip()]
        for item in items:
            name, typ, star = re.fullmatch(r"(\w+):(\w+)(\*)?(?:=\S+)?", item).groups()
            v = derived[name](f) if name in derived else None
            if v is None:
                v = _lua_value(f.get(RENAMED.get((kind, name), name)))
            if typ == "table" and star and isinstance(v, tuple):  # Transpose's pairs
                v = [LuaTable.of(list(p)) for p in v]
            elif typ == "table" and isinstance(v, (tuple, np.ndarray)):  # a tensor (a kernel)
                v = LuaTable.of([LuaTable.of(r) if isinstance(r, list) else r
                                 for r in np.asarray(v).tolist()])
            if star:
                args.extend(v if isinstance(v, (tuple, list)) else ([] if v is None else [v]))
            else:
                args.append(v)
        while args and args[-1] is None:
            args.pop()
        try:
            return bind_args(kind, op.signature, args, loc)
        except SpecError as e:
            raise SpecError(f"cannot rebuild nn.{kind} from its saved fields: {e.message}",
                            loc) from None

    def method_state(self, kind: str, f: Table, attrs: dict, loc):
        """What methods set after construction: :ceil(), :setCountExcludePad(),
        :setNumInputDims(n), :noBias() (a nil bias)."""
        methods = REGISTRY[kind].methods
        for field, method in (("ceil_mode", "ceil"), ("count_include_pad", "setCountExcludePad"),
                              ("numInputDims", "setNumInputDims")):
            if method in methods and f.get(field) is not None:
                attrs[field] = f[field]
        if kind == "SoftPlus" and isinstance(f.get("threshold"), (int, float)):
            attrs["threshold"] = f["threshold"]  # a field, not a constructor argument
        if "noBias" in methods and not isinstance(f.get("bias"), np.ndarray):
            methods["noBias"](attrs)
        if f.get("divide") is False:
            raise SpecError(f"nn.{kind} with divide = false (a sum pool) is not supported", loc)

    def gmodule(self, mod: ModuleObj, obj: TorchObject, where: str):
        f = obj.fields
        nodes = f.get("forwardnodes")
        if not isinstance(nodes, Table):
            raise SpecError("nn.gModule has no forwardnodes table", mod.loc)
        nodes = nodes.array()
        by_data = {}
        for i, n in enumerate(nodes, 1):
            if not isinstance(n, TorchObject) or not isinstance(n.get("data"), Table):
                raise SpecError(f"forwardnodes[{i}] is {_what(n)}, not an nngraph.Node with data",
                                self.loc(f"{where}.forwardnodes.{i}"))
            by_data[n.data] = (i, n)

        def inputs_of(n):
            mapindex = n.data.get("mapindex")
            ins = mapindex.array() if isinstance(mapindex, Table) else []
            out = []
            for d in ins:
                if d not in by_data:
                    raise SpecError("a node's input (mapindex) is not one of the gModule's "
                                    "forwardnodes", node_loc(n))
                out.append(by_data[d][1])
            return out

        def node_loc(n):
            i = by_data[n.data][0]
            return self.loc(f"{where}.forwardnodes.{i}" + _label(n))

        innode, outnode = f.get("innode"), f.get("outnode")
        if innode is None or outnode is None or innode.data not in by_data or \
                outnode.data not in by_data:
            raise SpecError("nn.gModule lacks its innode/outnode among its forwardnodes", mod.loc)
        n_inputs = f.get("nInputs", 1)
        consumers: dict[int, list] = {}
        for n in nodes:
            for x in inputs_of(n):
                consumers.setdefault(id(x), []).append(n)
        # the graph inputs: innode's consumer, or (several inputs) the consumers of the
        # select nodes of innode's split, in selectindex order
        if n_inputs == 1:
            firsts = consumers.get(id(innode), [])
        else:
            split = consumers.get(id(innode), [])
            selects = [s for sp in split for s in consumers.get(id(sp), [])]
            selects.sort(key=lambda s: s.data.get("selectindex", 0))
            firsts = [c for s in selects for c in consumers.get(id(s), [])]
        if len(firsts) != n_inputs:
            raise SpecError(f"nn.gModule says it has {n_inputs} input(s) but {len(firsts)} "
                            "input nodes follow its innode", mod.loc)
        made: dict[int, NodeObj] = {}
        input_ids = {id(n) for n in firsts}

        def convert(n) -> NodeObj | None:
            """The NodeObj for t7 node n (made once; inputs first: forwardnodes are sorted)."""
            if id(n) in made:
                return made[id(n)]
            d = n.data
            loc = node_loc(n)
            m = d.get("module")
            if id(n) in input_ids:
                node = NodeObj(self.module(m, f"{where}.forwardnodes.{by_data[d][0]}.data.module")
                               if m is not None else None, [], loc)
            elif m is not None:
                ins = [convert(x) for x in inputs_of(n)]
                node = NodeObj(self.module(m, f"{where}.forwardnodes.{by_data[d][0]}.data.module"),
                               ins, loc)
            elif "selectindex" in d:  # output k of a split: its input is the split node
                split, = inputs_of(n)
                parent = convert(split)
                k = int(d["selectindex"])
                node = NodeObj(None, [parent], loc, select=k - 1)
                parent.split_outputs.append(node)
            else:  # innode, outnode, a split's hidden node: pass their one input through
                ins = inputs_of(n)
                if len(ins) != 1:
                    raise SpecError(f"a node without a module has {len(ins)} inputs (expected 1)",
                                    loc)
                node = convert(ins[0])
                if d.get("nSplitOutputs"):
                    node.split_n = int(d["nSplitOutputs"])
                made[id(n)] = node
                return node
            ann = d.get("annotations")
            if isinstance(ann, Table):
                for k, v in ann.items():
                    if k in ("name", "description") and isinstance(v, (str, int, float)):
                        node.annotations[k] = str(v)
                    elif k == "graphAttributes" and isinstance(v, Table):
                        node.annotations[k] = {str(a): str(b) for a, b in v.items()}
            if node.module is not None and node.module.kind in CONTAINERS:
                node.module.contained = True
            made[id(n)] = node
            return node

        mod.inputs = [convert(n) for n in firsts]
        outs = inputs_of(outnode)
        if n_inputs >= 1 and not outs:
            raise SpecError("nn.gModule's outnode has no inputs", mod.loc)
        mod.outputs = [convert(n) for n in outs]


def _label(n) -> str:
    """' (nn.Linear 'i2h_1', made at [LSTM.lua]:25)': the node's module, name and the Lua
    line nngraph recorded for it (annotations._debugLabel)."""
    ann = n.data.get("annotations")
    ann = ann if isinstance(ann, Table) else Table()
    m = n.data.get("module")
    parts = [m.typename] if isinstance(m, TorchObject) else []
    if isinstance(ann.get("name"), str):
        parts.append(f"'{ann['name']}'")
    label = ann.get("_debugLabel")
    if isinstance(label, str) and not label.startswith("[[C]]"):
        parts[-1:] = [(parts[-1] + ", " if parts else "") + f"made at {label.rstrip('_')}"]
    return f" ({' '.join(parts)})" if parts else ""


def _what(v) -> str:
    if isinstance(v, TorchObject):
        return f"a {v.typename}"
    if isinstance(v, Table):
        keys = sorted(str(k) for k in v)[:12]
        return f"a table (fields: {', '.join(keys)})"
    if isinstance(v, np.ndarray):
        return f"a {v.dtype} tensor"
    return f"a {type(v).__name__}"


def _module_paths(obj, prefix="", depth=0, out=None):
    """Field paths in a checkpoint table that hold nn modules (for the --entry hint)."""
    out = [] if out is None else out
    if depth > 3 or len(out) > 10:
        return out
    if _kind_of(obj) is not None:
        out.append(prefix)
    elif isinstance(obj, Table):
        for k, v in obj.items():
            if isinstance(k, (str, int)):
                _module_paths(v, f"{prefix}.{k}" if prefix else str(k), depth + 1, out)
    return out


def read_model(path: str, entry: str | None = None):
    """(the top ModuleObj, the file's object) for `graphc compile model.t7 [--entry a.b]`."""
    try:
        top = load(path)
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e}") from None
    except T7Error as e:
        raise SpecError(f"not a readable Torch7 file: {e}") from None
    obj = top
    if entry:
        try:
            obj = field_path(top, entry)
        except KeyError as e:
            raise SpecError(f"--entry {entry}: {e.args[0]}", T7Loc(path, "the file")) from None
    if _kind_of(obj) is None:
        paths = _module_paths(obj)
        hint = (f"; choose one with --entry {(entry + '.') if entry else ''}{paths[0]}"
                + (f" (modules at: {', '.join(paths)})" if len(paths) > 1 else "")) if paths else ""
        raise SpecError(f"the file holds {_what(obj)}, not an nn module{hint}",
                        T7Loc(path, entry or "the file"))
    imp = Importer(path)
    model = imp.module(obj, entry or "the file")
    # parameters in Torch's flat order: modules as the saved tree lists them
    from graphc_runtime.t7 import module_tree
    order = {id(o): k for k, (_, _, o) in enumerate(module_tree(obj))}
    mods = {id(m): m for m in imp.modules.values()}  # clones sharing weights are one module
    for tid, mod in imp.modules.items():
        if tid in order:
            mod.serial = order[tid]
            mods.pop(id(mod), None)
    for k, mod in enumerate(mods.values()):  # (none in practice: every module is in the tree)
        mod.serial = len(order) + k
    return model, obj


def torch_modules(mod: ModuleObj) -> list[ModuleObj]:
    """A container's `modules` as Torch lists them: a gModule's in the order of its
    forwardnodes (nngraph's topological sort: depth-first post-order from the outputs,
    inputs left to right), one entry per node, so a module used twice appears twice."""
    if mod.kind != "gModule":
        return list(mod.children)
    from .lower import _topo_order
    return [n.module for n in _topo_order(mod.outputs) if n.module is not None]


def _clone_of(mod: ModuleObj) -> ModuleObj:
    """The module whose weight and bias `mod` views (Torch's clone('weight', 'bias'), or
    share of both): the saved tree lists the two once, as graphc_runtime.t7.shared_key
    does; else `mod` itself."""
    op = REGISTRY.get(mod.kind)
    if op is None or mod.kind in CONTAINERS or not mod.shared or not mod.bound:
        return mod
    names = [p.name for p in op.active_params(mod.attrs) if p.name in ("weight", "bias")]
    owners = [resolve(mod, n) for n in names]
    root = owners[0][0] if owners else mod
    if root is mod or root.kind != mod.kind or \
            any(o is not root or slot != n for (o, slot), n in zip(owners, names)):
        return mod
    return root


def t7_layout(top: ModuleObj, graph) -> tuple:
    """Every module of the model in Torch's module tree, depth first, once each (a shared
    module where it first appears): (field path from the top module, kind, parameter
    slots). A slot is (Torch field, 'param' | 'buffer', index into PARAMETERS | BUFFERS).
    Model.load_t7 matches a saved module against this."""
    slots: dict[int, list] = {}
    for what, plist in (("param", graph.params), ("buffer", graph.buffers)):
        for i, p in enumerate(plist):
            serial, _ = p.order
            slots.setdefault(serial, []).append((p.name.rsplit(".", 1)[1], what, i))
    out, seen = [], set()
    stack = [(top, "")]
    while stack:
        mod, path = stack.pop()
        owner = _clone_of(mod).serial
        if mod.serial in seen or owner in seen:
            continue
        seen.update((mod.serial, owner))
        out.append((path, mod.kind, tuple(slots.get(owner, ()))))
        kids = torch_modules(mod) if mod.kind in CONTAINERS else []
        for i in range(len(kids), 0, -1):
            stack.append((kids[i - 1], f"{path}.modules.{i}" if path else f"modules.{i}"))
    return tuple(out)


class T7Source:
    """What the compiler keeps of a spec's evaluation, for a .t7 file: the files it read and
    a text standing for the source (its SHA-256, recorded in the generated header)."""

    def __init__(self, path: str):
        import hashlib
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        self.files = [path]
        self.sources = {path: f"Torch7 file, SHA-256 {digest}"}
