"""Reverse-mode autodiff: appends the backward program to the graph.

One `grad` node per forward node that gets a gradient and has an input that needs one
(a parameter or a float graph input, or something computed from them); its template is
the forward op's backward rule. A value used in several places gets an `add` node summing
its partial gradients (fan-out). Parameter gradients are accumulated straight into the
gradient buffer, so a module shared by several nodes sums its gradients for free.
"""
from __future__ import annotations

from ..ir.copy import copy_graph
from ..ir.graph import Graph, Node, Value


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
        # `has`: which outputs got a gradient (a table output may be partly unused)
        g.grad_nodes.append(Node("grad", {"fwd": node, "needs": tuple(needs), "has": has},
                                 [total(y) for y in ys if y in partials], grads,
                                 node.loc, node.name, node.module))
    g.input_grads = [total(v) if v in partials and v in needs_grad else None for v in g.inputs]
    g.meta["no_grad"] = tuple(no_grad)
    return g
