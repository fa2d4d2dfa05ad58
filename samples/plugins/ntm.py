"""torch-ntm's custom modules (kaishengtai/torch-ntm, layers/), ported to Python for graphc.

The Neural Turing Machine's addressing uses modules whose updateOutput is tensor code:
SmoothCosineSimilarity (content addressing), ScalarMulTable/ScalarDivTable, CircularConvolution
(location shift), PowTable (sharpening), OuterProd (erase and add vectors) and its own
nn.Normalize (divide by the sum, which replaces Torch's p-norm nn.Normalize, as the file
did). Each works on the last dimensions, so a batch dimension (or none) comes for free.

    graphc compile head.lua --plugin samples/plugins/ntm.py -o head.py
"""
import numpy as np

from graphc.plugin import Module, ShapeError


def _text(shape):
    return "x".join(map(str, shape))


def _vector_and_scalar(in_shapes, what):
    if len(in_shapes) != 2:
        raise ShapeError(f"expects a table {{{what}}}, got {len(in_shapes)} inputs")
    v, s = in_shapes
    if s[-1] != 1 or s[:-1] != v[:-1]:
        raise ShapeError(f"expects a vector and a one-element tensor, got {_text(v)} and {_text(s)}")
    return v


class SmoothCosineSimilarity(Module):
    """{M, k}: the cosine similarity of k with each row of M, smoothed: dot / (|M_i| |k| + smooth)."""
    signature = "smoothen:num=0.001"
    table_input = True

    def shape(attrs, in_shapes):
        if len(in_shapes) != 2:
            raise ShapeError(f"expects a table {{M, k}}, got {len(in_shapes)} inputs")
        m, k = in_shapes
        if len(m) != len(k) + 1 or m[-1] != k[-1] or m[:-2] != k[:-1]:
            raise ShapeError(f"expects an n x m matrix and an m vector, got {_text(m)} and {_text(k)}")
        return m[:-1]

    def forward(attrs, inputs, params):
        m, k = inputs
        rows = np.sqrt((m * m).sum(-1))
        knorm = np.sqrt((k * k).sum(-1, keepdims=True))
        return (m * k[..., None, :]).sum(-1) / (rows * knorm + attrs["smoothen"])

    def backward(attrs, inputs, params, output, grad_output):
        m, k = inputs
        rows = np.sqrt((m * m).sum(-1))
        knorm = np.sqrt((k * k).sum(-1, keepdims=True))
        den = rows * knorm + attrs["smoothen"]
        g = grad_output / den
        # where a norm is 0 its term is 0 (the module's guard against 0/0)
        by_row = np.divide(output * knorm, rows, out=np.zeros_like(rows), where=rows > 0)
        grad_m = g[..., None] * (k[..., None, :] - by_row[..., None] * m)
        scale = np.divide((g * output * rows).sum(-1, keepdims=True), knorm,
                          out=np.zeros_like(knorm), where=knorm > 0)
        grad_k = (g[..., None] * m).sum(-2) - scale * k
        return [grad_m, grad_k]


class ScalarMulTable(Module):
    """{v, s}: the vector v times the one-element s."""
    table_input = True

    def shape(attrs, in_shapes):
        return _vector_and_scalar(in_shapes, "v, s")

    def forward(attrs, inputs, params):
        v, s = inputs
        return v * s

    def backward(attrs, inputs, params, output, grad_output):
        v, s = inputs
        return [grad_output * s, (grad_output * v).sum(-1, keepdims=True)]


class ScalarDivTable(Module):
    """{v, s}: the vector v divided by the one-element s."""
    table_input = True

    def shape(attrs, in_shapes):
        return _vector_and_scalar(in_shapes, "v, s")

    def forward(attrs, inputs, params):
        v, s = inputs
        return v / s

    def backward(attrs, inputs, params, output, grad_output):
        v, s = inputs
        return [grad_output / s, -(grad_output * v).sum(-1, keepdims=True) / (s * s)]


class PowTable(Module):
    """{v, p}: v to the power of the one-element p (v > 0, as the NTM's sharpening has it)."""
    table_input = True

    def shape(attrs, in_shapes):
        return _vector_and_scalar(in_shapes, "v, p")

    def forward(attrs, inputs, params):
        v, p = inputs
        return v ** p

    def backward(attrs, inputs, params, output, grad_output):
        v, p = inputs
        return [grad_output * p * v ** (p - 1),
                (grad_output * output * np.log(v)).sum(-1, keepdims=True)]


def _shifts(n, s):
    """index[i, j] = the element of v that kernel entry j weighs for output i."""
    return (np.arange(n)[:, None] + s // 2 - np.arange(s)[None, :]) % n


class CircularConvolution(Module):
    """{v, k}: v circularly convolved with the kernel k (k centred: out_i = sum_j k_j v_(i + s//2 - j))."""
    table_input = True

    def shape(attrs, in_shapes):
        if len(in_shapes) != 2:
            raise ShapeError(f"expects a table {{v, k}}, got {len(in_shapes)} inputs")
        v, k = in_shapes
        if len(v) != len(k) or v[:-1] != k[:-1]:
            raise ShapeError(f"expects a vector and a kernel vector, got {_text(v)} and {_text(k)}")
        return v

    def forward(attrs, inputs, params):
        v, k = inputs
        index = _shifts(v.shape[-1], k.shape[-1])
        return (v[..., index] * k[..., None, :]).sum(-1)

    def backward(attrs, inputs, params, output, grad_output):
        v, k = inputs
        index = _shifts(v.shape[-1], k.shape[-1])
        grad_v = np.zeros_like(v)
        for j in range(k.shape[-1]):  # each column of index is a rotation: no repeats
            grad_v[..., index[:, j]] += grad_output * k[..., j:j + 1]
        grad_k = (grad_output[..., None] * v[..., index]).sum(-2)
        return [grad_v, grad_k]


class OuterProd(Module):
    """{a, b}: the outer product of two vectors (an n x m matrix)."""
    table_input = True

    def shape(attrs, in_shapes):
        if len(in_shapes) != 2 or in_shapes[0][:-1] != in_shapes[1][:-1]:
            raise ShapeError("expects a table of two vectors "
                             f"(got {', '.join(_text(s) for s in in_shapes)})")
        a, b = in_shapes
        return a + b[-1:]

    def forward(attrs, inputs, params):
        a, b = inputs
        return a[..., :, None] * b[..., None, :]

    def backward(attrs, inputs, params, output, grad_output):
        a, b = inputs
        return [(grad_output * b[..., None, :]).sum(-1), (grad_output * a[..., :, None]).sum(-2)]


class Normalize(Module):
    """x divided by its sum over the last dimension (torch-ntm's nn.Normalize)."""
    overrides_builtin = True  # torch-ntm's file redefines nn.Normalize with this meaning
    # Later versions of NTM.lua call Torch's nn.Normalize(1) instead: the L1 norm, which is the
    # sum for the non-negative weights it normalizes. The argument is accepted for those.
    signature = "p:num=1"

    def forward(attrs, inputs, params):
        (x,) = inputs
        return x / x.sum(-1, keepdims=True)

    def backward(attrs, inputs, params, output, grad_output):
        (x,) = inputs
        total = x.sum(-1, keepdims=True)
        return [(grad_output - (grad_output * output).sum(-1, keepdims=True)) / total]
