"""Writes docs/modules.md from the op registry, so the table cannot drift:
`python -m graphc.docs > docs/modules.md` (a test checks the file is current)."""
from __future__ import annotations

from .ops import REGISTRY

CONTAINERS = [
    ("Sequential", "", "Chains its modules (`:add(m)`)."),
    ("Parallel", "inputDimension, outputDimension",
     "Module i gets slice i of `inputDimension`; outputs joined on `outputDimension`."),
    ("ConcatTable", "", "Every module gets the same input; the output is a table."),
    ("ParallelTable", "", "Module i gets element i of the input table; the output is a table."),
    ("Concat", "dimension", "Every module gets the same input; outputs joined along `dimension`."),
    ("gModule", "inputs, outputs", "An nngraph graph; can be nested as a module."),
    ("Bottle", "module, [nInputDim=2], [nOutputDim=nInputDim]",
     "Runs `module` on the input's leading dims folded into one (when it has more than "
     "`nInputDim` dims), then unfolds the output: Bottle(Linear(4, 3)) on Bx5x4 gives Bx5x3."),
    ("ModuleFromCriterion", "criterion", "Returns the criterion itself: a criterion called on "
     "{prediction, target} is already a graph node whose output is the 1-element loss."),
]


def _sig(op) -> str:
    parts = []
    for item in op.signature.split(","):
        item = item.strip()
        if not item:
            continue
        name, rest = item.split(":", 1)
        if rest.endswith("*"):
            parts.append(f"{name}...")
        elif "=" in rest:
            default = rest.split("=", 1)[1]
            parts.append(f"[{name}={default}]")
        else:
            parts.append(name)
    return ", ".join(parts)


def _cuda(op) -> str:
    """How --target cuda computes the op (ops.registry.CudaRule)."""
    r = op.cuda
    if r is None:
        return "no IR node" if op.passthrough or op.structural else "not supported"
    if r.kind == "pointwise":
        return "fused"
    if r.kind == "index":
        return "fused index map"
    what = r.doc or {"elem": "own kernels", "blas": "cuBLAS"}.get(r.kernel, "own kernel")
    if r.host or r.host_after:
        what += " (host code: no CUDA graph" + (" when training)" if r.host_training_only else ")")
    return what


def modules_markdown() -> str:
    lines = ["# Supported modules", "",
             "Generated from graphc's op registry by `python -m graphc.docs`; do not edit.",
             "Arguments keep Torch7's order and 1-based dimensions. The CUDA column says how",
             "`--target cuda` computes each one: *fused* into the generated kernel of its",
             "neighbours, cuBLAS, or kernels of its own. `--target cpu` runs the same kernels",
             "on the CPU (numpy's BLAS for the GEMMs).", "",
             "| module | arguments | methods | what it does | difference from Torch | CUDA |",
             "|---|---|---|---|---|---|"]
    for name in sorted(REGISTRY):
        op = REGISTRY[name]
        if op.name in ("Select",) and not op.doc:
            continue
        methods = ", ".join(f"`:{m}()`" for m in op.methods)
        lines.append(f"| nn.{name} | {_sig(op)} | {methods} | {op.doc} | {op.torch_diff} | {_cuda(op)} |")
        for alias in op.aliases:
            lines.append(f"| nn.{alias} | {_sig(op)} | {methods} | The same module as nn.{name}. | | "
                         f"{_cuda(op)} |")
    for name, args, doc in CONTAINERS:
        adds = "`:add(m)`" if name not in ("gModule", "ModuleFromCriterion", "Bottle") else ""
        lines.append(f"| nn.{name} | {args} | {adds} | {doc} | | its modules' |")
    count = len(REGISTRY) + sum(len(op.aliases) for op in REGISTRY.values()) + len(CONTAINERS)
    lines += ["", f"{count} modules.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    sys.stdout.write(modules_markdown())
