"""Matrix products over a table of two tensors: MM, MV, DotProduct. A free batch dim B may be
the batch of a 3D (bmm) product, or the rows of a 2D left operand; it is never contracted."""
import math

from .registry import CudaRule, ShapeError, B, defop


def _s(shape):
    return "x".join(map(str, shape))


def _pair(shapes, what):
    if len(shapes) != 2:
        raise ShapeError(f"expects a table of two {what}, got {len(shapes)}")
    return shapes


def _no_b(dims, why):
    if B in dims:
        raise ShapeError(f"the batch dimension B would be {why}; it may only be the batch of a "
                         "3D product or the rows of a 2D left operand")


# ---- MM ----------------------------------------------------------------------------------


def _mm_shape(a, shapes):
    x1, x2 = _pair(shapes, "matrices")
    if len(x1) not in (2, 3):
        raise ShapeError(f"input tensors must be 2D or 3D, got {_s(x1)}")
    if len(x2) != len(x1):
        raise ShapeError(f"second input tensor must be {len(x1)}D like the first, got {_s(x2)}")
    batch = ()
    if len(x1) == 3:
        if x1[0] != x2[0]:
            raise ShapeError(f"inputs must contain the same number of minibatches ({_s(x1)} "
                             f"and {_s(x2)})")
        batch, x1, x2 = (x1[0],), x1[1:], x2[1:]
    r, k1 = (x1[1], x1[0]) if a["transA"] else x1
    k2, c = (x2[1], x2[0]) if a["transB"] else x2
    _no_b((k1, k2), "summed over")
    _no_b((c,), "moved from dimension 1")
    if k1 != k2:
        raise ShapeError(f"matrix sizes do not match: {_s(shapes[0])}{'^T' if a['transA'] else ''}"
                         f" times {_s(shapes[1])}{'^T' if a['transB'] else ''}")
    return batch + (r, c)


_T = ".swapaxes(-1, -2)"


def _t(cond):
    return "{% if " + cond + " %}" + _T + "{% endif %}"


# CUDA: one thread per element, a plain loop over the summed dim (no cuBLAS: these ops are
# small). Macros give op(A)[r, k], op(B)[k, c] and gy[r, c] for the element's batch `o[:-2]`.
_MM_MACROS = (
    "{% macro A(r, k) %}{{ ld(xs[0], *(o[:-2] + ([k, r] if a.transA else [r, k]))) }}{% endmacro %}"
    "{% macro Bm(k, c) %}{{ ld(xs[1], *(o[:-2] + ([c, k] if a.transB else [k, c]))) }}{% endmacro %}"
    "{% macro G(r, c) %}{{ ld(gy, *(o[:-2] + [r, c])) }}{% endmacro %}")
_MM_CUDA = CudaRule(
    "kernel", kernel="elem",
    forward=_MM_MACROS + (
        "real s = 0;\n"
        "for (int k = 0; k < {{ in_shapes[0][-2 if a.transA else -1] }}; ++k) "
        "s += {{ A(o[-2], 'k') }} * {{ Bm('k', o[-1]) }};\n"
        "return s;"),
    backward={"xs": _MM_MACROS + (
        # dA[r, k] = sum_c gy[r, c] op(B)[k, c]; dB[k, c] = sum_r op(A)[r, k] gy[r, c]
        # (element (p, q) of a transposed operand is (q, p) of op(.))
        "{% set p, q = o[-2], o[-1] %}"
        "real s = 0;\n"
        "{% if k == 0 %}{% set r, kk = (q, p) if a.transA else (p, q) %}"
        "for (int c = 0; c < {{ shp.gy[-1] }}; ++c) s += {{ G(r, 'c') }} * {{ Bm(kk, 'c') }};\n"
        "{% else %}{% set kk, c = (q, p) if a.transB else (p, q) %}"
        "for (int r = 0; r < {{ shp.gy[-2] }}; ++r) s += {{ A('r', kk) }} * {{ G('r', c) }};\n"
        "{% endif %}"
        "return s;")},
)

# C = op(A) op(B). dA = g op(B)^T (transposed back when transA); dB = op(A)^T g (likewise).
defop(
    name="MM", signature="transA:bool=false, transB:bool=false", inputs=("xs",),
    shape=_mm_shape,
    forward="{{y}} = {{xs[0]}}" + _t("a.transA") + " @ {{xs[1]}}" + _t("a.transB"),
    backward={"xs": (
        "{% if i == 0 %}"
        "{% if a.transA %}{{xs[1]}}" + _t("a.transB") + " @ {{gy}}" + _T +
        "{% else %}{{gy}} @ {{xs[1]}}" + _t("not a.transB") + "{% endif %}"
        "{% else %}"
        "{% if a.transB %}{{gy}}" + _T + " @ {{xs[0]}}" + _t("a.transA") +
        "{% else %}{{xs[0]}}" + _t("not a.transA") + " @ {{gy}}{% endif %}"
        "{% endif %}")},
    flops=lambda a, ins, out: 2 * math.prod(out) * ins[0][-2 if a["transA"] else -1],
    cuda=_MM_CUDA,
    doc="Matrix product of {A, B}: 2D (mm) or 3D batched (bmm); transA / transB transpose "
        "the last two dims first.",
)

# ---- MV ----------------------------------------------------------------------------------


def _mv_shape(a, shapes):
    m, v = _pair(shapes, "tensors (a matrix and a vector)")
    if len(m) not in (2, 3):
        raise ShapeError(f"input matrix must be 2D or 3D, got {_s(m)}")
    if len(v) != len(m) - 1:
        raise ShapeError(f"the vector must be {len(m) - 1}D for a {len(m)}D matrix, got {_s(v)}")
    batch = ()
    if len(m) == 3:
        if m[0] != v[0]:
            raise ShapeError(f"inputs must contain the same number of minibatches ({_s(m)} "
                             f"and {_s(v)})")
        batch, m, v = (m[0],), m[1:], v[1:]
    r, k = (m[1], m[0]) if a["trans"] else m
    _no_b((k, v[0]), "summed over")
    if k != v[0]:
        raise ShapeError(f"matrix row count and vector length do not match: "
                         f"{_s(shapes[0])}{'^T' if a['trans'] else ''} times {_s(shapes[1])}")
    return batch + (r,)


# CUDA: as MM, a plain loop in each thread (no cuBLAS). M(bt, r, k) is op(M)[r, k] of batch `bt`.
_MV_MACROS = ("{% macro M(bt, r, k) %}{{ ld(xs[0], *(bt + ([k, r] if a.trans else [r, k]))) }}"
              "{% endmacro %}")
_MV_CUDA = CudaRule(
    "kernel", kernel="elem",
    forward=_MV_MACROS + (
        "real s = 0;\n"
        "for (int k = 0; k < {{ in_shapes[1][-1] }}; ++k) "
        "s += {{ M(o[:-1], o[-1], 'k') }} * {{ ld(xs[1], *(o[:-1] + ['k'])) }};\n"
        "return s;"),
    backward={"xs": _MV_MACROS + (
        # dM[r, k] = gy[r] v[k] (transposed back with trans); dv[k] = sum_r op(M)[r, k] gy[r]
        "{% if k == 0 %}"
        "{% set bt = o[:-2] %}{% set r, kk = (o[-1], o[-2]) if a.trans else (o[-2], o[-1]) %}"
        "return {{ ld(gy, *(bt + [r])) }} * {{ ld(xs[1], *(bt + [kk])) }};"
        "{% else %}"
        "real s = 0;\n"
        "for (int r = 0; r < {{ shp.gy[-1] }}; ++r) "
        "s += {{ M(o[:-1], 'r', o[-1]) }} * {{ ld(gy, *(o[:-1] + ['r'])) }};\n"
        "return s;"
        "{% endif %}")},
)

defop(
    name="MV", signature="trans:bool=false", inputs=("xs",), shape=_mv_shape,
    forward="{{y}} = ({{xs[0]}}" + _t("a.trans") + " @ {{xs[1]}}[..., None])[..., 0]",
    backward={"xs": (
        "{% if i == 0 %}"
        "{% if a.trans %}{{xs[1]}}[..., :, None] * {{gy}}[..., None, :]"
        "{% else %}{{gy}}[..., :, None] * {{xs[1]}}[..., None, :]{% endif %}"
        "{% else %}({{xs[0]}}" + _t("not a.trans") + " @ {{gy}}[..., None])[..., 0]{% endif %}")},
    flops=lambda a, ins, out: 2 * math.prod(ins[0]),
    cuda=_MV_CUDA,
    doc="Matrix-vector product of {M, v}: M 2D and v 1D, or batched M 3D and v 2D; `trans` "
        "transposes M.",
)

# ---- DotProduct --------------------------------------------------------------------------


def _dot_shape(a, shapes):
    x1, x2 = _pair(shapes, "tensors")
    if len(x1) not in (1, 2) or tuple(x1) != tuple(x2):
        raise ShapeError(f"expects two vectors (N) or two batches of vectors (BxN) of the same "
                         f"shape, got {_s(x1)} and {_s(x2)}")
    _no_b(x1[-1:], "summed over")
    return (1,) if len(x1) == 1 else (x1[0],)


# CUDA: each row's dot product is a loop in its thread; the gradient is gy times the other input.
_DOT_CUDA = CudaRule(
    "kernel", kernel="elem",
    forward=("{% set row = o if in_shapes[0]|length == 2 else [] %}"
             "real s = 0;\n"
             "for (int k = 0; k < {{ in_shapes[0][-1] }}; ++k) "
             "s += {{ ld(xs[0], *(row + ['k'])) }} * {{ ld(xs[1], *(row + ['k'])) }};\n"
             "return s;"),
    backward={"xs": ("{% set row = o[:-1] if in_shapes[0]|length == 2 else [0] %}"
                     "return {{ ld(gy, *row) }} * {{ ld(xs[1 - k], *o) }};")},
)

defop(
    name="DotProduct", signature="", inputs=("xs",), shape=_dot_shape,
    forward="{{y}} = ({{xs[0]}} * {{xs[1]}}).sum(-1{% if rank == 1 %}, keepdims=True{% endif %})",
    backward={"xs": "{{gy}}{% if rank == 2 %}[:, None]{% endif %} * {{xs[1 - i]}}"},
    cuda=_DOT_CUDA,
    doc="Row-wise dot product of {x1, x2}: BxN, BxN -> B (N, N -> 1).",
)
