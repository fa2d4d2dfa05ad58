"""The stable text form of the IR (`graphc compile --emit ir`), used in tests and reviews."""
from __future__ import annotations

from pathlib import Path

from .graph import Graph, Node, Value, shape_str


def text(s: str) -> str:
    """Spec text (a name, a file name) in the dump: control characters and line breaks as
    their escapes, so one IR line stays one line."""
    return "".join(c if " " <= c < "\x7f" else repr(c)[1:-1] for c in s)


def dump(g: Graph, title: str = "") -> str:
    """`title`: the source file's name, for the first line."""
    ids: dict[Value, str] = {}

    def vid(v: Value) -> str:
        if v not in ids:
            ids[v] = f"%{text(v.name)}" if v.kind in ("input", "param") else f"%{len(ids)}"
        return ids[v]

    def where(node_or_value) -> str:
        loc = node_or_value.loc
        return f"  # {text(Path(loc.file).name)}:{loc.line}:{loc.col}" if loc else ""

    def attrs(node: Node) -> str:
        items = [f"{k}={v!r}" for k, v in sorted(node.attrs.items()) if k not in ("fwd",)]
        return "{" + ", ".join(items) + "}" if items else ""

    lines = [f"graph {text(title)}".rstrip()]
    for v in g.inputs:
        lines.append(f"  input {vid(v)}: {shape_str(v.shape)} {v.dtype}{where(v)}")
    for p in g.params:
        lines.append(f"  param {vid(p.value)}: {shape_str(p.value.shape)} init={init_text(p.init)}")
    for n in g.nodes:
        outs = ", ".join(f"{vid(v)}: {shape_str(v.shape)}" for v in n.outputs)
        name = f" name={n.name!r}" if n.name else ""
        lines.append(f"  {outs} = {n.op}{attrs(n)}({', '.join(vid(v) for v in n.inputs)}){name}{where(n)}")
    lines.append(f"  return {', '.join(vid(v) for v in g.outputs)}")
    if g.grad_outputs or g.grad_nodes:
        lines.append("backward")
        for v in g.grad_outputs:
            lines.append(f"  grad_output {vid(v)}: {shape_str(v.shape)}")
        for n in g.grad_nodes:
            outs = ", ".join(f"{vid(v)}: {shape_str(v.shape)}" for v in n.outputs)
            what = f"grad[{n.attrs['fwd'].op}]" if n.op == "grad" else n.op
            if n.op == "grad":
                what += "(" + ", ".join(("d" if need else "-") for need in n.attrs["needs"]) + ")"
            args = ", ".join(vid(v) for v in n.inputs[: len(n.inputs) - n.attrs.get("reads", 0)])
            if n.attrs.get("reads"):  # the forward values this backward step reads
                args += "; reads " + ", ".join(vid(v) for v in n.inputs[-n.attrs["reads"]:])
            lines.append(f"  {outs} = {what}({args}){where(n)}")
        for i, v in g.param_grads:
            lines.append(f"  accumulate {vid(g.params[i].value)} += {vid(v)}")
        rets = ", ".join(vid(v) if v is not None else "none" for v in g.input_grads)
        lines.append(f"  return {rets}")
    return "\n".join(lines) + "\n"


def init_text(init: tuple) -> str:
    """An init as `uniform(0.5)`, `normal_mean(1, 0.02)`, `values(6)`, `same_as(lin.weight)`."""
    kind, args = init[0], init[1:]
    if kind == "values":
        return f"values({len(args[0])})"
    return f"{kind}({', '.join(a if isinstance(a, str) else format(a, '.6g') for a in args)})"
