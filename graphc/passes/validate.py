"""Structural checks of the IR between passes: a broken invariant here is a graphc bug,
so it raises InvalidIR (reported as an internal error) rather than a SpecError."""
from __future__ import annotations

from ..ir.graph import Graph
from ..ops import REGISTRY


class InvalidIR(Exception):
    pass


def validate(g: Graph) -> Graph:
    defined = set(g.inputs) | {p.value for p in g.params + g.buffers}
    names = [p.name for p in g.params]
    if len(set(names)) != len(names):
        raise InvalidIR(f"duplicate parameter names: {names}")
    for n in g.nodes:
        if n.op not in REGISTRY:
            raise InvalidIR(f"unknown op {n.op!r}")
        op = REGISTRY[n.op]
        n_params = len(op.active_params(n.attrs))
        n_data = len(n.inputs) - n_params
        if not op.table_input and n_data != len(op.inputs):
            raise InvalidIR(f"{n.op} takes {len(op.inputs)} inputs, node has {n_data}")
        n_data = len([v for v in n.outputs if v.dtype != "aux"])
        if (n_data != 1 and not op.table_output) or len(n.outputs) - n_data != len(op.aux):
            raise InvalidIR(f"{n.op} has {len(n.outputs)} outputs, expected {1 + len(op.aux)}")
        for v in n.inputs:
            if v not in defined:
                raise InvalidIR(f"{n.op} uses a value before it is defined ({v.name})")
        for v in n.outputs:
            if v in defined:
                raise InvalidIR(f"value {v.name} is defined twice")
            defined.add(v)
    for v in g.outputs:
        if v not in defined:
            raise InvalidIR(f"graph output {v.name} is never computed")
    for n in g.grad_nodes:
        for v in n.inputs:
            if v not in defined and v not in g.grad_outputs:
                raise InvalidIR(f"backward {n.op} uses an undefined value ({v.name})")
        if n.op == "grad":  # it reads its forward node's values, after the given gradients
            fwd = n.attrs["fwd"]
            given = len(n.inputs) - n.attrs["reads"]
            if given != sum(n.attrs["has"]) or not set(n.inputs[given:]) <= set(fwd.inputs + fwd.outputs):
                raise InvalidIR(f"grad of {fwd.op}: inputs are not its output gradients, then "
                                "values of its forward node")
        defined.update(n.outputs)
    return g
