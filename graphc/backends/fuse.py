"""Kernel fusion for the CUDA target: IR -> a Plan of steps (pure: the graph is unchanged).

Values made by 'pointwise' and 'index' ops (see ops.registry.CudaRule), and the outputs of
ops with a GEMM epilogue (CudaRule.epilogue: Linear with a bias, SpatialConvolution), are
*virtual*: no kernel of their own computes them; whoever reads them evaluates the expression
(bias add, NHWC -> NCHW, Sigmoid, Narrow...) from stored arrays. A virtual value is stored only where an array is needed:

  * a cuBLAS operand (Linear's input, its output gradient),
  * a convolution's output gradient, as (N*H*W) x C rows ('rows' layout),
  * a graph output or an input gradient,
  * an expression longer than REUSE_OPS that a later kernel needs too (an unrolled
    recurrence's cell state and its gradient), so no kernel recomputes a whole chain.

Such a need is a Demand. All demands that can be met at one point of the program are met by
ONE fused kernel (so the LSTM cell's gate math is one forward and one backward kernel), and
a reshape or slice of a stored array becomes an array view instead of a kernel. Kernels with
a 'prologue' read (SoftMax, SpatialMaxPooling, the im2col of SpatialConvolution) evaluate a
virtual input inside their own loops, so nothing is stored for them at all.

The backward is planned the same way over the grad and add nodes of passes.autodiff: a
gradient of a pointwise op is virtual and recomputes the forward values it needs from what
the forward stored (GEMM outputs, graph inputs, parameters) rather than saving them.

Two more ways to store nothing: on the CPU target a GEMM of a small inner size is virtual too
(each element a dot product in the kernel reading it: Plan.inline); and the gradient of a
sequence projected once for all steps (passes/simplify.py hoisting), a sum of per-step Select
gradients, is one array whose per-step slices the steps' kernels write in place (a 'join'
step: Plan.joined).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import SpecError
from ..ir.graph import B, Graph, Node, Value
from ..ops import REGISTRY
from ..ops.registry import template_reads

VIEW_INDEX = ("view", "narrow", "select")  # index maps that are a view of their input
# A kernel with a 'prologue' read evaluates its virtual input for every element it reads
# (SoftMax three times per element): only when that costs at most this many arithmetic ops
# (index ops are free); a costlier input is stored first, by a fused kernel.
PROLOGUE_OPS = 3
# A fused kernel also stores a value of its expressions that a later kernel reads, when
# computing it again would take more arithmetic ops than this (see _Planner.schedule).
REUSE_OPS = 8


@dataclass(eq=False)
class Demand:
    value: Value
    layout: str = "plain"  # 'plain': the value's own shape | 'rows': NCHW stored as NHWC


@dataclass(eq=False)
class Step:
    # 'op': a kernel op's node (forward or grad) | 'fused': one kernel | 'view' | 'join': a
    # sum of Select gradients (an unrolled sequence's per-step slices) whose slices earlier
    # kernels wrote in place (Plan.joined): no work left
    kind: str
    node: Optional[Node] = None
    demands: list = field(default_factory=list)  # 'fused', 'view': what the step stores
    stores: list = field(default_factory=list)  # values readable by later kernels after it
    # the stored values its kernels (or view) read: a fused kernel's loads, a view's base, a
    # kernel op's inputs (_Planner.kernel_inputs), each virtual one as the stored values its
    # expression reads
    reads: set = field(default_factory=set)


@dataclass
class Plan:
    forward: list
    backward: list
    virtual: set  # values no kernel stores unless demanded
    gemm: dict  # epilogue op's node (Linear with a bias...) -> Value of its raw GEMM output
    # GEMM nodes (a Linear of a few inputs, CudaRule.gemm_inner) that the CPU target's kernels
    # compute inline: a dot product costs less than a BLAS call; their outputs are virtual
    inline: set = field(default_factory=set)
    # a 'join' step's slices: slice gradient -> (the joined Value, its index along axis 0);
    # the kernel computing that slice writes it straight into the joined array
    joined: dict = field(default_factory=dict)

    def kernels(self, which: str) -> int:
        return sum(1 for s in getattr(self, which) if s.kind == "fused")


def rule_of(node: Node):
    """The CudaRule of a forward node, or a located error naming the op."""
    op = REGISTRY[node.op]
    if op.cuda is None:
        supported = sorted(n for n, o in REGISTRY.items() if o.cuda is not None)
        raise SpecError(f"nn.{node.op} has no CUDA implementation yet, so --target cuda cannot "
                        f"compile this model (compile it with --target numpy). CUDA supports: "
                        f"Identity, {', '.join(supported)} and the containers", node.loc)
    return op.cuda


def is_virtual_op(node: Node) -> bool:
    """A forward node whose output kernels compute on the fly."""
    return rule_of(node).kind in ("pointwise", "index")


def bias_input(node: Node):
    """The bias Value an epilogue op's node adds to its GEMM result, or None."""
    op = REGISTRY[node.op]
    params = op.active_params(node.attrs)
    names = [p.name for p in params]
    if "bias" not in names:
        return None
    return node.inputs[len(node.inputs) - len(params) + names.index("bias")]


def conv_gemm_shape(out_shape):
    """Conv output (N,)C,H,W -> the GEMM result's NHWC shape (N,)H,W,C."""
    return tuple(out_shape[:-3]) + (out_shape[-2], out_shape[-1], out_shape[-3])


# No kernel expression nests deeper than this many virtual values over what is stored: a
# longer chain (1,000 Tanh in a row) is stored every this many links (_Planner.deep_links;
# code generation recurses once per link).
MAX_FUSED_DEPTH = 32

# The CPU target computes a GEMM of at most this inner size (CudaRule.gemm_inner: a Linear's
# inputs) inside the kernels reading its output (a dot product per element) instead of
# calling BLAS: the tutorial's LSTM cell (3 and 2 inputs) at batch size 1 spent ~2.5 us per
# numpy matmul call on 6 multiply-adds.
INLINE_GEMM_INPUTS = 8


class _Planner:
    def __init__(self, g: Graph, keep_backward_reads: bool = False, inline_gemms: bool = False):
        self.g = g
        self.keep_backward_reads = keep_backward_reads
        self.producer: dict[Value, Node] = {}
        for n in g.nodes + g.grad_nodes:
            for v in n.outputs:
                self.producer[v] = n
        self.param_grads = {v for _, v in g.param_grads}
        # creation order of every value: a deterministic order for sets of values
        self.rank = {v: i for i, v in enumerate(v for n in g.nodes + g.grad_nodes for v in n.outputs)}
        self.virtual: set[Value] = set()
        self.gemm: dict[Node, Value] = {}
        self.inline: set[Node] = set()
        self._ready: set[Value] = set()  # ready(): values computable from what is stored
        self._blocked: dict[Value, Value] = {}  # ready(): value -> a leaf it waits for
        for node in g.nodes:
            r = rule_of(node)
            if r.kind in ("pointwise", "index"):
                self.virtual.update(node.outputs)
            elif inline_gemms and self.inlinable(node):
                self.inline.add(node)
                self.virtual.update(node.outputs)
            elif r.epilogue == "bias" and bias_input(node) is not None:
                y = node.outputs[0]
                self.gemm[node] = Value("tmp", shape=y.shape, name=f"{y.name}_mm", loc=y.loc)
                self.virtual.add(y)
            elif r.epilogue == "nhwc":
                y = node.outputs[0]
                self.gemm[node] = Value("tmp", shape=conv_gemm_shape(y.shape),
                                        name=f"{y.name}_nhwc", loc=y.loc)
                self.virtual.add(y)
        for n in g.grad_nodes:
            if self.is_virtual_node(n):
                self.virtual.update(n.outputs)
        self.stacks = self.select_stacks()
        self.kernel_written: set[Value] = set()  # stored by a fused kernel's own write
        self.joined: dict[Value, tuple] = {}

    def deep_links(self, values, loadable: set) -> list:
        """Values inside the expressions of `values` (not those themselves) to store first so
        that no expression nests more than MAX_FUSED_DEPTH virtual values deep over what is
        stored: every MAX_FUSED_DEPTH-th link of a longer chain, in creation order."""
        inside = self.inner(values, loadable)
        depth, links = {}, []
        targets = set(values)
        for x in sorted(inside, key=self.rank.__getitem__):
            d = 1 + max((depth.get(r, 0) for r in self.reads(x) if r in inside), default=0)
            if d >= MAX_FUSED_DEPTH and x not in targets:
                links.append(x)
                d = 0
            depth[x] = d
        return links

    def inlinable(self, node: Node) -> bool:
        """x @ W.T (+ bias) of a small inner size on a stored BxN array x (an input, a
        parameter, an op's output: each kernel element reads a row of it)."""
        r = rule_of(node)
        if r.epilogue != "bias" or r.gemm_inner is None or r.gemm_inner(node.attrs) > INLINE_GEMM_INPUTS:
            return False
        x = node.inputs[0]
        return len(x.shape or ()) == 2 and x not in self.virtual

    def select_stacks(self) -> dict:
        """Gradient sums that stack per-step slices: add(grad(Select(x, 1, k)) for every k of
        x's first axis, each k once) -> [(gradient of step k's slice, k), ...]. Summed
        in a kernel, each element would test every k (an unrolled sequence of T steps: T
        tests per element); written in place, it costs nothing."""
        stacks = {}
        for n in self.g.grad_nodes:
            if n.op != "add":
                continue
            parts, base = [], None
            for v in n.inputs:
                p = self.producer.get(v)
                fwd = p.attrs["fwd"] if p is not None and p.op == "grad" else None
                if fwd is None or not is_virtual_op(fwd) or REGISTRY[fwd.op].cuda.index != "select" \
                        or len(p.inputs) != 1 or len(p.outputs) != 1:
                    break
                d = REGISTRY[fwd.op].derive(fwd.attrs, [fwd.inputs[0].shape])
                if d["axis"] != 0 or (base is not None and fwd.inputs[0] is not base):
                    break
                base = fwd.inputs[0]
                parts.append((p.inputs[0], d["index"]))
            else:
                indices = sorted(k for _, k in parts)
                if parts and indices == list(range(n.outputs[0].shape[0])) \
                        and len({id(gy) for gy, _ in parts}) == len(parts):
                    stacks[n.outputs[0]] = parts
        return stacks

    def joinable(self, v: Value, arrays: set) -> bool:
        """v stacks slices that fused kernels wrote or can still write (no array holds
        them yet), and that no other join took."""
        parts = self.stacks.get(v)
        return bool(parts) and v not in arrays and all(
            gy not in self.joined and (gy in self.kernel_written or (gy in self.virtual and gy not in arrays))
            for gy, _ in parts)

    # ---- what an expression reads ----------------------------------------------------

    def reads(self, v: Value) -> list[Value]:
        """The values a virtual value's expression is made of."""
        n = self.producer[v]
        if n.op in ("add", "slices"):
            return list(n.inputs)
        if n.op == "grad":
            fwd = n.attrs["fwd"]
            return list(n.inputs) + list(fwd.inputs) + [y for y in fwd.outputs if y.dtype != "aux"]
        if n in self.gemm:  # the epilogue: GEMM result + bias
            return [self.gemm[n]] + list(n.inputs[2:])
        return list(n.inputs)

    def named(self, v: Value) -> list[Value]:
        """The values a virtual value's expression names: as `reads`, but a gradient of a
        pointwise op reads only what its CUDA backward expression names (and the output
        gradients), an index op's gradient only the output gradients."""
        n = self.producer[v]
        if n.op != "grad":
            return self.reads(v)
        fwd = n.attrs["fwd"]
        op = REGISTRY[fwd.op]
        gys = n.inputs[: len(n.inputs) - n.attrs["reads"]]
        if op.cuda.kind != "pointwise":
            return list(gys)
        k = [i for i, need in enumerate(n.attrs["needs"]) if need][n.outputs.index(v)]
        slots = op.slots(fwd.attrs, len(fwd.inputs))
        names = template_reads(op.cuda.backward.get(slots[k][0], ""), {key for key, _ in slots})
        ys = [y for y in fwd.outputs if y.dtype != "aux"]
        return (list(gys) + [x for (key, _), x in zip(slots, fwd.inputs) if key in names]
                + [y for j, y in enumerate(ys) if "ys" in names or (j == 0 and "y" in names)])

    @staticmethod
    def kernel_inputs(n: Node) -> list[Value]:
        """What a kernel op's node reads: its inputs; for a grad node, the output gradients
        and the forward values its backward reads (OpDef.reads), but only the output
        gradients for one computed by 'elem' or 'blas' rule bodies, whose arrays the
        backend finds where it writes the kernels and expressions."""
        if n.op == "grad" and REGISTRY[n.attrs["fwd"].op].cuda.emit_backward is None:
            return n.inputs[: len(n.inputs) - n.attrs["reads"]]
        return n.inputs

    def loads(self, values, stored: set) -> set:
        """The stored arrays that computing `values` reads (Step.reads): each one in `stored`,
        or what its expression names, down to stored arrays."""
        out, seen, todo = set(), set(), list(values)
        while todo:
            x = todo.pop()
            if x in seen:
                continue
            seen.add(x)
            if x in stored or x not in self.virtual:
                out.add(x)
            else:
                todo.extend(self.named(x))
        return out

    def ready(self, v: Value, loadable: set) -> bool:
        """Whether v can be computed from `loadable` now: every value its expression reads,
        down to stored ones, is loadable. Memoized: loadable only grows, so a ready value
        stays ready, and one that is not stays so until the stored value that blocked it
        (its first unavailable leaf) is loadable. (An unrolled sequence asks this of every
        pending value at every kernel: unmemoized, each question walked the recurrence back
        to its start, cubic in the steps.)"""
        ok, blocked = self._ready, self._blocked
        todo = [(v, False)]
        while todo:
            x, reads_done = todo.pop()
            if x in ok:
                continue
            if x in blocked:
                if blocked[x] not in loadable:
                    continue
                del blocked[x]
            if x in loadable:
                ok.add(x)
            elif x not in self.virtual:
                blocked[x] = x
            elif reads_done:
                stop = next((blocked[r] for r in self.reads(x) if r not in ok), None)
                if stop is None:
                    ok.add(x)
                else:
                    blocked[x] = stop
            else:
                todo.append((x, True))
                todo.extend((r, False) for r in self.reads(x) if r not in ok)
        return v in ok

    def inner(self, values, loadable: set) -> set:
        """The virtual, unstored values the expressions of `values` are made of."""
        out, todo = set(), list(values)
        while todo:
            x = todo.pop()
            if x in out or x in loadable or x not in self.virtual:
                continue
            out.add(x)
            todo.extend(self.reads(x))
        return out

    def reaching(self, values, targets: set, loadable: set) -> set:
        """Those of `values` whose expression (not the value itself) reads one of `targets`,
        not looking past stored values; one pass in creation order (asked per value, a long
        chain was walked once for each of its links)."""
        inside = self.inner(values, loadable)
        hits: set = set()
        for x in sorted(inside, key=self.rank.__getitem__):
            if any(r in inside and (r in targets or r in hits) for r in self.reads(x)):
                hits.add(x)
        return {v for v in values if v in hits}

    def cost(self, v: Value, stored: frozenset = frozenset(), limit: float = float("inf")) -> int:
        """Arithmetic ops in v's expression (each virtual node once; index maps are free),
        not looking past values in `stored`; counting stops once past `limit` (asking only
        whether a long chain's link costs more than REUSE_OPS must not walk the chain)."""
        seen, todo, ops = set(), [v], 0
        while todo and ops <= limit:
            x = todo.pop()
            if x in seen or x not in self.virtual or (x in stored and x is not v):
                continue
            seen.add(x)
            n = self.producer[x]
            fwd = n.attrs["fwd"] if n.op == "grad" else n
            if n.op in ("add", "slices") or n in self.gemm or REGISTRY[fwd.op].cuda.kind != "index":
                ops += 1
            todo.extend(self.reads(x))
        return ops

    def view_base(self, v: Value, arrays: set) -> Optional[Value]:
        """The stored array `v` is a view of (a reshape or slice), else None."""
        n = self.producer.get(v)
        if n is None or n.op in ("add", "slices"):
            return None
        if n.op == "grad":
            fwd = n.attrs["fwd"]
            kind = REGISTRY[fwd.op].cuda.index if is_virtual_op(fwd) else ""
            if kind not in ("view", "join") or not n.inputs:
                return None  # only grad(View/Reshape) and grad(JoinTable) slice their input
            src = n.inputs[0]
        elif n.op != "add" and is_virtual_op(n) and REGISTRY[n.op].cuda.index in VIEW_INDEX:
            src = n.inputs[0]
        else:
            return None
        if src in arrays:
            return src
        return self.view_base(src, arrays) if src in self.virtual else None

    # ---- scheduling --------------------------------------------------------------------

    def schedule(self, nodes, needs, finals, loadable: set, arrays: set, keep=()) -> list[Step]:
        """Steps for `nodes` in order: each kernel op after a fused kernel (or views) that
        stores the virtual values it needs; `finals` are stored at the end, after a kernel
        of their own for `keep` (values a later part reads), which `finals` then load."""
        ops = [n for n in nodes if not self.is_virtual_node(n)]
        pending: list[Demand] = [d for n in ops for d in needs(n)] + finals
        done: set = set()
        steps: list[Step] = []

        def key(d):
            return (d.value, d.layout)

        def part_demands(stack, now):
            """Demands for the slices of a stack that no kernel wrote yet (now: only those
            computable at this point)."""
            return [Demand(gy) for gy, _ in self.stacks[stack]
                    if gy not in self.kernel_written and (gy, "plain") not in done
                    and (not now or self.ready(gy, loadable))]

        def flush(missing, absorb=True):
            fused, joins = [], []
            for d in missing:
                if key(d) in done:
                    continue
                done.add(key(d))
                if d.layout == "plain" and self.joinable(d.value, arrays):
                    joins.append(d)  # after a kernel writing the slices not yet written
                    for p in part_demands(d.value, False):
                        done.add(key(p))
                        fused.append(p)
                elif d.layout == "plain" and (d.value in arrays or self.view_base(d.value, arrays)):
                    if d.value not in arrays:
                        steps.append(Step("view", demands=[d], reads={self.view_base(d.value, arrays)}))
                        arrays.add(d.value)
                else:
                    fused.append(d)
            if fused:
                fused_step(fused, absorb)
            for d in joins:
                parts = self.stacks[d.value]
                self.joined.update((gy, (d.value, k)) for gy, k in parts)
                steps.append(Step("join", demands=[d], stores=[d.value], reads={gy for gy, _ in parts}))
                loadable.add(d.value)
                arrays.add(d.value)

        def fused_step(fused, absorb):
            # every other demand computable now joins the same kernel
            for d in pending if absorb else ():
                if d.value in self.stacks:
                    continue  # joined in place when its own turn comes, if it can be
                if key(d) not in done and d.layout == "plain" and d.value not in arrays \
                        and self.view_base(d.value, arrays) is None \
                        and self.ready(d.value, loadable):
                    done.add(key(d))
                    fused.append(d)
                elif key(d) not in done and d.layout != "plain" \
                        and self.ready(d.value, loadable):
                    done.add(key(d))
                    fused.append(d)
            # the slices of a stack computable now are written here, into the stack (join)
            for stack in self.stacks if absorb else ():
                if (stack, "plain") not in done and self.joinable(stack, arrays):
                    for p in part_demands(stack, True):
                        done.add(key(p))
                        fused.append(p)
            # a long expression this kernel computes that a later kernel would compute again
            # (an unrolled recurrence's c_t, and its gradient) is stored here instead: else
            # each step recomputes the chain from the start (quadratic work, huge kernels)
            later = []
            for d in pending:  # a stack to be joined computes only its unwritten slices
                if key(d) in done:
                    continue
                if d.value in self.stacks and self.joinable(d.value, arrays):
                    later += [p.value for p in part_demands(d.value, False)]
                else:
                    later.append(d.value)
            if later and absorb:
                stop = frozenset(loadable)
                shared = self.inner([d.value for d in fused], loadable) & self.inner(later, loadable)
                for v in sorted(shared, key=self.rank.__getitem__):
                    if (v, "plain") not in done and self.cost(v, stop, REUSE_OPS) > REUSE_OPS:
                        done.add((v, "plain"))
                        fused.append(Demand(v))
            # a chain too deep for one expression (1,000 Tanh in a row) is stored in links,
            # each by a kernel of its own before this one
            for link in self.deep_links([d.value for d in fused], loadable):
                done.add((link, "plain"))
                fused_step([Demand(link)], absorb=False)
            stores = [d.value for d in fused if d.layout == "plain"]
            self.kernel_written.update(stores)
            reads = self.loads([d.value for d in fused], loadable)
            steps.append(Step("fused", demands=fused, stores=stores, reads=reads))
            loadable.update(stores)
            arrays.update(stores)

        def flush_with_keep(missing):
            # kept values computable now are stored now, not recomputed at the end (an
            # unrolled sequence's per-step gates): those reading no other of them by a kernel
            # first, the rest with `missing`, loading those
            ready = [d for d in keep if key(d) not in done and self.ready(d.value, loadable)]
            values = {d.value for d in ready}
            deeper = self.reaching(list(values), values, loadable)
            first = [d for d in ready if d.value not in deeper]
            if first:
                flush(first, absorb=False)
            flush(missing + [d for d in ready if d not in first])

        for n in ops:
            flush_with_keep(needs(n))
            stores = self.stores(n)
            reads = self.loads(self.kernel_inputs(n), loadable | arrays)
            steps.append(Step("op", node=n, stores=stores, reads=reads))
            loadable.update(stores)
            arrays.update(stores)
        # kept values that read a final output (tanh(next_c)) are stored by the finals'
        # kernel, which computes that output anyway; the others by a kernel before it
        final_values = {d.value for d in finals}
        reach = self.reaching([d.value for d in keep], final_values, loadable)
        after = [d for d in keep if d.value in reach
                 or (d.value in final_values and d.value in self.virtual and d.value not in loadable)]
        before = [d for d in keep if d not in after]
        if before:
            flush(before, absorb=False)
        flush(finals + after)
        return steps

    def is_virtual_node(self, n: Node) -> bool:
        """Forward pointwise/index nodes, their grad nodes, gradient sums (and the joined
        slice gradients of passes/simplify.py), inline Linears: no step, computed where
        they are read."""
        if n.op in ("add", "slices") or n in self.inline:
            return True
        return is_virtual_op(n.attrs["fwd"] if n.op == "grad" else n)

    def stores(self, n: Node) -> list[Value]:
        """What a kernel op's step leaves in arrays that later kernels may read."""
        if n.op == "grad":
            return [v for v in n.outputs if v not in self.param_grads]
        if n in self.gemm:
            return [self.gemm[n]] + [v for v in n.outputs if v.dtype == "aux"]
        return list(n.outputs)

    def forward_needs(self, n: Node) -> list[Demand]:
        r = REGISTRY[n.op].cuda
        n_params = len(REGISTRY[n.op].active_params(n.attrs))
        data = n.inputs[: len(n.inputs) - n_params]
        return [Demand(v) for v in data if v in self.virtual
                and (r.reads != "prologue" or self.cost(v) > PROLOGUE_OPS)]

    def backward_needs(self, n: Node) -> list[Demand]:
        if n.op != "grad" or not n.inputs:
            return []
        r = REGISTRY[n.attrs["fwd"].op].cuda
        if r.grad_reads == "rows":
            return [Demand(n.inputs[0], "rows")]
        # every output's gradient (a table output has several)
        return [Demand(gy) for gy in n.inputs if gy in self.virtual
                and (r.grad_reads == "plain" or self.cost(gy) > PROLOGUE_OPS)]

    def backward_reads(self, outs: list) -> list[Demand]:
        """The forward values (computed, not mere slices of inputs) that grad nodes read
        (OpDef.reads), in creation order: stored by the forward's last kernel, so the
        backward loads them instead of computing them again."""
        forward = {v for n in self.g.nodes for v in n.outputs}
        have = {d.value for d in outs}
        reads = {v for n in self.g.grad_nodes if n.op == "grad" for v in n.inputs
                 if v in forward and v in self.virtual and v not in have and self.cost(v, limit=0) > 0}
        # a slice of another kept value is read through that one (a view, not a copy)
        reads = {v for v in reads if self.view_base(v, reads) is None}
        return [Demand(v) for v in sorted(reads, key=self.rank.__getitem__)]

    def plan(self) -> Plan:
        g = self.g
        inputs = set(g.inputs) | {p.value for p in g.params} | {p.value for p in g.buffers}
        loadable, arrays = set(inputs), set(inputs)
        outs = []
        for v in g.outputs:
            if v in self.virtual and all(d.value is not v for d in outs):
                outs.append(Demand(v))
        keep = self.backward_reads(outs) if self.keep_backward_reads else []
        fwd = self.schedule(g.nodes, self.forward_needs, outs, loadable, arrays, keep)
        # the backward reads what the forward stored (and only that), plus the gradients given
        loadable |= set(g.grad_outputs)
        arrays |= set(g.grad_outputs)
        finals = []
        for v in g.input_grads:
            if v is not None and v in self.virtual and all(d.value is not v for d in finals):
                finals.append(Demand(v))
        bwd = self.schedule(g.grad_nodes, self.backward_needs, finals, loadable, arrays)
        return Plan(fwd, bwd, self.virtual, self.gemm, inline=self.inline, joined=self.joined)


def plan(graph: Graph, keep_backward_reads: bool = False, inline_gemms: bool = False) -> Plan:
    """The step plan of a differentiated graph (see the module docstring).
    keep_backward_reads (the CPU target): the forward also stores the computed values its
    backward reads, so the backward loads them. A GPU recomputes them (memory traffic costs
    more than arithmetic there); a CPU core computes exp/tanh one element at a time, and
    recomputing every gate in the backward made the LSTM cell's step about twice as slow.
    inline_gemms (the CPU target): GEMMs of an inner size up to INLINE_GEMM_INPUTS are
    computed in the kernels that read them (Plan.inline)."""
    for node in graph.nodes:
        rule_of(node)
    return _Planner(graph, keep_backward_reads, inline_gemms).plan()


def describe(p: Plan) -> str:
    """A readable summary of the plan (tests, --emit cu comments)."""
    return "\n".join(describe_lines(p))


def describe_lines(p: Plan) -> list[str]:
    """describe()'s lines (a value's name may itself hold a newline: escape each line)."""
    lines = []
    for which in ("forward", "backward"):
        lines.append(f"{which}:")
        for s in getattr(p, which):
            if s.kind == "op":
                label = s.node.op if s.node.op != "grad" else f"grad[{s.node.attrs['fwd'].op}]"
                lines.append(f"  op {label}")
            else:
                what = ", ".join(f"{d.value.name}" + ("" if d.layout == "plain" else f" ({d.layout})")
                                 for d in s.demands)
                lines.append(f"  {s.kind} {what}")
    return lines


__all__ = ["B", "Demand", "Plan", "Step", "describe", "describe_lines", "plan", "rule_of"]
