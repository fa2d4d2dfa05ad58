"""IR -> a Python/numpy module (templates/numpy/module.py.j2).

Each op's forward and backward lines come from its OpDef templates; this file only names
values, decides what the forward must keep for the backward, and lays the lines out.
"""
from __future__ import annotations

import functools
import hashlib
import types

import jinja2

from ..ir.graph import Graph, Node, Value, batch_factor, is_symbolic
from ..ops import REGISTRY
from ..passes.memory import elements_per_row
from ..version import __version__
from .common import CodegenOptions, Namer, loc_comment, pyshape, pyshape_from, pyshape_of, pystruct
from .templates import bytecode_cache, environment

_SNIPPETS: dict[str, str] = {}  # template name -> an op snippet's text
SCRATCH = "_scratch"  # generated names never start with "_" (common.mangle)


INFIX = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "matmul": "@"}


@jinja2.pass_context
def binop(ctx, fn: str, *args) -> str:
    """Template helper: `a + b + c` (left to right), or, when the context's `out` is set, the
    same as numpy calls whose last writes into it: np.add(np.add(a, b), c, out=OUT)."""
    out = ctx.get("out")
    if out is None:
        return f" {INFIX[fn]} ".join(map(str, args))
    text = str(args[0])
    for k, a in enumerate(args[1:]):
        last = k == len(args) - 2
        text = f"np.{fn}({text}, {a}{', out=' + str(out) if last else ''})"
    return text


@jinja2.pass_context
def ufunc(ctx, fn: str, *args) -> str:
    """Template helper: np.fn(args), with out= when the context's `out` is set."""
    out = ctx.get("out")
    return f"np.{fn}({', '.join(map(str, args))}{'' if out is None else ', out=' + str(out)})"


@functools.lru_cache(maxsize=None)
def compiled_template(text: str):
    """Op snippets are compiled once per process and cached on disk like the file templates
    (compiling dominated compile time). They keep the newline after a block tag
    ({% endif %}\n ends a statement); blank lines are dropped."""
    name = "snippet-" + hashlib.sha256(text.encode()).hexdigest()
    _SNIPPETS[name] = text
    return _snippet_environment().get_template(name)


@functools.lru_cache(maxsize=None)
def _snippet_environment():
    return environment().overlay(trim_blocks=False, lstrip_blocks=False,
                                 loader=jinja2.FunctionLoader(_SNIPPETS.get),
                                 bytecode_cache=bytecode_cache("snippets", False))


class NumpyBackend:
    def __init__(self, graph: Graph, options: CodegenOptions):
        self.g = graph
        self.opts = options
        self.env = environment()
        self.n = Namer.for_graph(graph)

    # ---- per-node rendering --------------------------------------------------------

    def context(self, node: Node, readable=None) -> dict:
        """The template context of `node`. readable: in a backward, the forward values its
        grad node reads (the IR's word); any other value's name fails to render."""
        op = REGISTRY[node.op]
        name = self.n if readable is None else (
            lambda v: self.n(v) if v in readable else _Unread(node.op, v.name))
        n_params = len(op.active_params(node.attrs))
        data = node.inputs[: len(node.inputs) - n_params]
        pvals = dict(zip([p.name for p in op.active_params(node.attrs)], node.inputs[len(data):]))
        in_shapes = [v.shape for v in data]
        ctx = {
            "a": node.attrs, "in_shapes": in_shapes, "out_shape": node.outputs[0].shape,
            "rank": len(in_shapes[0]) if in_shapes else 0,
            # elements of the output per batch row (B counted as 1): size-dependent choices
            "elements": elements_per_row(node.outputs[0].shape or ()),
            "y": name(node.outputs[0]),
            "ys": [name(v) for v in node.outputs[: len(node.outputs) - len(op.aux)]],
            "aux": types.SimpleNamespace(**{a: name(v) for a, v in
                                            zip(op.aux, node.outputs[len(node.outputs) - len(op.aux):])}),
            "d": types.SimpleNamespace(**(op.derive(node.attrs, in_shapes) if op.derive else {})),
            "out": None, "binop": binop, "ufunc": ufunc,
        }
        for spec in op.params:
            ctx[spec.name] = name(pvals[spec.name]) if spec.name in pvals else None
        if op.table_input:
            ctx["xs"] = [name(v) for v in data]
            if readable is None:  # forward: each input viewed with input 1's shape (as1 below)
                ctx["xs1"] = [x if s == in_shapes[0] else f"{x}.reshape({pyshape(in_shapes[0])})"
                              for x, s in zip(ctx["xs"], in_shapes)]
        else:
            for slot, v in zip(op.inputs, data):
                ctx[slot] = name(v)

        def as1(name, i):  # input i viewed with input 1's shape (Torch's nElement rule)
            return name if in_shapes[i] == in_shapes[0] else f"{name}.reshape({pyshape(in_shapes[0])})"

        def like(expr, i):  # an input-1-shaped expression viewed with input i's shape
            if in_shapes[i] == in_shapes[0]:
                return expr
            return f"({expr}).reshape({pyshape(in_shapes[i])})"
        ctx["as1"], ctx["like"] = as1, like
        ctx["sized"] = pyshape_from
        return ctx

    def render(self, template: str, ctx: dict) -> list[str]:
        text = compiled_template(template).render(ctx)
        return [line for line in text.split("\n") if line.strip()]

    def scratch(self, v: Value):
        """The scratch array the memory plan gives v (`_scratch[k]`), else None."""
        if self.g.memory is None or v not in self.g.memory.scratch:
            return None
        return f"{SCRATCH}[{self.g.memory.scratch[v][1]}]"

    def forward_lines(self, node: Node) -> list[str]:
        ctx = self.context(node)
        ctx["out"] = self.scratch(node.outputs[0])
        return self.render(REGISTRY[node.op].forward, ctx)

    def backward_lines(self, gnode: Node, param_grad: dict[Value, str], first=frozenset()) -> list[str]:
        """The lines of one backward step. param_grad: the gradient buffer view each
        parameter gradient adds to; first: those that are their parameter's first
        contribution in this backward, written instead when the buffer is pending zero."""
        if gnode.op == "add":
            out, names = self.n(gnode.outputs[0]), [self.n(v) for v in gnode.inputs]
            scratch = self.scratch(gnode.outputs[0])
            if scratch is None:
                return [f"{out} = {' + '.join(names)}"]
            return ([f"{out} = np.add({names[0]}, {names[1]}, out={scratch})"] +
                    [f"{out} += {name}" for name in names[2:]])
        if gnode.op == "slices":  # gradients of slices of one value (passes/simplify.py)
            out, a = self.n(gnode.outputs[0]), gnode.attrs
            if a["tiles"]:
                join = "stack" if a["picks"] else "concatenate"
                scratch = self.scratch(gnode.outputs[0])
                into = "" if scratch is None else f", out={scratch}"
                return [f"{out} = np.{join}([{', '.join(self.n(v) for v in gnode.inputs)}], {a['axis']}{into})"]
            first = self.n(gnode.inputs[0])
            shape, axis = gnode.outputs[0].shape, a["axis"]
            if a["picks"]:  # put the picked axis back into a slice's shape
                shape = f"{first}.shape[:{axis}] + ({shape[axis]},) + {first}.shape[{axis}:]"
            else:
                shape = pyshape_of(first, shape)
            lines = [f"{out} = np.zeros({shape}, {first}.dtype)"]
            for v, (start, stop) in zip(gnode.inputs, a["ranges"]):
                index = start if a["picks"] else f"{start}:{stop}"
                lines.append(f"{out}[{':, ' * axis}{index}] += {self.n(v)}")
            return lines
        fwd: Node = gnode.attrs["fwd"]
        op = REGISTRY[fwd.op]
        n_reads = gnode.attrs["reads"]
        ctx = self.context(fwd, set(gnode.inputs[len(gnode.inputs) - n_reads:]))
        given = iter(gnode.inputs)  # gradients of the outputs that have one ('has')
        ctx["gys"] = [self.n(next(given)) if h else None for h in gnode.attrs["has"]]
        ctx["gy"] = ctx["gys"][0]
        ctx["xshape"] = self._input_shape_text(fwd, ctx["gys"])
        needs = gnode.attrs["needs"]
        outs = iter(gnode.outputs)
        targets = [next(outs) if need else None for need in needs]
        slots = op.slots(fwd.attrs, len(fwd.inputs))
        lines, accumulate = [], []
        names = []
        for t in targets:
            if t is None:
                names.append(None)
            elif t in param_grad and op.backward_stmt is None:
                names.append(param_grad[t])  # dict form: `G += expr` below, no temporary
            else:
                names.append(self.n(t))
                if t in param_grad:
                    added = [f"{param_grad[t]} += {self.n(t)}"]
                    accumulate += ([_Either([f"{param_grad[t]}[...] = {self.n(t)}"], added)]
                                   if t in first else added)
        if op.backward_stmt is not None:
            ctx["g"] = self._g_namespace(op, slots, names)
            # an op with one gradient statement set writes it into `out` (OpDef.out)
            ctx["out"] = next((self.scratch(t) for t in targets if t is not None), None)
            lines = self.render(op.backward_stmt, ctx)
        else:
            for k, (slot, name, t) in enumerate(zip(slots, names, targets)):
                if name is None:
                    continue
                key, idx = slot
                scratch = self.scratch(t)
                expr = compiled_template(op.backward[key]).render(dict(ctx, i=idx, out=scratch)).strip()
                if t in param_grad and scratch is not None:  # made in scratch, then added
                    added = [expr, f"{name} += {scratch}"]
                else:
                    added = [f"{name} {'+=' if t in param_grad else '='} {expr}"]
                if t in first:  # written into the buffer: with out= where the op can
                    template = compiled_template(op.backward[key])
                    write = (template.render(dict(ctx, i=idx, out=name)).strip()
                             if key in op.out_slots(fwd.attrs, [v.shape for v in self._data(fwd)])
                             else f"{name}[...] = {expr}")
                    added = [_Either([write], added)]
                lines += added
        return _unless_zeroed(lines + accumulate)

    def _input_shape_text(self, fwd: Node, gys):
        """xshape(i) in backward templates: Python for data input i's shape, its batch size
        taken from a given output gradient, so the backward need not keep the input for it."""
        ys = [v for v in fwd.outputs if v.dtype != "aux"]
        source = next(((g, y.shape) for g, y in zip(gys, ys)
                       if g is not None and any(is_symbolic(d) for d in y.shape)), None)

        def xshape(i, add_batch=False):  # add_batch: as x[None].shape
            shape = (1,) * add_batch + tuple(fwd.inputs[i].shape)
            if not any(is_symbolic(d) for d in shape):
                return pyshape(shape)
            assert source is not None, f"nn.{fwd.op}: no output gradient holds the batch size"
            return pyshape_from(shape, *source)
        return xshape

    @staticmethod
    def _data(node: Node) -> list[Value]:
        return node.inputs[: len(node.inputs) - len(REGISTRY[node.op].active_params(node.attrs))]

    def _g_namespace(self, op, slots, names):
        g = {p.name: None for p in op.params}
        if op.table_input:
            g["xs"] = [None] * sum(1 for k, _ in slots if k == "xs")
        for (key, idx), name in zip(slots, names):
            if key == "xs":
                g["xs"][idx] = name
            else:
                g[key] = name
        for s in op.inputs:
            g.setdefault(s, None)
        return types.SimpleNamespace(**g)

    # ---- the module ------------------------------------------------------------------

    def generate(self, sequence_parts=None) -> str:
        """The module. sequence_parts: (prefix graph, rest graph, rest inputs, prefix
        inputs), a step split by passes/unroll.split_sequence_prefix: two more classes."""
        g = self.g
        parts, rest_inputs, prefix_inputs = [], None, None
        if sequence_parts is not None:
            prefix, rest, rest_inputs, prefix_inputs = sequence_parts
            parts = [("_SequencePrefix", NumpyBackend(prefix, self.opts).class_context(),
                      "Sequence's first part of Model: what does not depend on the state, "
                      "run once over all steps."),
                     ("_SequenceRest", NumpyBackend(rest, self.opts).class_context(),
                      "Sequence's per-step part of Model, given _SequencePrefix's outputs.")]
        m = self.class_context()
        return self.env.get_template("numpy/module.py.j2").render(
            version=__version__, meta=self.opts, m=m, **m, scratch_name=SCRATCH,
            input_struct=pystruct(g.input_struct), output_struct=pystruct(g.output_struct),
            parts=parts, rest_inputs=rest_inputs, prefix_inputs=prefix_inputs)

    def class_context(self) -> dict:
        """What the template needs for one Module class of this graph."""
        g = self.g
        fwd_blocks = [(loc_comment(node), self.forward_lines(node)) for node in g.nodes]
        # one gradient-buffer view per parameter (a shared module accumulates into it twice)
        grad_view = {}
        for i, _ in g.param_grads:
            if i not in grad_view:
                grad_view[i] = self.n.fresh("g_" + self.n.names[g.params[i].value][2:])
        param_grad = {v: grad_view[i] for i, v in g.param_grads}
        for v in g.grad_outputs:  # the given gradients get the plain names (grad_output1...)
            self.n(v)
        # lazy zeroGradParameters (graphc_runtime Module): each parameter's first gradient
        # contribution in backward order writes the buffer when it is pending zero
        first, seen = set(), set()
        for i, v in g.param_grads:  # in backward order
            if i not in seen:
                first.add(v)
                seen.add(i)
        unwritten = [i for i in range(len(g.params)) if i not in seen]
        bwd_blocks = []
        if g.params and unwritten:
            lines = ([f"self._grads[{unwritten[0]}][...] = 0"] if len(unwritten) == 1 else
                     [f"for i in {tuple(unwritten)}:", "    self._grads[i][...] = 0"])
            bwd_blocks.append(("gradients this backward does not write: zero when pending",
                               _unless_zeroed([_Either(lines, [])])))
        for gnode in g.grad_nodes:
            comment = (loc_comment(gnode.attrs["fwd"]) + " (backward)" if gnode.op == "grad" else
                       "gradient sum" if gnode.op == "add" else "gradients of slices, joined")
            bwd_blocks.append((comment, self.backward_lines(gnode, param_grad, first)))
        # what the backward reads of the forward, as its grad nodes list it (OpDef.reads)
        read = {v for n in g.grad_nodes if n.op == "grad"
                for v in n.inputs[len(n.inputs) - n.attrs["reads"]:]}
        # what the forward keeps for the backward: the node outputs the backward reads
        saved = [self.n(v) for node in g.nodes for v in node.outputs if v in read]
        input_grads = []
        for v, gv in zip(g.inputs, g.input_grads):
            if gv is not None:
                input_grads.append(self.n(gv))
            elif v.dtype == "float" and v.name not in self.opts.no_grad:
                input_grads.append(f"np.zeros_like({self.n(v)})")
            else:
                input_grads.append("None")
        scratch = {"forward": [], "backward": []} if g.memory is None else g.memory.slots
        grad_batch = self._batch_size_expr(list(zip(g.outputs, g.grad_outputs)) + list(zip(g.inputs, g.inputs)))
        # inputs _backward reads: for its grad nodes, np.zeros_like, the scratch batch size
        zeros_like = {v for v, gv in zip(g.inputs, g.input_grads)
                      if gv is None and v.dtype == "float" and v.name not in self.opts.no_grad}
        batch_from = self._batch_size_source(list(zip(g.outputs, g.grad_outputs)) + list(zip(g.inputs, g.inputs)))
        return dict(
            g=g, inputs=[(self.n(v), v) for v in g.inputs],
            outputs=[(self.n(v), v) for v in g.outputs],
            params=[(self.n(p.value), p) for p in g.params],
            buffers=[(self.n(p.value), p) for p in g.buffers],
            grad_outputs=[self.n(v) for v in g.grad_outputs],
            fwd_blocks=fwd_blocks, bwd_blocks=bwd_blocks, saved=saved,
            used_params=[p for p in g.params if p.value in read],
            grad_views=[(grad_view[i], i) for i in sorted(grad_view)],
            input_grads=input_grads, scratch=scratch,
            batch_size=self._batch_size_expr(list(zip(g.inputs, g.inputs))),
            # the backward's comes from a given gradient if an output has B (so that it
            # need not keep an input it does not read), else from an input (a loss)
            grad_batch_size=grad_batch,
            backward_reads=tuple(v in read or v in zeros_like or (v is batch_from and bool(scratch["backward"]))
                                 for v in g.inputs),
        )

    def _batch_size_expr(self, candidates) -> str:
        """The batch size at run time: from the first (value, array holding it or its
        gradient) whose value has a symbolic dim (B, or B*k: its size over k); "0" when none
        has (nothing has B then)."""
        for v, array in candidates:
            for k, d in enumerate(v.shape or ()):
                if is_symbolic(d):
                    factor = batch_factor(d)
                    return f"{self.n(array)}.shape[{k}]" + (f" // {factor}" if factor > 1 else "")
        return "0"

    @staticmethod
    def _batch_size_source(candidates):
        """The array _batch_size_expr reads (None: none)."""
        return next((array for v, array in candidates if any(is_symbolic(d) for d in v.shape or ())), None)


class _Either:
    """Lines for a gradient buffer pending zero (`_zeroed`: written) or not (added)."""

    def __init__(self, written: list[str], added: list[str]):
        self.written, self.added = written, added


def _unless_zeroed(items: list) -> list[str]:
    """Lines and _Either items as lines; consecutive _Either items share one if/else."""
    lines, group = [], []
    for item in items + [None]:
        if isinstance(item, _Either):
            group.append(item)
            continue
        if group:
            lines.append("if _zeroed:")
            lines += ["    " + line for e in group for line in e.written]
            added = [line for e in group for line in e.added]
            lines += ["else:"] + ["    " + line for line in added] if added else []
            group = []
        if item is not None:
            lines.append(item)
    return lines


class _Unread:
    """The name of a forward value a backward template may not read: the op's grad node
    does not list it (OpDef.reads), so the forward may not have kept it."""

    def __init__(self, op: str, value: str):
        self.op, self.value = op, value

    def __str__(self):
        raise AssertionError(f"the backward of nn.{self.op} names {self.value}, which its grad "
                             "node does not read: declare it in OpDef.reads")


def generate(graph: Graph, options: CodegenOptions, sequence_parts=None) -> str:
    return NumpyBackend(graph, options).generate(sequence_parts)
