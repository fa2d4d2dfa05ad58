"""Shape inference. Input shapes come from --shape, else from what their consumers require
(an input feeding Linear(3, ...) is Bx3; a CAddTable sibling's shape; through elementwise
ops), else graphc asks for --shape."""
from __future__ import annotations

from ..errors import SpecError
from ..ir.copy import copy_graph
from ..ir.graph import Graph, Value, shape_str
from ..ops import REGISTRY, ShapeError


def infer_shapes(graph: Graph, given: dict[str, tuple]) -> Graph:
    g = copy_graph(graph)
    names = [v.name for v in g.inputs]
    for name in given:
        if name not in names:
            from ..errors import did_you_mean
            raise SpecError(f"--shape {name}: the model has no input named '{name}' (inputs: "
                            f"{', '.join(names)})" + did_you_mean(name, names))
    for v in g.inputs:
        if v.name in given:
            v.shape = tuple(given[v.name])
    uses = g.consumers()
    while True:
        _forward(g)
        unknown = [v for v in g.inputs if v.shape is None]
        if not unknown:
            return g
        progress = False
        for v in unknown:
            hint = _hint(v, uses)
            if hint is not None:
                v.shape, progress = tuple(hint), True
        if not progress:
            v = unknown[0]
            raise SpecError(f"cannot infer the shape of input '{v.name}'; give it with "
                            f"--shape {v.name}=Bx... (B is the free batch dimension)", v.loc)


def _forward(g: Graph):
    for node in g.nodes:
        if node.outputs[0].shape is not None:
            continue
        if any(v.shape is None for v in node.inputs):
            continue
        op = REGISTRY[node.op]
        data = node.inputs[: len(node.inputs) - len(op.active_params(node.attrs))]
        try:
            out = op.shape(node.attrs, [v.shape for v in data])
        except ShapeError as e:
            ins = ", ".join(shape_str(v.shape) for v in data)
            text = f"nn.{e}" if str(e).startswith(f"{node.op}(") else f"nn.{node.op}: {e}"
            raise SpecError(f"{text} (input shape{'s' if len(data) > 1 else ''}: {ins})",
                            node.loc) from None
        node.outputs[0].shape = tuple(out)


def _hint(v: Value, uses, depth=0):
    """A shape for v that its consumers would accept, or None."""
    if depth > 50:
        return None
    for node, slot in uses.get(v, []):
        op = REGISTRY[node.op]
        if op.input_hint is not None:
            h = op.input_hint(node.attrs, slot, [i.shape for i in node.inputs])
            if h is not None:
                return h
        if op.elementwise:
            h = _hint(node.outputs[0], uses, depth + 1)
            if h is not None:
                return h
    return None
