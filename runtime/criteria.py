"""Torch7 ``nn`` criteria on numpy arrays.

Only numpy is imported.  Every criterion keeps the floating dtype of its input
(float32 stays float32, float64 stays float64) and, like Torch, stores the
result of ``forward`` in ``self.output`` and of ``backward`` in
``self.gradInput``.

Difference from Torch7: class targets are **0-based** (Torch uses 1-based).
"""

import numpy as np

__all__ = ["ClassNLLCriterion", "MSECriterion"]


def _float_array(a):
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return a


def _pick(value, alias):
    """Return ``alias`` (the Torch camelCase keyword) if given, else ``value``."""
    return value if alias is None else alias


class ClassNLLCriterion:
    """Negative log-likelihood of 0-based class targets given log-probabilities.

    ``input`` is ``(C,)`` or ``(B, C)``; ``target`` an int or an integer array of
    ``B`` class indices.  ``loss = -sum_i w[t_i] * input[i, t_i]``, divided by
    ``sum_i w[t_i]`` when ``size_average`` (samples whose target equals
    ``ignore_index`` are skipped).  As in Torch7, if the total weight is zero the
    loss is 0 (not NaN) and the gradient is zero.
    """

    def __init__(self, weights=None, size_average=True, ignore_index=-100, *,
                 sizeAverage=None, ignoreIndex=None):
        self.size_average = bool(_pick(size_average, sizeAverage))
        self.ignore_index = int(_pick(ignore_index, ignoreIndex))
        self.weights = None if weights is None else np.asarray(weights).reshape(-1)
        self.output = 0.0
        self.gradInput = None

    # Torch spelling of the attribute
    @property
    def sizeAverage(self):
        return self.size_average

    @sizeAverage.setter
    def sizeAverage(self, value):
        self.size_average = bool(value)

    def _prepare(self, input, target):
        x = _float_array(input)
        if x.ndim not in (1, 2):
            raise ValueError(f"input tensor should be 1D or 2D, got shape {x.shape}")
        n_classes = x.shape[-1]
        batch = 1 if x.ndim == 1 else x.shape[0]
        if isinstance(target, (bool, np.bool_)):
            raise TypeError("target must be an integer class index, got bool")
        if isinstance(target, (int, np.integer)):
            t = np.array([int(target)], dtype=np.int64)
        else:
            t = np.asarray(target)
            if not np.issubdtype(t.dtype, np.integer):
                raise TypeError(f"target must have an integer dtype, got {t.dtype}")
            t = t.reshape(-1).astype(np.int64)
        if t.size != batch:
            raise ValueError(
                f"target has {t.size} element(s) but input has batch size {batch} "
                f"(input shape {x.shape})")
        keep = t != self.ignore_index
        bad = keep & ((t < 0) | (t >= n_classes))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"target {int(t[i])} (at index {i}) is out of range: valid class "
                f"indices are 0..{n_classes - 1} (0-based)")
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

    def forward(self, input, target):
        x, x2, rows, cls, w = self._prepare(input, target)
        total = w.sum(dtype=x.dtype)
        loss = -(w * x2[rows, cls]).sum(dtype=x.dtype)
        if self.size_average and total != 0:
            loss = loss / total
        self.output = float(loss)
        return self.output

    def backward(self, input, target):
        x, x2, rows, cls, w = self._prepare(input, target)
        g = np.zeros(x2.shape, dtype=x.dtype)
        total = w.sum(dtype=x.dtype)
        if total != 0:
            scale = (1 / total) if self.size_average else 1
            g[rows, cls] = -w * x.dtype.type(scale)
        self.gradInput = g.reshape(x.shape)
        return self.gradInput

    updateOutput = forward
    updateGradInput = backward

    def __call__(self, input, target):
        return self.forward(input, target)


class MSECriterion:
    """Mean squared error: ``sum((x - y)**2)``, divided by ``x.size`` when
    ``size_average``.  ``x`` and ``y`` need the same number of elements (Torch
    semantics); the gradient has ``x``'s shape."""

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

    @staticmethod
    def _diff(input, target):
        x = _float_array(input)
        y = np.asarray(target)
        if x.size != y.size:
            raise ValueError(
                f"input and target should have the same number of elements, got "
                f"shapes {x.shape} ({x.size}) and {y.shape} ({y.size})")
        return x, x - y.astype(x.dtype, copy=False).reshape(x.shape)

    def forward(self, input, target):
        x, d = self._diff(input, target)
        loss = np.dot(d.ravel(), d.ravel())
        if self.size_average and x.size:
            loss = loss / x.size
        self.output = float(loss)
        return self.output

    def backward(self, input, target):
        x, d = self._diff(input, target)
        norm = 2.0 / x.size if (self.size_average and x.size) else 2.0
        self.gradInput = (d * x.dtype.type(norm)).astype(x.dtype, copy=False)
        return self.gradInput

    updateOutput = forward
    updateGradInput = backward

    def __call__(self, input, target):
        return self.forward(input, target)
