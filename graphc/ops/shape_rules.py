"""Shape rules applied to nodes, and shape hints for graph inputs.

Lowering computes shapes as it builds each node (structural modules such as SplitTable
need them). An input's shape comes from --shape, else from what its consumers require
(an input feeding Linear(3, ...) is Bx3; a CAddTable sibling's shape; through elementwise
ops), else graphc asks for --shape. `infer_shapes` re-derives every shape of a graph
from new input shapes (a pure pass).
"""
from __future__ import annotations

from ..errors import SpecError, warn
from ..ir.copy import copy_graph
from ..ir.graph import Graph, Node, Value, shape_str
from .registry import REGISTRY, ShapeError


def data_inputs(node: Node) -> list[Value]:
    op = REGISTRY[node.op]
    return node.inputs[: len(node.inputs) - len(op.active_params(node.attrs))]


def node_shapes(node: Node) -> list[tuple] | None:
    """The node's output shapes (a list, one per data output), None while an input's shape
    is unknown; a SpecError at the node's location when the shape rule refuses."""
    data = data_inputs(node)
    if any(v.shape is None for v in data):
        return None
    op = REGISTRY[node.op]
    try:
        out = op.shape(node.attrs, [v.shape for v in data])
    except ShapeError as e:
        ins = ", ".join(shape_str(v.shape) for v in data)
        text = f"nn.{e}" if str(e).startswith(f"{node.op}(") else f"nn.{node.op}: {e}"
        if "(input " not in text:  # say the input shapes unless the rule already did
            text += f" (input shape{'s' if len(data) > 1 else ''}: {ins})"
        raise SpecError(text, node.loc) from None
    if op.warn is not None:
        text = op.warn(node.attrs, [v.shape for v in data])
        if text:
            warn(f"nn.{node.op}: {text}", node.loc)
    return [tuple(s) for s in out] if op.table_output else [tuple(out)]


def infer_shapes(graph: Graph, given: dict[str, tuple]) -> Graph:
    """A copy of `graph` with every shape re-derived from the inputs' shapes (`given`
    overrides them by input name)."""
    g = copy_graph(graph)
    for v in g.inputs:
        if v.name in given:
            v.shape = tuple(given[v.name])
    for node in g.nodes:
        shapes = node_shapes(node)
        for v, s in zip(node.outputs, shapes or [None] * len(node.outputs)):
            if v.dtype != "aux":
                v.shape = s
    return g


def hint(v: Value, uses, depth=0):
    """(a shape for v that its consumers would accept, the consumer that asks for it), or
    None."""
    if depth > 50:
        return None
    for node, slot in uses.get(v, []):
        op = REGISTRY[node.op]
        if op.input_hint is not None:
            h = op.input_hint(node.attrs, slot, [i.shape for i in node.inputs])
            if h is not None:
                return h, node
        if op.elementwise:
            found = hint(node.outputs[0], uses, depth + 1)
            if found is not None:
                return found
    return None
