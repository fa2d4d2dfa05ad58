"""The IR: a Graph of Nodes over Values. Forward and backward live in one Graph:
`nodes` is the forward program, `grad_nodes` (filled by passes.autodiff) the backward one.

A shape is a tuple of dims; a dim is an int, the free batch symbol B (first, except in
the T x B x ... sequence inputs that --unroll makes), or B times a whole number (BatchDim:
what Torch's View(-1, D) makes of a B x T x D input, with T's steps known). A shape holds at
most one symbolic dim.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import Loc

B = "B"  # the free batch dimension


@dataclass(frozen=True)
class BatchDim:
    """The batch B times `factor` (>= 2): the leading dims folded into one, (B*5) for
    Bx5x4 viewed as (B*5)x4. Make one with batch_times()."""
    factor: int

    def __str__(self):
        return f"(B*{self.factor})"


def batch_times(n: int):
    """B * n as a dim (B itself for n == 1)."""
    return B if n == 1 else BatchDim(n)


def batch_factor(d):
    """How many times B a dim is: 1 for B, k for B*k, None for a plain size."""
    return 1 if d == B else d.factor if isinstance(d, BatchDim) else None


def is_symbolic(d) -> bool:
    return d == B or isinstance(d, BatchDim)


def per_batch(d) -> int:
    """A dim's size per unit of B: B counts 1, B*k counts k, a plain size itself."""
    return batch_factor(d) or d


def dim_text(d) -> str:
    """How generated metadata writes a symbolic dim: 'B', 'B*5' (graphc_runtime reads it)."""
    return "B" if d == B else f"B*{d.factor}"


def shape_str(shape) -> str:
    if shape is None:
        return "?"
    return "x".join(str(d) for d in shape) if shape else "scalar"


@dataclass(eq=False)
class Value:
    """One array. kind: 'input' (graph input), 'param', 'buffer', 'tmp' (node output),
    'grad_output' (given to backward), 'aux' (opaque state a forward op saves for its backward)."""
    kind: str
    shape: Optional[tuple] = None
    dtype: str = "float"  # 'float' (the model's dtype) | 'index' (int64) | 'aux'
    name: str = ""  # readable hint; codegen mangles and de-duplicates it
    loc: Optional[Loc] = None


@dataclass(eq=False)
class Node:
    # an OpDef name; in the backward: 'grad' (of attrs['fwd']; its inputs are the given output
    # gradients, then the attrs['reads'] forward values it reads), 'add' (gradient fan-in sum)
    # or 'slices' (the gradients of slices of one value joined, passes/simplify.py)
    op: str
    attrs: dict
    inputs: list[Value]  # forward: data inputs first, then the op's parameters
    outputs: list[Value]
    loc: Optional[Loc] = None
    name: Optional[str] = None  # annotate{name=...} (else the Lua variable it was assigned to)
    module: Optional[str] = None  # readable module label, e.g. 'linear2'
    annotations: dict = field(default_factory=dict)  # description, graphAttributes, ...


@dataclass(eq=False)
class Param:
    value: Value
    name: str  # e.g. 'i2h_1.weight'
    init: tuple  # ('uniform', stdv) | ('normal', std) | ('const', c) | ... (runtime Module.reset)
    order: tuple  # (module serial, slot): constructor order decides the flat layout


@dataclass
class MemoryPlan:
    """Scratch memory for the numpy target (passes/memory.py): `scratch` maps each value
    written into a scratch array to its slot k in its part ('forward' or 'backward'), whose
    arrays have the shapes `slots[part]` (slot k: `_scratch[k]`, allocated once per batch size
    by the runtime)."""
    scratch: dict = field(default_factory=dict)  # Value -> (part, k)
    slots: dict = field(default_factory=lambda: {"forward": [], "backward": []})


@dataclass(eq=False)
class Graph:
    inputs: list[Value] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)  # trainable: the flat vector, in order
    buffers: list[Param] = field(default_factory=list)  # saved state, not optimized (running stats)
    nodes: list[Node] = field(default_factory=list)
    # how the flat inputs/outputs nest into the user's arguments and results: per argument,
    # an index into inputs/outputs, or a list of them (a table)
    input_struct: list = field(default_factory=list)
    output_struct: list = field(default_factory=list)
    output_names: list = field(default_factory=list)  # one per output, unique (OUTPUTS)
    # other names a user may give an input or output by (options such as --state and
    # --no-grad): the Lua variable its node was first assigned to -> its own name
    input_aliases: dict = field(default_factory=dict)
    output_aliases: dict = field(default_factory=dict)
    # filled by autodiff: grad_outputs[i] is the gradient given for outputs[i];
    # input_grads[i] the gradient returned for inputs[i] (None: no gradient);
    # param_grads: (param index, Value) pairs accumulated into the gradient buffer.
    grad_nodes: list[Node] = field(default_factory=list)
    grad_outputs: list[Value] = field(default_factory=list)
    input_grads: list[Optional[Value]] = field(default_factory=list)
    param_grads: list[tuple[int, Value]] = field(default_factory=list)
    # a model read from (or to be saved as) a Torch7 .t7: where each module's parameters sit in
    # its module tree (frontend/t7import.py t7_layout), for the generated T7_MODULES
    t7_modules: tuple = ()
    # the numpy target's scratch arrays (passes/memory.py; None: each value a new array)
    memory: Optional[MemoryPlan] = None

    def find_input(self, name: str) -> int | None:
        """The index of the input called `name` (its own name or a Lua variable alias)."""
        names = [v.name for v in self.inputs]
        name = self.input_aliases.get(name, name)
        return names.index(name) if name in names else None

    def find_output(self, name: str) -> int | None:
        name = self.output_aliases.get(name, name)
        return self.output_names.index(name) if name in self.output_names else None

    def io_names(self, outputs: bool = False) -> tuple[str, list]:
        """('input1 (x), input2', every name a user may use) for messages."""
        own = list(self.output_names) if outputs else [v.name for v in self.inputs]
        aliases = self.output_aliases if outputs else self.input_aliases
        by_name = {}
        for alias, target in sorted(aliases.items()):
            by_name.setdefault(target, []).append(alias)
        text = ", ".join(n + (f" ({', '.join(by_name[n])})" if n in by_name else "") for n in own)
        return text, own + sorted(aliases)

    def producers(self) -> dict[Value, Node]:
        return {v: n for n in self.nodes + self.grad_nodes for v in n.outputs}

    def consumers(self) -> dict[Value, list[tuple[Node, int]]]:
        uses: dict[Value, list[tuple[Node, int]]] = {}
        for n in self.nodes:
            for slot, v in enumerate(n.inputs):
                uses.setdefault(v, []).append((n, slot))
        return uses
