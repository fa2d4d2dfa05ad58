"""Reverse-mode autodiff: appends the backward program to the graph.

One `grad` node per forward node that gets a gradient and has an input that needs one
(a parameter or a float graph input, or something computed from them); its template is
the forward op's backward rule. Its inputs are the gradients of the forward node's outputs,
then the forward values that rule reads (OpDef.reads): the IR says what the backward keeps
alive, so backends and the memory plan never look into generated text for it. A value used
in several places gets an `add` node summing its partial gradients (fan-out). Parameter gradients are accumulated straight into the
gradient buffer, so a module shared by several nodes sums its gradients for free.
"""
from __future__ import annotations

from ..ir.copy import copy_graph
from ..ir.graph import Graph, Node, Value
from ..ops import REGISTRY


def autodiff(graph: Graph, no_grad=()) -> Graph:
    """`no_grad`: names of float inputs whose gradient nobody needs (backward returns None)."""
    g = copy_graph(graph)
    needs_grad: set[Value] = {v for v in g.inputs if v.dtype == "float" and v.name not in no_grad}
    needs_grad |= {p.value for p in g.params}
    for node in g.nodes:
        if any(v in needs_grad for v in node.inputs):
            needs_grad.update(v for v in node.outputs if v.dtype == "float")
    param_index = {p.value: i for i, p in enumerate(g.params)}

    partials: dict[Value, list[Value]] = {}
    for out in g.outputs:
        go = Value("grad_output", shape=out.shape, name=f"grad_{out.name}", loc=out.loc)
        g.grad_outputs.append(go)
        partials.setdefault(out, []).append(go)

    def total(v: Value) -> Value:
        parts = partials[v]
        if len(parts) == 1:
            return parts[0]
        # the sum of its partial gradients (grad_next_c_total, beside a given grad_next_c)
        s = Value("tmp", shape=v.shape, name=f"grad_{v.name}_total", loc=v.loc)
        g.grad_nodes.append(Node("add", {}, list(parts), [s], v.loc))
        partials[v] = [s]
        return s

    for node in reversed(g.nodes):
        ys = [v for v in node.outputs if v.dtype != "aux"]
        needs = [v in needs_grad for v in node.inputs]
        has = tuple(y in partials for y in ys)
        if not any(has) or not any(needs):
            continue
        grads = []
        for v, need in zip(node.inputs, needs):
            if not need:
                continue
            gv = Value("tmp", shape=v.shape, name=f"grad_{v.name}", loc=node.loc)
            grads.append(gv)
            if v in param_index:
                g.param_grads.append((param_index[v], gv))
            else:
                partials.setdefault(v, []).append(gv)
        # `has`: which outputs got a gradient (a table output may be partly unused); after
        # those gradients come the forward values the backward reads (`reads` of them)
        given = [total(y) for y in ys if y in partials]
        reads = backward_reads(node, needs)
        g.grad_nodes.append(Node("grad", {"fwd": node, "needs": tuple(needs), "has": has,
                                          "reads": len(reads)},
                                 given + reads, grads, node.loc, node.name, node.module))
    g.input_grads = [total(v) if v in partials and v in needs_grad else None for v in g.inputs]
    return g


def backward_reads(node: Node, needs) -> list[Value]:
    """The forward values (inputs, parameters, outputs, aux) node's backward reads when the
    inputs marked in `needs` want a gradient, in that order, each once (OpDef.reads)."""
    op = REGISTRY[node.op]
    params = op.active_params(node.attrs)
    n_data = len(node.inputs) - len(params)
    slots = ["xs" if op.table_input else op.inputs[i] for i in range(n_data)] + [p.name for p in params]
    wanted = op.backward_reads({slot for slot, need in zip(slots, needs) if need})
    ys = [v for v in node.outputs if v.dtype != "aux"]
    aux = node.outputs[len(ys):]
    found = [v for slot, v in zip(slots, node.inputs) if slot in wanted]
    found += [v for k, v in enumerate(ys) if "ys" in wanted or (k == 0 and "y" in wanted)]
    found += [v for name, v in zip(op.aux, aux) if f"aux.{name}" in wanted]
    return list(dict.fromkeys(found))
