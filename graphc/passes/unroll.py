"""Unrolling a one-step recurrent graph over T steps (`--unroll T --state next_c=prev_c`).

The result is one graph: every non-state input becomes a sequence input (T x its shape),
sliced per step with views; the state inputs are the initial states; each step's copy of
the nodes uses the same parameter Values (one set of weights, gradients summed over steps);
each state output feeds the next step's state input; non-state outputs are stacked into
T x shape outputs, and the last step's states are the final outputs. Autodiff of this graph
is full backpropagation through time.
"""
from __future__ import annotations

from ..errors import OptionError, SpecError, did_you_mean
from ..ir.copy import copy_graph
from ..ir.graph import Graph, Node, Value, shape_str
from ..ops.shape_rules import node_shapes


def parse_state_pairs(g: Graph, pairs: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """--state OUT=IN names (own names or Lua variable names) -> (output index, input index)."""
    result = []
    for out, inp in pairs:
        o, i = g.find_output(out), g.find_input(inp)
        for index, name, is_out in ((o, out, True), (i, inp, False)):
            if index is None:
                listed, known = g.io_names(is_out)
                what = "output" if is_out else "input"
                raise OptionError(f"--state {out}={inp}: the model has no {what} '{name}' "
                                  f"({what}s: {listed})" + did_you_mean(name, known))
        if g.outputs[o].shape != g.inputs[i].shape:
            raise OptionError(f"--state {out}={inp}: shapes differ ({shape_str(g.outputs[o].shape)} "
                              f"vs {shape_str(g.inputs[i].shape)})")
        result.append((o, i))
    if len({i for _, i in result}) != len(result) or len({o for o, _ in result}) != len(result):
        raise OptionError("--state: each input and output may be a state only once")
    return result


def check_unroll_size(g: Graph, steps: int, state: list[tuple[int, int]]) -> None:
    """Refuse, before building anything, an unrolled graph over the node limit (the one a
    spec's evaluation has): `--unroll 99999999999` is an error at once, not a MemoryError."""
    from ..frontend.lua import MAX_OBJECTS
    per_step = len(g.nodes) + len(g.inputs) - len(state)  # + a slice of each per-step input
    if steps * per_step > MAX_OBJECTS:
        loc = g.nodes[0].loc if g.nodes else (g.inputs[0].loc if g.inputs else None)
        raise SpecError(f"--unroll {steps}: {steps:,} steps x {per_step} nodes per step would make "
                        f"{steps * per_step:,} graph nodes, over the limit of {MAX_OBJECTS:,}; "
                        f"unroll at most {max(1, MAX_OBJECTS // max(1, per_step)):,} steps, or use "
                        "--unroll T (a loop over steps at run time, any length)", loc)


def unroll(g: Graph, steps: int, state: list[tuple[int, int]]) -> Graph:
    check_unroll_size(g, steps, state)
    state_in = {i: o for o, i in state}
    state_out = {o: i for o, i in state}
    u = Graph(params=g.params, buffers=g.buffers, t7_modules=g.t7_modules)
    seq_inputs = {}
    for i, v in enumerate(g.inputs):
        name = v.name if i in state_in else f"{v.name}_seq"
        shape = v.shape if i in state_in else (steps,) + tuple(v.shape)
        nv = Value("input", shape=shape, dtype=v.dtype, name=name, loc=v.loc)
        u.inputs.append(nv)
        seq_inputs[v] = nv
    u.input_struct = list(range(len(u.inputs)))
    carried = {g.inputs[i]: seq_inputs[g.inputs[i]] for i in state_in}
    per_step_outputs: dict[int, list[Value]] = {k: [] for k in range(len(g.outputs))}
    for t in range(steps):
        env = {p.value: p.value for p in g.params + g.buffers}
        for i, v in enumerate(g.inputs):
            if i in state_in:
                env[v] = carried[v]
            else:  # the step's slice of the sequence input: a view
                env[v] = _add(u, "Select", {"dimension": 1, "index": t + 1}, [seq_inputs[v]],
                              v.loc, f"{v.name}_{t + 1}")
        for node in g.nodes:
            outs = [Value(v.kind, shape=v.shape, dtype=v.dtype, name=f"{v.name}_{t + 1}", loc=v.loc)
                    for v in node.outputs]
            u.nodes.append(Node(node.op, dict(node.attrs), [env[v] for v in node.inputs], outs,
                                node.loc, node.name, node.module, dict(node.annotations)))
            env.update(zip(node.outputs, outs))
        for o, v in enumerate(g.outputs):
            if o in state_out:
                carried[g.inputs[state_out[o]]] = env[v]
            per_step_outputs[o].append(env[v])
    for o, v in enumerate(g.outputs):
        if o in state_out:
            out = per_step_outputs[o][-1]
            if out.kind == "tmp":
                out.name = v.name  # the final state keeps the step output's name
        else:
            out = _add(u, "Stack", {}, per_step_outputs[o], v.loc, f"{v.name}_seq")
        u.outputs.append(out)
    u.output_struct = list(range(len(u.outputs)))
    u.output_names = [name if o in state_out else f"{name}_seq" for o, name in enumerate(g.output_names)]
    return u


def _add(u: Graph, op: str, attrs: dict, inputs: list[Value], loc, name: str) -> Value:
    node = Node(op, attrs, list(inputs), [], loc, None, op.lower())
    (shape,) = node_shapes(node)
    node.outputs = [Value("tmp", shape=shape, name=name, loc=loc)]
    u.nodes.append(node)
    return node.outputs[0]


def split_sequence_prefix(g: Graph, state: list[tuple[int, int]]):
    """For `--unroll T` (the runtime Sequence): the part of the step graph that does not
    depend on the recurrent state (e.g. the input projection i2h = Linear(x)) can run once
    over the whole sequence, T*B rows, as one GEMM instead of T small ones.

    Returns (prefix, rest, rest_inputs, prefix_inputs), or None when there is nothing worth
    hoisting (no Linear) or a hoisted value is also a model output.
    prefix: the per-step inputs it reads (prefix_inputs: their step input indices) -> the
    frontier values the rest reads. rest: the step graph with the frontier values as its
    first inputs, then the step inputs it still reads (rest_inputs: for each, ('prefix', k)
    or ('input', i)). Both keep all parameters, in order, so they share the step Model's
    flat buffers."""
    from ..ops import REGISTRY
    state_in = {i for _, i in state}
    per_step = {v for i, v in enumerate(g.inputs) if i not in state_in}
    params = {p.value for p in g.params}
    hoisted, values = [], set(per_step)
    for node in g.nodes:
        # ops whose every output row depends only on the same row of the inputs: run once
        # over all T*B rows of a sequence, they give each step's values
        row_wise = REGISTRY[node.op].is_row_wise(node.attrs, [v.shape for v in node.inputs])
        # float results only: an index value crossing to the rest would get no gradient
        if (row_wise and all(v.dtype == "float" for v in node.outputs)
                and any(v in values for v in node.inputs)
                and all(v in values or v in params for v in node.inputs)
                and all(v.shape and v.shape[0] == "B" for v in node.outputs)):
            hoisted.append(node)
            values.update(node.outputs)
    if not any(n.op == "Linear" for n in hoisted) or any(v in values - per_step for v in g.outputs):
        return None
    at = {id(n): k for k, n in enumerate(g.nodes)}
    hoisted_at = {at[id(n)] for n in hoisted}
    rest_reads = {v for n in g.nodes if at[id(n)] not in hoisted_at for v in n.inputs}
    frontier = [(k, j) for k in sorted(hoisted_at) for j, v in enumerate(g.nodes[k].outputs)
                if v in rest_reads]
    reads = {v for k in hoisted_at for v in g.nodes[k].inputs}
    prefix_inputs = [i for i, v in enumerate(g.inputs) if v in per_step and v in reads]
    kept = [i for i, v in enumerate(g.inputs) if v in rest_reads or v in g.outputs]

    p = copy_graph(g)  # each part gets its own Values
    outs = [p.nodes[k].outputs[j] for k, j in frontier]
    prefix = Graph(inputs=[p.inputs[i] for i in prefix_inputs], outputs=outs, params=p.params,
                   buffers=p.buffers, nodes=[p.nodes[k] for k in sorted(hoisted_at)],
                   input_struct=list(range(len(prefix_inputs))), output_struct=list(range(len(outs))),
                   output_names=[f"{v.name}_projected" for v in outs])
    r = copy_graph(g)
    ins = [r.nodes[k].outputs[j] for k, j in frontier]
    taken = {v.name for v in g.inputs}
    for v in ins:
        v.kind = "input"  # no longer made by a node of this graph
        # a name no step input has: --no-grad names the step's inputs, never these
        v.name = f"{v.name}_projected"
        while v.name in taken:
            v.name += "_"
        taken.add(v.name)
    rest = Graph(inputs=ins + [r.inputs[i] for i in kept], outputs=r.outputs, params=r.params,
                 buffers=r.buffers, nodes=[n for k, n in enumerate(r.nodes) if k not in hoisted_at],
                 input_struct=list(range(len(ins) + len(kept))), output_struct=r.output_struct,
                 output_names=r.output_names)
    sources = [("prefix", k) for k in range(len(ins))] + [("input", i) for i in kept]
    return prefix, rest, sources, prefix_inputs
