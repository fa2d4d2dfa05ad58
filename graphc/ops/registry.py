"""The op registry. One OpDef holds everything about one nn module: its Lua constructor
signature, methods, parameters and their init, shape rule, and numpy forward/backward
templates (jinja2 snippets rendered by backends/numpy.py).

Template context: the data input slots by name (`x`, or `xs` for table ops), parameter
names (`weight`, `bias`), `y` (the output; `ys` for several), `gy` (its gradient),
`a` (attrs), `in_shapes`, `out_shape`, `rank` (of the first input), `elements` (of the
output per batch row, for choices that depend on size) and, in backward,
`g` (slot -> target variable name, or None when that gradient is not needed) and
`xshape(i)` (Python for data input i's shape, its batch size read from the output gradient:
a backward that needs only an input's shape then does not keep the input). A backward
template may name only the forward values its grad node reads (OpDef.reads).

`out`: the array the value being rendered is written into, or None (a new array). The memory
plan (passes/memory.py) sets it for the values an op lists in OpDef.out; such a template
writes there with `out=` through backends/numpy.py's `binop('add', a, b)` (`a + b`, or `np.add(a, b, out=...)`)
and `ufunc('tanh', x)` (`np.tanh(x)`, or `np.tanh(x, out=...)`), or tests `out` itself.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..ir.graph import B, BatchDim, batch_factor, batch_times, is_symbolic, per_batch  # noqa: F401


class ShapeError(Exception):
    """Raised by shape rules; the caller adds the node's location."""


@dataclass
class ParamSpec:
    name: str  # 'weight' | 'bias' | ...
    shape: Callable[[dict], tuple]
    init: Callable[[dict], tuple]  # attrs -> ('uniform', stdv) | ...
    present: Callable[[dict], bool] = lambda a: True
    trainable: bool = True  # False: a buffer (BatchNorm's running stats), saved but not optimized


@dataclass
class CudaRule:
    """How the CUDA target (backends/fuse.py, backends/cuda.py) computes an op.

    kind 'pointwise': an elementwise op fused into its neighbours' kernels. `forward` is a
      C expression (jinja) of the input scalars `x` (or `xs[i]`) and `a`/`d` as in the numpy
      templates; `backward[slot]` the gradient of one input from `gy`, `y`, `x`/`xs` and `i`.
      Write non-integer constants as `(real)0.5`: `real` is float or double.
    kind 'index': an element-to-element index map (no arithmetic, no copy), fused as index
      math: `index` is 'view' (same flat index), 'narrow' (d.axis, d.start), 'select'
      (d.axis, d.index) or 'join' (d.axis, d.offsets).
    kind 'kernel': its own kernels/GEMMs. `emit_forward(cx, node)` and
      `emit_backward(cx, gnode, fwd, targets)` (targets: input slot -> gradient Value) return
      the Python lines of the generated module that compute it, writing any CUDA kernels
      through `cx`, the backend's emit context (backends/cuda.py `CudaBackend`: names, kernel
      builders, loaders, templates); `kernel` names it in kernel names and docs. `reads`:
      'prologue' when its kernel reads the data input through a fused expression (no
      materialized copy: `cx.loader`), 'plain' when it needs a stored array (cuBLAS);
      `grad_reads` the same for the output gradient ('rows': as a (N*H*W) x C matrix, for
      convolution GEMMs). `epilogue`: the output is the raw result of a GEMM (`cx.gemm(node)`)
      plus a bias, which the consumers' fused kernels add: 'bias' (output and GEMM result
      have one shape, the bias runs along the last dim; only when a bias is present) or
      'nhwc' (an image output whose GEMM result is NHWC, read back as NCHW, + bias per
      channel when present). `gemm_inner(attrs)`: for a 'bias' op whose output is
      x @ W.T (+ bias), x of rank 2, the product's inner size; when it is small the CPU
      target computes each output element as a dot product inside the kernels that read it
      (backends/fuse.py INLINE_GEMM_INPUTS) instead of calling BLAS.
    kernel 'blas' (kind 'kernel'): matrix products as cuBLAS calls: `forward` is a Python
      expression (jinja: array names `xs[i]`/`x`, `a`, `d`, `out_shape`) over the backend
      `rt` (rt.matmul) giving a new contiguous array; `backward[slot]` the same for input i's
      gradient (with `gy`).
    kernel 'elem' (kind 'kernel'): one generated kernel per output array, one thread per
      element, reading stored arrays (see backends/cuda.py `elem_kernel`): `forward` is the
      C body of `real f(...)` returning element `i` (dims `o[0..]`) of the output `y` (of
      output `m` for a table output); `backward[slot]` the same for that input's or
      parameter's gradient (parameter gradients are accumulated). Bodies read arrays with
      `ld(x, dim0, dim1, ...)` and see `a`, `d`, `c`, `shp` and `train`. `aux` names arrays
      computed first, in order: name -> (ctype 'real'|'int', shape(a, in_shapes, out_shape),
      body); an aux name the op also lists in OpDef.aux is its IR aux output. `host`/
      `host_after`: Python lines (jinja, array names as in the numpy templates) run before /
      after the forward kernels (a mask from the model's RNG, running statistics).
      `host_training_only` (bool, or attrs -> bool): the host lines do nothing in evaluate
      mode, so a model in evaluate mode can still run as a CUDA graph.
      `backward_aux`: like `aux`, computed once per backward before the gradient bodies,
      which read them (per-row sums a gradient needs, so no thread recomputes them).
    """
    kind: str
    forward: str = ""
    backward: dict = field(default_factory=dict)
    index: str = ""
    kernel: str = ""
    reads: str = "plain"
    grad_reads: str = "plain"
    aux: dict = field(default_factory=dict)
    host: str = ""
    host_after: str = ""
    backward_aux: dict = field(default_factory=dict)
    host_training_only: Any = False
    emit_forward: Optional[Callable] = None
    emit_backward: Optional[Callable] = None
    epilogue: str = ""
    gemm_inner: Optional[Callable] = None
    doc: str = ""  # how it runs, for docs/modules.md (default: by kind and kernel)


@dataclass
class OpDef:
    name: str
    signature: str  # "inputSize:int, outputSize:int, bias:bool=true"
    shape: Callable  # (attrs, in_shapes) -> out shape (tuple) or list of shapes (multi)
    forward: str
    backward: dict[str, str] = field(default_factory=dict)  # slot -> gradient expression
    backward_stmt: Optional[str] = None  # instead of `backward`: statements writing g.<slot>
    inputs: tuple[str, ...] = ("x",)  # slot names; ('xs',) = a table of any length
    params: tuple[ParamSpec, ...] = ()
    methods: dict[str, Callable] = field(default_factory=dict)  # Lua methods: (attrs, *args)
    check: Optional[Callable[[dict], Optional[str]]] = None  # attrs -> error text
    # (attrs, in_shapes) -> the text of a compile-time warning about this use (legal, but
    # probably not what was meant), or None; given at the node's location (errors.warn)
    warn: Optional[Callable] = None
    input_hint: Optional[Callable] = None  # (attrs, slot, in_shapes) -> shape or None
    elementwise: bool = False  # output shape == input shape; hints pass through
    table_output: bool = False  # `shape` returns a list of shapes: the output is a table
    nested_input: bool = False  # a table op whose input table may nest: it gets it flattened
    int_inputs: tuple = ()  # slots (names, or positions in a table) taking integer indices
    view: bool = False  # the output is a numpy view of the input: no new memory
    # every output row depends only on the same row of the inputs (so --unroll can run it
    # once over all T*B rows): a bool, or (attrs, in_shapes) -> bool
    row_wise: Any = False
    passthrough: bool = False  # the output *is* the input (Identity): no IR node at all
    structural: Optional[Callable] = None  # (attrs, struct) -> struct: a table rearrangement
    # made at lowering time with no IR node (SelectTable, NarrowTable, FlattenTable)
    derive: Optional[Callable] = None  # (attrs, in_shapes) -> dict `d` for templates
    aux: tuple[str, ...] = ()  # extra forward outputs kept for backward (e.g. argmax)
    flops: Optional[Callable] = None  # (attrs, in_shapes, out_shape), concrete -> forward FLOPs
    doc: str = ""
    aliases: tuple = ()  # other nn names of this very module (SpatialConvolutionMM)
    torch_diff: str = ""  # any difference from Torch, for docs/modules.md
    cuda: Optional[CudaRule] = None  # how --target cuda computes it; None: not supported there
    # What the backward reads of the forward's values (passes/autodiff.py puts exactly these
    # on the grad node): data input slots ('x', 'xs', ...), parameter names, 'y'/'ys' (the
    # outputs) and 'aux.<name>'. None: what the backward templates name (see backward_reads).
    reads: Optional[tuple[str, ...]] = None
    # The values whose templates can write into a given array (`out`, see above), each a new
    # array whether or not it is given one: 'y' (the forward's one output) and the input and
    # parameter slots whose gradient expression can (a parameter's gradient is then made in
    # `out` and added to the gradient buffer). A tuple, or (attrs, in_shapes) -> tuple.
    out: Any = ()

    def out_slots(self, attrs, in_shapes) -> tuple:
        return tuple(self.out(attrs, in_shapes) if callable(self.out) else self.out)

    def slots(self, attrs, n_inputs: int) -> list[tuple[str, int]]:
        """(slot name, table index) of each IR input of a node of this op (data, then
        parameters): ('x', 0), ('xs', 2), ('weight', 0)."""
        params = self.active_params(attrs)
        n_data = n_inputs - len(params)
        data = [("xs", i) for i in range(n_data)] if self.table_input else [(s, 0) for s in self.inputs[:n_data]]
        return data + [(p.name, 0) for p in params]

    @property
    def table_input(self) -> bool:
        return self.inputs == ("xs",)

    def is_row_wise(self, attrs, in_shapes) -> bool:
        return bool(self.row_wise(attrs, in_shapes) if callable(self.row_wise) else self.row_wise)

    def active_params(self, attrs) -> list[ParamSpec]:
        """Parameters and buffers this instance has, in IR input order."""
        return [p for p in self.params if p.present(attrs)]

    def backward_reads(self, needed: set[str]) -> frozenset[str]:
        """The forward values (slot names, as in OpDef.reads) the backward reads when the
        gradients of the slots in `needed` are wanted: the declared `reads`, else every value
        slot the backward templates name (one `backward` entry per needed slot; all of
        `backward_stmt`). Read from the op's own templates, once per op and slot."""
        if self.reads is not None:
            return frozenset(self.reads)
        if self.backward_stmt is not None:
            return _template_reads(self, self.backward_stmt)
        return frozenset().union(*(_template_reads(self, self.backward[k])
                                   for k in needed if k in self.backward))


REGISTRY: dict[str, OpDef] = {}


def defop(**kw) -> OpDef:
    op = OpDef(**kw)
    assert op.name not in REGISTRY, op.name
    REGISTRY[op.name] = op
    return op


# ---- helpers used by op definitions ------------------------------------------

def numel(shape) -> int:
    """Elements per unit of the batch: B counts 1, B*k counts k (per sample for Bx...)."""
    return math.prod(per_batch(d) for d in shape)


def batched(shape) -> bool:
    """The first dim is the batch: B, or B*k (leading dims folded by View(-1, ...))."""
    return bool(shape) and is_symbolic(shape[0])


def c_dim(d) -> str:
    """A dim as C text for the CUDA kernels, whose `B` is the batch size."""
    k = batch_factor(d)
    return str(d) if k is None else "B" if k == 1 else f"(B * {k})"


def c_count(shape) -> str:
    """Elements of `shape` as C text (B counted by the kernels' `B`)."""
    k = numel(shape)
    return f"B * {k}" if any(is_symbolic(d) for d in shape) else str(k)


def uniform(stdv_of):
    return lambda a: ("uniform", float(stdv_of(a)))


def torch_dim(dim: int, rank: int, what: str = "dimension") -> int:
    """Torch's 1-based (negative: from the end) dim -> 0-based axis."""
    axis = dim - 1 if dim > 0 else rank + dim
    if not 0 <= axis < rank:
        raise ShapeError(f"{what} {dim} is out of range for a {rank}-D input")
    return axis


def rows_of_input(a, in_shapes, out_shape) -> tuple:
    """A CUDA aux shape: one value per row of the first input (its first dim; a 1-D input
    is one row)."""
    return (in_shapes[0][0],) if len(in_shapes[0]) > 1 else (1,)


def shape_text(shape) -> str:
    """'Bx3x4' (for error messages)."""
    return "x".join(map(str, shape))


@functools.lru_cache(maxsize=None)
def _parser():
    import jinja2
    return jinja2.Environment()


def template_reads(text: str, names) -> frozenset[str]:
    """Which of `names` (and 'y', 'ys', 'aux.<name>') a template reads (a CUDA rule's bodies:
    what the CUDA target's backward reads of the forward)."""
    return _names_read(text, tuple(names), ())


def _template_reads(op: OpDef, text: str) -> frozenset[str]:
    return _names_read(text, tuple(op.inputs) + tuple(p.name for p in op.params), op.aux)


@functools.lru_cache(maxsize=None)
def _names_read(text: str, slots: tuple, aux: tuple) -> frozenset[str]:
    """The value slots a template names: its free variables that are data input slots,
    parameters or outputs ('y', 'ys'), and `aux.<name>` (every aux when `aux` is used whole)."""
    import jinja2  # here: importing the registry (the frontend does) need not load jinja2
    tree = _parser().parse(text)
    # names the template reads and does not set itself ({% set %}, {% for %} targets); a walk
    # of the parsed template, which costs half of jinja2.meta's (it compiles the template)
    names = {(n.name, n.ctx) for n in tree.find_all(jinja2.nodes.Name)}
    free = {name for name, ctx in names if ctx == "load"} - {name for name, ctx in names if ctx == "store"}
    values = set(slots) | {"y", "ys"}
    reads = {name for name in free if name in values}
    if "aux" in free:
        named = {f"aux.{n.attr}" for n in tree.find_all(jinja2.nodes.Getattr)
                 if isinstance(n.node, jinja2.nodes.Name) and n.node.name == "aux"}
        reads |= named or {f"aux.{a}" for a in aux}
    return frozenset(reads)
