"""Simplifications that keep results identical (tests/test_optimize.py compares with -O0).

merge_slice_grads: a value cut into slices (the LSTM's Narrow gates, an unrolled sequence's
per-step Selects) gets one gradient per slice, each first zero-padded to the full size and
then summed. When every part of such a sum is a slice gradient along the same axis, build
the sum at once: np.concatenate (Narrow) or np.stack (Select) when the slices tile the
value, else one zero buffer with each slice added in place.
"""
from __future__ import annotations

from ..ir.copy import copy_graph
from ..ir.graph import Graph, Node, Value
from ..ops import REGISTRY


def _slice_of(node: Node):
    """(axis, start, stop, picks) if `node` is the backward of a Narrow (picks False) or of
    a Select (picks True: the slice drops its axis), else None."""
    fwd = node.attrs.get("fwd") if node.op == "grad" else None
    if fwd is None or fwd.op not in ("Narrow", "Select") or len(node.outputs) != 1:
        return None
    d = REGISTRY[fwd.op].derive(fwd.attrs, [fwd.inputs[0].shape])
    if fwd.op == "Select":
        return d["axis"], d["index"], d["index"] + 1, True
    return d["axis"], d["start"], d["stop"], False


def merge_slice_grads(graph: Graph) -> Graph:
    g = copy_graph(graph)
    producer = {v: n for n in g.grad_nodes for v in n.outputs}
    uses = {}
    for n in g.grad_nodes:
        for v in n.inputs:
            uses[v] = uses.get(v, 0) + 1
    dropped = set()
    for add in g.grad_nodes:
        if add.op != "add":
            continue
        parts = [producer.get(v) for v in add.inputs]
        slices = [_slice_of(p) if p is not None else None for p in parts]
        if any(s is None for s in slices) or len({(s[0], s[3]) for s in slices}) != 1:
            continue
        if any(uses.get(v, 0) != 1 for v in add.inputs):
            continue
        if len({id(p.attrs["fwd"].inputs[0]) for p in parts}) != 1:
            continue
        order = sorted(range(len(parts)), key=lambda i: slices[i][1])
        ranges = [(slices[i][1], slices[i][2]) for i in order]
        size = add.outputs[0].shape[slices[0][0]]
        tiles = ranges[0][0] == 0 and ranges[-1][1] == size and all(
            a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        add.op = "slices"
        add.attrs = {"axis": slices[0][0], "ranges": tuple(ranges), "tiles": tiles,
                     "picks": slices[0][3]}
        add.inputs = [parts[i].inputs[0] for i in order]  # the slices' own gradients
        add.outputs[0].name = f"grad_{parts[0].attrs['fwd'].inputs[0].name}"  # joined, not summed
        dropped.update(id(parts[i]) for i in order)
    g.grad_nodes = [n for n in g.grad_nodes if id(n) not in dropped]
    return g


def hoist_sequence_projections(graph: Graph) -> Graph:
    """In an unrolled graph (--unroll N), the Linear applied to each step's slice of a
    sequence input, with the same weights at every step, becomes ONE Linear over the whole
    T x B x N sequence (one GEMM forward, one for the weight gradient) whose result is
    sliced per step. Forward IR only (run before autodiff)."""
    g = copy_graph(graph)
    producer = {v: n for n in g.nodes for v in n.outputs}
    uses: dict = {}
    for n in g.nodes:
        for v in n.inputs:
            uses.setdefault(v, []).append(n)
    groups: dict = {}
    for n in g.nodes:
        if n.op != "Linear" or len(n.inputs[0].shape or ()) != 2:
            continue
        sel = producer.get(n.inputs[0])
        if (sel is None or sel.op != "Select" or sel.attrs["dimension"] != 1
                or sel.inputs[0].kind != "input" or len(uses[n.inputs[0]]) != 1):
            continue
        key = (id(sel.inputs[0]),) + tuple(id(v) for v in n.inputs[1:])
        groups.setdefault(key, []).append((sel, n))
    hoisted = []
    for pairs in groups.values():
        seq = pairs[0][0].inputs[0]
        steps = {sel.attrs["index"] for sel, _ in pairs}
        if len(pairs) < 2 or len(steps) != len(pairs):
            continue
        first = pairs[0][1]
        attrs = dict(first.attrs, sequence=True)
        out_shape = seq.shape[:2] + (attrs["outputSize"],)
        proj = Value("tmp", shape=out_shape, name=f"{first.name or first.module}_all_steps", loc=first.loc)
        hoisted.append(Node("Linear", attrs, [seq] + first.inputs[1:], [proj], first.loc,
                            first.name, first.module, dict(first.annotations)))
        for sel, lin in pairs:  # each step now slices the projection (a view)
            lin.op, lin.attrs, lin.inputs = "Select", {"dimension": 1, "index": sel.attrs["index"]}, [proj]
            g.nodes.remove(sel)
    g.nodes = hoisted + g.nodes
    return g
