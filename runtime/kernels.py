"""numpy kernels for 2-D convolution and max pooling (Torch7 semantics).

All kernels work on 4-D ``(N, C, H, W)`` arrays (the caller adds or removes the
batch axis), keep the floating dtype of their data input, and never modify
their arguments.  Only numpy is imported.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "conv_output_size", "pool_output_size",
    "conv2d_forward", "conv2d_backward",
    "maxpool2d_forward", "maxpool2d_backward",
]


def _check_params(k, d, pad):
    if k < 1:
        raise ValueError(f"kernel size should be greater than zero, got {k}")
    if d < 1:
        raise ValueError(f"stride should be greater than zero, got {d}")
    if pad < 0:
        raise ValueError(f"padding should be non-negative, got {pad}")


def conv_output_size(size, k, d, pad):
    """Output length of a convolution: ``(size + 2*pad - k) // d + 1``."""
    size, k, d, pad = int(size), int(k), int(d), int(pad)
    _check_params(k, d, pad)
    out = (size + 2 * pad - k) // d + 1
    if out < 1:
        raise ValueError(
            f"input size {size} (padded {size + 2 * pad}) is too small for a kernel "
            f"of size {k}")
    return out


def pool_output_size(size, k, d, pad, ceil_mode=False):
    """Output length of Torch7 pooling.

    ``floor`` (or ``ceil``) of ``(size + 2*pad - k) / d``, plus one; in ceil
    mode the last window must start inside the input or its left padding, so
    the size drops by one when ``(out - 1) * d >= size + pad``.
    """
    size, k, d, pad = int(size), int(k), int(d), int(pad)
    _check_params(k, d, pad)
    if pad > k // 2:
        raise ValueError(
            f"pad should be at most half of kernel size, got pad {pad} for kernel "
            f"size {k}")
    span = size + 2 * pad - k
    out = (-(-span // d) if ceil_mode else span // d) + 1
    if ceil_mode and (out - 1) * d >= size + pad:
        out -= 1
    if out < 1:
        raise ValueError(
            f"input size {size} (padded {size + 2 * pad}) is too small for a kernel "
            f"of size {k}")
    return out


def _sizes_2d(fn, H, W, kH, kW, dH, dW, padH, padW, *extra):
    try:
        return fn(H, kH, dH, padH, *extra), fn(W, kW, dW, padW, *extra)
    except ValueError as e:
        if "too small" not in str(e):
            raise
        raise ValueError(
            f"input {H}x{W} (padded {H + 2 * padH}x{W + 2 * padW}) is too small for "
            f"a {kH}x{kW} kernel") from None


def _float(a):
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return a


def _check_4d(x, what="input"):
    if x.ndim != 4:
        raise ValueError(f"{what} should be 4D (N, C, H, W), got shape {x.shape}")


# --------------------------------------------------------------------------
# convolution

def conv2d_forward(x, weight, bias, dH, dW, padH, padW):
    """2-D cross-correlation (SpatialConvolution).

    ``x`` (N, C, H, W), ``weight`` (nOut, C, kH, kW), ``bias`` (nOut,) or None.
    Returns ``(y, cols)``: ``y`` is (N, nOut, oH, oW) and ``cols`` the im2col
    matrix (N*oH*oW, C*kH*kW) that ``conv2d_backward`` needs.
    """
    x = _float(x)
    _check_4d(x)
    weight = np.asarray(weight)
    if weight.ndim != 4:
        raise ValueError(f"weight should be 4D (nOut, C, kH, kW), got shape {weight.shape}")
    N, C, H, W = x.shape
    nOut, wC, kH, kW = weight.shape
    if wC != C:
        raise ValueError(f"weight expects {wC} input plane(s), input has {C} (shape {x.shape})")
    oH, oW = _sizes_2d(conv_output_size, H, W, kH, kW, dH, dW, padH, padW)
    xp = x
    if padH or padW:
        xp = np.pad(x, ((0, 0), (0, 0), (padH, padH), (padW, padW)))
    win = sliding_window_view(xp, (kH, kW), axis=(2, 3))[:, :, ::dH, ::dW][:, :, :oH, :oW]
    # (N, C, oH, oW, kH, kW) -> (N, oH, oW, C, kH, kW) -> im2col matrix (copy)
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(N * oH * oW, C * kH * kW)
    wmat = weight.reshape(nOut, C * kH * kW).astype(x.dtype, copy=False)
    y = cols @ wmat.T
    if bias is not None:
        y += np.asarray(bias, dtype=x.dtype).reshape(1, nOut)
    y = np.ascontiguousarray(y.reshape(N, oH, oW, nOut).transpose(0, 3, 1, 2))
    return y, cols


def conv2d_backward(gy, x_shape, cols, weight, dH, dW, padH, padW, need_input=True):
    """Gradients of ``conv2d_forward``.

    Returns ``(gx or None, gweight, gbias)`` in ``gy``'s dtype; ``cols`` is the
    matrix ``conv2d_forward`` returned.  ``gx`` is None unless ``need_input``.
    """
    gy = _float(gy)
    _check_4d(gy, "gradOutput")
    N, C, H, W = (int(s) for s in x_shape)
    weight = np.asarray(weight)
    nOut, _, kH, kW = weight.shape
    _, gC, oH, oW = gy.shape
    if gy.shape[0] != N or gC != nOut:
        raise ValueError(f"gradOutput shape {gy.shape} does not match batch {N} / "
                         f"{nOut} output planes")
    g2 = gy.transpose(0, 2, 3, 1).reshape(N * oH * oW, nOut)
    gweight = (g2.T @ cols.astype(gy.dtype, copy=False)).reshape(weight.shape)
    gbias = gy.sum(axis=(0, 2, 3))
    gx = None
    if need_input:
        wmat = weight.reshape(nOut, C * kH * kW).astype(gy.dtype, copy=False)
        gcols = (g2 @ wmat).reshape(N, oH, oW, C, kH, kW).transpose(0, 3, 1, 2, 4, 5)
        gxp = np.zeros((N, C, H + 2 * padH, W + 2 * padW), dtype=gy.dtype)
        hspan = dH * (oH - 1) + 1
        wspan = dW * (oW - 1) + 1
        for i in range(kH):
            for j in range(kW):
                gxp[:, :, i:i + hspan:dH, j:j + wspan:dW] += gcols[..., i, j]
        gx = np.ascontiguousarray(gxp[:, :, padH:padH + H, padW:padW + W])
    return gx, gweight, gbias


# --------------------------------------------------------------------------
# max pooling

def maxpool2d_forward(x, kH, kW, dH, dW, padH, padW, ceil_mode=False):
    """SpatialMaxPooling.  Returns ``(y, argmax)``.

    Padded cells never win; ties go to the first maximum in row-major window
    order.  ``argmax`` (int64, shape of ``y``) holds the flat index of each
    winner in the *unpadded* input ``x.reshape(-1)``.
    """
    x = _float(x)
    _check_4d(x)
    N, C, H, W = x.shape
    oH, oW = _sizes_2d(pool_output_size, H, W, kH, kW, dH, dW, padH, padW, ceil_mode)
    # pad with -inf far enough for the last (possibly partial, ceil mode) window
    needH = (oH - 1) * dH + kH
    needW = (oW - 1) * dW + kW
    padB = max(needH - H - padH, 0)
    padR = max(needW - W - padW, 0)
    xp = x
    if padH or padW or padB or padR:
        xp = np.pad(x, ((0, 0), (0, 0), (padH, padB), (padW, padR)),
                    constant_values=-np.inf)
    win = sliding_window_view(xp, (kH, kW), axis=(2, 3))[:, :, ::dH, ::dW][:, :, :oH, :oW]
    flat = win.reshape(N, C, oH, oW, kH * kW)
    k = np.argmax(flat, axis=-1)          # first maximum in window order
    y = np.take_along_axis(flat, k[..., None], axis=-1)[..., 0]
    ki, kj = np.divmod(k, kW)
    h = np.arange(oH).reshape(oH, 1) * dH - padH + ki
    w = np.arange(oW).reshape(1, oW) * dW - padW + kj
    # a window whose real cells are all -inf may "win" on padding: clamp to a
    # real cell inside the same window (the value is -inf either way)
    np.clip(h, 0, H - 1, out=h)
    np.clip(w, 0, W - 1, out=w)
    plane = (np.arange(N).reshape(N, 1, 1, 1) * C + np.arange(C).reshape(1, C, 1, 1)) * (H * W)
    argmax = (plane + h * W + w).astype(np.int64)
    return np.ascontiguousarray(y), argmax


def maxpool2d_backward(gy, argmax, x_shape, kH, kW, dH, dW, padH, padW):
    """Gradient of ``maxpool2d_forward``: scatter-add ``gy`` onto the winners
    (windows may overlap, so contributions are summed with ``np.bincount``)."""
    gy = _float(gy)
    argmax = np.asarray(argmax)
    if gy.shape != argmax.shape:
        raise ValueError(f"gradOutput shape {gy.shape} does not match argmax shape {argmax.shape}")
    n = int(np.prod(x_shape))
    gx = np.bincount(argmax.ravel(), weights=gy.ravel(), minlength=n)
    return gx.astype(gy.dtype, copy=False).reshape(tuple(int(s) for s in x_shape))


# ---- indices, dropout, batch normalization ------------------------------------------------

def check_indices(x, n, module="LookupTable"):
    """x: integer indices that must lie in 1..n (Torch's 1-based indices)."""
    if x.size and (x.min() < 1 or x.max() > n):
        bad = x[(x < 1) | (x > n)].flat[0]
        raise ValueError(f"{module}: index {int(bad)} is out of range 1..{n} (indices are 1-based)")
    return x


def scatter_rows(gy, idx, n, padding_value=0):
    """The gradient of a row lookup: row i accumulates every gy row whose index is i."""
    d = gy.shape[-1]
    flat_idx = idx.reshape(-1)
    rows = gy.reshape(-1, d)
    if padding_value:
        keep = flat_idx != padding_value
        flat_idx, rows = flat_idx[keep], rows[keep]
    out = np.zeros((n, d), gy.dtype)
    np.add.at(out, flat_idx - 1, rows)
    return out


def one_hot(idx, n, dtype):
    check_indices(idx, n, "OneHot")
    out = np.zeros(idx.shape + (n,), dtype)
    np.put_along_axis(out, (idx - 1)[..., None], 1, axis=-1)
    return out


def dropout_mask(rng, x, p, v1):
    """Bernoulli(1-p) keep-mask, scaled by 1/(1-p) for v2 (Torch's default)."""
    keep = rng.random(x.shape) >= p
    scale = 1.0 if v1 else 1.0 / (1.0 - p)
    return (keep * scale).astype(x.dtype)


def batchnorm_forward(x, weight, bias, running_mean, running_var, axes, bshape, eps, momentum, train):
    """Torch7 BatchNormalization: batch statistics (biased variance) when training, with the
    running statistics updated in place (unbiased variance); running statistics otherwise.
    Returns (y, xhat, invstd) for the backward."""
    n = x.size // running_mean.size
    if train and n > 1 and x.shape[0] > 1:
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * n / (n - 1)
        batch_stats = True
    else:  # evaluation, or a batch of one (Torch then normalizes with the running stats)
        mean, var, batch_stats = running_mean, running_var, False
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean.reshape(bshape)) * invstd.reshape(bshape)
    y = xhat * weight.reshape(bshape) + bias.reshape(bshape) if weight is not None else xhat
    return y, xhat, (invstd, batch_stats)


def batchnorm_backward(gy, xhat, state, weight, axes, bshape):
    invstd, batch_stats = state
    gw = (gy * xhat).sum(axis=axes) if weight is not None else None
    gb = gy.sum(axis=axes) if weight is not None else None
    g = gy * weight.reshape(bshape) if weight is not None else gy
    if batch_stats:
        n = gy.size // invstd.size
        gx = (g - g.mean(axis=axes).reshape(bshape)
              - xhat * (g * xhat).mean(axis=axes).reshape(bshape)) * invstd.reshape(bshape)
    else:
        gx = g * invstd.reshape(bshape)
    return gx, gw, gb
