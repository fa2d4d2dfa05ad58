"""The numpy target's memory plan: values written into reusable scratch arrays (`out=`),
decided on the IR by liveness. Graph -> the same Graph with `memory` (a MemoryPlan) set.

- A candidate is a float value that its op makes as a new array and can write into a given
  one (OpDef.out: Linear's product, the elementwise ops, ..., in the backward the gradient
  sums and joined slice gradients), of a known shape with at least MIN_ELEMENTS elements per
  batch row (B counted as 1): for smaller arrays passing `out=` costs about what an
  allocation does (the tutorial's 3 -> 2 LSTM cell ran 2% slower with scratch arrays).
- Any other node output may alias any of the node's inputs (a view, `g = gy`, whatever a
  runtime kernel returns), so a candidate stays alive as long as anything that may alias it.
- Values that leave their function (the forward's outputs and the values the backward reads,
  the backward's returned gradients) and the candidates they may alias get no scratch.
- A parameter's gradient made in scratch is added to the gradient buffer by its own node,
  so its slot is free again at once (`G += A @ B` as rt.matmul_into into scratch, then +=).
- A scratch array is free again after the node that last uses its value (or an alias), so
  `out=` never overlaps the same node's operands; the next candidate of the same shape takes
  the first free one (in the order they were freed: deterministic).

Forward and backward have their own arrays ('forward', 'backward'); scratch shapes may hold
the batch symbol (B, or B*k).
"""
from __future__ import annotations

import dataclasses
import math

from ..ir.graph import Graph, MemoryPlan, Node, Value, per_batch
from ..ops import REGISTRY

MIN_ELEMENTS = 256


def plan_memory(g: Graph) -> Graph:
    """The graph with its memory plan (the nodes are not changed)."""
    read = {v for n in g.grad_nodes if n.op == "grad" for v in n.inputs[len(n.inputs) - n.attrs["reads"]:]}
    accumulated = {v for _, v in g.param_grads}
    plan = MemoryPlan()
    plan.slots["forward"] = _plan(g.nodes, set(g.outputs) | read, set(), "forward", plan.scratch)
    plan.slots["backward"] = _plan(g.grad_nodes, {v for v in g.input_grads if v is not None},
                                   accumulated, "backward", plan.scratch)
    return dataclasses.replace(g, memory=plan)


def elements_per_row(shape) -> int:
    """Elements of an array of this shape per unit of the batch (B counted as 1, B*k as k)."""
    return math.prod(per_batch(d) for d in shape)


def new_arrays(node: Node) -> list[Value]:
    """The outputs of `node` that are new arrays its rendering can write into a given one."""
    if node.op == "add":
        return list(node.outputs)
    if node.op == "slices":
        return list(node.outputs) if node.attrs["tiles"] else []
    if node.op == "grad":
        fwd = node.attrs["fwd"]
        op = REGISTRY[fwd.op]
        slots = op.out_slots(fwd.attrs, [v.shape for v in fwd.inputs[: len(fwd.inputs) - len(op.active_params(fwd.attrs))]])
        if not slots:
            return []
        keys = [key for (key, _), need in zip(op.slots(fwd.attrs, len(fwd.inputs)), node.attrs["needs"]) if need]
        return [v for key, v in zip(keys, node.outputs) if key in slots]
    op = REGISTRY[node.op]
    data = node.inputs[: len(node.inputs) - len(op.active_params(node.attrs))]
    if "y" in op.out_slots(node.attrs, [v.shape for v in data]) and len(node.outputs) == 1:
        return [node.outputs[0]]
    return []


def _plan(nodes, leaving: set, accumulated: set, part: str, scratch: dict) -> list[tuple]:
    """Scratch slots for one function's nodes; fills `scratch` (Value -> (part, k)) and
    returns the slots' shapes."""
    made = []  # per node: its candidates
    bases: dict[Value, set] = {}  # value -> the candidates it may alias
    seen: set = set()  # the candidates so far
    for node in nodes:
        fresh = new_arrays(node)
        cands = [v for v in fresh if v.dtype == "float" and v.shape is not None
                 and v not in leaving and elements_per_row(v.shape) >= MIN_ELEMENTS]
        made.append(cands)
        alias = set()
        for r in node.inputs:
            alias |= bases.get(r, set())
            if r in seen:
                alias.add(r)
        seen.update(cands)
        for v in node.outputs:
            if v not in fresh and alias:
                bases[v] = bases.get(v, set()) | alias
    kept = set()
    for v in leaving:
        kept |= bases.get(v, set())
    last: dict[Value, int] = {}
    for i, node in enumerate(nodes):
        for v in node.inputs + node.outputs:
            last[v] = i
            for b in bases.get(v, ()):
                last[b] = i

    slots: list[tuple] = []
    free: list[int] = []
    owner: dict[Value, int] = {}
    for i, node in enumerate(nodes):
        for v in made[i]:
            if v in kept:
                continue
            k = _take(slots, free, tuple(v.shape))
            scratch[v] = (part, k)
            if v in accumulated:  # added to the gradient buffer at once
                free.append(k)
            else:
                owner[v] = k
        for v, k in list(owner.items()):
            if last.get(v, i) <= i:
                free.append(k)
                del owner[v]
    return slots


def _take(slots, free, shape) -> int:
    for j, k in enumerate(free):
        if slots[k] == shape:
            return free.pop(j)
    slots.append(shape)
    return len(slots) - 1
