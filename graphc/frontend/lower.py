"""Lower the evaluated spec (ModuleObj/NodeObj) to the IR: containers and nested gModules
are inlined, each leaf module becomes one IR node, each module instance owns one set of
parameter Values however many places it is used (so shared modules share weights).

A "struct" is what flows along an nngraph edge: a Value, or a list of structs (a table).
"""
from __future__ import annotations

from ..errors import Loc, SpecError
from ..ir.graph import Graph, Node, Param, Value
from ..ops import REGISTRY
from .nn import ModuleObj, NodeObj


class Lowerer:
    def __init__(self):
        self.graph = Graph()
        self.param_values: dict[int, dict[str, Value]] = {}  # module serial -> slot -> Value
        self.labels: dict[int, str] = {}  # module serial -> readable label
        self.kind_count: dict[str, int] = {}

    # ---- top level ---------------------------------------------------------------

    def lower_top(self, top: ModuleObj) -> Graph:
        g = self.graph
        if top.kind == "gModule":
            for i, n in enumerate(top.inputs, 1):
                g.inputs.append(Value("input", name=n.name or f"input{i}", loc=n.loc))
            xs = g.inputs[0] if len(g.inputs) == 1 else list(g.inputs)
            out = self.lower_gmodule(top, xs, top.loc)
            names = [o.name for o in top.outputs]
        else:
            g.inputs.append(Value("input", name="input1", loc=top.loc))
            out = self.lower_module(top, g.inputs[0], top.loc, None)
            names = []
        flat = _flatten(out)
        for i, v in enumerate(flat):
            if v.kind == "tmp" and all(v is not o for o in g.outputs):  # annotation or outputN
                v.name = names[i] if len(names) == len(flat) and names[i] else f"output{i + 1}"
            g.outputs.append(v)
        g.params.sort(key=lambda p: p.order)
        return g

    # ---- modules -----------------------------------------------------------------

    def label(self, mod: ModuleObj, name: str | None) -> str:
        """The module's name in PARAMETERS: its node's annotate name or Lua variable,
        else kind + count (linear1, linear2, ...); unique."""
        if mod.serial not in self.labels:
            if not name:
                k = self.kind_count[mod.kind] = self.kind_count.get(mod.kind, 0) + 1
                name = f"{mod.kind.lower()}{k}"
            label, k = name, 1
            while label in self.labels.values():
                k += 1
                label = f"{name}_{k}"
            self.labels[mod.serial] = label
        return self.labels[mod.serial]

    def lower_module(self, mod: ModuleObj, x, loc: Loc, name: str | None, ann=None):
        """`ann`: the nngraph node's annotations (description, graphAttributes...), kept on
        the IR node a leaf module makes."""
        kind = mod.kind
        if kind == "Sequential":
            if not mod.children:
                return x
            for child in mod.children:
                x = self.lower_module(child, x, child.loc, None)
            return x
        if kind == "ConcatTable":
            return [self.lower_module(c, x, c.loc, None) for c in mod.children]
        if kind == "Parallel":
            return self.lower_parallel(mod, x, loc)
        if kind == "gModule":
            return self.lower_gmodule(mod, x, loc)
        return self.lower_op(mod, x, loc, name, ann)

    def lower_op(self, mod: ModuleObj, x, loc: Loc, name: str | None, ann=None):
        op = REGISTRY[mod.kind]
        if op.passthrough:
            return x
        if op.table_input:
            if not isinstance(x, list) or not all(isinstance(v, Value) for v in x):
                raise SpecError(f"nn.{mod.kind} expects a table of tensors as input, got "
                                f"{_describe(x)}", loc, _made_here(mod, loc))
            data = list(x)
        else:
            if not isinstance(x, Value):
                hint = ""
                if isinstance(x, list):
                    hint = ("; to combine several nodes first, use e.g. nn.JoinTable(2)({a, b}) "
                            "or nn.CAddTable()({a, b})")
                raise SpecError(f"nn.{mod.kind} expects one tensor as input, got {_describe(x)}"
                                + hint, loc, _made_here(mod, loc))
            data = [x]
        label = self.label(mod, name)
        params = self.params_of(mod, op, label, loc)
        out = Value("tmp", name=name or label, loc=loc)
        aux = [Value("tmp", dtype="aux", name=f"{name or label}_{a}", loc=loc) for a in op.aux]
        node = Node(op.name, dict(mod.attrs), data + params, [out] + aux, loc, name, label,
                    {k: v for k, v in (ann or {}).items() if k != "name"})
        self.graph.nodes.append(node)
        return out

    def params_of(self, mod: ModuleObj, op, label: str, loc: Loc) -> list[Value]:
        if mod.serial not in self.param_values:
            slots = {}
            for i, spec in enumerate(op.active_params(mod.attrs)):
                v = Value("param", shape=tuple(spec.shape(mod.attrs)), name=f"{label}.{spec.name}",
                          loc=mod.loc)
                slots[spec.name] = v
                self.graph.params.append(Param(v, v.name, spec.init(mod.attrs), (mod.serial, i)))
            self.param_values[mod.serial] = slots
        return list(self.param_values[mod.serial].values())

    def lower_parallel(self, mod: ModuleObj, x, loc: Loc):
        # Torch: module i gets input:select(inputDimension, i); outputs joined on outputDimension.
        if not isinstance(x, Value):
            raise SpecError(f"nn.Parallel expects one tensor as input, got {_describe(x)}", loc)
        outs = []
        for i, child in enumerate(mod.children, 1):
            sel = self.internal_op("Select", {"dimension": mod.attrs["inputDimension"], "index": i},
                                   [x], child.loc)
            outs.append(self.lower_module(child, sel, child.loc, None))
        if not outs:
            raise SpecError("nn.Parallel has no modules", loc)
        return self.internal_op("JoinTable", {"dimension": mod.attrs["outputDimension"],
                                              "nInputDims": None}, outs, loc)

    def internal_op(self, kind, attrs, inputs, loc):
        out = Value("tmp", name=kind.lower(), loc=loc)
        self.graph.nodes.append(Node(kind, attrs, list(inputs), [out], loc, None, kind.lower()))
        return out

    # ---- nngraph -------------------------------------------------------------------

    def lower_gmodule(self, gm: ModuleObj, x, loc: Loc):
        n_in = len(gm.inputs)
        if n_in == 1:
            xs = [x]
        else:
            if not isinstance(x, list) or len(x) != n_in:
                raise SpecError(f"this gModule takes a table of {n_in} inputs, got {_describe(x)}",
                                loc, _made_here(gm, loc))
            xs = x
        order = _topo_order(gm.outputs)
        reached = set(order)
        for i, node in enumerate(gm.inputs, 1):
            if node not in reached:
                label = node.name or node.var_name
                what = f"{i} ('{label}')" if label else f"{i}"
                raise SpecError(f"graph input {what} is not used by any output of the gModule: "
                                "connect it, or remove it from the gModule's inputs",
                                node.loc, [(gm.loc, "the gModule is made here")])
        used_selects: dict[NodeObj, set] = {}
        for c in order:
            if c.select >= 0:
                used_selects.setdefault(c.inputs[0], set()).add(c.select)
        for node in order:
            if node.split_n and node.split_n > 0:
                used = used_selects.get(node, set())
                if len(used) < node.split_n:
                    n = node.split_n
                    missing = sorted(set(range(n)) - used)
                    outs = {c.select: c for c in node.split_outputs}
                    first = outs.get(missing[0])
                    labels = [f"{k + 1}" + (f" ('{outs[k].var_name}')" if k in outs
                                            and outs[k].var_name else "") for k in missing]
                    verb = "is" if len(missing) == 1 else "are"
                    raise SpecError(
                        f"{len(missing)} of the {n} outputs of split({n}) {verb} not used by the "
                        f"gModule's outputs (output{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(labels)}); nngraph requires every split output to be used",
                        first.loc if first is not None else node.loc,
                        [(node.loc, "the split node is made here")])
        env: dict[NodeObj, object] = {}
        for node, v in zip(gm.inputs, xs):
            env[node] = self.lower_module(node.module, v, node.loc, node.name or node.var_name,
                                          node.annotations)
        for node in sorted(order, key=lambda n: n.serial):  # spec order reads best
            if node in env:
                continue
            if not node.inputs:
                raise SpecError("this node has no inputs and is not an input of the gModule",
                                node.loc, [(gm.loc, "add it to the gModule's inputs here")])
            ins = [env[i] for i in node.inputs]
            if node.select >= 0:
                parent = node.inputs[0]
                val = ins[0]
                n = parent.split_n
                if not isinstance(val, list) or len(val) != n:
                    raise SpecError(f"split({n}) needs a node whose output is a table of {n}, got "
                                    f"{_describe(val)}", node.loc)
                env[node] = val[node.select]
                continue
            arg = ins[0] if len(ins) == 1 else ins
            env[node] = self.lower_module(node.module, arg, node.loc, node.name or node.var_name,
                                          node.annotations)
        outs = [env[o] for o in gm.outputs]
        return outs[0] if len(outs) == 1 else outs


def _topo_order(outputs: list[NodeObj]) -> list[NodeObj]:
    """Post-order DFS from the outputs, inputs left to right (nngraph's order), iterative."""
    order, seen = [], set()
    stack = [(n, False) for n in reversed(outputs)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack.extend((i, False) for i in reversed(node.inputs) if i not in seen)
    return order


def _flatten(s):
    if isinstance(s, Value):
        return [s]
    return [v for x in s for v in _flatten(x)]


def _describe(s) -> str:
    if isinstance(s, Value):
        return "one tensor"
    return f"a table of {len(s)}"


def _made_here(mod: ModuleObj, loc: Loc):
    return [(mod.loc, f"nn.{mod.kind} is made here")] if mod.loc != loc else []


def lower(top: ModuleObj) -> Graph:
    return Lowerer().lower_top(top)
