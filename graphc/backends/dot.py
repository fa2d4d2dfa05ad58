"""IR -> Graphviz dot text (`graphc graph`). One box per node: module, name, output shape,
parameter count; inputs and outputs marked; edges labelled with shapes; nngraph's
annotate{graphAttributes = {...}} applied to the node's box."""
from __future__ import annotations

from pathlib import Path

from ..ir.graph import Graph, shape_str
from ..passes.stats import node_stats


def _q(text: str) -> str:
    """A dot double-quoted string: escape backslashes and quotes, keep newlines as \\n."""
    out = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + out.replace("\r", "").replace("\n", "\\n") + '"'


def to_dot(g: Graph, backward: bool = False, title: str = "") -> str:
    ids, lines = {}, [f"digraph {_q(title or 'graphc')} {{", "  rankdir=TB;",
                      '  node [shape=box, fontname="Helvetica", fontsize=10];',
                      '  edge [fontname="Helvetica", fontsize=9];']
    producer = {}
    for i, v in enumerate(g.inputs):
        ids[v] = f"in{i}"
        label = f"input {v.name}\n{shape_str(v.shape)}"
        lines.append(f"  in{i} [label={_q(label)}, "
                     f"shape=ellipse, style=filled, fillcolor=lightblue];")
        producer[v] = f"in{i}"
    stats = {s.node: s for s in node_stats(g)}
    # parameters and buffers (BatchNormalization's running statistics) are no boxes: a
    # node's count says how many it has
    consts = {p.value for p in g.params + g.buffers}
    for k, n in enumerate(g.nodes):
        nid = f"n{k}"
        label = f"nn.{n.op}" + (f"\n{n.name}" if n.name else "")
        label += f"\n{shape_str(n.outputs[0].shape)}"
        if stats[n].params:
            label += f"\n{stats[n].params} params"
        if n.annotations.get("description"):
            label += f"\n{n.annotations['description']}"
        attrs = dict(n.annotations.get("graphAttributes") or {})
        if n.loc:
            attrs.setdefault("tooltip", f"{Path(n.loc.file).name}:{n.loc.line}:{n.loc.col}")
        extra = "".join(f", {_q(k)}={_q(v)}" for k, v in sorted(attrs.items()))
        lines.append(f"  {nid} [label={_q(label)}{extra}];")
        for v in n.outputs:
            producer[v] = nid
        for v in n.inputs:
            if v not in consts:
                lines.append(f"  {producer[v]} -> {nid} [label={_q(shape_str(v.shape))}];")
    for i, v in enumerate(g.outputs):
        label = f"output {g.output_names[i] if i < len(g.output_names) else v.name}\n{shape_str(v.shape)}"
        lines.append(f"  out{i} [label={_q(label)}, "
                     f"shape=ellipse, style=filled, fillcolor=palegreen];")
        lines.append(f"  {producer[v]} -> out{i} [label={_q(shape_str(v.shape))}];")
    if backward:
        for i, v in enumerate(g.grad_outputs):
            producer[v] = f"gout{i}"
            label = f"grad of {g.outputs[i].name}\n{shape_str(v.shape)}"
            lines.append(f"  gout{i} [label={_q(label)}, "
                         "shape=ellipse, style=filled, fillcolor=mistyrose];")
        for k, n in enumerate(g.grad_nodes):
            nid = f"b{k}"
            what = f"grad nn.{n.attrs['fwd'].op}" if n.op == "grad" else "sum of gradients"
            if n.name:
                what += f"\n{n.name}"
            lines.append(f"  {nid} [label={_q(what)}, style=dashed, color=firebrick];")
            for v in n.outputs:
                producer[v] = nid
            n_given = len(n.inputs) - n.attrs.get("reads", 0)
            for v in n.inputs[:n_given]:
                lines.append(f"  {producer[v]} -> {nid} [label={_q(shape_str(v.shape))}, color=firebrick];")
            for v in n.inputs[n_given:]:  # forward values this backward step reads
                if v not in consts and v in producer:
                    lines.append(f"  {producer[v]} -> {nid} [style=dotted, color=firebrick];")
        for i, v in enumerate(g.input_grads):
            if v is not None:
                label = f"grad of {g.inputs[i].name}"
                lines.append(f"  gin{i} [label={_q(label)}, shape=ellipse, "
                             "style=filled, fillcolor=mistyrose];")
                lines.append(f"  {producer[v]} -> gin{i} [color=firebrick];")
    lines.append("}")
    return "\n".join(lines) + "\n"
