"""Unrolling a one-step recurrent graph over T steps (`--unroll T --state next_c=prev_c`).

The result is one graph: every non-state input becomes a sequence input (T x its shape),
sliced per step with views; the state inputs are the initial states; each step's copy of
the nodes uses the same parameter Values (one set of weights, gradients summed over steps);
each state output feeds the next step's state input; non-state outputs are stacked into
T x shape outputs, and the last step's states are the final outputs. Autodiff of this graph
is full backpropagation through time.
"""
from __future__ import annotations

from ..errors import SpecError
from ..ir.graph import Graph, Node, Value
from ..passes.shapes import node_shapes


def parse_state_pairs(g: Graph, pairs: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """--state OUT=IN names -> (output index, input index)."""
    outs = list(g.output_names)
    ins = [v.name for v in g.inputs]
    result = []
    for out, inp in pairs:
        if out not in outs:
            raise SpecError(f"--state {out}={inp}: the model has no output '{out}' (outputs: "
                            f"{', '.join(outs)})")
        if inp not in ins:
            raise SpecError(f"--state {out}={inp}: the model has no input '{inp}' (inputs: "
                            f"{', '.join(ins)})")
        o, i = outs.index(out), ins.index(inp)
        if g.outputs[o].shape != g.inputs[i].shape:
            raise SpecError(f"--state {out}={inp}: shapes differ ({g.outputs[o].shape} vs "
                            f"{g.inputs[i].shape})")
        result.append((o, i))
    if len({i for _, i in result}) != len(result) or len({o for o, _ in result}) != len(result):
        raise SpecError("--state: each input and output may be a state only once")
    return result


def unroll(g: Graph, steps: int, state: list[tuple[int, int]]) -> Graph:
    state_in = {i: o for o, i in state}
    state_out = {o: i for o, i in state}
    u = Graph(params=g.params, buffers=g.buffers, meta=dict(g.meta))
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
