"""Per-node statistics for `graphc check` and `graphc graph`: parameters, estimated FLOPs
(forward; backward counted as forward times the number of gradients the node computes) and
activation memory, for a concrete batch size."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ops import REGISTRY
from ..ir.graph import Graph, Node, batch_factor, is_symbolic, per_batch


@dataclass
class NodeStats:
    node: Node
    params: int
    flops_fwd: int
    flops_bwd: int
    out_bytes: int


def concrete(shape, batch: int) -> tuple:
    return tuple(d if batch_factor(d) is None else batch * batch_factor(d) for d in shape)


def node_stats(g: Graph, batch: int = 1, itemsize: int = 4) -> list[NodeStats]:
    pvals = {p.value for p in g.params}
    seen = set()
    grads_of = {n.attrs["fwd"]: sum(n.attrs["needs"]) for n in g.grad_nodes if n.op == "grad"}
    rows = []
    for n in g.nodes:
        op = REGISTRY[n.op]
        nparams = 0
        for v in n.inputs:
            if v in pvals and v not in seen:
                seen.add(v)
                nparams += math.prod(v.shape)
        data = [concrete(v.shape, batch) for v in n.inputs if v not in pvals]
        out = concrete(n.outputs[0].shape, batch)
        fwd = 0 if op.view else op.flops(n.attrs, data, out) if op.flops else math.prod(out)
        rows.append(NodeStats(n, nparams, int(fwd), int(fwd * grads_of.get(n, 0)),
                              math.prod(out) * itemsize))
    return rows


def activation_elements(g: Graph) -> tuple[int, int]:
    """(elements per sample, elements independent of the batch) of every forward value a
    node makes (views excluded): what one forward() may hold at once at most. The generated
    Model refuses a batch for which this exceeds GRAPHC_MAX_BYTES before it allocates."""
    per_sample = fixed = 0
    for n in g.nodes:
        if REGISTRY[n.op].view:
            continue
        for v in n.outputs:
            if v.shape is None:
                continue
            count = math.prod(per_batch(d) for d in v.shape)  # B counts 1, B*k counts k
            if any(is_symbolic(d) for d in v.shape):
                per_sample += count
            else:
                fixed += count
    return per_sample, fixed


def peak_activation_bytes(g: Graph, batch: int = 1, itemsize: int = 4) -> int:
    """Bytes of forward values alive when backward starts: every node output that the
    backward reads is kept (a graph-wide upper bound of what the generated code holds)."""
    return sum(math.prod(concrete(n.outputs[0].shape, batch)) * itemsize for n in g.nodes
               if not REGISTRY[n.op].view)
