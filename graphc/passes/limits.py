"""Refuse absurd sizes at compile time, before anything is allocated: a spec like
nn.Linear(1e9, 1e9) gets a located error saying how much memory it would need.
The limit is GRAPHC_MAX_BYTES (default 16 GiB) for all parameters together, and the same for
any one activation (per sample when it has a batch dim)."""
from __future__ import annotations

import math
import os

from ..errors import SpecError
from ..ir.graph import Graph, is_symbolic, per_batch, shape_str

DEFAULT_MAX_BYTES = 16 * 2**30


def max_bytes() -> int:
    try:
        return int(os.environ.get("GRAPHC_MAX_BYTES", DEFAULT_MAX_BYTES))
    except ValueError:
        return DEFAULT_MAX_BYTES


def _fmt(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.4g} {unit}"
        n /= 1024
    return f"{n:.4g}"


def check_sizes(g: Graph, itemsize: int = 4) -> Graph:
    limit = max_bytes()
    total = 0
    for p in g.params:
        total += math.prod(p.value.shape) * itemsize
        if total > limit:
            need = sum(math.prod(q.value.shape) for q in g.params) * itemsize
            raise SpecError(f"the parameters would need {_fmt(need)} ({itemsize}-byte floats); "
                            f"refusing anything over {_fmt(limit)} (set GRAPHC_MAX_BYTES to change "
                            f"the limit); '{p.name}' alone is {shape_str(p.value.shape)}", p.value.loc)
    for n in g.nodes:
        for v in n.outputs:
            if v.shape is None:
                continue
            size = math.prod(per_batch(d) for d in v.shape) * itemsize
            if size > limit:
                per = " per sample" if any(is_symbolic(d) for d in v.shape) else ""
                raise SpecError(f"nn.{n.op}: its output {shape_str(v.shape)} would need {_fmt(size)}"
                                f"{per}; refusing anything over {_fmt(limit)} (GRAPHC_MAX_BYTES)", n.loc)
    return g
