"""A plain reference interpreter of graphc's forward IR, for the differential fuzz tests.

It is written from Torch7's nn semantics (the nn sources and their documentation),
one small numpy function per op, and deliberately shares nothing with graphc's templates,
runtime kernels or shape rules: it only reads the IR (`graph.nodes` in forward order, each
node's op name, attrs, input and output Values) and evaluates it. Where graphc documents a
deliberate difference from Torch for the free batch dim B (View sizes without -1 and
Reshape apply per sample), the interpreter follows graphc's documented rule: it looks at
whether the IR input Value's shape starts with the batch (B or B*k).

Gradients are not interpreted: `finite_difference_grads` differentiates the reference
forward numerically (central differences, float64).
"""
from __future__ import annotations

import math

import numpy as np

B = "B"


class Unsupported(Exception):
    """The interpreter has no rule for this op."""


def _batched(value) -> bool:
    """The shape starts with the batch: B, or B*k (graphc's BatchDim, which has `factor`)."""
    return bool(value.shape) and (value.shape[0] == B or hasattr(value.shape[0], "factor"))


def _prod(xs) -> int:
    return int(math.prod(xs))


def _pos_dim(dim: int, rank: int) -> int:
    """Torch's 1-based dim (negative: counted from the end) -> a 0-based axis."""
    axis = dim - 1 if dim > 0 else rank + dim
    assert 0 <= axis < rank, (dim, rank)
    return axis


def _torch_get_positive_dimension(dim, n_input_dims, rank):
    """nn.Sum / nn.SplitTable / nn.JoinTable's _getPositiveDimension, 1-based result."""
    if dim < 0:
        return rank + dim + 1
    if n_input_dims is not None and rank == n_input_dims + 1:
        return dim + 1
    return dim


# ---- elementwise ------------------------------------------------------------------------

def _sigmoid(x):
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _softmax_axis(rank):
    # THNN: 1D over all, 2D over dim 2, 3D (CxHxW) over dim 1, 4D (NxCxHxW) over dim 2
    return {1: 0, 2: 1, 3: 0, 4: 1}[rank]


def _softmax(x):
    ax = _softmax_axis(x.ndim)
    e = np.exp(x - x.max(axis=ax, keepdims=True))
    return e / e.sum(axis=ax, keepdims=True)


def _log_softmax(x):
    ax = _softmax_axis(x.ndim)
    m = x.max(axis=ax, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=ax, keepdims=True))


def _softplus(x, a):
    beta, th = a.get("beta", 1), a.get("threshold", 20)
    bx = beta * x
    return np.where(bx > th, x, np.log1p(np.exp(np.minimum(bx, th))) / beta)


ELEMENTWISE = {
    "Tanh": lambda x, a: np.tanh(x),
    "Sigmoid": lambda x, a: _sigmoid(x),
    "ReLU": lambda x, a: np.where(x > 0, x, 0.0),
    "Exp": lambda x, a: np.exp(x),
    "Log": lambda x, a: np.log(x),
    "Sqrt": lambda x, a: np.sqrt(x),
    "Square": lambda x, a: x * x,
    "Abs": lambda x, a: np.abs(x),
    "Power": lambda x, a: np.power(x, a["p"]),
    "MulConstant": lambda x, a: x * a["constant_scalar"],
    "AddConstant": lambda x, a: x + a["constant_scalar"],
    "LeakyReLU": lambda x, a: np.where(x > 0, x, a["negval"] * x),
    "SoftSign": lambda x, a: x / (1.0 + np.abs(x)),
    "HardTanh": lambda x, a: np.minimum(np.maximum(x, a["min_value"]), a["max_value"]),
    "Clamp": lambda x, a: np.minimum(np.maximum(x, a["min_value"]), a["max_value"]),
    "Threshold": lambda x, a: np.where(x > a["th"], x, a["v"]),
    "ELU": lambda x, a: np.where(x > 0, x, a["alpha"] * (np.exp(np.minimum(x, 0)) - 1)),
    "SoftPlus": _softplus,
    "LogSigmoid": lambda x, a: np.log(_sigmoid(x)),
    "SoftMax": lambda x, a: _softmax(x),
    "LogSoftMax": lambda x, a: _log_softmax(x),
    "SoftMin": lambda x, a: _softmax(-x),
}


# ---- ops with parameters ------------------------------------------------------------------

def _linear(node, ins):
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    y = np.einsum("oi,...i->...o", w, x)
    if b is not None:
        y = y + b
    return [y]


def _mul(node, ins):
    return [ins[0] * ins[1].reshape(())]


def _cmul_like(node, ins, combine):
    x, w = ins
    if w.size == x.size and not _batched(node.inputs[0]):
        return [combine(x, w.reshape(x.shape))]
    if w.ndim == x.ndim:  # expandAs
        return [combine(x, np.broadcast_to(w, x.shape))]
    rows = x.reshape(x.shape[0], -1)
    return [combine(rows, w.reshape(1, -1)).reshape(x.shape)]


def _prelu(node, ins):
    x, w = ins
    if node.attrs["nOutputPlane"] == 0:
        slope = w.reshape(())
    else:  # THNN: one weight per plane of dim 2 (dim 1 of a 1D input)
        axis = 0 if x.ndim == 1 else 1
        shape = [1] * x.ndim
        shape[axis] = w.size
        slope = w.reshape(shape)
    return [np.where(x > 0, x, slope * x)]


def _add(node, ins):
    x, b = ins
    if node.attrs["scalar"]:
        return [x + b.reshape(())]
    if x.ndim == 1 and not _batched(node.inputs[0]):
        return [x + b]
    return [(x.reshape(x.shape[0], -1) + b.reshape(1, -1)).reshape(x.shape)]


# ---- tables -------------------------------------------------------------------------------

def _cadd(node, ins):
    out = ins[0].copy()
    for x in ins[1:]:
        out = out + x.reshape(out.shape)  # Torch: same nElement, the result has input 1's shape
    return [out]


def _cmul(node, ins):
    out = ins[0].copy()
    for x in ins[1:]:
        out = out * x.reshape(out.shape)
    return [out]


def _csub(node, ins):
    assert len(ins) == 2
    return [ins[0] - ins[1].reshape(ins[0].shape)]


def _cdiv(node, ins):
    assert len(ins) == 2
    return [ins[0] / ins[1].reshape(ins[0].shape)]


def _cmax(node, ins, pick):
    out = ins[0].copy()
    for x in ins[1:]:
        out = pick(out, x.reshape(out.shape))
    return [out]


def _join(node, ins):
    a = node.attrs
    rank = ins[0].ndim
    dim = _torch_get_positive_dimension(a["dimension"], a.get("nInputDims"), rank)
    return [np.concatenate(ins, axis=dim - 1)]


def _split(node, ins):
    a = node.attrs
    x = ins[0]
    dim = _torch_get_positive_dimension(a["dimension"], a.get("nInputDims"), x.ndim)
    return [np.take(x, i, axis=dim - 1) for i in range(x.shape[dim - 1])]


def _stack(node, ins):
    return [np.stack(ins)]


# ---- shapes -------------------------------------------------------------------------------

def _fill_minus_one(sizes, n):
    sizes = list(sizes)
    if -1 in sizes:
        known = _prod(s for s in sizes if s != -1)
        sizes[sizes.index(-1)] = n // known
    assert _prod(sizes) == n, (sizes, n)
    return tuple(sizes)


def _view(node, ins):
    x = ins[0]
    a = node.attrs
    sizes = tuple(a["sizes"])
    nid = a.get("numInputDims")
    if nid is not None and x.ndim > nid:  # Torch View.batchsize with numInputDims
        lead = _prod(x.shape[:x.ndim - nid])
        return [x.reshape((lead,) + _fill_minus_one(sizes, _prod(x.shape[x.ndim - nid:])))]
    if -1 in sizes:  # Torch: bsz = 1 when a size is -1 (the -1 absorbs any batch)
        return [x.reshape(_fill_minus_one(sizes, x.size))]
    if _batched(node.inputs[0]):  # graphc's documented rule: sizes apply per sample
        return [x.reshape((x.shape[0],) + sizes)]
    bsz = x.size // _prod(sizes)
    return [x.reshape(sizes if bsz == 1 else (bsz,) + sizes)]


def _reshape(node, ins):
    x = ins[0]
    a = node.attrs
    sizes = tuple(a["sizes"])
    if _batched(node.inputs[0]):
        return [x.reshape((x.shape[0],) + sizes)]
    mode = a.get("batchMode")
    # Torch Reshape: no batch when batchMode == false, or when it is nil and the input
    # holds exactly prod(sizes) elements with a first dim other than 1
    if mode is False or (mode is None and x.size == _prod(sizes) and x.shape[0] != 1):
        return [x.reshape(sizes)]
    return [x.reshape((x.shape[0],) + sizes)]


def _narrow(node, ins):
    x = ins[0]
    a = node.attrs
    axis = _pos_dim(a["dimension"], x.ndim)
    offset, length = a["offset"], a["length"]
    if length < 0:
        length = x.shape[axis] - offset + length + 2
    idx = [slice(None)] * x.ndim
    idx[axis] = slice(offset - 1, offset - 1 + length)
    return [x[tuple(idx)].copy()]


def _select(node, ins):
    x = ins[0]
    a = node.attrs
    axis = _pos_dim(a["dimension"], x.ndim)
    i = a["index"]
    i = i - 1 if i > 0 else x.shape[axis] + i
    return [np.take(x, i, axis=axis)]


def _sum(node, ins, mean=None):
    x = ins[0]
    a = node.attrs
    dim = _torch_get_positive_dimension(a["dimension"], a.get("nInputDims"), x.ndim)
    if mean is None:
        mean = a.get("sizeAverage", False)
    y = x.sum(axis=dim - 1, keepdims=True)
    if mean:
        y = y / x.shape[dim - 1]
    if a.get("squeeze", True) and x.ndim > 1:
        y = y.squeeze(dim - 1)
    return [y]


def _maxmin(node, ins, fn):
    x = ins[0]
    a = node.attrs
    dim = _torch_get_positive_dimension(a["dimension"], a.get("nInputDims"), x.ndim)
    y = fn(x, axis=dim - 1, keepdims=True)
    if x.ndim > 1:
        y = y.squeeze(dim - 1)
    return [y]


def _transpose(node, ins):
    x = ins[0]
    a = node.attrs
    nid = a.get("numInputDims")
    off = x.ndim - nid if nid is not None else 0
    for d1, d2 in a["permutations"]:
        x = np.swapaxes(x, d1 + off - 1, d2 + off - 1)
    return [x.copy()]


def _replicate(node, ins):
    x = ins[0]
    a = node.attrs
    ndim = a.get("ndim")
    rdim = a["dim"] + (1 if ndim is not None and x.ndim > ndim else 0)
    return [np.repeat(np.expand_dims(x, rdim - 1), a["nFeature"], axis=rdim - 1)]


def _squeeze(node, ins):
    x = ins[0]
    a = node.attrs
    nid = a.get("numInputDims")
    batch = nid is not None and x.ndim == nid + 1
    if a.get("dim") is not None:
        dim = a["dim"] + (1 if batch else 0)
        axis = _pos_dim(dim, x.ndim)
        if x.shape[axis] == 1 and x.ndim > 1:
            return [x.squeeze(axis)]
        return [x]
    lead = _batched(node.inputs[0]) or batch
    keep = [k for k, s in enumerate(x.shape) if s != 1 or (k == 0 and lead)]
    shape = tuple(x.shape[k] for k in keep) or (1,)
    return [x.reshape(shape)]


def _unsqueeze(node, ins):
    x = ins[0]
    a = node.attrs
    nid = a.get("numInputDims")
    off = x.ndim - nid if nid is not None else 0
    return [np.expand_dims(x, a["pos"] + off - 1)]


def _mm(node, ins):
    a, b = ins
    if node.attrs["transA"]:
        a = np.swapaxes(a, -1, -2)
    if node.attrs["transB"]:
        b = np.swapaxes(b, -1, -2)
    return [np.matmul(a, b)]


def _images(x):
    """CxHxW -> 1xCxHxW (Torch's spatial modules take 3D or 4D input)."""
    return (x[None], True) if x.ndim == 3 else (x, False)


def _conv2d(node, ins):
    a = node.attrs
    x, squeeze = _images(ins[0])
    w = ins[1]
    b = ins[2] if len(ins) > 2 else None
    kh, kw, dh, dw = a["kH"], a["kW"], a["dH"], a["dW"]
    ph, pw = a["padH"], a["padW"]
    n, c, h, wd = x.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh, ow = (h + 2 * ph - kh) // dh + 1, (wd + 2 * pw - kw) // dw + 1
    y = np.zeros((n, w.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * dh:i * dh + kh, j * dw:j * dw + kw]  # n, c, kh, kw
            y[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return [y[0] if squeeze else y]


def _pool_size(size, k, d, pad, ceil_mode, padded):
    # THNN SpatialDilatedMaxPooling: floor or ceil, then the last window must start inside
    # the image when there is padding (on either axis: `padded`); without, a window past the
    # image is kept (-inf)
    span = size - k + 2 * pad
    out = (math.ceil(span / d) if ceil_mode else span // d) + 1
    if padded and (out - 1) * d >= size + pad:
        out -= 1
    return out


def _maxpool2d(node, ins):
    a = node.attrs
    x, squeeze = _images(ins[0])
    kh, kw, dh, dw = a["kH"], a["kW"], a["dH"], a["dW"]
    ph, pw = a["padH"], a["padW"]
    n, c, h, wd = x.shape
    oh = _pool_size(h, kh, dh, ph, a["ceil_mode"], ph or pw)
    ow = _pool_size(wd, kw, dw, pw, a["ceil_mode"], ph or pw)
    y = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * dh - ph, j * dw - pw  # the window, clipped to the image
            win = x[:, :, max(h0, 0):min(h0 + kh, h), max(w0, 0):min(w0 + kw, wd)]
            y[:, :, i, j] = win.max(axis=(2, 3)) if win.size else -np.inf
    return [y[0] if squeeze else y]


OPS = {
    "SpatialConvolution": _conv2d,
    "SpatialMaxPooling": _maxpool2d,
    "Linear": _linear,
    "Mul": _mul,
    "CMul": lambda n, i: _cmul_like(n, i, np.multiply),
    "CAdd": lambda n, i: _cmul_like(n, i, np.add),
    "Add": _add,
    "PReLU": _prelu,
    "CAddTable": _cadd,
    "CMulTable": _cmul,
    "CSubTable": _csub,
    "CDivTable": _cdiv,
    "CMaxTable": lambda n, i: _cmax(n, i, np.maximum),
    "CMinTable": lambda n, i: _cmax(n, i, np.minimum),
    "JoinTable": _join,
    "SplitTable": _split,
    "Stack": _stack,
    "View": _view,
    "Reshape": _reshape,
    "Narrow": _narrow,
    "Select": _select,
    "Sum": _sum,
    "Mean": lambda n, i: _sum(n, i, mean=True),
    "Max": lambda n, i: _maxmin(n, i, np.max),
    "Min": lambda n, i: _maxmin(n, i, np.min),
    "Transpose": _transpose,
    "Replicate": _replicate,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "MM": _mm,
}


def supports(op: str) -> bool:
    return op in OPS or op in ELEMENTWISE


def concrete(shape, batch):
    return tuple(batch if d == B else d for d in shape)


def forward(graph, params, inputs, check_shapes=True, values=None):
    """Evaluate the forward IR. `params`: one array per graph.params entry (its shape);
    `inputs`: one array per graph.inputs entry. Returns one array per graph.outputs entry.
    With check_shapes, every node's result must match its IR Value's shape (B = the batch).
    `values`, a list, gets every node result (to see how large the numbers grow)."""
    assert len(params) == len(graph.params) and len(inputs) == len(graph.inputs)
    env = {}
    batch = None
    for v, x in zip(graph.inputs, inputs):
        x = np.asarray(x, dtype=np.float64)
        if _batched(v):
            batch = x.shape[0]
        env[id(v)] = x
    for p, w in zip(graph.params, params):
        assert tuple(w.shape) == tuple(p.value.shape), (p.name, w.shape, p.value.shape)
        env[id(p.value)] = np.asarray(w, dtype=np.float64)
    for node in graph.nodes:
        try:
            ins = [env[id(v)] for v in node.inputs]
        except KeyError:
            raise AssertionError(f"{node.op} at {node.loc}: an input is computed by no earlier "
                                 "node (nodes are not in forward order)") from None
        if node.op in ELEMENTWISE:
            outs = [ELEMENTWISE[node.op](ins[0], node.attrs)]
        elif node.op in OPS:
            outs = OPS[node.op](node, ins)
        else:
            raise Unsupported(node.op)
        data_outputs = [v for v in node.outputs if v.kind != "aux" and v.dtype != "aux"]
        assert len(outs) == len(data_outputs), (node.op, len(outs), len(data_outputs))
        for v, y in zip(data_outputs, outs):
            y = np.asarray(y, dtype=np.float64)
            if check_shapes:
                want = concrete(v.shape, batch)
                assert tuple(y.shape) == want, (f"{node.op} at {node.loc}: the reference result "
                                                f"has shape {y.shape}, the IR says {v.shape}")
            env[id(v)] = y
            if values is not None:
                values.append(y)
    return [env[id(v)].copy() for v in graph.outputs]


def loss(graph, params, inputs, grad_outputs):
    outs = forward(graph, params, inputs, check_shapes=False)
    return float(sum(np.sum(o * g) for o, g in zip(outs, grad_outputs)))


def finite_difference_grads(graph, params, inputs, grad_outputs, eps=1e-6):
    """d loss / d (each input, each parameter) by central differences, where loss =
    sum_k sum(output_k * grad_outputs_k). Returns (input grads, param grads).

    The outputs are differenced element by element before they are weighted and summed, so
    one huge output does not swamp the rounding of a small one's contribution."""
    params = [np.array(p, dtype=np.float64) for p in params]
    inputs = [np.array(x, dtype=np.float64) for x in inputs]

    def run():
        return forward(graph, params, inputs, check_shapes=False)

    def grad_of(arrays):
        grads = []
        for arr in arrays:
            g = np.zeros_like(arr)
            flat, gflat = arr.reshape(-1), g.reshape(-1)
            for i in range(flat.size):
                old = flat[i]
                h = eps * max(1.0, abs(old))
                flat[i] = old + h
                up = run()
                flat[i] = old - h
                down = run()
                flat[i] = old
                gflat[i] = sum(float(np.sum((u - d) * gy))
                               for u, d, gy in zip(up, down, grad_outputs)) / (2 * h)
            grads.append(g)
        return grads

    return grad_of(inputs), grad_of(params)
