"""IR -> the CUDA target: one self-contained .cu of generated kernels (templates/cuda/*.j2)
and a Python module whose Model (graphc_runtime.cuda.CudaModule) allocates CuPy arrays,
calls cuBLAS for the GEMMs and launches the kernels.

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

import dataclasses
import itertools
import math
import re
import types
from dataclasses import dataclass, field

from ..errors import SpecError
from ..ir.graph import B, Graph, Node, Value
from ..ops import REGISTRY
from . import fuse
from ..version import __version__
from .common import CodegenOptions, Namer, loc_comment, pyshape, pystruct
from .templates import environment, string_template

BLOCK = 256  # threads per block of every kernel (__launch_bounds__)


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
        if d == B:
            dynamic = True
        else:
            static *= d
    return out[::-1]


# ---- kernels: parameters, scopes, indices -------------------------------------------------

class KernelBuilder:
    """One kernel's parameters (the arrays it reads and writes, and B) and its local names."""

    def __init__(self):
        self.params: dict[str, tuple[str, str]] = {}  # C name -> (declaration, python argument)
        self.count = itertools.count()
        self.uses_B = False
        self.ops: list[str] = []  # op names inlined, for the kernel's name

    def var(self, prefix: str) -> str:
        return f"{prefix}{next(self.count)}"

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
            static *= 1 if d == B else d
        if B in shape:
            self.uses_B = True
            return "B" if static == 1 else f"B * {static}"
        return str(static)

    def declarations(self) -> list[str]:
        return [d for d, _ in self.params.values()] + (["int B"] if self.uses_B else [])

    def py_args(self) -> list[str]:
        return [py for _, py in self.params.values()] + (["np.int32(B)"] if self.uses_B else [])


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

    def real(self, e: str, key=None) -> str:
        hit = self.lookup(key) if key is not None else None
        if hit is not None:
            return hit
        if re.fullmatch(r"[A-Za-z_]\w*", e):
            name = e  # already a name: no copy
        elif self.lookup(("expr", e)) is not None:
            name = self.lookup(("expr", e))  # the same expression text: computed already
        else:
            name = self.kb.var("v")
            self.lines.append(f"const real {name} = {e};")
            self.memo[("expr", e)] = name
        if key is not None:
            self.memo[key] = name
        return name

    def guarded(self, cond: str, make) -> str:
        """`real v = 0; if (cond) { ...; v = make(); }`: nothing in make() runs (or loads
        out of bounds) unless cond holds."""
        name = self.kb.var("v")
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
                out.append(self.sc.int(e if leading else imod(e, "B" if n == B else n)))
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


@dataclass
class Block:
    comment: str
    lines: list = field(default_factory=list)


class CudaBackend:
    def __init__(self, graph: Graph, options: CodegenOptions):
        self.g = graph
        self.opts = options
        self.plan = fuse.plan(graph)
        self.env = environment()
        self.n = Namer.for_graph(graph)
        self.producer = graph.producers()
        self.prefix = re.sub(r"[^0-9A-Za-z_]", "_", options.module_name)[:24]
        if not re.match(r"[A-Za-z_]", self.prefix):
            self.prefix = "m_" + self.prefix
        self.kernels: list[Kernel] = []
        self.loadable: set[Value] = set(graph.inputs) | {p.value for p in graph.params} | \
            {p.value for p in graph.buffers}
        self.elem_aux: dict = {}  # (forward node, aux name) -> Arr, for 'elem' ops' backward
        self.strided: set[Value] = set()  # arrays that are views made by view steps
        self.host_code: list[Node] = []  # nodes whose forward runs host lines
        self.rows: dict[Value, str] = {}  # value -> python name of its NHWC ('rows') array
        self.param_index = {p.value: i for i, p in enumerate(graph.params)}
        # parameter gradient Value -> the gradient buffer view it accumulates into
        self.grad_view: dict[int, str] = {}
        self.param_grad: dict[Value, str] = {}
        for i, v in graph.param_grads:
            if i not in self.grad_view:
                self.grad_view[i] = self.n.fresh("g_" + self.n.names[graph.params[i].value][2:])
            self.param_grad[v] = self.grad_view[i]

    # ---- names ---------------------------------------------------------------------------

    def kernel_name(self, what: str) -> str:
        what = re.sub(r"[^0-9a-z_]+", "_", what.lower()).strip("_")[:48].rstrip("_")
        return f"{self.prefix}_k{len(self.kernels)}_{what}"

    def pyshape(self, shape) -> str:
        dims = ["B" if d == B else str(d) for d in shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    def pynumel(self, shape) -> str:
        static = 1
        for d in shape:
            static *= 1 if d == B else d
        return ("B" if static == 1 else f"B * {static}") if B in shape else str(static)

    # ---- element expressions ---------------------------------------------------------------

    def value(self, sc: Scope, v: Value, idx: Index) -> str:
        """A C name holding element `idx` of `v`."""
        key = ("val", id(v), idx.key())
        hit = sc.lookup(key)
        if hit is not None:
            return hit
        if v in self.loadable:
            arr = sc.kb.array(self.n(v))
            flat = idx.flat()
            name = sc.real(f"{arr}[{flat}]", key)
            sc.loads.setdefault(name, (self.n(v), str(flat), tuple(v.shape)))
            return name
        n = self.producer[v]
        if n.op == "add":
            parts = [self.value(sc, x, idx.as_shape(x.shape)) for x in n.inputs]
            return sc.real(" + ".join(parts), key)
        if n.op == "grad":
            sc.kb.ops.append(n.attrs["fwd"].op)
            return sc.real(self.grad_value(sc, n, v, idx), key)
        if n.op == "slices":  # gradients of slices of one value (passes/simplify.py)
            sc.kb.ops.append("Narrow")
            return sc.real(self.slices_value(sc, n, idx), key)
        sc.kb.ops.append(n.op)
        if n in self.plan.gemm:
            return sc.real(self.epilogue(sc, n, idx), key)
        rule = REGISTRY[n.op].cuda
        if rule.kind == "pointwise":
            return sc.real(self.pointwise(sc, n, idx), key)
        return sc.real(self.gather(sc, n, idx), key)

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

    def gather(self, sc, n: Node, idx: Index) -> str:
        """Index ops (no arithmetic): which input element an output element is."""
        op = REGISTRY[n.op]
        data = self.data_inputs(n)
        d = op.derive(n.attrs, [x.shape for x in data]) if op.derive else {}
        kind = op.cuda.index
        if kind == "view":
            return self.value(sc, data[0], idx.as_shape(data[0].shape))
        if kind == "narrow":
            dims = list(idx.dims())
            dims[d["axis"]] = sc.int(iadd(dims[d["axis"]], d["start"]))
            return self.value(sc, data[0], idx.with_dims(data[0].shape, dims))
        if kind == "select":
            dims = list(idx.dims())
            dims.insert(d["axis"], d["index"])
            return self.value(sc, data[0], idx.with_dims(data[0].shape, dims))
        if kind == "join" and len(data) == 1:
            return self.value(sc, data[0], idx)
        if kind == "join":
            axis, offs = d["axis"], d["offsets"]
            at = idx.dim(axis)
            branches = []  # emitted first: any binding they add to `sc` precedes the if-chain
            for k, x in enumerate(data):
                dims = list(idx.dims())
                child = Scope(sc.kb, sc)
                dims[axis] = child.int(iadd(at, -offs[k]))
                branches.append((child, self.value(child, x, Index(child, x.shape, dims=dims))))
            result = sc.kb.var("v")
            sc.lines.append(f"real {result};")
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
        """Linear: GEMM + bias. SpatialConvolution: the NHWC GEMM result read as NCHW, + bias."""
        gemm = self.plan.gemm[n]
        has_bias = len(n.inputs) == 3
        if REGISTRY[n.op].cuda.kernel == "linear":
            parts = [self.value(sc, gemm, idx.as_shape(gemm.shape))]
            channel = idx.dim(len(idx.shape) - 1)
        else:
            dims = list(idx.dims())
            c = len(dims) - 3
            channel = dims[c]
            nhwc = dims[:c] + dims[c + 1:] + [channel]
            parts = [self.value(sc, gemm, Index(sc, gemm.shape, dims=nhwc))]
        if has_bias:
            bias = n.inputs[2]
            parts.append(self.value(sc, bias, Index(sc, bias.shape, dims=[channel])))
        return " + ".join(parts)

    def grad_value(self, sc, gnode: Node, v: Value, idx: Index) -> str:
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
            return self.value(sc, gy, idx.as_shape(y.shape))
        if rule.index == "join":
            dims = list(idx.dims())
            dims[d["axis"]] = sc.int(iadd(dims[d["axis"]], d["offsets"][k]))
            return self.value(sc, gy, Index(sc, y.shape, dims=dims))
        at = idx.dim(d["axis"])
        if rule.index == "narrow":
            cond = f"{_p(at)} >= {d['start']} && {_p(at)} < {d['stop']}"
            if d["start"] == 0:
                cond = f"{_p(at)} < {d['stop']}"

            def inside(child):
                dims = list(idx.dims())
                dims[d["axis"]] = child.int(iadd(at, -d["start"]))
                return self.value(child, gy, Index(child, y.shape, dims=dims))
            return sc.guarded(cond, inside)
        if rule.index == "select":
            def picked(child):
                dims = list(idx.dims())
                del dims[d["axis"]]
                return self.value(child, gy, Index(child, y.shape, dims=dims))
            return sc.guarded(f"{_p(at)} == {d['index']}", picked)
        raise AssertionError(rule.index)

    def slices_value(self, sc, n: Node, idx: Index) -> str:
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
            parts.append(sc.guarded(cond, part))
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
        for cname, entry in lkb.params.items():
            kb.params.setdefault(cname, entry)
        name = f"{self.prefix}_k{len(self.kernels)}_{what}"
        src = self.env.get_template("cuda/loader.cu.j2").render(
            what=f"element i of {v.name}, computed from {', '.join(py for _, py in lkb.params.values())}",
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
        for seg in segments.values():
            sc = Scope(kb)
            it = Index(sc, seg["shape"], flat="i")
            written: dict[str, str] = {}  # C result -> python name already holding it
            writes, what = [], []
            for d in seg["demands"]:
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
                if res in written:
                    aliases.append(f"{pyname} = {written[res]}")
                elif d.layout == "plain" and load and load[1] == "i" and load[2] == seg["shape"]:
                    aliases.append(f"{pyname} = {load[0]}")  # a copy of a stored array: reuse it
                    written[res] = pyname
                else:
                    out = kb.array(pyname, write=True)
                    writes.append(f"{out}[i] = {res};")
                    written[res] = pyname
                    py_alloc.append(f"{pyname} = rt.empty({self.pyshape(seg['shape'])}, dt)")
                    what.append(v.name + ("" if d.layout == "plain" else " (NHWC rows)"))
            if writes:
                segs.append({"count": kb.count_expr(seg["shape"]), "pycount": self.pynumel(seg["shape"]),
                             "lines": dead_code_free(sc.lines + writes), "what": ", ".join(what) + f": {'x'.join(map(str, seg['shape']))}"})
        lines = []
        if segs:
            ops = list(dict.fromkeys(o.lower().replace("table", "") for o in kb.ops)) or ["copy"]
            name = self.kernel_name(("bwd_" if backward else "fwd_") + "_".join(ops[:4]))
            comment = [f"fused: {', '.join(dict.fromkeys(kb.ops)) or 'copy'}"]
            src = self.env.get_template("cuda/fused.cu.j2").render(
                comment=comment, block=BLOCK, name=name, params=kb.declarations(), segments=segs)
            self.kernels.append(Kernel(name, src.rstrip("\n")))
            lines += py_alloc
            n_threads = " + ".join(s["pycount"] for s in segs)
            lines.append(self.launch(name, n_threads, kb))
        lines += aliases
        for d in step.stores:
            self.loadable.add(d)
        return lines

    def launch(self, name: str, n_threads: str, kb: KernelBuilder) -> str:
        return f"self._launch({name!r}, {n_threads}, {', '.join(kb.py_args())})"

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
                return f"{src}.reshape({pyshape(v.shape)})"
            data = self.data_inputs(fwd)
            d = REGISTRY[fwd.op].derive(fwd.attrs, [x.shape for x in data])
            k = [i for i, need in enumerate(n.attrs["needs"]) if need][n.outputs.index(v)]
            return f"{src}[{':, ' * d['axis']}{d['offsets'][k]}:{d['offsets'][k + 1]}]"
        src = self.view_expr(n.inputs[0], arrays)
        op = REGISTRY[n.op]
        d = op.derive(n.attrs, [n.inputs[0].shape]) if op.derive else {}
        if op.cuda.index == "view":
            return f"{src}.reshape({pyshape(v.shape)})"
        if op.cuda.index == "narrow":
            return f"{src}[{':, ' * d['axis']}{d['start']}:{d['stop']}]"
        return f"{src}[{':, ' * d['axis']}{d['index']}]"

    # ---- kernel ops: forward ---------------------------------------------------------------

    def op_forward(self, node: Node) -> list[str]:
        kind = REGISTRY[node.op].cuda.kernel
        return getattr(self, f"fwd_{kind}")(node)

    def fwd_linear(self, node: Node) -> list[str]:
        x, w = node.inputs[0], node.inputs[1]
        out = self.plan.gemm.get(node, node.outputs[0])
        return [f"{self.n(out)} = rt.matmul({self.n(x)}, {self.n(w)}.T)"]

    def image(self, shape):
        """(N as C and as Python, C, H, W) of a CHW or NCHW shape."""
        if len(shape) == 4:
            return ("B", "B") if shape[0] == B else (shape[0], str(shape[0])), shape[1], shape[2], shape[3]
        return (1, "1"), shape[0], shape[1], shape[2]

    def fwd_conv2d(self, node: Node) -> list[str]:
        a = node.attrs
        x, w = node.inputs[0], node.inputs[1]
        y, cols = node.outputs[0], node.outputs[1]
        (N, pyN), C, H, W = self.image(x.shape)
        _, nOut, oH, oW = self.image(y.shape)
        K = C * a["kH"] * a["kW"]
        kb = KernelBuilder()
        name = self.kernel_name("conv2d")
        loader_src, load = self.loader(kb, x, "conv2d_x")
        kb.array(self.n(cols), write=True, cname="o_cols")
        # every image's rows: B of them, or a fixed N (1 for a CxHxW input)
        rows_shape = (B, oH * oW * K) if pyN == "B" else (N * oH * oW * K,)
        n_cols = kb.count_expr(rows_shape)
        src = self.env.get_template("cuda/conv2d.cu.j2").render(
            loader=loader_src, comment=f"{node.op} {C}->{nOut}, {a['kH']}x{a['kW']}", block=BLOCK,
            name=name, fwd_params=kb.declarations(), n_cols=n_cols, x=load, C=C, H=H, W=W,
            oH=oH, oW=oW, K=K, **{k: a[k] for k in ("kH", "kW", "dH", "dW", "padH", "padW")})
        self.kernels.append(Kernel(name + "_im2col", src.strip("\n")))
        gemm = self.plan.gemm[node]
        return [
            f"{self.n(cols)} = rt.empty(({pyN} * {oH * oW}, {K}), dt)",
            f"self._launch({name + '_im2col'!r}, {self.pynumel(rows_shape)}, {', '.join(kb.py_args())})",
            f"{self.n(gemm)} = rt.matmul({self.n(cols)}, {self.n(w)}.reshape({nOut}, {K}).T)"
            f".reshape({pyshape(gemm.shape)})",
        ]

    def fwd_maxpool2d(self, node: Node) -> list[str]:
        a = node.attrs
        x = node.inputs[0]
        y, argmax = node.outputs
        _, C, H, W = self.image(x.shape)
        _, _, oH, oW = self.image(y.shape)
        kb = KernelBuilder()
        name = self.kernel_name("maxpool2d")
        loader_src, load = self.loader(kb, x, "maxpool2d_x")
        kb.array(self.n(y), write=True, cname="o_y")
        kb.array(self.n(argmax), "int", write=True, cname="o_argmax")
        n_out = kb.count_expr(y.shape)
        src = self.env.get_template("cuda/maxpool2d.cu.j2").render(
            loader=loader_src, comment=f"{node.op} {a['kH']}x{a['kW']}", block=BLOCK, name=name,
            fwd_params=kb.declarations(), n_out=n_out, x=load, H=H, W=W, oH=oH,
            oW=oW, **{k: a[k] for k in ("kH", "kW", "dH", "dW", "padH", "padW")})
        self.kernels.append(Kernel(name + "_fwd", src.strip("\n")))
        shape = self.pyshape(y.shape)
        return [f"{self.n(y)} = rt.empty({shape}, dt)",
                f"{self.n(argmax)} = rt.empty({shape}, 'int32')",
                f"self._launch({name + '_fwd'!r}, {self.pynumel(y.shape)}, {', '.join(kb.py_args())})"]

    def softmax_geometry(self, node: Node, shape):
        op = REGISTRY[node.op]
        axis = op.derive(node.attrs, [shape])["axis"]
        inner = 1
        for dim in shape[axis + 1:]:
            inner *= dim
        rows = tuple(shape[:axis]) + ((inner,) if inner > 1 else ())
        return axis, shape[axis], inner, rows

    def fwd_softmax(self, node: Node) -> list[str]:
        x, y = node.inputs[0], node.outputs[0]
        _, C, inner, rows = self.softmax_geometry(node, x.shape)
        kb = KernelBuilder()
        kb.uses_B = C == B  # a 3-D batched input is CxHxW to Torch: the softmax runs over B
        name = self.kernel_name(node.op)
        loader_src, load = self.loader(kb, x, f"{node.op.lower()}_x")
        kb.array(self.n(y), write=True, cname="o_y")
        n_rows = kb.count_expr(rows) if rows else "1"
        src = self.env.get_template("cuda/softmax.cu.j2").render(
            loader=loader_src, comment=node.op, block=BLOCK, name=name, fwd_params=kb.declarations(),
            rows=n_rows, x=load, C=C, inner=inner, log=node.op == "LogSoftMax",
            row_stride=imul(str(C), inner) if C == B else C * inner)
        self.kernels.append(Kernel(name + "_fwd", src.strip("\n")))
        return [f"{self.n(y)} = rt.empty({self.pyshape(y.shape)}, dt)",
                f"self._launch({name + '_fwd'!r}, {self.pynumel(rows) if rows else '1'}, "
                f"{', '.join(kb.py_args())})"]

    # ---- kernel ops: backward --------------------------------------------------------------

    def op_backward(self, gnode: Node) -> list[str]:
        fwd = gnode.attrs["fwd"]
        kind = REGISTRY[fwd.op].cuda.kernel
        slots = [k for k, need in enumerate(gnode.attrs["needs"]) if need]
        targets = dict(zip(slots, gnode.outputs))
        return getattr(self, f"bwd_{kind}")(gnode, fwd, targets)

    def bwd_linear(self, gnode, fwd, targets) -> list[str]:
        x, w = fwd.inputs[0], fwd.inputs[1]
        gy = self.n(gnode.inputs[0])
        rank1 = len(x.shape) == 1
        gy2 = f"{gy}.reshape(1, -1)" if rank1 else gy
        x2 = f"{self.n(x)}.reshape(1, -1)" if rank1 else self.n(x)
        lines = []
        if 0 in targets:
            lines.append(f"{self.n(targets[0])} = rt.matmul({gy}, {self.n(w)})")
        if 1 in targets:
            lines.append(f"rt.addmm({self.param_grad[targets[1]]}, {gy2}.T, {x2})")
        if 2 in targets:
            lines.append(f"rt.add_colsum({self.param_grad[targets[2]]}, {gy2})")
        return lines

    def bwd_conv2d(self, gnode, fwd, targets) -> list[str]:
        a = fwd.attrs
        x, w = fwd.inputs[0], fwd.inputs[1]
        y, cols = fwd.outputs[0], fwd.outputs[1]
        (_, pyN), C, H, W = self.image(x.shape)
        _, nOut, oH, oW = self.image(y.shape)
        K = C * a["kH"] * a["kW"]
        rows = f"{self.rows[gnode.inputs[0]]}.reshape(-1, {nOut})"
        lines = []
        if 1 in targets:
            lines.append(f"rt.addmm({self.param_grad[targets[1]]}.reshape({nOut}, {K}), {rows}.T, "
                         f"{self.n(cols)})")
        if 2 in targets:
            lines.append(f"rt.add_colsum({self.param_grad[targets[2]]}, {rows})")
        if 0 in targets:
            gx = self.n(targets[0])
            gcols = self.n.fresh(gx + "_cols")
            kb = KernelBuilder()
            name = self.kernel_name("conv2d")
            kb.array(gcols, cname="i_gcols")
            kb.array(gx, write=True, cname="o_gx")
            n_in = kb.count_expr(x.shape)
            src = self.env.get_template("cuda/conv2d_bwd.cu.j2").render(
                comment=f"{fwd.op} {C}->{nOut}, {a['kH']}x{a['kW']}", block=BLOCK, name=name,
                bwd_params=kb.declarations(), n_in=n_in, C=C, H=H, W=W,
                oH=oH, oW=oW, K=K, **{k: a[k] for k in ("kH", "kW", "dH", "dW", "padH", "padW")})
            self.kernels.append(Kernel(name + "_col2im", src.strip("\n")))
            lines += [f"{gcols} = rt.matmul({rows}, {self.n(w)}.reshape({nOut}, {K}))",
                      f"{gx} = rt.empty({self.pyshape(x.shape)}, dt)",
                      f"self._launch({name + '_col2im'!r}, {self.pynumel(x.shape)}, {', '.join(kb.py_args())})"]
        return lines

    def bwd_maxpool2d(self, gnode, fwd, targets) -> list[str]:
        a = fwd.attrs
        x = fwd.inputs[0]
        y, argmax = fwd.outputs
        _, C, H, W = self.image(x.shape)
        _, _, oH, oW = self.image(y.shape)
        gx = self.n(targets[0])
        kb = KernelBuilder()
        name = self.kernel_name("maxpool2d")
        loader_src, load = self.loader(kb, gnode.inputs[0], "maxpool2d_gy")
        kb.array(self.n(argmax), "int", cname="i_argmax")
        kb.array(gx, write=True, cname="o_gx")
        n_in = kb.count_expr(x.shape)
        src = self.env.get_template("cuda/maxpool2d_bwd.cu.j2").render(
            loader=loader_src, comment=f"{fwd.op} {a['kH']}x{a['kW']}", block=BLOCK, name=name,
            bwd_params=kb.declarations(), n_in=n_in, gy=load, H=H, W=W, oH=oH,
            oW=oW, **{k: a[k] for k in ("kH", "kW", "dH", "dW", "padH", "padW")})
        self.kernels.append(Kernel(name + "_bwd", src.strip("\n")))
        return [f"{gx} = rt.empty({self.pyshape(x.shape)}, dt)",
                f"self._launch({name + '_bwd'!r}, {self.pynumel(x.shape)}, {', '.join(kb.py_args())})"]

    def bwd_softmax(self, gnode, fwd, targets) -> list[str]:
        x, y = fwd.inputs[0], fwd.outputs[0]
        _, C, inner, rows = self.softmax_geometry(fwd, x.shape)
        gx = self.n(targets[0])
        kb = KernelBuilder()
        kb.uses_B = C == B
        name = self.kernel_name(fwd.op)
        loader_src, load = self.loader(kb, gnode.inputs[0], f"{fwd.op.lower()}_gy")
        kb.array(self.n(y), cname="i_y")
        kb.array(gx, write=True, cname="o_gx")
        n_rows = kb.count_expr(rows) if rows else "1"
        src = self.env.get_template("cuda/softmax_bwd.cu.j2").render(
            loader=loader_src, comment=fwd.op, block=BLOCK, name=name, bwd_params=kb.declarations(),
            rows=n_rows, gy=load, C=C, inner=inner,
            row_stride=imul(str(C), inner) if C == B else C * inner,
            log=fwd.op == "LogSoftMax")
        self.kernels.append(Kernel(name + "_bwd", src.strip("\n")))
        return [f"{gx} = rt.empty({self.pyshape(x.shape)}, dt)",
                f"self._launch({name + '_bwd'!r}, {self.pynumel(rows) if rows else '1'}, "
                f"{', '.join(kb.py_args())})"]

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
        kb.uses_B = kb.uses_B or re.search(r"\bB\b", code) is not None
        uses_train = re.search(r"\btrain\b", code) is not None
        fparams = kb.declarations() + (["int train"] if uses_train else []) + ["int i"]
        fargs = [c for c in kb.params] + (["B"] if kb.uses_B else []) + \
            (["train"] if uses_train else []) + ["i"]
        kb.array(out, ctype, write=True, cname="o_out")
        count = kb.count_expr(shape)
        kparams = kb.declarations() + (["int train"] if uses_train else [])
        src = self.env.get_template("cuda/elem.cu.j2").render(
            comment=_c_comment(f"{node.op}{f' ({node.name})' if node.name else ''}: {what}, "
                               "one thread per element"), block=BLOCK,
            name=name, ctype=ctype, fparams=fparams, kparams=kparams, fargs=fargs,
            lines=lines, count=count, accumulate=accumulate)
        self.kernels.append(Kernel(name, src.strip("\n")))
        py = [] if accumulate else [f"{out} = rt.empty({self.pyshape(shape)}, "
                                    f"{'dt' if ctype == 'real' else repr('int32')})"]
        args = kb.py_args() + (["np.int32(self.train)"] if uses_train else [])
        return py + [f"self._launch({name!r}, {self.pynumel(shape)}, {', '.join(args)})"]

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
        bwd_blocks = self.run_steps(self.plan.backward, arrays, True)
        input_grads = []
        for v, gv in zip(g.inputs, g.input_grads):
            if gv is not None:
                input_grads.append(self.n(gv))
            elif v.dtype == "index":
                input_grads.append("None")
            else:
                input_grads.append(f"rt.zeros({self.n(v)}.shape, dt)")
        bwd_text = "\n".join(line for b in bwd_blocks for line in b.lines) + "\n" + " ".join(input_grads)
        input_names = {self.n(v) for v in g.inputs}
        param_names = {self.n(p.value) for p in g.params + g.buffers}
        saved = []
        for b in fwd_blocks:
            for line in b.lines:
                m = re.match(r"\s*(\w+) = ", line)  # host lines may assign in an if/else
                if m and m.group(1) not in saved and m.group(1) not in input_names | param_names \
                        and re.search(rf"\b{m.group(1)}\b", bwd_text):
                    saved.append(m.group(1))
        batch_from = next((f"{self.n(v)}.shape[{tuple(v.shape).index(B)}]" for v in g.inputs
                           if B in tuple(v.shape)), None)
        meta = self.opts
        names = [k.name for k in self.kernels]
        plan_lines = ["Plan (backends/fuse.py): 'op' = cuBLAS/own kernel, 'fused' = one generated kernel,",
                      "'view' = an array view, no kernel."] + fuse.describe(self.plan).split("\n")
        # the .cu header names the command: in a // comment (and in the .py's r''' string)
        # a backslash or quote run from spec text must not survive
        cu_meta = dataclasses.replace(meta, command=_c_comment(meta.command).replace("'''", "''?"),
                       source_name=_c_comment(meta.source_name).replace("'''", "''?"))
        cu = self.env.get_template("cuda/module.cu.j2").render(
            version=__version__, meta=cu_meta, kernels=[k.source for k in self.kernels],
            plan_lines=[_c_comment(line) for line in plan_lines])
        assert "'''" not in cu and "\\" not in cu, "CUDA source must embed in r'''...'''"
        py = self.env.get_template("cuda/module.py.j2").render(
            version=__version__, meta=meta,
            inputs=[(self.n(v), v) for v in g.inputs],
            outputs=[(self.n(v), v) for v in g.outputs],
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
    return {k: tuple("B" if d == B else d for d in a.shape) for k, a in _named_arrays(ctx).items()}


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


def _c_comment(text: str) -> str:
    """Spec text in a // comment: printable ASCII, no backslash (it would splice lines)."""
    return "".join(c if " " <= c < "\x7f" else "?" for c in text).replace("\\", "/")


def generate(graph: Graph, options: CodegenOptions) -> tuple[str, str]:
    """(Python module, CUDA source) of a differentiated graph."""
    return CudaBackend(graph, options).generate()
