"""Test-only: save a model built by a graphc spec the way Torch7's torch.save would (nn
module objects with Torch's field names, nngraph gModules with forwardnodes, innode/outnode,
split nodes, mapindex, selectindex, nSplitOutputs and annotations), with a compiled Model's
weights. Used by the round-trip tests; not part of graphc."""
from __future__ import annotations

import numpy as np

from graphc.compiler import Options, _choose_model, spec_time_source
from graphc.frontend.nngraph import Interpreter
from graphc.frontend.lower import _topo_order
from graphc.frontend.nn import CONTAINERS, resolve
from graphc.frontend.t7import import DERIVED, RENAMED, torch_modules
from graphc.ops import REGISTRY
from graphc_runtime.t7 import LuaFunction, Table, TorchObject
from t7_writer import Storage, Tensor, tensor

CRITERIA = {k for k in REGISTRY if k.endswith("Criterion")}


def spec_model(path: str, opts: Options):
    """The top ModuleObj a spec builds (as the compiler chooses it), its plugins loaded."""
    from graphc.plugin import registered
    with open(path, encoding="utf-8") as f:
        text = f.read()
    prelude = None
    if opts.prelude is not None:
        with open(opts.prelude, encoding="utf-8") as f:
            prelude = (str(opts.prelude), f.read())
    with registered(opts.plugins):
        interp = Interpreter(path, text, opts.defines, prelude, compile_module=spec_time_source)
        return _choose_model(interp, interp.run(), opts)


def paths_of(top) -> dict:
    """serial -> field path, the walk of graphc.frontend.t7import.t7_layout."""
    out, stack = {}, [(top, "")]
    while stack:
        mod, path = stack.pop()
        if mod.serial in out:
            continue
        out[mod.serial] = path
        kids = torch_modules(mod) if mod.kind in CONTAINERS else []
        for i in range(len(kids), 0, -1):
            stack.append((kids[i - 1], f"{path}.modules.{i}" if path else f"modules.{i}"))
    return out


def _table(values) -> Table:
    return Table({i: v for i, v in enumerate(values, 1)})


def _empty():
    return Tensor(None, ())


class TorchSaver:
    def __init__(self, top, model, train=True, dtype=np.float64, typenames=None):
        """`model`: a compiled Model whose weights the saved modules get; `typenames`:
        kind -> class name where it is not nn.<kind> (char-rnn's own OneHot class)."""
        self.model, self.train, self.dtype = model, train, dtype
        self.typenames = typenames or {}
        self.paths = paths_of(top)
        self.slots = {path: slots for path, _, slots in model.T7_MODULES}
        self.done: dict[int, TorchObject] = {}
        self.top = self.module(top)

    def module(self, mod) -> TorchObject:
        if mod.serial in self.done:
            return self.done[mod.serial]
        f = Table(output=_empty(), gradInput=_empty(), train=self.train)
        # a torch.class instance (class_cell.lua's nn.GatedCell, tied_memory.lua's
        # nn.LinearNB) is saved under the nn class it derives from, with that class's fields
        # (what its parent.__init stored): a real file names its own class, and holds neither
        # its parent nor its Lua methods, so graphc cannot compile that name
        obj = TorchObject(self.typenames.get(mod.kind, "nn." + mod.kind), 1, f)
        self.done[mod.serial] = obj
        if mod.kind in CONTAINERS:
            if mod.kind == "Concat":
                f["dimension"] = mod.attrs["dimension"]
            if mod.kind == "Parallel":
                f["inputDimension"] = mod.attrs["inputDimension"]
                f["outputDimension"] = mod.attrs["outputDimension"]
            if mod.kind == "Bottle":  # Torch's __init stores nOutputDim = nInputDim if nil
                f["nInputDim"] = mod.attrs["nInputDim"]
                f["nOutputDim"] = mod.attrs["nOutputDim"] or mod.attrs["nInputDim"]
            if mod.kind == "gModule":
                self.gmodule(mod, f)
            else:
                f["modules"] = _table(self.module(c) for c in mod.children)
            return obj
        derived = DERIVED.get(mod.kind, {})
        if mod.kind == "SpatialLPPooling":
            self.lp_pooling(mod.attrs, f)
        for name, v in mod.attrs.items():
            if name in derived and mod.kind != "Dropout" or v is None or name == "bias":
                continue  # (a bias is a tensor field, or nil after :noBias())
            key = RENAMED.get((mod.kind, name), name)
            if mod.kind == "SpatialSubtractiveNormalization" and name == "kernel":
                v = tensor(np.array(v, self.dtype))  # Torch keeps the kernel tensor
            elif isinstance(v, tuple) and v and isinstance(v[0], tuple):  # Transpose pairs
                v = _table(_table(p) for p in v)
            elif isinstance(v, tuple):  # a size: Torch keeps a LongStorage
                v = Storage(np.array(v, np.int64))
            if mod.kind == "Dropout" and name == "v1":
                key, v = "v2", not v
            f[key] = v
        op = REGISTRY.get(mod.kind)
        for spec in op.active_params(mod.attrs) if op is not None and mod.bound else ():
            t = self.param_tensor(*resolve(mod, spec.name))
            if t is None:
                continue
            # a slot tied to another module's (clone('weight', 'bias'), share): a tensor
            # viewing the same storage, as Torch saves it
            f[spec.name] = Tensor(t.storage, t.size, t.stride, t.offset)
            if spec.trainable:
                f["grad" + spec.name[0].upper() + spec.name[1:]] = tensor(
                    np.zeros(t.size, self.dtype))
        return obj

    def lp_pooling(self, a, f):
        """Torch's SpatialLPPooling is a Sequential it fills (x^p, average pool, times
        kW*kH, ^(1/p)), keeping kW, kH, dW, dH but neither nInputPlane nor pnorm."""
        def leaf(kind, **fields):
            return TorchObject("nn." + kind, 1, Table(output=_empty(), gradInput=_empty(),
                                                      train=self.train, **fields))
        p = a["pnorm"]
        f["modules"] = _table([
            leaf("Square") if p == 2 else leaf("Power", pow=p),
            leaf("SpatialAveragePooling", kW=a["kW"], kH=a["kH"], dW=a["dW"], dH=a["dH"],
                 padW=0, padH=0, ceil_mode=False, count_include_pad=True, divide=True),
            leaf("MulConstant", constant_scalar=a["kW"] * a["kH"], inplace=False),
            leaf("Sqrt", eps=0) if p == 2 else leaf("Power", pow=1 / p)])

    def param_tensor(self, mod, slot):
        """The saved tensor of `mod`'s parameter slot (made once: shared ties view it)."""
        key = ("param", mod.serial, slot)
        if key not in self.done:
            found = [(what, i) for field, what, i in self.slots.get(self.paths.get(mod.serial), ())
                     if field == slot]
            if not found:
                return None
            what, i = found[0]
            arr = (self.model._weights if what == "param" else self.model._buffers)[i]
            self.done[key] = tensor(np.array(arr, self.dtype))
        return self.done[key]

    def node_module(self, mod):
        obj = self.module(mod)
        if mod.kind in CRITERIA:
            key = ("mfc", mod.serial)
            if key not in self.done:
                self.done[key] = TorchObject("nn.ModuleFromCriterion", 1, Table(
                    criterion=obj, output=_empty(), gradInput=_empty(), train=self.train))
            return self.done[key]
        return obj

    def gmodule(self, mod, f):
        made = {}  # NodeObj (or ('split', parent)) -> nngraph.Node
        counter = [0]
        by_data = {}

        def new_node(data):
            counter[0] += 1
            node = TorchObject("nngraph.Node", 1, Table(
                data=data, children=Table(), id=counter[0], visited=False, marked=False))
            data.setdefault("annotations", Table(_debugLabel=f"[test writer]:{counter[0]}"))
            data["mapindex"] = Table()
            by_data[data] = node
            return node

        def connect(node, inputs):
            mi = node.data["mapindex"]
            for x in inputs:
                mi[len([k for k in mi if isinstance(k, int)]) + 1] = x.data
                mi[x.data] = len([k for k in mi if isinstance(k, int)])
                x.children[len(x.children) + 1] = node

        innode = new_node(Table(input=Table()))
        n_in = len(mod.inputs)
        if n_in > 1:
            split = new_node(Table(nSplitOutputs=n_in))
            connect(split, [innode])
            feeds = []
            for i in range(1, n_in + 1):
                sel = new_node(Table(selectindex=i, input=Table()))
                connect(sel, [split])
                feeds.append(sel)
        else:
            feeds = [innode]

        def data_of(n):
            d = Table(module=self.node_module(n.module))
            ann = Table({k: v for k, v in n.annotations.items() if k != "graphAttributes"})
            if "graphAttributes" in n.annotations:
                ann["graphAttributes"] = Table(n.annotations["graphAttributes"])
            ann["_debugLabel"] = f"[test writer]:{n.loc.line}"
            d["annotations"] = ann
            return d

        for n, feed in zip(mod.inputs, feeds):
            made[n] = new_node(data_of(n))
            connect(made[n], [feed])
        for n in _topo_order(mod.outputs):
            if n in made:
                continue
            if n.select >= 0:
                parent = n.inputs[0]
                key = ("split", parent)
                if key not in made:
                    made[key] = new_node(Table(nSplitOutputs=parent.split_n))
                    connect(made[key], [made[parent]])
                made[n] = new_node(Table(selectindex=n.select + 1))
                connect(made[n], [made[key]])
                continue
            made[n] = new_node(data_of(n))
            connect(made[n], [made[i] for i in n.inputs])
        outnode = new_node(Table())
        connect(outnode, [made[o] for o in mod.outputs])
        # forwardnodes: nngraph's topological sort (depth-first post-order from the outnode)
        order, seen, stack = [], set(), [(outnode, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            ins = [by_data[d] for d in node.data["mapindex"].array()]
            stack.extend((i, False) for i in reversed(ins) if id(i) not in seen)
        f.update(forwardnodes=_table(order), backwardnodes=_table(reversed(order)),
                 innode=innode, outnode=outnode, nInputs=n_in, verbose=False,
                 modules=_table(n.data["module"] for n in order if "module" in n.data))
        for k, n in enumerate(order, 1):
            n.data["forwardNodeId"] = k



def save_like_torch(top, model, train=True, dtype=np.float64, typenames=None):
    """The Torch object tree of `top` with `model`'s weights; the top module also gets a
    Lua function field (as a saved closure would be), which the reader skips."""
    obj = TorchSaver(top, model, train, dtype, typenames).top
    obj.fields["_hook"] = LuaFunction(32, Table())
    return obj
