"""Torch7 ``nn`` criteria on numpy arrays.

Only numpy is imported.  Every criterion keeps the floating dtype of its input
(float32 stays float32, float64 stays float64) and, like Torch, stores the
result of ``forward`` in ``self.output`` (a Python float) and of ``backward``
in ``self.gradInput`` (an array of the input's shape and dtype).
``updateOutput``/``updateGradInput`` are aliases of ``forward``/``backward``,
and calling a criterion runs ``forward``.  Criteria that Torch gives a
``sizeAverage`` flag take ``size_average`` (or the Torch keyword
``sizeAverage``) and expose both attribute spellings.

Criteria are stateless: ``backward(input, target)`` recomputes what it needs and
does not have to follow a ``forward`` on the same arguments.

Class targets (``ClassNLLCriterion``, ``CrossEntropyCriterion``,
``MultiMarginCriterion``) are **0-based** integers by default, as numpy
indexing is; Torch7 used 1-based ones. Code ported from Torch passes
``one_based=True`` and keeps its labels. Either way a label out of range is a
``ValueError`` that states the rule in force. Inside a spec (an
``nn.ClassNLLCriterion`` node of a compiled graph) labels stay 1-based, as in
Torch.
"""

import copy

import numpy as np

__all__ = [
    "Criterion",
    "ClassNLLCriterion",
    "CrossEntropyCriterion",
    "MSECriterion",
    "AbsCriterion",
    "SmoothL1Criterion",
    "BCECriterion",
    "DistKLDivCriterion",
    "MarginCriterion",
    "MultiMarginCriterion",
    "CosineEmbeddingCriterion",
    "SequencerCriterion",
]


def _float_array(a):
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return a


def _pick(value, alias):
    """Return ``alias`` (the Torch camelCase keyword) if given, else ``value``."""
    return value if alias is None else alias


def _same_size(input, target):
    """``(x, y)``: the input as a float array and the target cast to its dtype
    and shape.  Like Torch, only the numbers of elements have to agree."""
    if type(input) is np.ndarray and type(target) is np.ndarray and input.dtype == target.dtype \
            and input.dtype.char in "fd" and input.shape == target.shape:
        return input, target  # the common case, nothing to convert (a B=1 step's loss is ~us)
    x = _float_array(input)
    y = np.asarray(target)
    if x.size != y.size:
        raise ValueError(
            f"input and target should have the same number of elements, got "
            f"shapes {x.shape} ({x.size}) and {y.shape} ({y.size})")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise TypeError(f"target must be numeric, got dtype {y.dtype}")
    return x, y.astype(x.dtype, copy=False).reshape(x.shape)


def _average(total, x, size_average):
    """``total / nElement`` when averaging (and the input is not empty)."""
    return total / x.size if (size_average and x.size) else total


def _norm(x, size_average):
    """``1/nElement`` when averaging (and the input is not empty), else 1."""
    return 1.0 / x.size if (size_average and x.size) else 1.0


def _class_targets(target, batch, n_classes, input_shape, ignore_index=None, one_based=False):
    """Validate class targets (0-based, or 1-based with ``one_based``); return them
    as a flat 0-based int64 array of ``batch`` entries (``ignore_index`` entries are
    allowed out of range)."""
    if isinstance(target, (bool, np.bool_)):
        raise TypeError("target must be an integer class index, got bool")
    if isinstance(target, (int, np.integer)):
        t = np.array([int(target)], dtype=np.int64)
    else:
        t = np.asarray(target)
        if not np.issubdtype(t.dtype, np.integer):
            raise TypeError(
                f"target must have an integer dtype ({_rule(one_based)} class indices), got {t.dtype}")
        t = t.reshape(-1).astype(np.int64)
    if t.size != batch:
        raise ValueError(
            f"target has {t.size} element(s) but input has batch size {batch} "
            f"(input shape {input_shape})")
    keep = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
    low = 1 if one_based else 0
    bad = keep & ((t < low) | (t >= n_classes + low))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        switch = ("one_based=False for 0-based labels" if one_based
                  else "one_based=True for Torch's 1-based labels")
        raise ValueError(
            f"target {int(t[i])} (at index {i}) is out of range: valid class "
            f"indices are {low}..{n_classes - 1 + low} ({_rule(one_based)}; pass {switch})")
    return (t - keep * low if one_based else t), keep


def _rule(one_based):
    return "1-based" if one_based else "0-based"


def _weights_vector(weights, name="weights"):
    if weights is None:
        return None
    w = np.asarray(weights)
    if w.ndim != 1:
        raise ValueError(f"{name} should be a 1-D array, got shape {w.shape}")
    if not np.issubdtype(w.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {w.dtype}")
    return w


class Criterion:
    """Base class: ``output``, ``gradInput``, ``size_average``/``sizeAverage``,
    ``forward``/``backward`` and their Torch aliases.  Subclasses implement
    ``_loss(input, target) -> float`` and ``_grad(input, target) -> array``."""

    def __init__(self, size_average=True, *, sizeAverage=None):
        self.size_average = bool(_pick(size_average, sizeAverage))
        self.output = 0.0
        self.gradInput = None

    @property
    def sizeAverage(self):
        return self.size_average

    @sizeAverage.setter
    def sizeAverage(self, value):
        self.size_average = bool(value)

    def forward(self, input, target):
        self.output = float(self._loss(input, target))
        return self.output

    def backward(self, input, target):
        self.gradInput = self._grad(input, target)
        return self.gradInput

    def updateOutput(self, input, target):
        return self.forward(input, target)

    def updateGradInput(self, input, target):
        return self.backward(input, target)

    def __call__(self, input, target):
        return self.forward(input, target)

    def __repr__(self):
        return f"nn.{type(self).__name__}"


# --------------------------------------------------------------------------
# classification


class ClassNLLCriterion(Criterion):
    """Negative log-likelihood of 0-based class targets given log-probabilities.

    ``input`` is ``(C,)`` or ``(B, C)``; ``target`` an int or an integer array of
    ``B`` class indices: **0-based**, or Torch's 1-based ones with ``one_based=True``.
    ``loss = -sum_i w[t_i] * input[i, t_i]``, divided by ``sum_i w[t_i]`` (the
    *total weight*, ``B`` without ``weights``) when ``size_average``.  Samples
    whose target equals ``ignore_index`` are skipped.  As in Torch7, if the
    total weight is zero the loss is 0 (not NaN) and the gradient is zero.
    The gradient is ``-w[t_i] / total`` at the target positions, 0 elsewhere.
    """

    def __init__(self, weights=None, size_average=True, ignore_index=-100, *,
                 sizeAverage=None, ignoreIndex=None, one_based=False):
        super().__init__(size_average, sizeAverage=sizeAverage)
        self.ignore_index = int(_pick(ignore_index, ignoreIndex))
        self.weights = None if weights is None else np.asarray(weights).reshape(-1)
        self.one_based = bool(one_based)

    @property
    def ignoreIndex(self):
        return self.ignore_index

    @ignoreIndex.setter
    def ignoreIndex(self, value):
        self.ignore_index = int(value)

    def _prepare(self, input, target):
        x = _float_array(input)
        if x.ndim not in (1, 2):
            raise ValueError(f"input tensor should be 1D or 2D, got shape {x.shape}")
        n_classes = x.shape[-1]
        batch = 1 if x.ndim == 1 else x.shape[0]
        t, keep = _class_targets(target, batch, n_classes, x.shape, self.ignore_index,
                                 self.one_based)
        if self.weights is not None and self.weights.size != n_classes:
            raise ValueError(
                f"weights has {self.weights.size} element(s) but input has "
                f"{n_classes} classes")
        x2 = x.reshape(batch, n_classes)
        rows = np.flatnonzero(keep)
        cls = t[rows]
        if self.weights is None:
            w = np.ones(rows.size, dtype=x.dtype)
        else:
            w = self.weights.astype(x.dtype)[cls]
        return x, x2, rows, cls, w

    def _loss(self, input, target):
        x, x2, rows, cls, w = self._prepare(input, target)
        total = w.sum(dtype=x.dtype)
        loss = -(w * x2[rows, cls]).sum(dtype=x.dtype)
        if self.size_average and total != 0:
            loss = loss / total
        return loss

    def _grad(self, input, target):
        x, x2, rows, cls, w = self._prepare(input, target)
        g = np.zeros(x2.shape, dtype=x.dtype)
        total = w.sum(dtype=x.dtype)
        if total != 0:
            scale = (1 / total) if self.size_average else 1
            g[rows, cls] = -w * x.dtype.type(scale)
        return g.reshape(x.shape)


def _log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    z = x - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class CrossEntropyCriterion(Criterion):
    """``LogSoftMax`` followed by ``ClassNLLCriterion(weights, size_average)``.

    As in Torch, the input and the target are squeezed first (so ``(1, C)``
    with a one-element target is a single sample), the log-softmax runs over
    the last dimension of the squeezed ``(C,)`` or ``(B, C)`` input, and the
    gradient is returned in the original input shape.  Targets are 0-based
    integer class indices (Torch's 1-based ones with ``one_based=True``).  ``ignore_index`` is passed to the
    inner ``ClassNLLCriterion`` (Torch's CrossEntropyCriterion has none, so the
    default -100 only matters for targets equal to -100).
    """

    def __init__(self, weights=None, size_average=True, ignore_index=-100, *,
                 sizeAverage=None, ignoreIndex=None, one_based=False):
        super().__init__(size_average, sizeAverage=sizeAverage)
        self.nll = ClassNLLCriterion(weights, self.size_average,
                                     _pick(ignore_index, ignoreIndex), one_based=one_based)

    @property
    def one_based(self):
        return self.nll.one_based

    @property
    def weights(self):
        return self.nll.weights

    @staticmethod
    def _squeeze(input, target):
        x = _float_array(input)
        xs = x.squeeze()
        if xs.ndim == 0:
            xs = xs.reshape(1)
        if not isinstance(target, (bool, np.bool_, int, np.integer)):
            target = np.asarray(target).squeeze()
        return x, xs, target

    def _loss(self, input, target):
        _, xs, t = self._squeeze(input, target)
        if xs.ndim not in (1, 2):
            raise ValueError(
                f"input tensor should be 1D or 2D after squeezing, got shape {xs.shape}")
        self.nll.size_average = self.size_average
        return self.nll.forward(_log_softmax(xs), t)

    def _grad(self, input, target):
        x, xs, t = self._squeeze(input, target)
        if xs.ndim not in (1, 2):
            raise ValueError(
                f"input tensor should be 1D or 2D after squeezing, got shape {xs.shape}")
        self.nll.size_average = self.size_average
        lsm = _log_softmax(xs)
        g = self.nll.backward(lsm, t)
        g = g - np.exp(lsm) * g.sum(axis=-1, keepdims=True)
        return g.astype(x.dtype, copy=False).reshape(x.shape)


class MultiMarginCriterion(Criterion):
    """Multi-class hinge loss (Torch ``nn.MultiMarginCriterion(p, weights,
    margin)``).

    ``input`` is ``(C,)`` or ``(B, C)``, ``target`` a 0-based integer class
    index per sample (Torch's 1-based ones with ``one_based=True``).  For each sample with target ``y``::

        loss = sum_{d != y} w[y] * max(0, margin - x[y] + x[d])**p / C

    summed over the samples and divided by ``B`` when ``size_average``.
    ``p`` is 1 or 2.
    """

    def __init__(self, p=1, weights=None, margin=1.0, size_average=True, *,
                 sizeAverage=None, one_based=False):
        super().__init__(size_average, sizeAverage=sizeAverage)
        self.one_based = bool(one_based)
        if p not in (1, 2):
            raise ValueError(f"only p=1 and p=2 supported, got p={p!r}")
        self.p = int(p)
        self.weights = _weights_vector(weights)
        self.margin = float(margin)

    def _prepare(self, input, target):
        x = _float_array(input)
        if x.ndim not in (1, 2):
            raise ValueError(f"vector or matrix expected, got input shape {x.shape}")
        dim = x.shape[-1]
        nframe = 1 if x.ndim == 1 else x.shape[0]
        t, _ = _class_targets(target, nframe, dim, x.shape, one_based=self.one_based)
        if self.weights is not None and self.weights.size != dim:
            raise ValueError(
                f"weights has {self.weights.size} element(s) but input has {dim} classes")
        x2 = x.reshape(nframe, dim)
        rows = np.arange(nframe)
        z = self.margin - x2[rows, t][:, None] + x2
        active = z > 0
        active[rows, t] = False
        w = (np.ones(nframe, x.dtype) if self.weights is None
             else self.weights.astype(x.dtype)[t])
        return x, x2, rows, t, z, active, w

    def _loss(self, input, target):
        x, x2, rows, t, z, active, w = self._prepare(input, target)
        zp = np.where(active, z if self.p == 1 else z * z, 0)
        total = (zp.sum(axis=1) * w).sum() / x2.shape[1]
        if self.size_average and x2.shape[0]:
            total = total / x2.shape[0]
        return total

    def _grad(self, input, target):
        x, x2, rows, t, z, active, w = self._prepare(input, target)
        nframe, dim = x2.shape
        g = 1.0 / (nframe * dim) if self.size_average else 1.0 / dim
        h = np.where(active, g if self.p == 1 else 2 * g * z, 0) * w[:, None]
        grad = h.astype(x.dtype, copy=False)
        grad[rows, t] = -h.sum(axis=1)
        return grad.reshape(x.shape)


# --------------------------------------------------------------------------
# element-wise regression criteria


class MSECriterion(Criterion):
    """Mean squared error: ``sum((x - y)**2)``, divided by ``x.size`` when
    ``size_average``.  ``x`` and ``y`` need the same number of elements (Torch
    semantics); the gradient ``2 (x - y) / n`` has ``x``'s shape."""

    def _loss(self, input, target):
        x, y = _same_size(input, target)
        d = (x - y).ravel()
        return _average(np.dot(d, d), x, self.size_average)

    def _grad(self, input, target):
        x, y = _same_size(input, target)
        d = x - y
        d *= x.dtype.type(2.0 * _norm(x, self.size_average))
        return d


class AbsCriterion(Criterion):
    """L1 loss ``sum(|x - y|)``, divided by ``x.size`` when ``size_average``.
    Gradient ``sign(x - y) / n`` where, as in Torch, ``x == y`` counts as
    positive (``+1/n``; PyTorch's ``l1_loss`` uses 0 there)."""

    def _loss(self, input, target):
        x, y = _same_size(input, target)
        return _average(np.abs(x - y).sum(), x, self.size_average)

    def _grad(self, input, target):
        x, y = _same_size(input, target)
        n = x.dtype.type(_norm(x, self.size_average))
        return np.where(x - y >= 0, n, -n).astype(x.dtype, copy=False)


class SmoothL1Criterion(Criterion):
    """Huber loss with threshold 1 (Torch ``nn.SmoothL1Criterion``): per element
    ``0.5 d**2`` if ``|d| < 1`` else ``|d| - 0.5`` with ``d = x - y``, summed and
    divided by ``x.size`` when ``size_average``.  Gradient ``clip(d, -1, 1) / n``."""

    def _loss(self, input, target):
        x, y = _same_size(input, target)
        z = np.abs(x - y)
        return _average(np.where(z < 1, 0.5 * z * z, z - 0.5).sum(), x, self.size_average)

    def _grad(self, input, target):
        x, y = _same_size(input, target)
        n = x.dtype.type(_norm(x, self.size_average))
        return (np.clip(x - y, -1, 1) * n).astype(x.dtype, copy=False)


class DistKLDivCriterion(Criterion):
    """Kullback-Leibler divergence; ``input`` holds log-probabilities and
    ``target`` probabilities.  As in Torch::

        loss = sum over target > 0 of target * (log(target) - input)

    divided by ``x.size`` (every element, not the batch size) when
    ``size_average``.  Gradient ``-target / n`` where ``target > 0``, else 0."""

    def _loss(self, input, target):
        x, y = _same_size(input, target)
        pos = y > 0
        logy = np.log(np.where(pos, y, 1))
        return _average(np.where(pos, y * (logy - x), 0).sum(), x, self.size_average)

    def _grad(self, input, target):
        x, y = _same_size(input, target)
        n = x.dtype.type(_norm(x, self.size_average))
        return np.where(y > 0, -y * n, 0).astype(x.dtype, copy=False)


class BCECriterion(Criterion):
    """Binary cross-entropy on probabilities ``x`` in ``[0, 1]`` (Torch
    ``nn.BCECriterion(weights, sizeAverage)``)::

        loss = -sum w * (y * log(x + eps) + (1 - y) * log(1 - x + eps))

    with ``eps = 1e-12``, divided by ``x.size`` when ``size_average``.  The
    gradient is Torch's ``-w (y - x) / ((1 - x + eps) (x + eps)) / n``.
    ``weights`` (1-D) has one entry per element of a 1-D input, or per column
    of the last dimension of a batched input (broadcast over the batch).
    """

    eps = 1e-12

    def __init__(self, weights=None, size_average=True, *, sizeAverage=None):
        super().__init__(size_average, sizeAverage=sizeAverage)
        self.weights = _weights_vector(weights)

    def _prepare(self, input, target):
        x, y = _same_size(input, target)
        if not np.all((x >= 0) & (x <= 1)):
            bad = x[~((x >= 0) & (x <= 1))].ravel()[0]
            raise ValueError(f"input value should be between 0~1, but got {bad}")
        w = None
        if self.weights is not None:
            n = x.shape[-1] if x.ndim >= 1 else 1
            if self.weights.size != n:
                raise ValueError(
                    f"weights has {self.weights.size} element(s) but the input's last "
                    f"dimension has {n} (input shape {x.shape})")
            w = self.weights.astype(x.dtype)
        return x, y, w

    def _loss(self, input, target):
        x, y, w = self._prepare(input, target)
        eps = x.dtype.type(self.eps)
        terms = np.log(x + eps) * y + np.log(1 - x + eps) * (1 - y)
        if w is not None:
            terms = terms * w
        return _average(-terms.sum(), x, self.size_average)

    def _grad(self, input, target):
        x, y, w = self._prepare(input, target)
        eps = x.dtype.type(self.eps)
        n = x.dtype.type(_norm(x, self.size_average))
        g = -n * (y - x) / ((1 - x + eps) * (x + eps))
        if w is not None:
            g = g * w
        return g.astype(x.dtype, copy=False)


class MarginCriterion(Criterion):
    """Two-class hinge loss (Torch ``nn.MarginCriterion(margin)``): targets are
    +1 or -1 and ``loss = sum(max(0, margin - y * x))``, divided by ``x.size``
    when ``size_average``.  Gradient ``-y / n`` where ``y * x < margin``."""

    def __init__(self, margin=1.0, size_average=True, *, sizeAverage=None):
        super().__init__(size_average, sizeAverage=sizeAverage)
        self.margin = float(margin)

    def _prepare(self, input, target):
        x, y = _same_size(input, target)
        if not np.all((y == 1) | (y == -1)):
            bad = y[~((y == 1) | (y == -1))].ravel()[0]
            raise ValueError(f"MarginCriterion targets must be 1 or -1, got {bad}")
        return x, y

    def _loss(self, input, target):
        x, y = self._prepare(input, target)
        return _average(np.maximum(self.margin - x * y, 0).sum(), x, self.size_average)

    def _grad(self, input, target):
        x, y = self._prepare(input, target)
        n = x.dtype.type(_norm(x, self.size_average))
        return np.where(x * y < self.margin, -n * y, 0).astype(x.dtype, copy=False)


# --------------------------------------------------------------------------
# table criteria


class CosineEmbeddingCriterion(Criterion):
    """Cosine embedding loss (Torch ``nn.CosineEmbeddingCriterion(margin)``).

    ``input`` is a pair ``(x1, x2)`` of ``(B, N)`` (or ``(N,)``) arrays and
    ``target`` holds one +1/-1 per row (a number for 1-D inputs).  With
    ``cos = x1.x2 / sqrt((|x1|^2 + eps)(|x2|^2 + eps))``, ``eps = 1e-12``, a row
    costs ``1 - cos`` if ``y = 1`` and ``max(0, cos - margin)`` if ``y = -1``;
    the sum is divided by ``B`` when ``size_average``.  ``backward`` returns a
    list ``[grad_x1, grad_x2]`` (Torch returns a table).
    """

    eps = 1e-12

    def __init__(self, margin=0.0, size_average=True, *, sizeAverage=None):
        super().__init__(size_average, sizeAverage=sizeAverage)
        self.margin = float(margin)

    def _prepare(self, input, target):
        if not isinstance(input, (list, tuple)) or len(input) != 2:
            raise ValueError("CosineEmbeddingCriterion input must be a pair (x1, x2)")
        x1, x2 = _float_array(input[0]), _float_array(input[1])
        dtype = np.result_type(x1, x2)
        x1, x2 = x1.astype(dtype, copy=False), x2.astype(dtype, copy=False)
        if x1.shape != x2.shape:
            raise ValueError(
                f"x1 and x2 should have the same shape, got {x1.shape} and {x2.shape}")
        if x1.ndim not in (1, 2):
            raise ValueError(f"x1 and x2 should be 1D or 2D, got shape {x1.shape}")
        shape = x1.shape
        if x1.ndim == 1:
            x1, x2 = x1.reshape(1, -1), x2.reshape(1, -1)
        y = np.asarray(target)
        if not (np.issubdtype(y.dtype, np.number)):
            raise TypeError(f"target must be numeric, got dtype {y.dtype}")
        y = y.reshape(-1)
        if y.size != x1.shape[0]:
            raise ValueError(
                f"target has {y.size} element(s) but the inputs have {x1.shape[0]} row(s)")
        if not np.all((y == 1) | (y == -1)):
            bad = y[~((y == 1) | (y == -1))][0]
            raise ValueError(f"CosineEmbeddingCriterion targets must be 1 or -1, got {bad}")
        eps = dtype.type(self.eps)
        w1 = (x1 * x2).sum(axis=1)
        w22 = 1 / ((x1 * x1).sum(axis=1) + eps)
        w32 = 1 / ((x2 * x2).sum(axis=1) + eps)
        w = np.sqrt(w22 * w32)
        cos = w1 * w
        out = np.where(y == -1, np.maximum(cos - self.margin, 0), 1 - cos)
        return shape, x1, x2, y, w1, w22, w32, w, out

    def _loss(self, input, target):
        shape, x1, x2, y, *_, out = self._prepare(input, target)
        total = out.sum()
        if self.size_average:
            total = total / y.size
        return total

    def _grad(self, input, target):
        shape, x1, x2, y, w1, w22, w32, w, out = self._prepare(input, target)
        gw1 = (x2 - (w1 * w22)[:, None] * x1) * w[:, None]
        gw2 = (x1 - (w1 * w32)[:, None] * x2) * w[:, None]
        sign = np.where(out <= 0, 0, np.where(y == 1, -1, 1)).astype(x1.dtype)[:, None]
        if self.size_average:
            sign = sign / y.size
        return [(gw1 * sign).reshape(shape), (gw2 * sign).reshape(shape)]


class SequencerCriterion(Criterion):
    """Apply ``criterion`` at every step of a sequence (Element-Research/rnn's
    ``nn.SequencerCriterion``).

    ``forward(inputs, targets)`` takes two lists of equal length (or arrays
    whose first dimension is time) and returns the sum of the per-step losses,
    divided by the number of steps when ``size_average`` (default False, as in
    rnn).  ``backward`` returns the list of per-step gradients (a stacked array
    when the input is an array).  Each step uses its own clone of
    ``criterion`` (``self.clones[step]``), so per-step ``output``/``gradInput``
    stay available, as in rnn.
    """

    def __init__(self, criterion, size_average=False, *, sizeAverage=None):
        super().__init__(size_average, sizeAverage=sizeAverage)
        if not (hasattr(criterion, "forward") and hasattr(criterion, "backward")):
            raise TypeError(f"expected a criterion, got {type(criterion).__name__}")
        self.criterion = criterion
        self.clones = []

    def getStepCriterion(self, step):
        """The clone of ``criterion`` used at ``step`` (0-based)."""
        while len(self.clones) <= step:
            self.clones.append(copy.deepcopy(self.criterion))
        return self.clones[step]

    @staticmethod
    def _steps(input, target):
        if isinstance(input, np.ndarray):
            if isinstance(target, (list, tuple)):
                n_t = len(target)
            else:
                target = np.asarray(target)
                if target.ndim == 0:
                    raise ValueError("expecting a target array with a time dimension")
                n_t = target.shape[0]
            if input.ndim == 0:
                raise ValueError("expecting an input array with a time dimension")
            seqlen = input.shape[0]
        elif isinstance(input, (list, tuple)):
            if not isinstance(target, (list, tuple, np.ndarray)):
                raise ValueError("expecting a list of targets, one per step")
            n_t = len(target)
            seqlen = len(input)
        else:
            raise TypeError(
                f"SequencerCriterion input must be a list of steps or an array, "
                f"got {type(input).__name__}")
        if n_t != seqlen:
            raise ValueError(
                f"target should have as many elements as input: got {n_t} target "
                f"step(s) for {seqlen} input step(s)")
        return seqlen, target

    def forward(self, input, target):
        seqlen, target = self._steps(input, target)
        total = 0.0
        for i in range(seqlen):
            total += self.getStepCriterion(i).forward(input[i], target[i])
        if self.size_average and seqlen:
            total /= seqlen
        self.output = float(total)
        return self.output

    def backward(self, input, target):
        seqlen, target = self._steps(input, target)
        grads = []
        for i in range(seqlen):
            g = self.getStepCriterion(i).backward(input[i], target[i])
            if self.size_average:
                g = ([gi / seqlen for gi in g] if isinstance(g, list) else g / seqlen)
            grads.append(g)
        if isinstance(input, np.ndarray):
            dtype = _float_array(input).dtype
            self.gradInput = (np.stack(grads).astype(dtype, copy=False) if grads
                              else np.zeros(input.shape, dtype))
        else:
            self.gradInput = grads
        return self.gradInput

    def __repr__(self):
        return f"nn.SequencerCriterion @ {self.criterion!r}"
