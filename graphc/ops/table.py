"""Ops over a table of tensors: CAddTable, CMulTable, JoinTable."""
from .registry import (CudaRule, ShapeError, batched, c_count, defop, is_symbolic, numel,
                       shape_text, torch_dim)


def _same_numel(a, shapes):
    # Torch needs equal element counts, not equal shapes; the result has input 1's shape.
    if len(shapes) < 1:
        raise ShapeError("expects a table of at least one tensor")
    first = shapes[0]
    for i, s in enumerate(shapes[1:], 2):
        if batched(s) != batched(first) or numel(s) != numel(first):
            raise ShapeError(f"input {i} has shape {shape_text(s)} but input 1 has "
                             f"{shape_text(first)}: element counts must match")
    return first


def _sibling_hint(a, slot, shapes):
    known = [s for s in shapes if s is not None]
    return known[0] if known else None


# `as1(v, i)` reshapes input i to input 1's shape when they differ (a view, no copy).
defop(
    name="CAddTable", signature="inplace:bool=false", inputs=("xs",), shape=_same_numel,
    input_hint=_sibling_hint, row_wise=True,
    forward="{{y}} = {{ binop('add', *xs1) }}", out=("y",),
    backward={"xs": "{{ like(gy, i) }}"},
    doc="Sum of its inputs.", torch_diff="`inplace` is accepted and ignored.",
    cuda=CudaRule("pointwise", forward="{{ xs|join(' + ') }}", backward={"xs": "{{gy}}"}),
)

defop(
    name="CMulTable", signature="", inputs=("xs",), shape=_same_numel,
    input_hint=_sibling_hint, row_wise=True,
    forward="{{y}} = {{ binop('multiply', *xs1) }}",
    # the gradients write into `out` only when the inputs have one shape (no reshapes)
    out=lambda a, ins: ("y", "xs") if len(set(ins)) == 1 else ("y",),
    backward={"xs": "{% if out %}{{ binop('multiply', gy, *(xs[:i] + xs[i + 1:])) }}{% else %}"
                    "{% set p %}{{gy}}{% for x in xs %}{% if loop.index0 != i %} * {{ as1(x, loop.index0) }}"
                    "{% endif %}{% endfor %}{% endset %}{{ like(p, i) }}{% endif %}"},
    doc="Elementwise product of its inputs.",
    cuda=CudaRule("pointwise", forward="{{ xs|join(' * ') }}",
                  backward={"xs": "{{gy}}{% for x in xs %}{% if loop.index0 != i %} * {{x}}{% endif %}{% endfor %}"}),
)


def _join_derive(a, shapes):
    rank = len(shapes[0])
    dim = a["dimension"]
    if a["nInputDims"] is not None and rank == a["nInputDims"] + 1 and dim > 0:
        dim += 1
    axis = torch_dim(dim, rank)
    for i, s in enumerate(shapes[1:], 2):
        if len(s) != rank or any(p != q for k, (p, q) in enumerate(zip(s, shapes[0])) if k != axis):
            raise ShapeError(f"input {i} has shape {shape_text(s)}, which cannot be "
                             f"joined with {shape_text(shapes[0])} along dimension {dim}")
    if any(is_symbolic(s[axis]) for s in shapes):
        raise ShapeError("cannot join along the batch dimension B")
    offsets = [0]
    for s in shapes:
        offsets.append(offsets[-1] + s[axis])
    return {"axis": axis, "offsets": offsets}


def _join_shape(a, shapes):
    d = _join_derive(a, shapes)
    s = list(shapes[0])
    s[d["axis"]] = d["offsets"][-1]
    return tuple(s)


defop(
    name="JoinTable", signature="dimension:int, nInputDims:int=nil", inputs=("xs",),
    shape=_join_shape, derive=_join_derive,
    forward="{{y}} = np.concatenate([{{ xs|join(', ') }}], {{d.axis}}{% if out %}, out={{out}}{% endif %})",
    out=("y",),
    backward={"xs": "{{gy}}[{{ ':, ' * d.axis }}{{d.offsets[i]}}:{{d.offsets[i + 1]}}]"},
    doc="Concatenates its inputs along `dimension` (1-based; shifted by one for batch "
        "input when nInputDims is given).",
    cuda=CudaRule("index", index="join"),
)


# ---- tables made of a tensor, and table rearrangements ----------------------------------

def _split_axis(a, shapes):
    x = shapes[0]
    dim = a["dimension"]
    if a["nInputDims"] is not None and len(x) == a["nInputDims"] + 1 and dim > 0:
        dim += 1  # Torch: a batched input shifts the dim
    axis = torch_dim(dim, len(x))
    if is_symbolic(x[axis]):
        raise ShapeError("cannot split along the batch dimension B")
    return {"axis": axis}


def _split_shape(a, shapes):
    axis = _split_axis(a, shapes)["axis"]
    x = shapes[0]
    return [x[:axis] + x[axis + 1:]] * x[axis]


defop(
    name="SplitTable", signature="dimension:int, nInputDims:int=nil", table_output=True,
    shape=_split_shape, derive=_split_axis, view=True,
    forward="{% for y in ys %}{{y}} = {{x}}[{{ ':, ' * d.axis }}{{loop.index0}}]\n{% endfor %}",
    backward_stmt=("{{g.x}} = np.stack([{% for gy in gys %}{{ gy if gy else 'np.zeros_like(' ~ (gys|select|first) ~ ')' }}"
                   "{{ ', ' if not loop.last }}{% endfor %}], {{d.axis}})"),
    doc="A table of the slices along `dimension` (views).",
    # CUDA: output m is the slice at position m; the gradient of x takes, at position p,
    # the gradient of output p (0 where that output has none)
    cuda=CudaRule(
        "kernel", kernel="elem",
        forward="return {{ ld(x, *(o[:d.axis] + [m] + o[d.axis:])) }};",
        backward={"x": ("{% set od = o[:d.axis] + o[d.axis + 1:] %}"
                        "{% for g in gys %}{% if g %}"
                        "if ({{ o[d.axis] }} == {{loop.index0}}) return {{ ld(g, *od) }};\n"
                        "{% endif %}{% endfor %}"
                        "return (real)0;")}),
)


def _table(x, what="input"):
    if not isinstance(x, list):
        raise ValueError(f"expects a table as {what}, got one tensor (for a graph input, give "
                         "a table shape such as --shape input1={Bx3,Bx3})")
    return x


def _select_table(a, x):
    items = _table(x)
    i = a["index"]
    k = i - 1 if i > 0 else len(items) + i
    if not 0 <= k < len(items):
        raise ValueError(f"index {i} is out of range for a table of {len(items)}")
    return items[k]


def _narrow_table(a, x):
    items = _table(x)
    offset, length = a["offset"], a["length"]
    if length < 0:
        length = len(items) - offset + length + 2
    if offset < 1 or length < 1 or offset + length - 1 > len(items):
        raise ValueError(f"elements {offset}..{offset + length - 1} are out of range for a table "
                         f"of {len(items)}")
    return items[offset - 1: offset - 1 + length]


def _flatten_table(a, x):
    if not isinstance(x, list):
        return [x]
    return [v for item in x for v in _flatten_table(a, item)]


_NO_CODE = dict(shape=lambda a, s: s[0], forward="", inputs=("any",))
defop(name="SelectTable", signature="index:int", structural=_select_table, **_NO_CODE,
      doc="Element `index` of a table (1-based, negative from the end); no copy.")
defop(name="NarrowTable", signature="offset:int, length:int=1", structural=_narrow_table, **_NO_CODE,
      doc="The sub-table of `length` elements from `offset`; no copy.")
defop(name="FlattenTable", signature="", structural=_flatten_table, **_NO_CODE,
      doc="A nested table flattened to one level, depth first; no copy.")


def _stack_shape(a, shapes):
    if any(s != shapes[0] for s in shapes):
        raise ShapeError("all steps must have the same shape")
    return (len(shapes),) + tuple(shapes[0])


def _stack_cuda_forward(cx, node):
    """On the CPU target numpy's stack (a copy per input); on a GPU the rule's elem kernel
    (on a CPU its per-element test of which input, among an unrolled sequence's 50 steps,
    cost 5x the copy)."""
    if cx.cpu:
        return [f"{cx.n(node.outputs[0])} = np.stack([{', '.join(cx.n(x) for x in node.inputs)}])"]
    return cx.fwd_elem(node)


def _stack_cuda_backward(cx, gnode, fwd, targets):
    return cx.bwd_elem(gnode, fwd, targets)  # input k's gradient is a slice gy[k]: a copy


defop(
    name="Stack", signature="", inputs=("xs",), shape=_stack_shape,
    forward="{{y}} = np.stack([{{ xs|join(', ') }}])",
    backward={"xs": "{{gy}}[{{i}}]"},
    # CUDA: output element (t, ...) is input t's element (...); input k's gradient is gy[k]
    cuda=CudaRule(
        "kernel", kernel="stack", doc="a copy kernel; on the CPU target numpy's stack",
        forward=("{% for x in xs %}"
                 "{{ 'return ' if loop.last else 'if (' ~ o[0] ~ ' == ' ~ loop.index0 ~ ') return ' }}"
                 "{{ ld(x, *o[1:]) }};\n{% endfor %}"),
        backward={"xs": "return {{ ld(gy, k, *o) }};"},
        emit_forward=_stack_cuda_forward, emit_backward=_stack_cuda_backward),
    doc="Stacks its inputs along a new first dimension (used by --unroll for per-step outputs).",
)


# ---- MixtureTable: a gater-weighted sum of experts ------------------------------------------

def _c_count(shape):
    """Elements of `shape` as C text (the CUDA kernels' B), for `d.inner`: the elements of one
    expert per gater weight."""
    return c_count(shape)


def _mixture_derive(a, shapes):
    g, experts = shapes[0], shapes[1:]
    if len(g) not in (1, 2):
        raise ShapeError(f"the gater must be 1D (n) or 2D (Bxn), got {shape_text(g)}")
    n = g[-1]
    if len(experts) == 1 and len(experts[0]) == len(g) + 1 and tuple(experts[0][:len(g)]) == tuple(g):
        return {"tensor": True, "axis": len(g) - 1, "view": None,  # experts: one Bxnx... tensor
                "inner": _c_count(experts[0][len(g):])}
    if len(experts) != n:
        raise ShapeError(f"the gater has {n} weights but there are {len(experts)} experts")
    for i, e in enumerate(experts, 1):
        if e != experts[0]:
            raise ShapeError(f"expert {i} has shape {shape_text(e)}, expert 1 has "
                             f"{shape_text(experts[0])}")
        if len(g) == 2 and (not e or e[0] != g[0]):
            raise ShapeError("experts must have the gater's batch dimension")
    # the gater column for expert i, shaped to broadcast over the expert's trailing dims
    lead = 1 if len(g) == 2 else 0
    return {"tensor": False, "view": (-1,) + (1,) * (len(experts[0]) - 1) if lead else None,
            "inner": _c_count(experts[0][lead:])}


def _mixture_shape(a, shapes):
    d = _mixture_derive(a, shapes)
    if d["tensor"]:
        e = shapes[1]
        return e[:d["axis"]] + e[d["axis"] + 1:]
    return shapes[1]


def _gate(i):  # jinja: gater column i, broadcast over an expert
    return ("{% if d.view %}" + "{{xs[0]}}[:, " + i + "].reshape({{d.view}})" +
            "{% else %}{{xs[0]}}[" + i + "]{% endif %}")


# CUDA. xs[0] is the gater, then the experts (flattened), or xs[1] one expert tensor. `lead`
# is the gater's batch index (none for a 1D gater). The gater's gradient is a dot product over
# the d.inner elements of one expert (per batch row): a flat loop, the arrays being contiguous.
_MIX_SET = "{% set lead = o[:1] if in_shapes[0]|length == 2 else [] %}"
_MIXTURE_CUDA = CudaRule(
    "kernel", kernel="elem",
    forward=_MIX_SET + (
        "{% if d.tensor %}"
        "real s = 0;\n"
        "for (int j = 0; j < {{ in_shapes[0][-1] }}; ++j) "
        "s += {{ ld(xs[0], *(lead + ['j'])) }} * {{ ld(xs[1], *(lead + ['j'] + o[lead|length:])) }};\n"
        "return s;"
        "{% else %}"
        "return {% for e in xs[1:] %}{{ ld(xs[0], *(lead + [loop.index0])) }} * {{ ld(e, *o) }}"
        "{{ ' + ' if not loop.last }}{% endfor %};"
        "{% endif %}"),
    backward={"xs": _MIX_SET + (
        "{% if k == 0 %}"  # the gater: element i is (row, expert j)
        "{% if d.tensor %}"
        "const real* e = {{xs[1]}} + i * {{d.inner}};\n"
        "{% else %}"
        "const int j = {{ o[-1] }};\n"
        "const real* e = ({% for e in xs[1:] %}{{ '' if loop.last else 'j == ' ~ loop.index0 ~ ' ? ' }}"
        "{{e}}{{ '' if loop.last else ' : ' }}{% endfor %}){% if lead %} + {{ lead[0] }} * {{d.inner}}{% endif %};\n"
        "{% endif %}"
        "const real* g = {{gy}}{% if lead %} + {{ lead[0] }} * {{d.inner}}{% endif %};\n"
        "real s = 0;\n"
        "for (int r = 0; r < {{d.inner}}; ++r) s += g[r] * e[r];\n"
        "return s;"
        "{% elif d.tensor %}"  # the expert tensor: element (lead, j, rest)
        "return {{ ld(xs[0], *o[:lead|length + 1]) }} * {{ ld(gy, *(lead + o[lead|length + 1:])) }};"
        "{% else %}"  # expert k - 1
        "return {{ ld(xs[0], *(lead + [k - 1])) }} * {{ ld(gy, *o) }};"
        "{% endif %}")},
)

defop(
    name="MixtureTable", signature="dim:int=nil", inputs=("xs",), nested_input=True,
    shape=_mixture_shape, derive=_mixture_derive,
    forward=("{% if d.tensor %}{{y}} = np.einsum("
             "{{ ('bn,bn...->b...' if d.axis == 1 else 'n,n...->...')|pyrepr }}, {{xs[0]}}, {{xs[1]}})"
             "{% else %}{{y}} = {% for e in xs[1:] %}" + _gate("{{loop.index0}}") +
             " * {{e}}{{ ' + ' if not loop.last }}{% endfor %}{% endif %}"),
    backward_stmt=(
        "{% if d.tensor %}"
        "{% if g.xs[0] %}{{g.xs[0]}} = (np.expand_dims({{gy}}, {{d.axis}}) * {{xs[1]}})"
        ".reshape({{xs[0]}}.shape + (-1,)).sum(-1)\n{% endif %}"
        "{% if g.xs[1] %}{{g.xs[1]}} = np.einsum({{ ('bn,b...->bn...' if d.axis == 1 else 'n,...->n...')|pyrepr }}, {{xs[0]}}, {{gy}})\n{% endif %}"
        "{% else %}"
        "{% if g.xs[0] %}{{g.xs[0]}} = np.stack([{% for e in xs[1:] %}({{gy}} * {{e}})"
        "{% if d.view %}.reshape({{gy}}.shape[0], -1).sum(1){% else %}.sum(){% endif %}"
        "{{ ', ' if not loop.last }}{% endfor %}], -1)\n{% endif %}"
        "{% for e in xs[1:] %}{% if g.xs[loop.index] %}{{g.xs[loop.index]}} = {{gy}} * " + _gate("{{loop.index0}}") + "\n{% endif %}{% endfor %}"
        "{% endif %}"),
    cuda=_MIXTURE_CUDA,
    doc="Input {gater, experts}: the sum of the experts (a table of n tensors, or one Bxnx... "
        "tensor) weighted by the gater's n columns.",
    torch_diff="`dim` is accepted; the expert dimension is the one after the gater's batch dim.",
)
