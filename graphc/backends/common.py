"""Codegen helpers every backend shares: the options a backend is given, naming (mangling
spec names into safe Python identifiers), shape printing, and the escaping of spec text for
Python comments and docstrings (escape.py has one function per output language)."""
from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..ir.graph import Graph, Node, Value, batch_factor, dim_text, is_symbolic, shape_str
from . import escape


@dataclass(frozen=True)
class CodegenOptions:
    """What a backend needs from the compiler's options, and the header text the compiler
    prepared for the generated module (already escaped with safe_comment / safe_doc)."""
    optimize: bool = True  # False (-O0): no memory plan, the plain code
    no_grad: tuple = ()  # names of float inputs whose gradient nobody needs (None returned)
    sequence_state: Optional[tuple] = None  # --unroll T: (output index, input index) pairs
    dtype: str = "float32"
    target: str = "numpy"  # numpy | cuda | cpu (cpu: the CUDA backend's kernels run on the host)
    # forward values: (elements per sample, elements independent of B), for the generated
    # Model's GRAPHC_MAX_BYTES check before a forward allocates (passes.stats.activation_elements)
    activation_elements: tuple = (0, 0)
    module_name: str = "model"  # the spec's stem as an identifier
    source_name: str = ""
    sha256: str = ""
    command: str = ""
    doc: str = ""
    usage_forward: str = ""
    usage_backward: str = ""
    summary: tuple = ()  # (where, module, output shape, parameter count) per node
    t7_modules: tuple = ()  # Graph.t7_modules: the generated T7_MODULES


# names the generated methods read (SCRATCH: the memory plan's module constant)
RESERVED = {"np", "rt", "self", "inputs", "grad_outputs", "Model", "Module", "SCRATCH"} | set(dir(builtins))


def mangle(name: str) -> str:
    """A safe Python identifier for a spec-chosen name (ASCII only, never a keyword)."""
    s = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_") or "v"
    if s[0].isdigit():
        s = "v_" + s
    if keyword.iskeyword(s) or s in RESERVED or s.startswith("__"):
        s = "v_" + s.lstrip("_")
    return s


class Namer:
    """One unique, readable name per Value (in the order values are first named)."""

    def __init__(self):
        self.names: dict[Value, str] = {}
        self.taken: set[str] = set()
        self.last_k: dict[str, int] = {}  # base -> its last suffix: names are only added,
        # so the search for the next free one can start there (linear, not quadratic, time)

    def fresh(self, hint: str) -> str:
        base = mangle(hint)
        name, k = base, self.last_k.get(base, 1)
        if k > 1:
            name = f"{base}_{k}"
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        self.last_k[base] = k
        return name

    @classmethod
    def for_graph(cls, g: Graph) -> "Namer":
        """Inputs keep their names; weights are w_<name>, buffers buf_<name>."""
        n = cls()
        for v in g.inputs:
            n(v)
        for p in g.params:
            n(p.value, "w_")
        for p in g.buffers:
            n(p.value, "buf_")
        return n

    def __call__(self, v: Value, prefix="") -> str:
        if v not in self.names:
            self.names[v] = self.fresh(prefix + v.name)
        return self.names[v]


def pyshape_of(like: str, shape) -> str:
    """Python for `shape`, taking each symbolic dim (B, B*k) from the same dim of the array
    named `like` (of the same rank, with the same symbolic dims) at run time."""
    return "(" + ", ".join(f"{like}.shape[{k}]" if is_symbolic(d) else str(d)
                           for k, d in enumerate(shape)) + ",)"


def pyshape_from(shape, like: str, like_shape) -> str:
    """Python for `shape` as a reshape target of the array named `like` (of shape
    `like_shape`): a symbolic dim B*k is k times the batch size that `like` holds (its own
    symbolic dim j is kj * B), computed at run time: View(-1, 4) of a Bx5x4 `x` is
    x.reshape((x.shape[0] * 5, 4)), and back x.reshape((x.shape[0] // 5, 5, 4))."""
    j = next((j for j, d in enumerate(like_shape) if is_symbolic(d)), None)
    dims = []
    for d in shape:
        k = batch_factor(d)
        if k is None:
            dims.append(str(d))
            continue
        if j is None:
            raise ValueError(f"shape {shape_str(shape)} has a batch dim, {shape_str(like_shape)} none")
        kj, size = batch_factor(like_shape[j]), f"{like}.shape[{j}]"
        dims.append(size if k == kj else f"{size} * {k // kj}" if k % kj == 0 else
                    f"{size} // {kj // k}" if kj % k == 0 else f"{size} // {kj} * {k}")
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def pyshape(shape) -> str:
    """Python for `shape` as a reshape target: its one symbolic dim (B, B*k) is -1, which
    numpy sizes at run time from the batch the array holds (B*k rows for B*k)."""
    if sum(is_symbolic(d) for d in shape) > 1:
        raise ValueError(f"shape {shape_str(shape)} holds more than one symbolic dim")
    dims = ["-1" if is_symbolic(d) else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def pytuple(shape) -> str:
    """A shape (or a tuple of them, or any tuple) as Python source; symbolic dims as 'B'
    and 'B*5'."""
    items = [pytuple(d) if isinstance(d, (tuple, list)) else repr(dim_text(d)) if is_symbolic(d)
             else repr(d) for d in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def pystruct(s) -> str:
    """Nested index lists as Python tuple source."""
    if isinstance(s, int):
        return str(s)
    items = [pystruct(x) for x in s]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def loc_comment(node: Node) -> str:
    """`file:line:col  nn.Op [name]`, safe in a comment."""
    loc = node.loc
    where = f"{Path(loc.file).name}:{loc.line}:{loc.col}" if loc else "?"
    what = f"nn.{node.op}"
    if node.name:
        what += f" [{node.name}]"
    return safe_comment(f"{where}  {what}")


safe_doc = escape.python_docstring  # spec text inside the module docstring
safe_comment = escape.python_comment  # spec text in a # comment
