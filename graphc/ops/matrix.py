"""Matrix products over a table of two tensors: MM, MV, DotProduct. A free batch dim B may be
the batch of a 3D (bmm) product, or the rows of a 2D left operand; it is never contracted."""
import math

from .registry import CudaRule, ShapeError, defop, is_symbolic, shape_text


def _pair(shapes, what):
    if len(shapes) != 2:
        raise ShapeError(f"expects a table of two {what}, got {len(shapes)}")
    return shapes


def _no_b(dims, why):
    if any(is_symbolic(d) for d in dims):
        raise ShapeError(f"the batch dimension {next(d for d in dims if is_symbolic(d))} would be {why}; it may only be the batch of a "
                         "3D product or the rows of a 2D left operand")


# ---- MM ----------------------------------------------------------------------------------


def _mm_shape(a, shapes):
    x1, x2 = _pair(shapes, "matrices")
    if len(x1) not in (2, 3):
        raise ShapeError(f"input tensors must be 2D or 3D, got {shape_text(x1)}")
    if len(x2) != len(x1):
        raise ShapeError(f"second input tensor must be {len(x1)}D like the first, got {shape_text(x2)}")
    batch = ()
    if len(x1) == 3:
        if x1[0] != x2[0]:
            raise ShapeError(f"inputs must contain the same number of minibatches ({shape_text(x1)} "
                             f"and {shape_text(x2)})")
        batch, x1, x2 = (x1[0],), x1[1:], x2[1:]
    r, k1 = (x1[1], x1[0]) if a["transA"] else x1
    k2, c = (x2[1], x2[0]) if a["transB"] else x2
    _no_b((k1, k2), "summed over")
    _no_b((c,), "moved from dimension 1")
    if k1 != k2:
        raise ShapeError(f"matrix sizes do not match: {shape_text(shapes[0])}{'^T' if a['transA'] else ''}"
                         f" times {shape_text(shapes[1])}{'^T' if a['transB'] else ''}")
    return batch + (r, c)


_T = ".swapaxes(-1, -2)"


def _t(cond):
    return "{% if " + cond + " %}" + _T + "{% endif %}"


# CUDA: cuBLAS through rt.matmul; transposed operands are views (cuBLAS transpose flags).
# dop(A) = g op(B)^T, so dA = op(B) g^T when transA (no transpose of the result); likewise B.
_MM_CUDA = CudaRule(
    "kernel", kernel="blas",
    forward="rt.matmul({{xs[0]}}" + _t("a.transA") + ", {{xs[1]}}" + _t("a.transB") + ")",
    backward={"xs": (
        "{% if i == 0 %}{% if a.transA %}rt.matmul({{xs[1]}}" + _t("a.transB") + ", {{gy}}" + _T + ")"
        "{% else %}rt.matmul({{gy}}, {{xs[1]}}" + _t("not a.transB") + "){% endif %}"
        "{% else %}{% if a.transB %}rt.matmul({{gy}}" + _T + ", {{xs[0]}}" + _t("a.transA") + ")"
        "{% else %}rt.matmul({{xs[0]}}" + _t("not a.transA") + ", {{gy}}){% endif %}{% endif %}")},
)

# C = op(A) op(B). dA = g op(B)^T (transposed back when transA); dB = op(A)^T g (likewise).
defop(
    name="MM", signature="transA:bool=false, transB:bool=false", inputs=("xs",),
    shape=_mm_shape,
    forward=("{% set p %}{{xs[0]}}" + _t("a.transA") + "{% endset %}{% set q %}{{xs[1]}}" + _t("a.transB") +
             "{% endset %}{{y}} = {{ binop('matmul', p, q) }}"), out=("y",),
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
        raise ShapeError(f"input matrix must be 2D or 3D, got {shape_text(m)}")
    if len(v) != len(m) - 1:
        raise ShapeError(f"the vector must be {len(m) - 1}D for a {len(m)}D matrix, got {shape_text(v)}")
    batch = ()
    if len(m) == 3:
        if m[0] != v[0]:
            raise ShapeError(f"inputs must contain the same number of minibatches ({shape_text(m)} "
                             f"and {shape_text(v)})")
        batch, m, v = (m[0],), m[1:], v[1:]
    r, k = (m[1], m[0]) if a["trans"] else m
    _no_b((k, v[0]), "summed over")
    if k != v[0]:
        raise ShapeError(f"matrix row count and vector length do not match: "
                         f"{shape_text(shapes[0])}{'^T' if a['trans'] else ''} times {shape_text(shapes[1])}")
    return batch + (r,)


# CUDA: cuBLAS (a GEMV as a one-column rt.matmul; dM as a rank-one product).
_MV_CUDA = CudaRule(
    "kernel", kernel="blas",
    forward="rt.matmul({{xs[0]}}" + _t("a.trans") + ", {{xs[1]}}[..., None]).reshape({{out_shape}})",
    backward={"xs": (
        "{% if i == 0 %}"
        "{% if a.trans %}rt.matmul({{xs[1]}}[..., :, None], {{gy}}[..., None, :])"
        "{% else %}rt.matmul({{gy}}[..., :, None], {{xs[1]}}[..., None, :]){% endif %}"
        "{% else %}rt.matmul({{xs[0]}}" + _t("not a.trans") + ", {{gy}}[..., None])"
        ".reshape({{shapes[1]}}){% endif %}")},
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
                         f"shape, got {shape_text(x1)} and {shape_text(x2)}")
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
