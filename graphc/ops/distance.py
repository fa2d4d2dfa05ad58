"""Distances and friends: CosineDistance, PairwiseDistance, Normalize, Bilinear, and the
indexing/padding modules Index and Padding. The kernels are in graphc_runtime.kernels."""
import math

from .pointwise import _lit
from .registry import (B, CudaRule, ParamSpec, ShapeError, defop, is_symbolic, rows_of_input,
                       shape_text, uniform)


def _two_rows(shapes, what):
    """{x1, x2}: two vectors (N) or two batches of vectors (BxN) of the same shape."""
    if len(shapes) != 2:
        raise ShapeError(f"expects a table of two tensors, got {len(shapes)}")
    x1, x2 = shapes
    if len(x1) not in (1, 2) or tuple(x1) != tuple(x2):
        raise ShapeError(f"expects two vectors (N) or two batches of vectors (BxN) of the same "
                         f"shape, got {shape_text(x1)} and {shape_text(x2)}")
    if is_symbolic(x1[-1]):
        raise ShapeError(f"the batch dimension B would be {what}")
    return (1,) if len(x1) == 1 else (x1[0],)


def _sibling(a, slot, shapes):
    known = [s for s in shapes[:2] if s is not None]
    return known[0] if known else None


# ---- CUDA ('elem' kernels) of the row ops: an input N or BxN, one result per row ----------------
# In a body for a per-row array (the output, a row aux), `rowin` is the input's row prefix
# (dims before the last); in an input-shaped gradient body, `rowout` is the output's index.
_ROWIN = "{% set rowin = o[:1] if in_shapes[0]|length == 2 else [] %}"
_ROWOUT = "{% set rowout = o[:-1] if in_shapes[0]|length == 2 else [0] %}"


# ---- CosineDistance ---------------------------------------------------------------------------

# CUDA: per row, state = (x1.x2, 1 / (x1.x1 + eps), 1 / (x2.x2 + eps)), one thread for each
# of the three, so the output and both gradients are pointwise in them.
_COS_CUDA = CudaRule(
    "kernel", kernel="elem",
    aux={"state": ("real", lambda a, ins, out: rows_of_input(a, ins, out) + (3,), _ROWIN + (
        "const int j = {{ o[1] }};  // 0: x1.x2, 1: x1.x1, 2: x2.x2\n"
        "real s = 0;\n"
        "for (int k = 0; k < {{ in_shapes[0][-1] }}; ++k) {\n"
        "  const real u = {{ ld(xs[0], *(rowin + ['k'])) }}, "
        "v = {{ ld(xs[1], *(rowin + ['k'])) }};\n"
        "  s += j == 0 ? u * v : j == 1 ? u * u : v * v;\n"
        "}\n"
        "return j == 0 ? s : 1 / (s + (real)1e-12);"))},
    forward=("return {{ ld(state, o[0], 0) }} * g_sqrt({{ ld(state, o[0], 1) }} * "
             "{{ ld(state, o[0], 2) }});"),
    backward={"xs": _ROWOUT + (
        "// d/dxk = (x_other - x1.x2 / (xk.xk + eps) * xk) / sqrt((x1.x1 + eps) (x2.x2 + eps)) gy\n"
        "const real dot = {{ ld(state, *(rowout + [0])) }}, "
        "inv = {{ ld(state, *(rowout + [1 + k])) }};\n"
        "const real s = g_sqrt({{ ld(state, *(rowout + [1])) }} * {{ ld(state, *(rowout + [2])) }})"
        " * {{ ld(gy, *rowout) }};\n"
        "return ({{ ld(xs[1 - k], *o) }} - dot * inv * {{ ld(xs[k], *o) }}) * s;")},
)

defop(
    name="CosineDistance", signature="", inputs=("xs",), input_hint=_sibling,
    shape=lambda a, s: _two_rows(s, "summed over"), aux=("state",),
    forward=("{{y}}, {{aux.state}} = rt.cosine_distance_forward({{xs[0]}}, {{xs[1]}})\n"
             "{% if rank == 2 %}{{y}} = {{y}}[:, 0]\n{% endif %}"),
    backward_stmt=("{% set gs = gy ~ ('[:, None]' if rank == 2 else '') %}"
                   "{{g.xs[0] or '_'}}, {{g.xs[1] or '_'}} = rt.cosine_distance_backward("
                   "{{gs}}, {{xs[0]}}, {{xs[1]}}, {{aux.state}})"),
    doc="Cosine similarity of each row pair of {x1, x2}: x1.x2 / sqrt((x1.x1 + 1e-12) "
        "(x2.x2 + 1e-12)). BxN, BxN -> B (N, N -> 1).",
    cuda=_COS_CUDA,
)

# ---- PairwiseDistance ---------------------------------------------------------------------------


def _pairwise_check(a):
    p = a["p"]
    if not (p > 0) or math.isinf(p):
        return f"p must be a positive finite number, got {p}"


def _p_derive(a, shapes=None):
    return {"p": _lit(a["p"]), "inv": _lit(1 / a["p"])}


# CUDA: each row's distance is a loop in its thread; the gradient reads the distance y.
_PAIRWISE_CUDA = CudaRule(
    "kernel", kernel="elem",
    forward=_ROWIN + (
        "real s = 0;\n"
        "for (int k = 0; k < {{ in_shapes[0][-1] }}; ++k) {\n"
        "  const real t = {{ ld(xs[0], *(rowin + ['k'])) }} - {{ ld(xs[1], *(rowin + ['k'])) }};\n"
        "  s += {% if a.p == 2 %}t * t{% elif a.p == 1 %}g_fabs(t)"
        "{% else %}g_pow(g_fabs(t), {{ c(a.p) }}){% endif %};\n"
        "}\n"
        "return {% if a.p == 2 %}g_sqrt(s){% elif a.p == 1 %}s"
        "{% else %}g_pow(s, {{ c(1 / a.p) }}){% endif %};"),
    backward={"xs": _ROWOUT + (
        "// d/dx1 = sign(t) abs(t)^(p-1) / y^(p-1) (0 where t = 0 or y = 0); d/dx2 = -d/dx1\n"
        "const real t = {{ ld(xs[0], *o) }} - {{ ld(xs[1], *o) }};\n"
        "{% if a.p == 1 %}"
        "const real g = (real)((t > 0) - (t < 0));\n"
        "{% else %}"
        "const real dist = {{ ld(y, *rowout) }};\n"
        "{% if a.p == 2 %}"
        "const real g = dist > 0 ? t / dist : (real)0;\n"
        "{% else %}"
        "const real g = dist > 0 && t != 0 ? "
        "(t > 0 ? 1 : -1) * g_pow(g_fabs(t), {{ c(a.p - 1) }}) / g_pow(dist, {{ c(a.p - 1) }}) "
        ": (real)0;\n"
        "{% endif %}{% endif %}"
        "return {{ '-' if k == 1 }}g * {{ ld(gy, *rowout) }};")},
)

defop(
    name="PairwiseDistance", signature="p:num", inputs=("xs",), input_hint=_sibling,
    check=_pairwise_check, derive=_p_derive,
    shape=lambda a, s: _two_rows(s, "summed over"),
    forward=("{% if a.p == 2 %}{{y}} = {{xs[0]}} - {{xs[1]}}\n"
             "{{y}} = np.sqrt(({{y}} * {{y}}).sum(-1{% if rank == 1 %}, keepdims=True{% endif %}))"
             "{% elif a.p == 1 %}{{y}} = np.abs({{xs[0]}} - {{xs[1]}}).sum(-1"
             "{% if rank == 1 %}, keepdims=True{% endif %})"
             "{% else %}{{y}} = (np.abs({{xs[0]}} - {{xs[1]}}) ** {{d.p}}).sum(-1"
             "{% if rank == 1 %}, keepdims=True{% endif %}) ** {{d.inv}}{% endif %}"),
    backward_stmt=("{% set gs = gy if rank == 2 else gy ~ '[0]' %}"
                   "{% set tmp = g.xs[0] or g.xs[1] %}"
                   "{{tmp}} = rt.pairwise_distance_backward({{gs}}, {{xs[0]}}, {{xs[1]}}, "
                   "{{y}}{% if rank == 1 %}[0]{% endif %}, p={{d.p}})\n"
                   "{% if g.xs[1] %}{{g.xs[1]}} = -{{tmp}}\n{% endif %}"),
    cuda=_PAIRWISE_CUDA,
    doc="The p-norm of x1 - x2 for each row pair of {x1, x2}: BxN, BxN -> B (N, N -> 1). "
        "The gradient is 0 where the distance is 0.",
    torch_diff="The exact gradient. Torch7 divides by (distance + 1e-6), drops the "
               "abs(d)^(p-2) factor for 1 < p < 2, and picks a random sign where d = 0 for p = 1 "
               "(graphc: 0). p must be given (Torch7 has no default either).",
)

# ---- Normalize ----------------------------------------------------------------------------------


def _normalize_check(a):
    if not a["p"] > 0:
        return f"{a['p']}-norm not supported (p must be > 0)"
    if a["eps"] < 0:
        return f"eps must be >= 0, got {a['eps']}"


def _normalize_shape(a, shapes):
    (x,) = shapes
    if len(x) not in (1, 2):
        raise ShapeError(f"only 1D (N) or 2D (BxN) input supported, got {shape_text(x)}")
    if is_symbolic(x[-1]):
        raise ShapeError("cannot normalize over the batch dimension B")
    return x


# CUDA: two row auxes, `raw` (sum abs(x)^p + eps; p = inf: max abs(x)) then `norm`. The
# gradient's cross term sum(x * gy) over the row is a loop in every element's thread: backward
# bodies have no aux of their own to compute it once per row.
_NORMALIZE_CUDA = CudaRule(
    "kernel", kernel="elem",
    aux={
        "raw": ("real", rows_of_input, _ROWIN + (
            "{% set acc = 's = g_fmax(s, g_fabs(t))' if d.inf else 's += t * t' if a.p == 2 else "
            "'s += g_fabs(t)' if a.p == 1 else 's += g_pow(g_fabs(t), ' ~ c(a.p) ~ ')' %}"
            "real s = 0;\n"
            "for (int k = 0; k < {{ in_shapes[0][-1] }}; ++k) {\n"
            "  const real t = {{ ld(x, *(rowin + ['k'])) }};\n"
            "  {{ acc }};\n"
            "}\n"
            "return s{% if not d.inf %} + {{ c(a.eps) }}{% endif %};")),
        "norm": ("real", rows_of_input,
                 "{% set r = ld(raw, o[0]) %}"
                 "return {% if d.inf %}{{ r }} + {{ c(a.eps) }}{% elif a.p == 2 %}g_sqrt({{ r }})"
                 "{% elif a.p == 1 %}{{ r }}{% else %}g_pow({{ r }}, {{ c(1 / a.p) }}){% endif %};"),
    },
    forward=_ROWOUT + "return {{ ld(x, *o) }} / {{ ld(norm, *rowout) }};",
    # per row, once: sum(x * gy)
    backward_aux={"cross": ("real", rows_of_input, _ROWIN + (
        "real s = 0;\n"
        "for (int q = 0; q < {{ in_shapes[0][-1] }}; ++q) "
        "s += {{ ld(x, *(rowin + ['q'])) }} * {{ ld(gy, *(rowin + ['q'])) }};\n"
        "return s;"))},
    backward={"x": _ROWOUT + (
        "{% set rowin = o[:-1] %}"
        "const real t = {{ ld(x, *o) }}, nrm = {{ ld(norm, *rowout) }};\n"
        "{% if d.inf %}"
        "// only the row's first maximum of abs(x) gets the cross term (the argmax)\n"
        "real g = nrm * {{ ld(gy, *o) }};\n"
        "if (g_fabs(t) == {{ ld(raw, *rowout) }}) {\n"
        "  int k = 0;\n"
        "  while (g_fabs({{ ld(x, *(rowin + ['k'])) }}) != {{ ld(raw, *rowout) }}) ++k;\n"
        "  if (k == {{ o[-1] }}) g -= t / nrm * {{ ld(cross, *rowout) }};\n"
        "}\n"
        "return g / (nrm * nrm);"
        "{% else %}"
        "const real b = {% if a.p == 2 %}t{% elif a.p % 2 != 0 and a.p < 2 %}"
        "g_pow(g_fabs(t) + {{ c(a.eps) }}, {{ c(a.p - 2) }}) * t"
        "{% else %}g_pow(g_fabs(t), {{ c(a.p - 2) }}) * t{% endif %};\n"
        "const real sp = {{ ld(raw, *rowout) }};\n"
        "return (sp * {{ ld(gy, *o) }} - b * {{ ld(cross, *rowout) }}) / (sp * nrm);"
        "{% endif %}")},
)

defop(
    name="Normalize", signature="p:num, eps:num=1e-10", check=_normalize_check,
    shape=_normalize_shape,
    derive=lambda a, s: {"p": _lit(a["p"]), "eps": _lit(a["eps"]), "inf": math.isinf(a["p"])},
    aux=("state",),
    forward="{{y}}, {{aux.state}} = rt.normalize_forward({{x}}, p={{d.p}}, eps={{d.eps}})",
    backward={"x": "rt.normalize_backward({{gy}}, {{x}}, {{aux.state}}, p={{d.p}}, eps={{d.eps}})"},
    cuda=_NORMALIZE_CUDA,
    doc="Divides each row by its p-norm: (sum abs(x)^p + eps)^(1/p); p = math.huge: max abs(x) + eps. "
        "Input N or BxN.",
    torch_diff="None. The gradient is Torch7's formula, which is not the exact gradient for "
               "p < 2 or p = math.huge: it computes abs(x)^(p-2) x as (abs(x) + eps)^(p-2) x (a "
               "guard against 0^(p-2)), and for math.huge the sign of the largest abs(x) as x / "
               "(abs(x) + eps). The error grows with eps, so finite differences disagree for a "
               "large eps (`nn.Normalize(1.5, 0.5)`); graphc keeps Torch7's numbers here "
               "(PairwiseDistance, by contrast, takes the exact gradient).",
)

# ---- Bilinear -----------------------------------------------------------------------------------


def _bilinear_check(a):
    if min(a["inputSize1"], a["inputSize2"], a["outputSize"]) < 1:
        return "inputSize1, inputSize2 and outputSize should be positive numbers"


def _bilinear_shape(a, shapes):
    if len(shapes) != 2:
        raise ShapeError(f"input should be a table containing two data Tensors, got {len(shapes)}")
    x1, x2 = shapes
    if len(x1) != 2 or len(x2) != 2:
        raise ShapeError(f"input Tensors should be two-dimensional, got {shape_text(x1)} and {shape_text(x2)}")
    if x1[0] != x2[0]:
        raise ShapeError(f"input Tensors should have the same number of rows, got {shape_text(x1)} and "
                         f"{shape_text(x2)}")
    if x1[1] != a["inputSize1"] or x2[1] != a["inputSize2"]:
        raise ShapeError(f"expects Bx{a['inputSize1']} and Bx{a['inputSize2']} inputs, got "
                         f"{shape_text(x1)} and {shape_text(x2)}")
    return (x1[0], a["outputSize"])


def _bilinear_hint(a, slot, shapes):
    if slot in (0, 1):
        return (B, a["inputSize1"] if slot == 0 else a["inputSize2"])
    return None


# CUDA: y[b,k] = sum_i x1[b,i] sum_j W[k,i,j] x2[b,j]; each gradient element loops over what
# it sums (the weight's and bias's over the rows b).
_BILINEAR_CUDA = CudaRule(
    "kernel", kernel="elem",
    forward=("real s = 0;\n"
             "for (int p = 0; p < {{ a.inputSize1 }}; ++p) {\n"
             "  real t = 0;\n"
             "  for (int q = 0; q < {{ a.inputSize2 }}; ++q) "
             "t += {{ ld(weight, o[1], 'p', 'q') }} * {{ ld(xs[1], o[0], 'q') }};\n"
             "  s += {{ ld(xs[0], o[0], 'p') }} * t;\n"
             "}\n"
             "return s{% if a.bias %} + {{ ld(bias, o[1]) }}{% endif %};"),
    backward={
        # d/dx1[b,i] = sum_k gy[b,k] sum_j W[k,i,j] x2[b,j]; d/dx2 likewise with i and j swapped
        "xs": ("{% set w = (['c', o[1], 'q'] if k == 0 else ['c', 'q', o[1]]) %}"
               "real s = 0;\n"
               "for (int c = 0; c < {{ a.outputSize }}; ++c) {\n"
               "  real t = 0;\n"
               "  for (int q = 0; q < {{ a.inputSize2 if k == 0 else a.inputSize1 }}; ++q) "
               "t += {{ ld(weight, *w) }} * {{ ld(xs[1 - k], o[0], 'q') }};\n"
               "  s += {{ ld(gy, o[0], 'c') }} * t;\n"
               "}\n"
               "return s;"),
        "weight": ("real s = 0;\n"
                   "for (int r = 0; r < {{ shp.gy[0] }}; ++r) s += {{ ld(gy, 'r', o[0]) }} * "
                   "{{ ld(xs[0], 'r', o[1]) }} * {{ ld(xs[1], 'r', o[2]) }};\n"
                   "return s;"),
        "bias": ("real s = 0;\n"
                 "for (int r = 0; r < {{ shp.gy[0] }}; ++r) s += {{ ld(gy, 'r', o[0]) }};\n"
                 "return s;"),
    },
)

_bil_stdv = uniform(lambda a: 1 / math.sqrt(a["inputSize1"]))
defop(
    name="Bilinear", signature="inputSize1:int, inputSize2:int, outputSize:int, bias:bool=true",
    inputs=("xs",), check=_bilinear_check, shape=_bilinear_shape, input_hint=_bilinear_hint,
    params=(
        ParamSpec("weight", lambda a: (a["outputSize"], a["inputSize1"], a["inputSize2"]),
                  _bil_stdv),
        ParamSpec("bias", lambda a: (a["outputSize"],), _bil_stdv, present=lambda a: a["bias"]),
    ),
    flops=lambda a, ins, out: 2 * math.prod(out) * a["inputSize1"] * a["inputSize2"],
    forward=("{{y}} = np.einsum('bi,kij,bj->bk', {{xs[0]}}, {{weight}}, {{xs[1]}}, optimize=True)"
             "\n{% if bias %}{{y}} += {{bias}}{% endif %}"),
    backward={
        "xs": ("{% if i == 0 %}np.einsum('bk,kij,bj->bi', {{gy}}, {{weight}}, {{xs[1]}}, "
               "optimize=True){% else %}np.einsum('bk,kij,bi->bj', {{gy}}, {{weight}}, "
               "{{xs[0]}}, optimize=True){% endif %}"),
        "weight": "np.einsum('bk,bi,bj->kij', {{gy}}, {{xs[0]}}, {{xs[1]}}, optimize=True)",
        "bias": "{{gy}}.sum(0)",
    },
    cuda=_BILINEAR_CUDA,
    doc="y_k = x1' W_k x2 + b_k for each row pair of {x1, x2} (Bx inputSize1, Bx inputSize2 -> "
        "Bx outputSize); weight outputSize x inputSize1 x inputSize2. Init U(+-1/sqrt(inputSize1)).",
)

# ---- Index ----------------------------------------------------------------------------------------


def _index_derive(a, shapes):
    if len(shapes) != 2:
        raise ShapeError(f"expects a table {{tensor, indices}}, got {len(shapes)} element(s)")
    x, idx = shapes
    if len(idx) != 1:
        raise ShapeError(f"the indices must be a 1D tensor, got {shape_text(idx)}")
    if a["dimension"] < 1 or a["dimension"] > len(x):
        raise ShapeError(f"dimension {a['dimension']} is out of range for a {len(x)}-D tensor")
    axis = a["dimension"] - 1
    if is_symbolic(x[axis]):
        raise ShapeError("cannot index along the batch dimension B")
    out = x[:axis] + idx + x[axis + 1:]
    if out.count(B) > 1:
        raise ShapeError(f"the output {shape_text(out)} would have two batch dimensions B")
    return {"axis": axis, "size": x[axis], "out": out}


# CUDA: the output gathers input slices; an input slice's gradient adds the output slices at
# every index position that picked it (no gradient to the indices).
_INDEX_CUDA = CudaRule(
    "kernel", kernel="elem",
    host="rt.check_indices({{xs[1]}}, {{d.size}}, 'nn.Index (indices {{xs[1]}})')",
    forward=("const int at = {{ ld(xs[1], o[d.axis]) }} - 1;\n"
             "return {{ ld(xs[0], *(o[:d.axis] + ['at'] + o[d.axis + 1:])) }};"),
    backward={"xs": ("real s = 0;\n"
                     "for (int p = 0; p < {{ shp.gy[d.axis] }}; ++p)\n"
                     "  if ({{ ld(xs[1], 'p') }} - 1 == {{ o[d.axis] }}) "
                     "s += {{ ld(gy, *(o[:d.axis] + ['p'] + o[d.axis + 1:])) }};\n"
                     "return s;")},
)

defop(
    name="Index", signature="dimension:int", inputs=("xs",), int_inputs=(1,),
    shape=lambda a, s: _index_derive(a, s)["out"], derive=_index_derive,
    forward=("{{y}} = np.take({{xs[0]}}, rt.check_indices({{xs[1]}}, n={{d.size}}, module='nn.Index (indices {{xs[1]}})') - 1, "
             "{{d.axis}})"),
    backward={"xs": "rt.index_add({{gy}}, {{xs[1]}} - 1, axis={{d.axis}}, size={{d.size}})"},
    cuda=_INDEX_CUDA,
    doc="{t, indices}: the slices of t at the 1-based `indices` (a 1D integer graph input) "
        "along `dimension` (index_select). Repeated indices add their gradients; the indices "
        "get none.",
)

# ---- Padding ----------------------------------------------------------------------------------


def _padding_derive(a, shapes):
    (x,) = shapes
    dim = a["dim"]
    if a["nInputDim"] is not None and len(x) != a["nInputDim"]:
        dim += 1  # Torch: any other rank counts as batched
    if not 1 <= dim <= len(x):
        raise ShapeError(f"dimension {dim} is out of range for a {len(x)}-D input")
    axis = dim - 1
    size = x[axis]
    if is_symbolic(size):
        raise ShapeError("cannot pad the batch dimension B; give nInputDim to count dims "
                         "without it")
    index = a["index"]
    if a["pad"] > 0:
        index = size - index + 2  # pad > 0: index counts from the right
    if not 1 <= index <= size + 1:
        raise ShapeError(f"index {a['index']} is out of range for dimension {dim} of size {size} "
                         f"(1..{size + 1})")
    n = abs(a["pad"])
    out = x[:axis] + (size + n,) + x[axis + 1:]
    return {"axis": axis, "pos": index - 1, "n": n, "value": _lit(a["value"]), "out": out}


# CUDA: output cells [pos, pos + n) along the axis hold `value`; the rest copy the input, shifted
# by n after the padding. The gradient skips the padding.
_PADDING_CUDA = CudaRule(
    "kernel", kernel="elem",
    forward=("const int at = {{ o[d.axis] }};\n"
             "{% if d.pos > 0 %}"
             "if (at < {{ d.pos }}) return {{ ld(x, *o) }};\n"
             "{% endif %}"
             "if (at < {{ d.pos + d.n }}) return {{ c(a.value) }};\n"
             "return {{ ld(x, *(o[:d.axis] + ['at - ' ~ d.n] + o[d.axis + 1:])) }};"),
    backward={"x": ("const int at = {{ o[d.axis] }} < {{ d.pos }} ? {{ o[d.axis] }} : "
                    "{{ o[d.axis] }} + {{ d.n }};\n"
                    "return {{ ld(gy, *(o[:d.axis] + ['at'] + o[d.axis + 1:])) }};")},
)

defop(
    name="Padding", signature="dim:int, pad:int, nInputDim:int=nil, value:num=0, index:int=1",
    shape=lambda a, s: _padding_derive(a, s)["out"], derive=_padding_derive,
    forward="{{y}} = rt.pad_insert({{x}}, axis={{d.axis}}, pos={{d.pos}}, n={{d.n}}, value={{d.value}})",
    backward={"x": "np.delete({{gy}}, np.s_[{{d.pos}}:{{d.pos + d.n}}], {{d.axis}})"},
    cuda=_PADDING_CUDA,
    doc="Inserts abs(pad) cells of `value` along `dim` (shifted by one when the input has other "
        "than nInputDim dims): pad < 0 before element `index`, pad > 0 after element `index` "
        "counted from the end (index = 1: at the start / at the end).",
)
