"""Lower the evaluated spec (ModuleObj/NodeObj) to the IR: containers and nested gModules
are inlined, each leaf module becomes one IR node, each module instance owns one set of
parameter Values however many places it is used (so shared modules share weights).

A "struct" is what flows along an nngraph edge: a Value, or a list of structs (a table).
"""
from __future__ import annotations

import math

from ..errors import Loc, OptionError, SpecError, did_you_mean
from ..ir.graph import Graph, Node, Param, Value, batch_factor, batch_times, is_symbolic, shape_str
from ..ops import REGISTRY
from ..ops.shape_rules import hint, node_shapes
from .nn import ModuleObj, NodeObj, resolve


class NeedShape(Exception):
    """A module needs its input's shape to decide its structure (SplitTable's table size)."""

    def __init__(self, loc):
        self.loc = loc


class Lowerer:
    def __init__(self, shapes: dict | None = None, inferred: dict | None = None):
        self.shapes = dict(shapes or {})  # input name -> shape tuple, or a list (a table input)
        self.inferred = inferred or {}  # input name -> the node its shape was inferred from
        self.graph = Graph()
        self.slot_values: dict[tuple, Value] = {}  # (module serial, slot) -> its Value
        self.labels: dict[int, str] = {}  # module serial -> readable label
        self.taken_labels: set[str] = set()  # its values (a set: one lookup per new label)
        self.label_k: dict[str, int] = {}  # name -> the suffix of its last label
        self.kind_count: dict[str, int] = {}

    # ---- top level ---------------------------------------------------------------

    def lower_top(self, top: ModuleObj) -> Graph:
        g = self.graph
        if not top.bound:
            raise _unbound(top, top.loc)
        if top.kind == "gModule":
            names = [(n.name or f"input{i}", n.loc) for i, n in enumerate(top.inputs, 1)]
        else:
            names = [("input1", top.loc)]
        unknown = set(self.shapes) - {n for n, _ in names}
        if unknown:
            name = sorted(unknown)[0]
            listed = ", ".join(n for n, _ in names)
            raise OptionError(f"--shape {name}: the model has no input named '{name}' (its inputs: "
                            f"{listed})" + did_you_mean(name, [n for n, _ in names]))
        structs = [self.input_struct(name, self.shapes.get(name), loc) for name, loc in names]
        g.input_struct = [_positions(s, g.inputs) for s in structs]
        if top.kind == "gModule":
            out = self.lower_gmodule(top, structs[0] if len(structs) == 1 else structs, top.loc)
            outs = out if len(top.outputs) > 1 else [out]
            out_names = [o.name for o in top.outputs]
        else:
            outs = [self.lower_module(top, structs[0], top.loc, None)]
            out_names = [None]
        if top.kind == "gModule":
            _aliases(g.input_aliases, [n.var_name for n in top.inputs], [n for n, _ in names])
            _aliases(g.output_aliases, [n.var_name for n in top.outputs],
                     [n.name or f"output{i}" for i, n in enumerate(top.outputs, 1)])
        spec_named = {v for n in g.nodes if n.name for v in n.outputs}
        for i, (o, name) in enumerate(zip(outs, out_names), 1):
            base = name or f"output{i}"  # outputs are named by annotation or position
            for k, v in enumerate(_flatten(o), 1):
                label = _unique(base if isinstance(o, Value) else f"{base}[{k}]", g.output_names)
                g.output_names.append(label)
                # the variable in the generated code: the spec's name for it (next_c), else
                # the output's
                if v.kind == "tmp" and v not in spec_named and all(v is not w for w in g.outputs):
                    v.name = label
            g.output_struct.append(_indices(o, g.outputs))
        for p in g.params + g.buffers:
            if p.init[0] == "same_as":  # `copy`/`clone`: the source's values, by name
                p.init = self.copied_init(p.init[1])
        g.params.sort(key=lambda p: p.order)
        g.buffers.sort(key=lambda p: p.order)
        return g

    def input_struct(self, name, shape, loc):
        """The graph input(s) for one gModule input: a Value, or a table of them when its
        --shape is a table ({Bx3,Bx4})."""
        if isinstance(shape, list):
            return [self.input_struct(f"{name}[{i}]", s, loc) for i, s in enumerate(shape, 1)]
        v = Value("input", shape=shape, name=name, loc=loc)
        self.graph.inputs.append(v)
        return v

    # ---- modules -----------------------------------------------------------------

    def label(self, mod: ModuleObj, name: str | None) -> str:
        """The module's name in PARAMETERS: its node's annotate name or Lua variable,
        else kind + count (linear1, linear2, ...); unique."""
        if mod.serial not in self.labels:
            if not name:  # by class: linear1, or proj1 for an instance of a torch.class nn.Proj
                kind = mod.typename.rsplit(".", 1)[-1]
                k = self.kind_count[kind] = self.kind_count.get(kind, 0) + 1
                name = f"{kind.lower()}{k}"
            k = self.label_k.get(name, 1)  # labels are only added: start at the last one
            label = name if k == 1 else f"{name}_{k}"
            while label in self.taken_labels:
                k += 1
                label = f"{name}_{k}"
            self.labels[mod.serial] = label
            self.taken_labels.add(label)
            self.label_k[name] = k
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
        if kind == "ParallelTable":  # module i gets input[i]
            if not isinstance(x, list) or len(x) != len(mod.children):
                raise SpecError(f"nn.ParallelTable with {len(mod.children)} modules expects a table "
                                f"of {len(mod.children)} inputs, got {_describe(x)}", loc, _made_here(mod, loc))
            return [self.lower_module(c, xi, c.loc, None) for c, xi in zip(mod.children, x)]
        if kind == "Concat":  # every module gets x; outputs joined along `dimension`
            outs = [self.lower_module(c, x, c.loc, None) for c in mod.children]
            if not outs:
                raise SpecError("nn.Concat has no modules", loc)
            return self.internal_op("JoinTable", {"dimension": mod.attrs["dimension"],
                                                  "nInputDims": None}, outs, loc)
        if kind == "Parallel":
            return self.lower_parallel(mod, x, loc)
        if kind == "Bottle":
            return self.lower_bottle(mod, x, loc)
        if kind == "gModule":
            if not mod.bound:
                raise _unbound(mod, loc)
            return self.lower_gmodule(mod, x, loc)
        if kind not in REGISTRY or not mod.bound:
            raise _unbound(mod, loc)
        return self.lower_op(mod, x, loc, name, ann)

    def lower_op(self, mod: ModuleObj, x, loc: Loc, name: str | None, ann=None):
        op = REGISTRY[mod.kind]
        if op.passthrough:
            return x
        if op.structural is not None:
            try:
                return op.structural(mod.attrs, x)
            except ValueError as e:
                raise SpecError(f"nn.{mod.kind}: {e}", loc, _made_here(mod, loc)) from None
        if op.nested_input and isinstance(x, list):
            x = _flatten(x)
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
        for k, v in enumerate(data):  # int_inputs names slots, or positions in a table
            if k in op.int_inputs or (not op.table_input and op.inputs[k] in op.int_inputs):
                self.require_indices(v, mod, loc)
        label = self.label(mod, name)
        params = self.params_of(mod, op, label, loc)
        node = Node(op.name, dict(mod.attrs), data + params, [], loc, name, label,
                    {k: v for k, v in (ann or {}).items() if k != "name"})
        try:
            shapes = node_shapes(node)
        except SpecError as e:
            raise self.inferred_input_error(node, e) from None
        if op.table_output and shapes is None:
            raise NeedShape(loc)
        base = name or label
        if op.table_output:
            outs = [Value("tmp", shape=s, name=f"{base}_{i}", loc=loc) for i, s in enumerate(shapes, 1)]
        else:
            outs = [Value("tmp", shape=shapes[0] if shapes else None, name=base, loc=loc)]
        if op.view and data and all(v.dtype == "index" for v in data):
            for v in outs:  # slicing or reshaping indices gives indices (no gradient)
                v.dtype = "index"
        aux = [Value("tmp", dtype="aux", name=f"{base}_{a}", loc=loc) for a in op.aux]
        node.outputs = outs + aux
        self.graph.nodes.append(node)
        return outs if op.table_output else outs[0]

    def require_indices(self, v: Value, mod: ModuleObj, loc: Loc):
        chain = [v]  # through views (Select, Narrow, View...) back to a graph input
        while chain[-1].kind == "tmp" and chain[-1].dtype != "index":
            node = next((n for n in reversed(self.graph.nodes) if chain[-1] in n.outputs), None)
            data = node.inputs[: len(node.inputs) - len(REGISTRY[node.op].active_params(node.attrs))] if node else []
            if node is None or not REGISTRY[node.op].view or len(data) != 1:
                break
            chain.append(data[0])
        if chain[-1].kind == "input" or chain[-1].dtype == "index":
            for x in chain:
                x.dtype = "index"
        elif v.dtype != "index":
            raise SpecError(f"nn.{mod.kind} takes integer indices, but its input is computed "
                            "(floats); feed it a graph input", loc, _made_here(mod, loc))

    def params_of(self, mod: ModuleObj, op, label: str, loc: Loc) -> list[Value]:
        return [self.param_value(mod, spec, label) for spec in op.active_params(mod.attrs)]

    def param_value(self, mod: ModuleObj, spec, label: str) -> Value:
        """The Value of one parameter slot: its own, or (tied by share) its owner's."""
        root, slot = resolve(mod, spec.name)
        if root is not mod:
            rop = REGISTRY.get(root.kind)
            rspec = next((p for p in rop.active_params(root.attrs) if p.name == slot), None) \
                if rop is not None and root.bound else None
            where = mod.share_loc.get(spec.name, mod.loc)
            if rspec is None:
                raise SpecError(f"{mod!r}'s {spec.name} is tied to the {slot} of {root!r}, which "
                                "has none (was it removed after the tie?)", where)
            v = self.param_value(root, rspec, self.label(root, None))
            want = tuple(spec.shape(mod.attrs))
            if tuple(v.shape) != want:
                raise SpecError(f"{mod!r}'s {spec.name} ({shape_str(want)}) is tied to {v.name} "
                                f"({shape_str(v.shape)}): the shapes differ", where)
            return v
        key = (mod.serial, spec.name)
        if key not in self.slot_values:
            specs = REGISTRY[mod.kind].active_params(mod.attrs)
            i = next(k for k, p in enumerate(specs) if p.name == spec.name)
            kind = "param" if spec.trainable else "buffer"
            shape = tuple(spec.shape(mod.attrs))
            if any(not isinstance(d, int) or d < 1 for d in shape):
                raise SpecError(f"nn.{mod.kind}: its {spec.name} would have shape "
                                f"{'x'.join(map(str, shape))}; sizes must be at least 1", mod.loc)
            v = Value(kind, shape=shape, name=f"{label}.{spec.name}", loc=mod.loc)
            init = mod.inits.get(spec.name) or spec.init(mod.attrs)
            p = Param(v, v.name, init, (mod.serial, i))
            (self.graph.params if spec.trainable else self.graph.buffers).append(p)
            self.slot_values[key] = v
        return self.slot_values[key]

    def copied_init(self, source, depth=0) -> tuple:
        """The init of a parameter whose values are copied from `source` (module, slot):
        ('same_as', name) when that parameter is in the model, else the source's own init."""
        mod, slot = resolve(*source)
        v = self.slot_values.get((mod.serial, slot))
        if v is not None:
            p = next(p for p in self.graph.params + self.graph.buffers if p.value is v)
            if p.init[0] != "same_as":
                return ("same_as", p.name)
        op = REGISTRY.get(mod.kind)
        spec = next((s for s in op.active_params(mod.attrs) if s.name == slot), None) if op else None
        init = mod.inits.get(slot) or (spec.init(mod.attrs) if spec else ("const", 0.0))
        if init[0] == "same_as" and depth < 100:
            return self.copied_init(init[1], depth + 1)
        return init

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

    def lower_bottle(self, mod: ModuleObj, x, loc: Loc):
        """Torch's Bottle: an input of more than nInputDim dims has its leading dims folded
        into one (the batch of the inner module), the module runs, and the output's first
        dim is unfolded again. Both folds are Views (no copies)."""
        if not isinstance(x, Value):
            raise SpecError(f"nn.Bottle expects one tensor as input, got {_describe(x)}", loc)
        if x.shape is None:
            raise NeedShape(loc)
        (inner,) = mod.children
        n_in = mod.attrs["nInputDim"]
        n_out = mod.attrs["nOutputDim"] or n_in
        folds = len(x.shape) - n_in + 1  # the leading dims that become one
        if folds <= 1:
            return self.lower_module(inner, x, inner.loc, None)
        lead, rest = x.shape[:folds], x.shape[folds:]
        # View(sizes of the rest):setNumInputDims(n_in - 1): the leading dims are the batch
        flat = self.internal_op("View", {"sizes": tuple(rest), "numInputDims": n_in - 1}, [x], loc)
        y = self.lower_module(inner, flat, inner.loc, None)
        if not isinstance(y, Value) or len(y.shape or ()) != n_out:
            got = f"{len(y.shape)}-D ({shape_str(y.shape)})" if isinstance(y, Value) else _describe(y)
            raise SpecError(f"nn.Bottle: its module gives a {got} output for the folded input "
                            f"{shape_str(flat.shape)}; expected {n_out}-D (nOutputDim)", loc,
                            _made_here(mod, loc))
        first = _unfold(lead, y.shape[0])
        if first is None:
            raise SpecError(f"nn.Bottle: its module's output {shape_str(y.shape)} does not keep "
                            f"the {shape_str(flat.shape[:1])} rows of its folded input "
                            f"{shape_str(flat.shape)}, so it cannot be unfolded to "
                            f"{shape_str(lead)}", loc, _made_here(mod, loc))
        target = tuple(lead[:-1]) + (first,) + tuple(y.shape[1:])
        # the one symbolic dim (if any) becomes View's -1, which absorbs the batch again
        sizes = tuple(-1 if is_symbolic(d) else d for d in target)
        out = self.internal_op("View", {"sizes": sizes, "numInputDims": None}, [y], loc)
        assert out.shape == target, (out.shape, target)
        return out

    def inferred_input_error(self, node: Node, err: SpecError) -> SpecError:
        """A shape error at a node that reads a graph input whose shape nobody gave: the shape
        was taken from another module reading it (a Linear's input size, say), and when this
        node wants another shape, that module is as likely wrong: say so at both."""
        op = REGISTRY[node.op]
        for slot, v in enumerate(node.inputs):
            source = self.inferred.get(v.name) if v.kind == "input" else None
            if source is None or op.input_hint is None:
                continue
            shapes = [i.shape for i in node.inputs]
            want = op.input_hint(node.attrs, slot, shapes[:slot] + [None] + shapes[slot + 1:])
            if want is not None and tuple(want) != tuple(v.shape):
                return SpecError(
                    f"input '{v.name}' has no --shape, and the modules reading it disagree: "
                    f"nn.{source.op} here reads it as {shape_str(v.shape)}, but nn.{node.op} "
                    f"needs {shape_str(want)}; fix the module's size, or give --shape "
                    f"{v.name}=...", source.loc,
                    [(node.loc, f"nn.{node.op} reads '{v.name}' here: {err.message}")])
        return err

    def internal_op(self, kind, attrs, inputs, loc):
        node = Node(kind, attrs, list(inputs), [], loc, None, kind.lower())
        shapes = node_shapes(node)
        node.outputs = [Value("tmp", shape=shapes[0] if shapes else None, name=kind.lower(), loc=loc)]
        self.graph.nodes.append(node)
        return node.outputs[0]

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
                                            and outs[k].var_name else "") for k in missing[:10]]
                    if len(missing) > 10:
                        labels.append(f"... {len(missing) - 10} more")
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


def _unique(name: str, taken: list) -> str:
    label, k = name, 1
    while label in taken:
        k += 1
        label = f"{name}_{k}"
    return label


def _positions(s, flat: list):
    """The struct with each Value replaced by its position in `flat`."""
    if isinstance(s, Value):
        return next(i for i, v in enumerate(flat) if v is s)
    return [_positions(x, flat) for x in s]


def _indices(s, flat: list):
    """The struct with each Value replaced by its position in `flat`, where it is appended
    (a value returned twice is two outputs: their gradients add up)."""
    if isinstance(s, Value):
        flat.append(s)
        return len(flat) - 1
    return [_indices(x, flat) for x in s]


def _describe(s) -> str:
    if isinstance(s, Value):
        return "one tensor"
    return f"a table of {len(s)}"


def _unbound(mod: ModuleObj, loc: Loc) -> SpecError:
    """A torch.class instance graphc cannot lower: no built-in module behind it, or its
    __init never bound the built-in parent's arguments."""
    if not mod.bound:
        return SpecError(f"{mod!r} derives from nn.{mod.kind} but its __init never called "
                         f"parent.__init(self, ...) with nn.{mod.kind}'s arguments", loc,
                         _made_here(mod, loc))
    return SpecError(f"{mod!r} is a class derived from nn.{mod.kind}, which computes nothing "
                     "graphc can compile: derive it from an nn module or container (nn.gModule, "
                     "nn.Sequential, nn.Linear, ...), or compile the graph one of its methods "
                     "builds (--entry \"obj:method(...)\")", loc, _made_here(mod, loc))


def _made_here(mod: ModuleObj, loc: Loc):
    return [(mod.loc, f"nn.{mod.kind} is made here")] if mod.loc != loc else []


def lower(top: ModuleObj, shapes: dict | None = None) -> Graph:
    """Lower with the given input shapes; inputs without one get the shape their consumers
    require (found by lowering once, then again with the hints)."""
    shapes = dict(shapes or {})
    hints: dict = {}
    sources: dict = {}  # input name -> the node its hinted shape came from
    while True:
        lw = Lowerer({**hints, **shapes}, sources)
        pending = None
        try:
            g = lw.lower_top(top)
        except NeedShape as e:
            g, pending = lw.graph, e
        unknown = [v for v in g.inputs if v.shape is None]
        if not unknown and pending is None:
            return g
        uses = g.consumers()
        new = {v.name: h for v in unknown if v.name not in hints
               and (h := hint(v, uses)) is not None}
        if not new:
            v = unknown[0] if unknown else None
            if v is None:
                raise SpecError("this module needs its input's shape to build its output table; "
                                "give the graph inputs' shapes with --shape NAME=Bx...", pending.loc)
            raise SpecError(f"cannot infer the shape of input '{v.name}'; give it with "
                            f"--shape {v.name}=Bx... (B is the free batch dimension)", v.loc)
        hints.update((name, h) for name, (h, _) in new.items())
        sources.update((name, node) for name, (_, node) in new.items())


def _aliases(table: dict, var_names, names) -> None:
    """Lua variable names of a gModule's inputs or outputs, as other names for them (a name
    that is some input's or output's own name, or two variables' name, is left out)."""
    seen = {}
    for k, v in enumerate(var_names):
        if v and v not in names:
            seen.setdefault(v, []).append(k)
    table.update({v: names[ks[0]] for v, ks in seen.items() if len(ks) == 1})


def _unfold(lead, rows):
    """The last of `lead`'s dims once `rows` (the module's output rows for prod(lead)
    input rows) is split back into lead[:-1] x that; None when it does not divide."""
    outer = lead[:-1]
    k_outer = math.prod(batch_factor(d) or d for d in outer)
    symbolic_outer = any(is_symbolic(d) for d in outer)
    k_rows = batch_factor(rows) or rows
    if k_rows % k_outer or (symbolic_outer and not is_symbolic(rows)):
        return None
    k = k_rows // k_outer
    return batch_times(k) if is_symbolic(rows) and not symbolic_outer else k
