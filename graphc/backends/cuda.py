"""IR -> the CUDA target: one self-contained .cu of generated kernels (templates/cuda/*.j2)
and a Python module whose Model (graphc_runtime.cuda.CudaModule) allocates CuPy arrays,
calls cuBLAS for the GEMMs and launches the kernels.

The CPU target (--target cpu) is the same program on the host: the same kernels, plus one
C++ entry point per kernel (templates/cpu/entries.cpp.j2) that runs it over its n threads as
a loop (OpenMP-parallel when long); graphc_runtime.cpu builds them into a Python extension,
and its CpuModule runs the host lines on numpy arrays with numpy's BLAS.

backends/fuse.py decides *what* each kernel stores; this file writes the code. Values are
computed by `CudaBackend.value(scope, v, index)`, which returns the name of a `const` C local
holding one element of `v`: a load when `v` is stored, else the producer's expression
(ops.registry.CudaRule templates for pointwise ops, index arithmetic for
Narrow/Select/View/JoinTable, bias + layout for Linear/SpatialConvolution outputs, the ops'
gradient rules for backward values). Locals are memoized per (value, index) in the kernel's
scope, so shared subexpressions are computed once per thread. Every kernel is a gather (each thread writes its own elements and
reads only inputs), which is what lets tests run them one thread at a time on the CPU.
"""
from __future__ import annotations

import itertools
import math
import re
import types
from dataclasses import dataclass, field

from ..errors import SpecError
from ..ir.graph import B, Graph, Node, Value, is_symbolic, per_batch
from ..ops.registry import c_dim, template_reads
from ..ops import REGISTRY
from . import escape, fuse
from ..version import __version__
from .common import CodegenOptions, Namer, loc_comment, pystruct
from .templates import environment, string_template

BLOCK = 256  # threads per block of every kernel (__launch_bounds__)
# C and C++ keywords, the C math functions and names the kernels use: a spec-named local
# must not take them (nor an all-capitals name, which a header macro may own)
_C_RESERVED = set("""auto break case char const continue default do double else enum extern float
for goto if inline int long register restrict return short signed sizeof static struct switch
typedef union unsigned void volatile while bool true false class delete new operator private
protected public template this throw try catch namespace using virtual friend mutable explicit
typename nullptr constexpr decltype static_assert alignas alignof noexcept thread_local
exp expf log logf tanh tanhf sqrt sqrtf pow powf fabs fabsf fmax fmaxf fmin fminf expm1 log1p
sin cos tan abs max min floor ceil isnan isinf real i t r c B train""".split())  # r, c: CPU loops


# ---- integer index expressions (ints fold; strings are C) ---------------------------------

def _atom(e) -> bool:
    return isinstance(e, int) or re.fullmatch(r"[A-Za-z_]\w*|\d+", e) is not None


def _p(e) -> str:
    return str(e) if _atom(e) else f"({e})"


def iadd(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if b == 0:
        return a
    if a == 0:
        return b
    if isinstance(b, int) and b < 0:
        return f"{a} - {-b}"
    return f"{a} + {b}"


# A factor `k` below is an int, or C text when it involves the batch size B (a stride or
# extent of a shape with B after its first dim: the T x B x ... inputs of --unroll N).

def imul(a, k):
    if k == 0 or a == 0:
        return 0
    if k == 1:
        return a
    if isinstance(a, int) and isinstance(k, int):
        return a * k
    return f"{_p(a)} * {_p(k)}"


def idiv(a, k):
    if k == 1:
        return a
    if isinstance(a, int) and isinstance(k, int):
        return a // k
    return f"{_p(a)} / {_p(k)}"


def imod(a, k):
    if k == 1:
        return 0
    if isinstance(a, int) and isinstance(k, int):
        return a % k
    return f"{_p(a)} % {_p(k)}"


def strides(shape) -> list:
    """Element strides of a contiguous array: ints, or C text with B where a B lies to the
    right (a leading B never contributes)."""
    out, static, dynamic = [], 1, False
    for d in reversed(shape):
        out.append(static if not dynamic else ("B" if static == 1 else f"B * {static}"))
        dynamic = dynamic or is_symbolic(d)
        static *= per_batch(d)  # B*k: k here, B in `dynamic`
    return out[::-1]


# ---- kernels: parameters, scopes, indices -------------------------------------------------

class KernelBuilder:
    """One kernel's parameters (the arrays it reads and writes, and B) and its local names."""

    def __init__(self):
        self.params: dict[str, tuple[str, str]] = {}  # C name -> (declaration, python argument)
        self.count = itertools.count()
        self.uses_B = False
        self.ops: list[str] = []  # op names inlined, for the kernel's name
        self.nodes: list[Node] = []  # IR nodes inlined, in order: the kernel's source nodes
        self.locals: set[str] = set()  # spec-named locals taken
        self.suffix: dict[str, int] = {}  # base name -> the last number tried after it
        # CPU target: column bounds that conditions test (`c < 1024`: which slice of a Narrow
        # or JoinTable); a rows x cols segment's column loop is cut there (fused.cpp.j2)
        self.col_cuts: set[int] = set()

    def cut(self, at: str, *bounds: int):
        if at == "c":  # the column counter of a rows x cols segment (CudaBackend.fused)
            self.col_cuts.update(bounds)

    def var(self, prefix: str) -> str:
        return f"{prefix}{next(self.count)}"

    def local(self, hint: str | None, prefix: str = "v") -> str:
        """A new local for a value: its spec name (forget_gate) when it has one, unique in
        the kernel; else prefix + a number. Spec names never take the forms of the kernel's
        other names (a_/o_/i_ parameters, g_ helpers, v0/j0 temporaries, i, t, B)."""
        if not hint:
            return self.var(prefix)
        base = escape.c_identifier(hint)
        if base in _C_RESERVED or base.isupper() or re.match(r"(a|o|i|g)_|[vj]\d+$|__", base):
            base = "v_" + base
        name, k = base, self.suffix.get(base, 1)
        while name in self.locals:  # forget_gate, forget_gate_2, ...: one try each, usually
            k += 1
            name = f"{base}_{k}"
        self.suffix[base] = k
        self.locals.add(name)
        return name

    def source(self, node: Node):
        if node not in self.nodes:
            self.nodes.append(node)

    def array(self, pyname: str, ctype: str = "real", write: bool = False, cname: str = "") -> str:
        """The C parameter for python array `pyname`: a_<name>, or a fixed `cname` (o_y...)."""
        cname = cname or "a_" + pyname
        if cname not in self.params:
            const = "" if write else "const "
            self.params[cname] = (f"{const}{ctype}* __restrict__ {cname}", pyname)
        return cname

    def count_expr(self, shape) -> str:
        """Elements of `shape`, as C (B is a kernel parameter)."""
        static = 1
        for d in shape:
            static *= per_batch(d)
        if any(is_symbolic(d) for d in shape):
            self.uses_B = True
            return "B" if static == 1 else f"B * {static}"
        return str(static)

    def declarations(self) -> list[str]:
        return [d for d, _ in self.params.values()] + (["int B"] if self.uses_B else [])

    def py_args(self, cpu: bool = False) -> list[str]:
        """The launch's Python arguments; B as an int32 for a CUDA kernel, a plain int for
        a CPU target's entry point (which takes any Python integer)."""
        return [py for _, py in self.params.values()] + ([("B" if cpu else "np.int32(B)")] if self.uses_B else [])


class Scope:
    """Straight-line code of one thread (or one branch of it), with a memo of what is bound."""

    def __init__(self, kb: KernelBuilder, parent: "Scope | None" = None):
        self.kb, self.parent = kb, parent
        self.lines: list[str] = []
        self.memo: dict = {}
        self.loads: dict[str, tuple] = {} if parent is None else parent.loads

    def lookup(self, key):
        s = self
        while s is not None:
            if key in s.memo:
                return s.memo[key]
            s = s.parent
        return None

    def int(self, e):
        if _atom(e):
            return e
        hit = self.lookup(("int", e))
        if hit is None:
            hit = self.kb.var("j")
            self.lines.append(f"const int {hit} = {e};")
            self.memo[("int", e)] = hit
        return hit

    def real(self, e: str, key=None, hint: str | None = None) -> str:
        """A local holding C expression `e` (bound once per scope), named after `hint`."""
        hit = self.lookup(key) if key is not None else None
        if hit is not None:
            return hit
        if re.fullmatch(r"[A-Za-z_]\w*", e):
            name = e  # already a name: no copy
        elif self.lookup(("expr", e)) is not None:
            name = self.lookup(("expr", e))  # the same expression text: computed already
        else:
            name = self.kb.local(hint)
            self.lines.append(f"const real {name} = {e};")
            self.memo[("expr", e)] = name
        if key is not None:
            self.memo[key] = name
        return name

    def guarded(self, cond: str, make, hint: str | None = None) -> str:
        """`real v = 0; if (cond) { ...; v = make(); }`: nothing in make() runs (or loads
        out of bounds) unless cond holds."""
        name = self.kb.local(hint)
        child = Scope(self.kb, self)
        e = make(child)
        self.lines.append(f"real {name} = 0;")
        self.lines.append(f"if ({cond}) {{")
        self.lines += ["  " + line for line in child.lines]
        self.lines.append(f"  {name} = {e};")
        self.lines.append("}")
        return name


_DECL = re.compile(r"\s*const (?:int|real) (\w+) = ")


def dead_code_free(lines: list[str], uses: str = "") -> list[str]:
    """`lines` without the `const` locals nothing reads (Index binds every dim of an
    element even when an expression needs only one)."""
    lines = list(lines)
    while True:
        counts: dict[str, int] = {}
        for word in re.findall(r"\w+", "\n".join(lines) + "\n" + uses):
            counts[word] = counts.get(word, 0) + 1
        keep = [line for line in lines if not ((m := _DECL.match(line)) and counts[m.group(1)] == 1)]
        if len(keep) == len(lines):
            return keep
        lines = keep


class Index:
    """An element of an array of `shape`: its flat offset and/or its per-dim indices, each
    computed (and bound to a local) only when asked for."""

    def __init__(self, sc: Scope, shape, flat=None, dims=None):
        self.sc, self.shape = sc, tuple(shape)
        self._flat, self._dims = flat, (list(dims) if dims is not None else None)
        assert flat is not None or dims is not None
        if flat is not None and dims is not None:  # both known: the same element either way
            sc.memo[("flat", self.shape, tuple(map(str, self._dims)))] = flat

    def flat(self):
        if self._flat is None:
            key = ("flat", self.shape, tuple(map(str, self._dims)))
            hit = self.sc.lookup(key)
            if hit is None:
                e = 0
                for d, s in zip(self._dims, strides(self.shape)):
                    e = iadd(e, imul(d, s))
                hit = self.sc.int(e)
            self._flat = hit
        return self._flat

    def dims(self) -> list:
        if self._dims is None:
            out, leading = [], True
            for n, s in zip(self.shape, strides(self.shape)):
                if n == 1:
                    out.append(0)
                    continue
                e = idiv(self._flat, s)
                out.append(self.sc.int(e if leading else imod(e, c_dim(n) if is_symbolic(n) else n)))
                leading = False
            self._dims = out
            self.sc.memo[("flat", self.shape, tuple(map(str, out)))] = self._flat
        return self._dims

    def dim(self, k: int):
        return self.dims()[k]

    def key(self):
        if self._flat is not None:
            return ("f", self.shape, str(self._flat))
        return ("d", self.shape, tuple(map(str, self._dims)))

    def as_shape(self, shape) -> "Index":
        """The same element seen with another shape of the same size (Torch's nElement rule)."""
        if tuple(shape) == self.shape:
            return self
        return Index(self.sc, shape, flat=self.flat())

    def with_dims(self, shape, dims) -> "Index":
        return Index(self.sc, shape, dims=dims)


class Lazy:
    """A template variable computed (and its loads emitted) only if the template uses it."""

    def __init__(self, fn):
        self.fn, self.text = fn, None

    def __str__(self):
        if self.text is None:
            self.text = self.fn()
        return self.text


# ---- the backend ---------------------------------------------------------------------------

@dataclass
class Kernel:
    name: str
    source: str
    params: list  # its C parameter declarations, in launch-argument order
    loop: bool = False  # CPU form: one call runs every element (else: one thread's work)


@dataclass
class Block:
    comment: str
    lines: list = field(default_factory=list)


class CudaBackend:
    def __init__(self, graph: Graph, options: CodegenOptions):
        self.g = graph
        self.opts = options
        self.plan = fuse.plan(graph, keep_backward_reads=self.cpu, inline_gemms=self.cpu)
        self.env = environment()
        self.n = Namer.for_graph(graph)
        self.producer = graph.producers()
        self.node_rank = {n: k for k, n in enumerate(graph.nodes + graph.grad_nodes)}
        self.prefix = escape.c_identifier(options.module_name)[:24]
        if not re.match(r"[A-Za-z_]", self.prefix):
            self.prefix = "m_" + self.prefix
        self.kernels: list[Kernel] = []
        self.loop_kernel = False  # the kernel being rendered uses `threads` (see render())
        self.loadable: set[Value] = set(graph.inputs) | {p.value for p in graph.params} | \
            {p.value for p in graph.buffers}
        self.elem_aux: dict = {}  # (forward node, aux name) -> Arr, for 'elem' ops' backward
        self.strided: set[Value] = set()  # arrays that are views made by view steps
        self.kernel_reads: set[str] = set()  # python arrays given to 'elem' kernels (backward_reads)
        self.host_code: list[Node] = []  # nodes whose forward runs host lines
        self.rows: dict[Value, str] = {}  # value -> python name of its NHWC ('rows') array
        self.joined_made: set[Value] = set()  # joined arrays allocated so far (allocation())
        self.param_index = {p.value: i for i, p in enumerate(graph.params)}
        # parameter gradient Value -> the gradient buffer view it accumulates into
        self.grad_view: dict[int, str] = {}
        self.param_grad: dict[Value, str] = {}
        for i, v in graph.param_grads:
            if i not in self.grad_view:
                self.grad_view[i] = self.n.fresh("g_" + self.n.names[graph.params[i].value][2:])
            self.param_grad[v] = self.grad_view[i]
        # lazy zeroGradParameters (graphc_runtime Module): each parameter's first gradient
        # contribution in backward order; those whose op writes it (beta_of) need no zeroing
        self.first_grads: set[Value] = set()
        seen = set()
        for i, v in graph.param_grads:
            if i not in seen:
                self.first_grads.add(v)
                seen.add(i)
        self.written_first: set[Value] = set()

    # ---- names ---------------------------------------------------------------------------

    @property
    def cpu(self) -> bool:
        """Whether this is the CPU target (for an op's emit hooks, like `render`'s `cpu`)."""
        return self.opts.target == "cpu"

    def kernel_name(self, what: str) -> str:
        what = escape.c_identifier(what.lower())[:48].rstrip("_")
        return f"{self.prefix}_k{len(self.kernels)}_{what}"

    def sources(self, nodes) -> list[str]:
        """Comment lines listing a kernel's source nodes, in program order."""
        return ["  " + self.describe(n) for n in sorted(nodes, key=self.node_rank.get)]

    def describe(self, node: Node) -> str:
        """Where a (forward or grad) node comes from: `lstm.lua:30:15  nn.Narrow [forget_gate]`
        (kernel comments: the templates escape it with |ccomment)."""
        if node.op == "grad":
            return loc_comment(node.attrs["fwd"]) + " (backward)"
        return loc_comment(node)

    def pyshape(self, shape) -> str:
        dims = [c_dim(d) for d in shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    def pynumel(self, shape) -> str:
        static = 1
        for d in shape:
            static *= per_batch(d)
        symbolic = any(is_symbolic(d) for d in shape)
        return ("B" if static == 1 else f"B * {static}") if symbolic else str(static)

    # ---- element expressions ---------------------------------------------------------------

    def value(self, sc: Scope, v: Value, idx: Index, hint: str | None = None) -> str:
        """A C name holding element `idx` of `v`: a local named after `hint`, else after
        the value (its spec name). Index maps pass their own name on to what they read, so
        the element of forget_gate = Narrow(all_gates) is the local `forget_gate`."""
        key = ("val", id(v), idx.key())
        hit = sc.lookup(key)
        if hit is not None:
            return hit
        hint = hint or v.name
        if v in self.loadable:
            arr = sc.kb.array(self.n(v))
            flat = idx.flat()
            name = sc.real(f"{arr}[{flat}]", key, hint)
            sc.loads.setdefault(name, (self.n(v), str(flat), tuple(v.shape)))
            return name
        n = self.producer[v]
        if n.op == "add":
            parts = [self.value(sc, x, idx.as_shape(x.shape)) for x in n.inputs]
            return sc.real(" + ".join(parts), key, hint)
        if n.op == "grad":
            sc.kb.ops.append(n.attrs["fwd"].op)
            sc.kb.source(n)
            return sc.real(self.grad_value(sc, n, v, idx, hint), key, hint)
        if n.op == "slices":  # gradients of slices of one value (passes/simplify.py)
            sc.kb.ops.append("slices")
            return sc.real(self.slices_value(sc, n, idx, hint), key, hint)
        sc.kb.ops.append(n.op)
        sc.kb.source(n)
        if n in self.plan.inline:
            return sc.real(self.inline_gemm(sc, n, idx), key, hint)
        if n in self.plan.gemm:
            return sc.real(self.epilogue(sc, n, idx), key, hint)
        rule = REGISTRY[n.op].cuda
        if rule.kind == "pointwise":
            return sc.real(self.pointwise(sc, n, idx), key, hint)
        return sc.real(self.gather(sc, n, idx, hint), key, hint)

    def inline_gemm(self, sc, n: Node, idx: Index) -> str:
        """Element (row, col) of x @ W.T (+ bias) computed here (fuse.Plan.inline): the bias
        plus the dot product of x's row with W's row."""
        x, w = n.inputs[0], n.inputs[1]
        size = REGISTRY[n.op].cuda.gemm_inner(n.attrs)
        row, col = idx.dims()
        bias = fuse.bias_input(n)
        acc = sc.kb.var("v")
        k = sc.kb.var("j")
        start = self.value(sc, bias, Index(sc, bias.shape, dims=[col])) if bias is not None else "0"
        xa, wa = sc.kb.array(self.n(x)), sc.kb.array(self.n(w))
        sc.lines.append(f"real {acc} = {start};")
        sc.lines.append(f"for (int {k} = 0; {k} < {size}; ++{k}) "
                        f"{acc} += {xa}[{_p(row)} * {size} + {k}] * {wa}[{_p(col)} * {size} + {k}];")
        return acc

    def pointwise(self, sc, n: Node, idx: Index) -> str:
        op = REGISTRY[n.op]
        data = self.data_inputs(n)
        xs = [Lazy(lambda x=x: self.value(sc, x, idx.as_shape(x.shape))) for x in data]
        ctx = self.template_ctx(n, xs)
        return string_template(op.cuda.forward).render(ctx).strip()

    def template_ctx(self, n: Node, xs: list) -> dict:
        op = REGISTRY[n.op]
        in_shapes = [v.shape for v in self.data_inputs(n)]
        ctx = {"a": n.attrs, "xs": xs, "c": c_real,
               "d": types.SimpleNamespace(**(op.derive(n.attrs, in_shapes) if op.derive else {}))}
        if not op.table_input:
            ctx.update(zip(op.inputs, xs))
        return ctx

    def gather(self, sc, n: Node, idx: Index, hint: str | None = None) -> str:
        """Index ops (no arithmetic): which input element an output element is."""
        op = REGISTRY[n.op]
        data = self.data_inputs(n)
        d = op.derive(n.attrs, [x.shape for x in data]) if op.derive else {}
        kind = op.cuda.index
        if kind == "view":
            return self.value(sc, data[0], idx.as_shape(data[0].shape), hint)
        if kind == "narrow":
            dims = list(idx.dims())
            dims[d["axis"]] = sc.int(iadd(dims[d["axis"]], d["start"]))
            return self.value(sc, data[0], idx.with_dims(data[0].shape, dims), hint)
        if kind == "select":
            dims = list(idx.dims())
            dims.insert(d["axis"], d["index"])
            return self.value(sc, data[0], idx.with_dims(data[0].shape, dims), hint)
        if kind == "join" and len(data) == 1:
            return self.value(sc, data[0], idx, hint)
        if kind == "join":
            axis, offs = d["axis"], d["offsets"]
            at = idx.dim(axis)
            branches = []  # emitted first: any binding they add to `sc` precedes the if-chain
            for k, x in enumerate(data):
                dims = list(idx.dims())
                child = Scope(sc.kb, sc)
                dims[axis] = child.int(iadd(at, -offs[k]))
                branches.append((child, self.value(child, x, Index(child, x.shape, dims=dims))))
            result = sc.kb.local(hint)
            sc.lines.append(f"real {result};")
            sc.kb.cut(at, *offs)
            for k, (child, e) in enumerate(branches):
                last = k == len(branches) - 1
                sc.lines.append("} else {" if last else
                                f"{'if' if k == 0 else '} else if'} ({_p(at)} < {offs[k + 1]}) {{")
                sc.lines += ["  " + line for line in child.lines]
                sc.lines.append(f"  {result} = {e};")
            sc.lines.append("}")
            return result
        raise AssertionError(kind)

    def epilogue(self, sc, n: Node, idx: Index) -> str:
        """The output of an epilogue op (CudaRule.epilogue): 'bias': GEMM + bias; 'nhwc': the
        NHWC GEMM result read as NCHW, + bias."""
        gemm = self.plan.gemm[n]
        bias = fuse.bias_input(n)
        if REGISTRY[n.op].cuda.epilogue == "bias":
            parts = [self.value(sc, gemm, idx.as_shape(gemm.shape))]
            channel = idx.dim(len(idx.shape) - 1)
        else:
            dims = list(idx.dims())
            c = len(dims) - 3
            channel = dims[c]
            nhwc = dims[:c] + dims[c + 1:] + [channel]
            parts = [self.value(sc, gemm, Index(sc, gemm.shape, dims=nhwc))]
        if bias is not None:
            parts.append(self.value(sc, bias, Index(sc, bias.shape, dims=[channel])))
        return " + ".join(parts)

    def grad_value(self, sc, gnode: Node, v: Value, idx: Index, hint: str | None = None) -> str:
        """Element `idx` of gradient output `v` of a pointwise/index op's grad node."""
        fwd: Node = gnode.attrs["fwd"]
        op = REGISTRY[fwd.op]
        data = self.data_inputs(fwd)
        slots = [k for k, need in enumerate(gnode.attrs["needs"]) if need]
        k = slots[gnode.outputs.index(v)]  # the input of fwd whose gradient this is
        y = fwd.outputs[0]
        gy = gnode.inputs[0]
        rule = op.cuda
        if rule.kind == "pointwise":
            oidx = idx.as_shape(y.shape)
            xs = [Lazy(lambda x=x: self.value(sc, x, oidx.as_shape(x.shape))) for x in data]
            ctx = self.template_ctx(fwd, xs)
            ctx.update(gy=Lazy(lambda: self.value(sc, gy, oidx)), y=Lazy(lambda: self.value(sc, y, oidx)),
                       i=k)
            slot = "xs" if op.table_input else op.inputs[k]
            return string_template(rule.backward[slot]).render(ctx).strip()
        d = op.derive(fwd.attrs, [x.shape for x in data]) if op.derive else {}
        if rule.index == "view":
            return self.value(sc, gy, idx.as_shape(y.shape), hint)
        if rule.index == "join":
            dims = list(idx.dims())
            dims[d["axis"]] = sc.int(iadd(dims[d["axis"]], d["offsets"][k]))
            return self.value(sc, gy, Index(sc, y.shape, dims=dims), hint)
        at = idx.dim(d["axis"])
        if rule.index == "narrow":
            sc.kb.cut(at, d["start"], d["stop"])
            cond = f"{_p(at)} >= {d['start']} && {_p(at)} < {d['stop']}"
            if d["start"] == 0:
                cond = f"{_p(at)} < {d['stop']}"

            def inside(child):
                dims = list(idx.dims())
                dims[d["axis"]] = child.int(iadd(at, -d["start"]))
                return self.value(child, gy, Index(child, y.shape, dims=dims))
            return sc.guarded(cond, inside, hint)
        if rule.index == "select":
            sc.kb.cut(at, d["index"], d["index"] + 1)

            def picked(child):
                dims = list(idx.dims())
                del dims[d["axis"]]
                return self.value(child, gy, Index(child, y.shape, dims=dims))
            return sc.guarded(f"{_p(at)} == {d['index']}", picked, hint)
        raise AssertionError(rule.index)

    def slices_value(self, sc, n: Node, idx: Index, hint: str | None = None) -> str:
        """Sum of gradients of slices [start, stop) along `axis`, each placed at its offset."""
        axis = n.attrs["axis"]
        at = idx.dim(axis)
        parts = []
        for x, (start, stop) in zip(n.inputs, n.attrs["ranges"]):
            def part(child, x=x, start=start):
                dims = list(idx.dims())
                dims[axis] = child.int(iadd(at, -start))
                return self.value(child, x, Index(child, x.shape, dims=dims))
            cond = f"{_p(at)} < {stop}" if start == 0 else f"{_p(at)} >= {start} && {_p(at)} < {stop}"
            sc.kb.cut(at, start, stop)
            parts.append(sc.guarded(cond, part, x.name))
        return " + ".join(parts)

    @staticmethod
    def data_inputs(n: Node) -> list[Value]:
        op = REGISTRY[n.op]
        return n.inputs[: len(n.inputs) - len(op.active_params(n.attrs))]

    # ---- loaders: a (possibly virtual) input read inside a kernel op's loop ----------------

    def loader(self, kb: KernelBuilder, v: Value, what: str):
        """(device function source, call(flat) -> C expression) reading element `flat` of v."""
        if v in self.loadable:
            arr = kb.array(self.n(v))
            return "", (lambda flat: f"{arr}[{flat}]")
        lkb = KernelBuilder()
        lkb.count = kb.count
        sc = Scope(lkb)
        result = self.value(sc, v, Index(sc, v.shape, flat="i"))
        kb.ops += lkb.ops
        for n in lkb.nodes:
            kb.source(n)
        for cname, entry in lkb.params.items():
            kb.params.setdefault(cname, entry)
        name = f"{self.prefix}_k{len(self.kernels)}_{what}"
        src = self.env.get_template("cuda/loader.cu.j2").render(
            comment=[f"element i of {v.name}, computed from "
                     f"{', '.join(py for _, py in lkb.params.values())}; source nodes:"]
            + self.sources(lkb.nodes),
            name=name, params=[d for d, _ in lkb.params.values()],
            lines=dead_code_free(sc.lines, result), result=result)
        cargs = list(lkb.params)
        return src.rstrip("\n"), (lambda flat: f"{name}({', '.join(cargs + [str(flat)])})")

    # ---- fused kernels ---------------------------------------------------------------------

    def fused(self, step: fuse.Step, backward: bool) -> list[str]:
        """One kernel storing every demand of the step; Python lines that allocate and launch."""
        kb = KernelBuilder()
        segments: dict[tuple, dict] = {}
        for d in step.demands:
            shape = tuple(d.value.shape) if d.layout == "plain" else fuse.conv_gemm_shape(d.value.shape)
            segments.setdefault((shape, d.layout == "plain"), {"shape": shape, "demands": []})["demands"].append(d)
        py_alloc, aliases, segs = [], [], []
        loop = self.cpu  # a loop over elements, not one thread's work
        for seg in segments.values():
            sc = Scope(kb)
            shape = seg["shape"]
            if loop and len(shape) >= 2 and isinstance(shape[-1], int) and shape[-1] > 1:
                # rows x columns: the column is the inner (vectorized) loop's counter, and
                # conditions on it (which slice of a JoinTable) split that loop, not mask it
                rows = Index(sc, shape[:-1], flat="r").dims()
                it = Index(sc, shape, flat="i", dims=list(rows) + ["c"])
                seg["rows"], seg["cols"] = kb.count_expr(shape[:-1]), shape[-1]
            else:
                it = Index(sc, shape, flat="i")
            written: dict[str, str] = {}  # C result -> python name already holding it
            writes, what = [], []
            # a slice written into its joined array first: same values then alias that slice
            for d in sorted(seg["demands"], key=lambda d: d.value not in self.plan.joined):
                v = d.value
                if d.layout == "plain":
                    pyname = self.n(v)
                    idx = it
                else:
                    pyname = self.n.fresh(self.n(v) + "_rows")
                    self.rows[v] = pyname
                    dims = list(it.dims())
                    c = len(dims) - 3
                    idx = Index(sc, v.shape, dims=dims[:c] + [dims[-1]] + dims[c:-1])
                res = self.value(sc, v, idx)
                load = sc.loads.get(res)
                joined = self.plan.joined.get(v) if d.layout == "plain" else None
                if res in written and not joined:
                    aliases.append(f"{pyname} = {written[res]}")
                elif d.layout == "plain" and load and load[1] == "i" and load[2] == seg["shape"] \
                        and not joined:
                    aliases.append(f"{pyname} = {load[0]}")  # a copy of a stored array: reuse it
                    written[res] = pyname
                else:
                    out = kb.array(pyname, write=True)
                    writes.append(f"{out}[i] = {res};")
                    written[res] = pyname
                    py_alloc += self.allocation(pyname, seg["shape"], joined)
                    what.append(v.name + ("" if d.layout == "plain" else " (NHWC rows)"))
            cuts = ()
            if seg.get("cols"):
                cuts = tuple(sorted({0, seg["cols"]} | {k for k in kb.col_cuts if 0 < k < seg["cols"]}))
            kb.col_cuts = set()
            if writes:
                segs.append({"count": kb.count_expr(seg["shape"]), "pycount": self.pynumel(seg["shape"]),
                             "rows": seg.get("rows"), "cols": seg.get("cols"),
                             "cuts": cuts,
                             "lines": dead_code_free(sc.lines + writes), "what": ", ".join(what) + f": {'x'.join(map(str, seg['shape']))}"})
        lines = []
        if segs:
            ops = list(dict.fromkeys(o.lower().replace("table", "") for o in kb.ops)) or ["copy"]
            name = self.kernel_name(("bwd_" if backward else "fwd_") + "_".join(ops[:4]))
            comment = [f"fused: {', '.join(dict.fromkeys(kb.ops)) or 'copy'}"]
            if kb.nodes:
                comment += ["source nodes:"] + self.sources(kb.nodes)
            src = self.env.get_template("cpu/fused.cpp.j2" if loop else "cuda/fused.cu.j2").render(
                comment=comment, block=BLOCK, name=name, params=kb.declarations(), segments=segs)
            self.kernels.append(Kernel(name, src.rstrip("\n"), kb.declarations(), loop))
            lines += py_alloc
            n_threads = " + ".join(s["pycount"] for s in segs)
            lines.append(self.launch(name, n_threads, kb))
        lines += aliases
        for d in step.stores:
            self.loadable.add(d)
        return lines

    def allocation(self, pyname: str, shape, joined) -> list[str]:
        """Python lines making a fused kernel's output array: a new one, or (Plan.joined) its
        slice of the joined array, made by the first of its slices that is written."""
        if joined is None:
            return [f"{pyname} = rt.empty({self.pyshape(shape)}, dt)"]
        whole, k = joined
        lines = []
        if whole not in self.joined_made:
            self.joined_made.add(whole)
            lines.append(f"{self.n(whole)} = rt.empty({self.pyshape(whole.shape)}, dt)"
                         f"  # its slices are written in place")
        return lines + [f"{pyname} = {self.n(whole)}[{k}]"]

    def launch(self, name: str, n_threads: str, kb: KernelBuilder, extra=()) -> str:
        """The Python line running kernel `name`: on the CPU target a direct call of its entry
        point (the module's `_kernels`; an entry point runs nothing for 0 threads), else
        CudaModule._launch (grid and block from the thread count)."""
        args = ", ".join(kb.py_args(self.cpu) + list(extra))
        if self.cpu:
            return f"_kernels.{name}({n_threads}, {args})"
        return f"self._launch({name!r}, {n_threads}, {args})"

    # ---- views ---------------------------------------------------------------------------

    def view_expr(self, v: Value, arrays: set) -> str:
        if v in arrays:
            return self.n(v)
        n = self.producer[v]
        if n.op == "grad":
            fwd = n.attrs["fwd"]
            src = self.view_expr(n.inputs[0], arrays)
            rule = REGISTRY[fwd.op].cuda
            if rule.index == "view":
                return f"{src}.reshape({self.pyshape(v.shape)})"
            data = self.data_inputs(fwd)
            d = REGISTRY[fwd.op].derive(fwd.attrs, [x.shape for x in data])
            k = [i for i, need in enumerate(n.attrs["needs"]) if need][n.outputs.index(v)]
            return f"{src}[{':, ' * d['axis']}{d['offsets'][k]}:{d['offsets'][k + 1]}]"
        src = self.view_expr(n.inputs[0], arrays)
        op = REGISTRY[n.op]
        d = op.derive(n.attrs, [n.inputs[0].shape]) if op.derive else {}
        if op.cuda.index == "view":
            return f"{src}.reshape({self.pyshape(v.shape)})"
        if op.cuda.index == "narrow":
            return f"{src}[{':, ' * d['axis']}{d['start']}:{d['stop']}]"
        return f"{src}[{':, ' * d['axis']}{d['index']}]"

    # ---- kernel ops: the op's emit hooks (CudaRule.emit_forward/emit_backward), or the
    # 'blas' and 'elem' rules below ---------------------------------------------------------

    def op_forward(self, node: Node) -> list[str]:
        rule = REGISTRY[node.op].cuda
        if rule.emit_forward is not None:
            return rule.emit_forward(self, node)
        return {"blas": self.fwd_blas, "elem": self.fwd_elem}[rule.kernel](node)

    def op_backward(self, gnode: Node) -> list[str]:
        fwd = gnode.attrs["fwd"]
        rule = REGISTRY[fwd.op].cuda
        slots = [k for k, need in enumerate(gnode.attrs["needs"]) if need]
        targets = dict(zip(slots, gnode.outputs))
        if rule.emit_backward is not None:
            return rule.emit_backward(self, gnode, fwd, targets)
        return {"blas": self.bwd_blas, "elem": self.bwd_elem}[rule.kernel](gnode, fwd, targets)

    # ---- the emit context an op's hooks see (`cx`) -------------------------------------------

    def kernel_builder(self) -> KernelBuilder:
        """A new kernel's parameters: .array(pyname, ctype, write, cname), .count_expr(shape),
        .declarations(), .uses_B."""
        return KernelBuilder()

    def render(self, template: str, **ctx) -> str:
        """An op's CUDA source template (jinja text), with `block` (threads per block) and
        the kernel's thread loop: `{{ threads("i", n) }}` at the top of its body (i: the
        thread's index, n: the thread count) and `{{ end_threads }}` before its closing
        brace. On a GPU that is the thread's index and an early return past n; on the CPU
        target a vectorized loop over i (a kernel so written is a loop kernel there)."""
        return string_template(template).render(block=BLOCK, **ctx, **self.thread_loop())

    def thread_loop(self) -> dict:
        """`threads`/`end_threads` (see render()), and `cpu`: whether the kernel is for the
        CPU target, where an op may give a CPU form of its own (a loop over images or planes
        that scatters where the GPU form gathers), opened by `{{ each(p, n, work) }}` (p: the
        piece's index, n: how many, work: elements each) and closed by `{{ end_threads }}`."""
        if not self.cpu:
            return {"threads": lambda i, n: f"const int {i} = (int)(blockIdx.x * blockDim.x + "
                                            f"threadIdx.x);\n  if ({i} >= {n}) return;",
                    "end_threads": "", "cpu": False}

        def threads(i, n):
            self.loop_kernel = True
            return f"graphc_loop({n}, [=](const int {i}) {{"

        def each(p, n, work):
            self.loop_kernel = True
            return f"graphc_each({n}, {work}, [=](const int {p}) {{"
        return {"threads": threads, "each": each, "end_threads": "  });\n", "cpu": True}

    def add_kernel(self, name: str, source: str, kb: KernelBuilder):
        """Put a rendered kernel (its __global__ function is `name`, with the parameters of
        `kb`, its KernelBuilder: kb.declarations()) into the .cu module."""
        loop, self.loop_kernel = self.loop_kernel, False  # rendered with `threads` (render())
        self.kernels.append(Kernel(name, source.strip("\n"), kb.declarations(), loop))

    def gemm(self, node: Node):
        """The raw GEMM result Value of an epilogue op's node (fuse.Plan.gemm), or None."""
        return self.plan.gemm.get(node)

    def beta_of(self, v: Value) -> str:
        """`, beta=...` for a GEMM accumulating parameter gradient `v` into its buffer
        (rt.addmm, rt.add_colsum): 0 (the GEMM writes) on the parameter's first contribution
        when the buffer is pending zero (`_zeroed`), else empty (beta 1, it adds)."""
        if v not in self.first_grads:
            return ""
        self.written_first.add(v)
        return ", beta=0.0 if _zeroed else 1.0"

    def grad_buffer(self, v: Value) -> str:
        """The python name of the gradient buffer view that parameter gradient `v` adds to."""
        return self.param_grad[v]

    def rows_of(self, v: Value) -> str:
        """The python name of `v` stored as NHWC rows (a 'rows' grad_reads)."""
        return self.rows[v]

    # ---- 'blas' kernel ops: matrix products as cuBLAS calls (Python lines, the op's rule) ------

    def blas_context(self, node: Node) -> dict:
        op = REGISTRY[node.op]
        data = self.data_inputs(node)
        d = op.derive(node.attrs, [v.shape for v in data]) if op.derive else {}
        names = [self.n(v) for v in data]
        ctx = {"a": node.attrs, "d": types.SimpleNamespace(**d), "xs": names,
               "shapes": [self.pyshape(v.shape) for v in data]}
        if not op.table_input:
            ctx.update(zip(op.inputs, names))
        return ctx

    def fwd_blas(self, node: Node) -> list[str]:
        y = node.outputs[0]
        text = string_template(REGISTRY[node.op].cuda.forward).render(
            self.blas_context(node), out_shape=self.pyshape(y.shape))
        return [f"{self.n(y)} = {text.strip()}"]

    def bwd_blas(self, gnode, fwd, targets) -> list[str]:
        op = REGISTRY[fwd.op]
        ctx = self.blas_context(fwd) | {"gy": self.n(gnode.inputs[0])}
        lines = []
        for k, v in sorted(targets.items()):
            slot = "xs" if op.table_input else op.inputs[k]
            text = string_template(op.cuda.backward[slot]).render(ctx, i=k)
            lines.append(f"{self.n(v)} = {text.strip()}")
        return lines

    # ---- 'elem' kernel ops: one thread per element, the body from the op's CudaRule ----------

    def dense(self, v: Value, prep: list) -> str:
        """The python name of `v` as a contiguous array: a slice made by a view step is
        copied first (rt.contiguous), since elem kernels index arrays flat."""
        if v not in self.strided:
            return self.n(v)
        name = self.n.fresh(self.n(v) + "_dense")
        prep.append(f"{name} = rt.contiguous({self.n(v)})")
        self.kernel_reads.add(self.n(v))
        return name

    def elem_arrays(self, node: Node, prep: list) -> dict:
        """Template name -> Arr for a forward node's data inputs and parameters."""
        op = REGISTRY[node.op]
        data = self.data_inputs(node)
        arrs = [Arr(self.dense(v, prep), v.shape, "int" if v.dtype == "index" else "real") for v in data]
        out = {"xs": arrs} if op.table_input else dict(zip(op.inputs, arrs))
        for p, v in zip(op.active_params(node.attrs), node.inputs[len(data):]):
            out[p.name] = Arr(self.n(v), v.shape)
        return out

    def elem_context(self, node: Node, arrays: dict) -> dict:
        op = REGISTRY[node.op]
        in_shapes = [v.shape for v in self.data_inputs(node)]
        d = op.derive(node.attrs, in_shapes) if op.derive else {}
        return {"a": node.attrs, "d": types.SimpleNamespace(**d), "c": c_real, "ld": elem_load,
                "in_shapes": in_shapes, "train": "train", **arrays}

    def elem_kernel(self, node: Node, what: str, body: str, ctx: dict, shape, out: str,
                    ctype: str = "real", accumulate: bool = False) -> list[str]:
        """A kernel writing (or adding to) every element of python array `out` of `shape` with
        the rendered `body`; the Python lines that allocate and launch it."""
        kb = KernelBuilder()
        name = self.kernel_name(f"{node.op}_{what}")
        sc = Scope(kb)
        dims = Index(sc, shape, flat="i").dims()
        text = string_template(body).render(ctx, o=dims, i="i", shp=_shapes(ctx),
                                                 n=kb.count_expr(shape)).strip()
        lines = dead_code_free(sc.lines, text) + text.split("\n")
        code = "\n".join(lines)
        for arr in _arrays_in(ctx):
            if re.search(rf"\b{arr.cname}\b", code):
                kb.array(arr.pyname, arr.ctype, cname=arr.cname)
                self.kernel_reads.add(arr.pyname)
        kb.uses_B = kb.uses_B or re.search(r"\bB\b", code) is not None
        uses_train = re.search(r"\btrain\b", code) is not None
        fparams = kb.declarations() + (["int train"] if uses_train else []) + ["int i"]
        fargs = [c for c in kb.params] + (["B"] if kb.uses_B else []) + \
            (["train"] if uses_train else []) + ["i"]
        kb.array(out, ctype, write=True, cname="o_out")
        count = kb.count_expr(shape)
        kparams = kb.declarations() + (["int train"] if uses_train else [])
        src = self.env.get_template("cuda/elem.cu.j2").render(
            comment=f"{self.describe(node)}: {what}, one thread per element", block=BLOCK,
            name=name, ctype=ctype, fparams=fparams, kparams=kparams, fargs=fargs,
            lines=lines, count=count, accumulate=accumulate, **self.thread_loop())
        self.kernels.append(Kernel(name, src.strip("\n"), kparams, self.cpu))
        self.loop_kernel = False
        py = [] if accumulate else [f"{out} = rt.empty({self.pyshape(shape)}, "
                                    f"{'dt' if ctype == 'real' else repr('int32')})"]
        train = (["int(self.train)" if self.cpu else "np.int32(self.train)"]
                 if uses_train else [])
        return py + [self.launch(name, self.pynumel(shape), kb, train)]

    def host_lines(self, node: Node, template: str, arrays: dict) -> list[str]:
        if not template:
            return []
        names = {k: ([a.pyname for a in v] if isinstance(v, list) else v.pyname)
                 for k, v in arrays.items() if k != "aux"}
        aux = types.SimpleNamespace(**{k: a.pyname for k, a in arrays.get("aux", {}).items()})
        ctx = self.elem_context(node, {})
        text = string_template(template).render(
            ctx, aux=aux, shape={k: self.pyshape(a.shape) for k, a in _named_arrays(arrays).items()},
            **names)
        return [line for line in text.strip().split("\n") if line.strip()]

    def fwd_elem(self, node: Node) -> list[str]:
        op = REGISTRY[node.op]
        rule = op.cuda
        prep: list = []
        arrays = self.elem_arrays(node, prep)
        ys = [v for v in node.outputs if v.dtype != "aux"]
        in_shapes = [v.shape for v in self.data_inputs(node)]
        aux = {}
        for name, (ctype, shape_of, _) in rule.aux.items():
            shape = tuple(shape_of(node.attrs, in_shapes, ys[0].shape))
            if name in op.aux:
                pyname = self.n(node.outputs[len(ys) + op.aux.index(name)])
            else:
                pyname = self.n.fresh(f"{self.n(ys[0])}_{name}")
            aux[name] = self.elem_aux[(node, name)] = Arr(pyname, shape, ctype)
        arrays["aux"] = aux
        arrays.update({"y": Arr(self.n(ys[0]), ys[0].shape)} if len(ys) == 1 else {})
        host, after = self.host_lines(node, rule.host, arrays), self.host_lines(node, rule.host_after, arrays)
        if host or after:
            self.host_code.append(node)
        lines = prep + host
        for name, (ctype, _, body) in rule.aux.items():
            if body:
                ctx = self.elem_context(node, {**arrays, **aux})
                lines += self.elem_kernel(node, name, body, ctx, aux[name].shape, aux[name].pyname, ctype)
        for m, y in enumerate(ys):
            ctx = self.elem_context(node, {**arrays, **aux})
            lines += self.elem_kernel(node, "forward" if len(ys) == 1 else f"output {m + 1}",
                                      rule.forward, ctx | {"m": m}, y.shape, self.n(y))
        return lines + after

    def bwd_elem(self, gnode, fwd, targets) -> list[str]:
        op = REGISTRY[fwd.op]
        rule = op.cuda
        prep: list = []
        arrays = self.elem_arrays(fwd, prep)
        data = self.data_inputs(fwd)
        ys = [v for v in fwd.outputs if v.dtype != "aux"]
        given = iter(gnode.inputs)
        gys = [Arr(self.dense(next(given), prep), y.shape) if has else None
               for y, has in zip(ys, gnode.attrs["has"])]
        aux = {name: a for (n, name), a in self.elem_aux.items() if n is fwd}
        arrays.update(aux)
        arrays.update({"ys": [Arr(self.n(y), y.shape) for y in ys], "gys": gys})
        if len(ys) == 1:
            arrays.update(y=arrays["ys"][0], gy=gys[0])
        params = op.active_params(fwd.attrs)
        lines = prep
        in_shapes = [v.shape for v in data]
        for name, (ctype, shape_of, body) in rule.backward_aux.items():
            shape = tuple(shape_of(fwd.attrs, in_shapes, ys[0].shape))
            arr = arrays[name] = Arr(self.n.fresh(f"{self.n(ys[0])}_{name}"), shape, ctype)
            lines += self.elem_kernel(fwd, name, body, self.elem_context(fwd, arrays), shape,
                                      arr.pyname, ctype)
        for k, v in sorted(targets.items()):
            if k < len(data):
                slot = "xs" if op.table_input else op.inputs[k]
            else:
                slot = params[k - len(data)].name
            if slot not in rule.backward:
                raise SpecError(f"nn.{fwd.op}: the CUDA target has no gradient for its {slot} "
                                "yet (compile with --target numpy)", fwd.loc)
            ctx = self.elem_context(fwd, arrays) | {"k": k}
            if v in self.param_grad:
                lines += self.elem_kernel(fwd, f"grad {slot}", rule.backward[slot], ctx, v.shape,
                                          self.param_grad[v], accumulate=True)
            else:
                lines += self.elem_kernel(fwd, f"grad {slot}" + (f"{k + 1}" if slot == "xs" else ""),
                                          rule.backward[slot], ctx, v.shape, self.n(v))
        return lines

    # ---- the module ----------------------------------------------------------------------------

    def run_steps(self, steps, arrays: set, backward: bool) -> list[Block]:
        blocks = []
        for step in steps:
            if step.kind == "op":
                n = step.node
                if n.op == "grad":
                    blocks.append(Block(loc_comment(n.attrs["fwd"]) + " (backward)", self.op_backward(n)))
                else:
                    blocks.append(Block(loc_comment(n), self.op_forward(n)))
                arrays.update(step.stores)
                self.loadable.update(step.stores)
            elif step.kind == "join":
                arrays.add(step.demands[0].value)
                self.loadable.add(step.demands[0].value)
            elif step.kind == "view":
                v = step.demands[0].value
                blocks.append(Block(f"{v.name}: a view, no copy", [f"{self.n(v)} = {self.view_expr(v, arrays)}"]))
                arrays.add(v)
                self.strided.add(v)  # perhaps: a slice
            else:
                names = ", ".join(d.value.name + ("" if d.layout == "plain" else " (rows)") for d in step.demands)
                k0 = len(self.kernels)
                lines = self.fused(step, backward)
                what = f"fused kernel {self.kernels[-1].name}" if len(self.kernels) > k0 else "no kernel"
                blocks.append(Block(f"{what}: {names}", lines))
                arrays.update(d.value for d in step.demands if d.layout == "plain")
        return blocks

    def backward_reads(self) -> set[str]:
        """The python names of the arrays the backward's steps read: what the plan says each
        step reads (fuse.Step.reads); a kernel op's gradient computed by its CUDA rule's
        'blas' expressions reads what they name, by its 'elem' kernels the arrays those were
        given (and the sliced inputs it copies dense first: elem_kernel, dense)."""
        names = set(self.kernel_reads)
        for step in self.plan.backward:
            names.update(self.n.names[v] for v in step.reads if v in self.n.names)
            if step.kind == "op" and step.node.op == "grad":
                fwd = step.node.attrs["fwd"]
                if REGISTRY[fwd.op].cuda.kernel == "blas":
                    names |= self.blas_reads(step.node, fwd)
        return names

    def blas_reads(self, gnode: Node, fwd: Node) -> set[str]:
        """The forward arrays that the CUDA rule's 'blas' gradient expressions of `gnode` name."""
        op = REGISTRY[fwd.op]
        slots = op.slots(fwd.attrs, len(fwd.inputs))
        needed = {key for (key, _), need in zip(slots, gnode.attrs["needs"]) if need}
        named = set().union(*(template_reads(op.cuda.backward[k], {key for key, _ in slots})
                              for k in sorted(needed) if k in op.cuda.backward))
        ys = [v for v in fwd.outputs if v.dtype != "aux"]
        values = [x for (key, _), x in zip(slots, fwd.inputs) if key in named]
        values += [y for k, y in enumerate(ys) if "ys" in named or (k == 0 and "y" in named)]
        return {self.n(v) for v in values}

    def forward_arrays(self) -> list[str]:
        """The python names of the arrays the forward's steps make, in order (not the inputs
        and parameters)."""
        names = []
        for step in self.plan.forward:
            if step.kind == "op":  # an op's aux arrays are made before its outputs
                names += [a.pyname for (n, _), a in self.elem_aux.items() if n is step.node]
                stores = sorted(step.stores, key=lambda v: v.dtype != "aux")
                names += [self.n(v) for v in stores]
            else:
                names += [self.rows[d.value] if d.layout == "rows" else self.n(d.value) for d in step.demands]
        return list(dict.fromkeys(names))

    def generate(self) -> tuple[str, str]:
        """(python module source, CUDA source)."""
        g = self.g
        inputs = set(g.inputs) | {p.value for p in g.params} | {p.value for p in g.buffers}
        arrays = set(inputs)
        fwd_blocks = self.run_steps(self.plan.forward, arrays, False)
        self.loadable |= set(g.grad_outputs)
        arrays |= set(g.grad_outputs)
        for v in g.grad_outputs:
            self.n(v)
        self.kernel_reads = set()  # now the arrays that the backward's 'elem' kernels read
        bwd_blocks = self.run_steps(self.plan.backward, arrays, True)
        written = {i for i, v in g.param_grads if v in self.written_first}
        if g.params and len(written) < len(g.params):  # zeroed here: the others' kernels add
            unwritten = tuple(i for i in range(len(g.params)) if i not in written)
            zero = ([f"self._grads[{unwritten[0]}][...] = 0"] if len(unwritten) == 1 else
                    [f"for i in {unwritten}:", "    self._grads[i][...] = 0"])
            bwd_blocks.insert(0, Block("gradients this backward does not write: zero when pending",
                                       ["if _zeroed:"] + ["    " + line for line in zero]))
        input_grads = []
        for v, gv in zip(g.inputs, g.input_grads):
            if gv is not None:
                input_grads.append(self.n(gv))
            elif v.dtype == "index" or v.name in self.opts.no_grad:
                input_grads.append("None")  # as the numpy target: --no-grad inputs get None
            else:
                input_grads.append(f"rt.zeros({self.n(v)}.shape, dt)")
        # what the forward keeps for the backward: the arrays it makes that backward steps read
        read = self.backward_reads()
        saved = [name for name in self.forward_arrays() if name in read]
        batch_from = next((f"{self.n(v)}.shape[{tuple(v.shape).index(B)}]" for v in g.inputs
                           if B in tuple(v.shape)), None)
        meta = self.opts
        names = [k.name for k in self.kernels]
        plan_lines = ["Plan (backends/fuse.py): 'op' = cuBLAS/own kernel, 'fused' = one generated kernel,",
                      "'view' = an array view, no kernel."] + fuse.describe_lines(self.plan)
        # spec text in comments is escaped by the templates' filters (backends/escape.py)
        cu = self.env.get_template("cuda/module.cu.j2").render(
            version=__version__, meta=meta, kernels=[k.source for k in self.kernels],
            cpu=self.cpu, plan_lines=plan_lines)
        if self.cpu:
            entries = [{"name": k.name, "loop": k.loop, "params": [entry_param(d) for d in k.params]}
                       for k in self.kernels]
            cu += self.env.get_template("cpu/entries.cpp.j2").render(kernels=entries)
        py = self.env.get_template("cuda/module.py.j2").render(cpu=self.cpu,
            version=__version__, meta=meta,
            inputs=[(self.n(v), v) for v in g.inputs],
            outputs=[(self.n(v), v) for v in g.outputs], output_names=g.output_names,
            params=[(self.n(p.value), p) for p in g.params],
            buffers=[(self.n(p.value), p) for p in g.buffers],
            index_inputs=[self.n(v) for v in g.inputs if v.dtype == "index"],
            graph_unsafe=[f"nn.{n.op} at {n.loc} runs host code" for n in self.host_code
                          if not _training_only(n)],
            graph_unsafe_training=[f"nn.{n.op} at {n.loc} runs host code when training"
                                   for n in self.host_code if _training_only(n)],
            input_struct=pystruct(g.input_struct), output_struct=pystruct(g.output_struct),
            grad_outputs=[self.n(v) for v in g.grad_outputs], batch_from=batch_from,
            fwd_blocks=[(b.comment, b.lines) for b in fwd_blocks if b.lines],
            bwd_blocks=[(b.comment, b.lines) for b in bwd_blocks if b.lines],
            saved=saved, grad_views=[(name, i) for i, name in sorted(self.grad_view.items())],
            input_grads=input_grads, kernel_names=names, cuda_source=cu)
        return py, cu


class Arr:
    """An array an 'elem' body reads: str() is its C name; ld(arr, dims...) one element."""

    def __init__(self, pyname: str, shape, ctype: str = "real"):
        self.pyname, self.shape, self.ctype = pyname, tuple(shape), ctype
        self.cname = "a_" + pyname

    def __str__(self):
        return self.cname


def elem_load(arr: Arr, *dims) -> str:
    """C for element `dims` of `arr` (ints fold; strings are C expressions)."""
    assert len(dims) == len(arr.shape), (arr.pyname, arr.shape, dims)
    flat = 0
    for d, s in zip(dims, strides(arr.shape)):
        flat = iadd(flat, imul(d, s))
    return f"{arr.cname}[{flat}]"


def _named_arrays(ctx: dict) -> dict:
    out = {}
    for k, v in ctx.items():
        if isinstance(v, Arr):
            out[k] = v
    return out


def _arrays_in(ctx: dict) -> list:
    out = []
    for v in ctx.values():
        for a in (v if isinstance(v, list) else v.values() if isinstance(v, dict) else [v]):
            if isinstance(a, Arr) and a not in out:
                out.append(a)
    return out


def _shapes(ctx: dict) -> dict:
    """Template `shp`: name -> shape, with the batch dim as the C name B."""
    return {k: tuple(c_dim(d) if is_symbolic(d) else d for d in a.shape)
            for k, a in _named_arrays(ctx).items()}


def _training_only(n: Node) -> bool:
    flag = REGISTRY[n.op].cuda.host_training_only
    return bool(flag(n.attrs) if callable(flag) else flag)


def c_real(v) -> str:
    """A Lua number as a C literal of type `real` (float or double)."""
    v = float(v)
    if math.isnan(v):
        raise SpecError("NaN constants are not supported by --target cuda")
    if math.isinf(v):
        return "g_inf((real)0)" if v > 0 else "(-g_inf((real)0))"
    return f"(real){v!r}" if v >= 0 else f"(real)({v!r})"


_POINTER = re.compile(r"(const )?(real|int)\* __restrict__ (\w+)")
_SCALAR = re.compile(r"int (\w+)")


def entry_param(decl: str) -> dict:
    """How a CPU entry point takes one kernel parameter (a KernelBuilder declaration): its C
    local, the graphc_args getter that checks and converts the Python argument, its name."""
    m = _POINTER.fullmatch(decl)
    if m:
        const, ctype, name = m.groups()
        return {"local": f"{const or ''}{ctype}* {name}", "name": name,
                "getter": f"{'reals' if ctype == 'real' else 'ints'}_{'in' if const else 'out'}"}
    m = _SCALAR.fullmatch(decl)
    assert m, decl  # KernelBuilder declares only these forms
    return {"local": f"const int {m.group(1)}", "name": m.group(1), "getter": "integer"}


def generate(graph: Graph, options: CodegenOptions) -> tuple[str, str]:
    """(Python module, CUDA source) of a differentiated graph."""
    return CudaBackend(graph, options).generate()
