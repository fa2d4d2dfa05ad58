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

from ..ir.graph import B, Graph, Node, Value
from . import escape


@dataclass(frozen=True)
class CodegenOptions:
    """What a backend needs from the compiler's options, and the header text the compiler
    prepared for the generated module (already escaped with safe_comment / safe_doc)."""
    optimize: bool = True  # False (-O0): no memory plan, the plain code
    no_grad: tuple = ()  # names of float inputs whose gradient nobody needs (None returned)
    sequence_state: Optional[tuple] = None  # --unroll T: (output index, input index) pairs
    dtype: str = "float32"
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


def pyshape(shape) -> str:
    """Python tuple source for a shape, B as -1 (for reshape)."""
    dims = ["-1" if d == B else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def pyshape_of(like: str, shape) -> str:
    """Python for `shape`, taking the free batch size from the array named `like` (whose
    first dim is B) at run time."""
    return "(" + ", ".join(f"{like}.shape[0]" if d == B else str(d) for d in shape) + ",)"


def pytuple(items) -> str:
    """Python tuple source of the reprs of `items`."""
    texts = [repr(d) for d in items]
    return "(" + ", ".join(texts) + ("," if len(texts) == 1 else "") + ")"


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
