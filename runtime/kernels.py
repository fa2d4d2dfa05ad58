"""numpy kernels for 2-D convolution and max pooling (Torch7 semantics).

All kernels work on 4-D ``(N, C, H, W)`` arrays (the caller adds or removes the
batch axis), keep the floating dtype of their data input, and never modify
their arguments.  Only numpy is imported.
"""

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .pad_norm_pool import *  # noqa: F401,F403 (generated code calls them as rt.<name>)

__all__ = [
    "conv_output_size", "pool_output_size",
    "conv2d_forward", "conv2d_backward",
    "maxpool2d_forward", "maxpool2d_backward",
]


def matmul_into(a, b, out):
    """out = a @ b (the generated code's weight gradients, `G += gy.T @ x`). A product over
    one row (batch size 1) is a broadcast multiply: OpenBLAS GEMMs with K = 1 ran about 4x
    slower than it (LeNet's 120x400 weight gradient: 72 us against 18 us)."""
    if a.shape[-1] == 1:
        return np.multiply(a, b, out=out)
    return np.matmul(a, b, out=out)


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


def pool_output_size(size, k, d, pad, ceil_mode=False, keep_outside=False):
    """Output length of Torch7 pooling.

    ``floor`` (or ``ceil``) of ``(size + 2*pad - k) / d``, plus one; in ceil
    mode the last window must start inside the input or its left padding, so
    the size drops by one when ``(out - 1) * d >= size + pad``, unless
    ``keep_outside``: Torch7's max pooling keeps that window (it can start past
    the input only when the stride exceeds the kernel) when it has no padding.
    """
    size, k, d, pad = int(size), int(k), int(d), int(pad)
    _check_params(k, d, pad)
    if pad > k // 2:
        raise ValueError(
            f"pad should be at most half of kernel size, got pad {pad} for kernel "
            f"size {k}")
    span = size + 2 * pad - k
    out = (-(-span // d) if ceil_mode else span // d) + 1
    if ceil_mode and not keep_outside and (out - 1) * d >= size + pad:
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
#
# Layout.  The input is copied once into a flat buffer ``buf`` of zero-padded
# planes (N, C, Hp, Wp), plus ``kW - 1`` zeros at the end (wide rows only).
# For dW == 1 the im2col rows are "wide": a column block for kernel offset (i, j) is the run
# ``plane[i*Wp + j : i*Wp + j + oH*Wp]`` (dH == 1), i.e. every output row is
# computed for all Wp columns and the last kW - 1 of them (which wrap into the
# next input row) are dropped.  That turns the im2col copy into long
# contiguous runs and lets the GEMM ``weight (nOut, K) @ cols (K, L)`` (one per
# sample, batched by np.matmul) write (nOut, oH, Wp) rows that only need their
# first oW columns kept: the output lands in NCHW order without a transpose.
# For dW > 1 (or when the wrap columns would cost more than they save) the
# rows are the plain oW columns.  (For small images, per-sample GEMMs are as
# fast as one GEMM per chunk single-threaded, and they stay below OpenBLAS's
# threading threshold, which keeps them out of thread-wakeup stalls on a
# loaded machine; measured on LeNet.)
#
# ``cols`` (the value conv2d_backward needs) is just ``buf``, a copy of the
# padded input: the im2col matrix is rebuilt in the backward pass, a batch
# chunk at a time, instead of being kept (it is kH*kW times the input size).
# All the work is done in batch chunks of about _CONV_CHUNK_BYTES of im2col
# matrix, so the temporaries stay small and in cache.

_CONV_CHUNK_BYTES = 1 << 20


def _conv_geometry(C, H, W, kH, kW, dH, dW, padH, padW):
    oH, oW = _sizes_2d(conv_output_size, H, W, kH, kW, dH, dW, padH, padW)
    Hp, Wp = H + 2 * padH, W + 2 * padW
    wide = dW == 1 and oW < Wp <= 2 * oW
    R = Wp if wide else oW           # columns per output row in the im2col rows
    tail = kW - 1 if wide else 0     # wide rows of the last plane read past its end
    return oH, oW, Hp, Wp, R, tail


def _strided(base, shape, strides, offset=0):
    """A view of the contiguous array ``base`` with the given shape and strides
    (in elements), starting ``offset`` elements in (np.lib.stride_tricks.as_strided
    without its overhead, which matters at batch size 1)."""
    it = base.itemsize
    return np.ndarray(shape, base.dtype, base, offset * it, tuple(s * it for s in strides))


def _conv_windows(buf, N, C, Hp, Wp, kH, kW, oH, R, dH, dW):
    """(N, C, kH, kW, oH, R) view of ``buf``: element [n, c, i, j, h, w] is the
    padded input at row i + h*dH, column j + w*dW of plane (n, c)."""
    return _strided(buf, (N, C, kH, kW, oH, R), (C * Hp * Wp, Hp * Wp, Wp, 1, dH * Wp, dW))


def _conv_chunk(N, K, L, itemsize):
    return max(1, min(N, _CONV_CHUNK_BYTES // max(K * L * itemsize, 1)))


def conv2d_forward(x, weight, bias, dH, dW, padH, padW):
    """2-D cross-correlation (SpatialConvolution).

    ``x`` (N, C, H, W), ``weight`` (nOut, C, kH, kW), ``bias`` (nOut,) or None.
    Returns ``(y, cols)``: ``y`` is (N, nOut, oH, oW) in ``x``'s dtype and
    ``cols`` an opaque value for ``conv2d_backward`` (a private copy of the
    zero-padded input; the im2col matrix itself is not kept).
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
    oH, oW, Hp, Wp, R, tail = _conv_geometry(C, H, W, kH, kW, dH, dW, padH, padW)
    dt = x.dtype
    S = C * Hp * Wp
    buf = np.empty(N * S + tail, dt)
    body = buf[:N * S].reshape(N, C, Hp, Wp)
    if padH or padW:
        body[:, :, :padH] = 0
        body[:, :, Hp - padH:] = 0
        body[:, :, :, :padW] = 0
        body[:, :, :, Wp - padW:] = 0
    body[:, :, padH:padH + H, padW:padW + W] = x
    buf[N * S:] = 0
    win = _conv_windows(buf, N, C, Hp, Wp, kH, kW, oH, R, dH, dW)

    K, L = C * kH * kW, oH * R
    wmat = weight.reshape(nOut, K).astype(dt, copy=False)
    if bias is not None:
        # the bias rides in the GEMM as an extra column of weights times a row of ones
        wmat = np.concatenate([wmat, np.asarray(bias, dtype=dt).reshape(nOut, 1)], axis=1)
    nb = _conv_chunk(N, K, L, dt.itemsize)
    cols = np.empty((nb, wmat.shape[1], L), dt)
    cols[:, K:] = 1
    y = np.empty((N, nOut, oH, oW), dt)
    for n0 in range(0, N, nb):
        n = min(nb, N - n0)
        c = cols[:n]
        c[:, :K].reshape(n, C, kH, kW, oH, R)[...] = win[n0:n0 + n]
        if R == oW:
            np.matmul(wmat, c, out=y[n0:n0 + n].reshape(n, nOut, L))
        else:
            y[n0:n0 + n] = np.matmul(wmat, c).reshape(n, nOut, oH, R)[..., :oW]
    return y, buf


def conv2d_backward(gy, x_shape, cols, weight, dH, dW, padH, padW, need_input=True):
    """Gradients of ``conv2d_forward``.

    Returns ``(gx or None, gweight, gbias)`` in ``gy``'s dtype; ``cols`` is the
    value ``conv2d_forward`` returned.  ``gx`` is None unless ``need_input``.

    The im2col matrix is rebuilt from ``cols`` a batch chunk at a time.  The
    input gradient is the col2im of ``weight.T @ gy``.  For stride 1 that needs
    no loop over kernel offsets: the GEMM writes its rows kW - 1 zeros apart, so
    that "shift row (i, j) right by j and sum over j" is one strided reduction,
    and "shift by i rows and sum over i" a second one.  When the windows tile
    the input (stride == kernel) it is one copy; other strides add kH*kW
    strided slices.
    """
    gy = _float(gy)
    _check_4d(gy, "gradOutput")
    N, C, H, W = (int(s) for s in x_shape)
    weight = np.asarray(weight)
    nOut, _, kH, kW = weight.shape
    oH, oW, Hp, Wp, R, tail = _conv_geometry(C, H, W, kH, kW, dH, dW, padH, padW)
    if gy.shape != (N, nOut, oH, oW):
        raise ValueError(f"gradOutput shape {gy.shape} does not match the output shape "
                         f"{(N, nOut, oH, oW)}")
    S = C * Hp * Wp
    buf = cols
    if not isinstance(buf, np.ndarray) or buf.shape != (N * S + tail,):
        raise ValueError("cols does not come from conv2d_forward with this input shape "
                         "and these convolution parameters")
    dt = gy.dtype
    it = dt.itemsize
    win = _conv_windows(buf, N, C, Hp, Wp, kH, kW, oH, R, dH, dW)
    K, L = C * kH * kW, oH * R
    nb = _conv_chunk(N, K, L, it)

    gbias = gy.sum(axis=(0, 2, 3))
    gweight = np.zeros((nOut, K), dt)
    c_buf = None
    wrap_x = wrap_w = False
    if R != oW:
        g_buf = np.zeros((nb, nOut, oH, R), dt)   # gy with zero wrap columns
        # the wrap columns meet zero gradients, which is exact unless they hold an inf
        # or NaN (0 * inf = nan): then they are zeroed as well
        wrap_x = not np.isfinite(buf).all()
        wrap_w = need_input and not np.isfinite(weight).all()
    gx = None
    if need_input:
        wT = np.ascontiguousarray(weight.reshape(nOut, K).astype(dt, copy=False).T)
        shift = dH == 1 and R == Wp
        if shift:
            M = L + kW - 1                 # length of a row once shifted by j < kW
            P = Hp * Wp + kW - 1           # length of a row once shifted by i rows
            # GEMM rows with kW - 1 zeros between them; the memory is shared with
            # the im2col rows, which are dead by the time the GEMM runs
            c_buf = np.empty(nb * K * M, dt)
            b1 = c_buf.reshape(nb, K, M)
            b2 = np.zeros((nb, C * kH, P), dt)
            gxp = np.empty((N, C, Hp, Wp), dt)
        else:
            gxp = np.zeros((N, C, Hp, Wp), dt)
            hspan, wspan = (oH - 1) * dH + 1, (oW - 1) * dW + 1
    if c_buf is None:
        c_buf = np.empty(nb * K * L, dt)
    for n0 in range(0, N, nb):
        n = min(nb, N - n0)
        c = c_buf[:n * K * L].reshape(n, K, L)
        c.reshape(n, C, kH, kW, oH, R)[...] = win[n0:n0 + n]
        if wrap_x:
            c.reshape(n, K, oH, R)[..., oW:] = 0
        if R != oW:
            g = g_buf[:n]
            g[..., :oW] = gy[n0:n0 + n]
            g = g.reshape(n, nOut, L)
        else:
            g = gy[n0:n0 + n].reshape(n, nOut, L)
        gweight += np.matmul(g, c.transpose(0, 2, 1)).sum(axis=0)
        if not need_input:
            continue
        if shift:
            r1 = b1[:n]
            r1[:, :, L:] = 0
            np.matmul(wT, g, out=r1[:, :, :L])
            if wrap_w:
                r1[:, :, :L].reshape(n, K, oH, R)[..., oW:] = 0
            # T[n, (c, i), p] = sum_j r1[n, (c, i, j), p - j]: row j read from j*(M-1)
            v1 = _strided(b1, (n, C * kH, kW, M), (K * M, kW * M, M - 1, 1))
            r2 = b2[:n]
            np.add.reduce(v1, axis=2, out=r2[:, :, :M])
            # plane[q] = sum_i T[(c, i), q - i*Wp]: row i read from i*(P - Wp)
            v2 = _strided(b2, (n, C, kH, Hp * Wp), (C * kH * P, kH * P, P - Wp, 1))
            np.add.reduce(v2, axis=2, out=gxp[n0:n0 + n].reshape(n, C, Hp * Wp))
        else:
            gc = np.matmul(wT, g).reshape(n, C, kH, kW, oH, R)[..., :oW]
            dst = gxp[n0:n0 + n]
            if dH == kH and dW == kW:
                # windows tile the input: col2im is a single transposing copy
                t = _strided(gxp, (n, C, oH, kH, oW, kW),
                             (C * Hp * Wp, Hp * Wp, kH * Wp, Wp, kW, 1), n0 * C * Hp * Wp)
                t[...] = gc.transpose(0, 1, 4, 2, 5, 3)
            else:
                for i in range(kH):
                    for j in range(kW):
                        dst[:, :, i:i + hspan:dH, j:j + wspan:dW] += gc[:, :, i, j]
    if need_input:
        gx = gxp
        if padH or padW:
            gx = np.ascontiguousarray(gxp[:, :, padH:padH + H, padW:padW + W])
    return gx, gweight.reshape(weight.shape), gbias


# --------------------------------------------------------------------------
# max pooling

@functools.lru_cache(maxsize=32)
def _pool_index_parts(N, C, H, W, kH, kW, dH, dW, padH, padW, oH, oW):
    """Flat input index of a window's cell = plane + corner + offset (all int64):
    offset (kH*kW,) of the cell in its window, corner (oH, oW) of the window's
    first cell, plane (N, C, 1, 1) of the plane.  Cached: small, read-only."""
    offsets = (np.arange(kH, dtype=np.int64)[:, None] * W + np.arange(kW)).reshape(-1)
    corner = (np.arange(oH, dtype=np.int64) * dH - padH)[:, None] * W \
        + (np.arange(oW) * dW - padW)
    plane = (np.arange(N * C, dtype=np.int64) * (H * W)).reshape(N, C, 1, 1)
    for a in (offsets, corner, plane):
        a.flags.writeable = False
    return offsets, corner, plane


def maxpool2d_forward(x, kH, kW, dH, dW, padH, padW, ceil_mode=False):
    """SpatialMaxPooling.  Returns ``(y, argmax)``.

    Padded cells never win; ties go to the first maximum in row-major window
    order; a NaN wins over numbers (the last NaN of a window, as in Torch7).
    ``argmax`` (int64, shape of ``y``) holds the flat index of each winner in
    the *unpadded* input ``x.reshape(-1)``.  In ceil mode with no padding a last
    window that starts past the input is kept, as Torch7 keeps it: its output is
    -inf and its argmax -1 (no winner; the backward passes it no gradient).

    One pass per window offset over strided views of the (-inf padded) input,
    keeping the running maximum and the offset it came from.
    """
    x = _float(x)
    _check_4d(x)
    N, C, H, W = x.shape
    oH, oW = _sizes_2d(pool_output_size, H, W, kH, kW, dH, dW, padH, padW, ceil_mode,
                       not (padH or padW))
    # pad with -inf far enough for the last (possibly partial, ceil mode) window
    padB = max((oH - 1) * dH + kH - H - padH, 0)
    padR = max((oW - 1) * dW + kW - W - padW, 0)
    xp = x
    if padH or padW or padB or padR:
        xp = np.full((N, C, padH + H + padB, padW + W + padR), -np.inf, x.dtype)
        xp[:, :, padH:padH + H, padW:padW + W] = x
    hspan, wspan = (oH - 1) * dH + 1, (oW - 1) * dW + 1
    views = [xp[:, :, i:i + hspan:dH, j:j + wspan:dW] for i in range(kH) for j in range(kW)]
    T = len(views)
    kdt = np.uint8 if T <= 256 else np.int32
    y = views[0].copy()
    k = np.zeros(y.shape, kdt)           # offset (row-major in the window) of the winner
    if T > 1:
        m = np.empty(y.shape, bool)
        mk = np.empty(y.shape, kdt)
        for t in range(1, T):
            v = views[t]
            np.greater(v, y, out=m)
            np.maximum(y, v, out=y)      # NaN-propagating: NaN windows are fixed below
            # offsets only grow, so "k = t where v won" is a maximum
            np.multiply(m, kdt(t), out=mk)
            np.maximum(k, mk, out=k)
        if np.isnan(y).any():
            y = views[0].copy()
            k[...] = 0
            for t in range(1, T):
                v = views[t]
                np.greater(v, y, out=m)
                m |= np.isnan(v)
                np.copyto(y, v, where=m)
                np.copyto(k, kdt(t), where=m)
    offsets, corner, plane = _pool_index_parts(N, C, H, W, kH, kW, dH, dW, padH, padW, oH, oW)
    argmax = np.take(offsets, k)
    argmax += corner
    argmax += plane
    if padH or padW:
        # a window whose real cells are all -inf "wins" on its first cell, which
        # may be padding: use its first real cell instead (the value is -inf anyway)
        lost = np.isneginf(y)
        if lost.any():
            n, c, i, j = np.nonzero(lost)
            argmax[lost] = ((n * C + c) * H + np.maximum(i * dH - padH, 0)) * W \
                + np.maximum(j * dW - padW, 0)
    # only the last window of a row or column can start past the input
    if (oH - 1) * dH - padH >= H:
        argmax[:, :, -1, :] = -1
    if (oW - 1) * dW - padW >= W:
        argmax[:, :, :, -1] = -1
    return y, argmax


def maxpool2d_backward(gy, argmax, x_shape, kH, kW, dH, dW, padH, padW):
    """Gradient of ``maxpool2d_forward``: ``gy`` goes to the winners.  Windows
    that cannot overlap (stride >= kernel) have distinct winners, so that is a
    plain scatter; otherwise contributions are summed (``np.add.at``)."""
    gy = _float(gy)
    argmax = np.asarray(argmax)
    if gy.shape != argmax.shape:
        raise ValueError(f"gradOutput shape {gy.shape} does not match argmax shape {argmax.shape}")
    shape = tuple(int(s) for s in x_shape)
    n = int(np.prod(shape))
    gx = np.zeros(n + 1, gy.dtype)  # the extra last cell takes index -1: no winner
    if dH >= kH and dW >= kW:
        gx[argmax.reshape(-1)] = gy.reshape(-1)
    else:
        np.add.at(gx, argmax.reshape(-1), gy.reshape(-1))
    return gx[:n].reshape(shape)


# ---- indices, dropout, batch normalization ------------------------------------------------

def position(bad) -> str:
    """The index of the first True element of boolean array `bad` (C order), as text."""
    at = np.unravel_index(int(bad.argmax()), bad.shape)
    return "[" + ", ".join(str(int(i)) for i in at) + "]"


def check_indices(x, n, module="LookupTable"):
    """x: integer indices that must lie in 1..n (Torch's 1-based indices)."""
    if x.size and (x.min() < 1 or x.max() > n):
        bad = (x < 1) | (x > n)
        raise ValueError(f"{module}: index {int(x[bad].flat[0])} is out of range 1..{n} "
                         f"(indices are 1-based) at position {position(bad)}")
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


def one_hot(idx, n, dtype, module="OneHot"):
    check_indices(idx, n, module)
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
        gx = (g - g.mean(axis=axes).reshape(bshape)
              - xhat * (g * xhat).mean(axis=axes).reshape(bshape)) * invstd.reshape(bshape)
    else:
        gx = g * invstd.reshape(bshape)
    return gx, gw, gb


# ==== average pooling, full (transposed) convolution, temporal convolution ==================
# (graphc/ops/avgpool_fullconv_temporal.py).  Loops run over kernel offsets only, never over batch or pixels.

def _avg_divisors(size, out, k, d, pad, count_include_pad):
    """Per output position along one axis: the cells Torch7 divides the window sum by.
    Windows are clipped to the padded input; `count_include_pad` counts the padding."""
    start = np.arange(out) * d - pad
    end = np.minimum(start + k, size + pad)
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def _pool_geometry(H, W, kH, kW, dH, dW, padH, padW, ceil_mode):
    oH, oW = _sizes_2d(pool_output_size, H, W, kH, kW, dH, dW, padH, padW, ceil_mode)
    # the padded extent the windows reach (ceil mode may overhang the right padding)
    Hp = max((oH - 1) * dH + kH, H + padH)
    Wp = max((oW - 1) * dW + kW, W + padW)
    return oH, oW, Hp, Wp


def avgpool2d_forward(x, kH, kW, dH, dW, padH, padW, ceil_mode=False, count_include_pad=True):
    """SpatialAveragePooling on (N, C, H, W): window sums over the zero-padded input divided
    by Torch7's divisor (see _avg_divisors)."""
    x = _float(x)
    _check_4d(x)
    N, C, H, W = x.shape
    oH, oW, Hp, Wp = _pool_geometry(H, W, kH, kW, dH, dW, padH, padW, ceil_mode)
    xp = x
    if Hp > H or Wp > W:
        xp = np.zeros((N, C, Hp, Wp), x.dtype)
        xp[:, :, padH:padH + H, padW:padW + W] = x
    hspan, wspan = dH * (oH - 1) + 1, dW * (oW - 1) + 1
    y = np.zeros((N, C, oH, oW), x.dtype)
    for i in range(kH):
        for j in range(kW):
            y += xp[:, :, i:i + hspan:dH, j:j + wspan:dW]
    div = np.outer(_avg_divisors(H, oH, kH, dH, padH, count_include_pad),
                   _avg_divisors(W, oW, kW, dW, padW, count_include_pad))
    y /= div.astype(x.dtype)
    return y


def avgpool2d_backward(gy, x_shape, kH, kW, dH, dW, padH, padW, ceil_mode=False,
                       count_include_pad=True):
    """Gradient of avgpool2d_forward: each window spreads gy / divisor over its cells."""
    gy = _float(gy)
    _check_4d(gy, "gradOutput")
    N, C, H, W = (int(s) for s in x_shape)
    oH, oW, Hp, Wp = _pool_geometry(H, W, kH, kW, dH, dW, padH, padW, ceil_mode)
    if gy.shape != (N, C, oH, oW):
        raise ValueError(f"gradOutput shape {gy.shape} does not match the output shape "
                         f"{(N, C, oH, oW)}")
    div = np.outer(_avg_divisors(H, oH, kH, dH, padH, count_include_pad),
                   _avg_divisors(W, oW, kW, dW, padW, count_include_pad))
    g = gy / div.astype(gy.dtype)
    gxp = np.zeros((N, C, Hp, Wp), gy.dtype)
    hspan, wspan = dH * (oH - 1) + 1, dW * (oW - 1) + 1
    for i in range(kH):
        for j in range(kW):
            gxp[:, :, i:i + hspan:dH, j:j + wspan:dW] += g
    return np.ascontiguousarray(gxp[:, :, padH:padH + H, padW:padW + W])


def full_conv_output_size(size, k, d, pad, adj):
    """SpatialFullConvolution: (size - 1) * d - 2 * pad + k + adj."""
    return (int(size) - 1) * d - 2 * pad + k + adj


def _full_wmat(weight, dtype):
    """(Cin, Cout, kH, kW) -> (Cin, kH*kW*Cout): output channels innermost, so every kernel
    offset's slice of the GEMM result is a run of contiguous channel vectors."""
    C, nOut, kH, kW = weight.shape
    return weight.transpose(0, 2, 3, 1).reshape(C, kH * kW * nOut).astype(dtype, copy=False)


def full_conv2d_forward(x, weight, bias, dH, dW, padH, padW, adjH, adjW):
    """SpatialFullConvolution (transposed convolution) on (N, Cin, H, W).

    ``weight`` is (Cin, Cout, kH, kW). Each input pixel adds weight[c] * x[c] into a kH x kW
    patch of the output at stride (dH, dW) (a GEMM, then col2im); the output is cropped by
    the padding and extended by adjH/adjW rows/columns.
    """
    x = _float(x)
    _check_4d(x)
    weight = np.asarray(weight)
    N, C, H, W = x.shape
    wC, nOut, kH, kW = weight.shape
    if wC != C:
        raise ValueError(f"weight expects {wC} input plane(s), input has {C} (shape {x.shape})")
    oH = full_conv_output_size(H, kH, dH, padH, adjH)
    oW = full_conv_output_size(W, kW, dW, padW, adjW)
    if oH < 1 or oW < 1:
        raise ValueError(f"input {H}x{W} gives an empty output ({oH}x{oW})")
    cols = x.transpose(0, 2, 3, 1).reshape(N * H * W, C) @ _full_wmat(weight, x.dtype)
    cols = cols.reshape(N, H, W, kH, kW, nOut)
    Hp, Wp = (H - 1) * dH + kH + adjH, (W - 1) * dW + kW + adjW
    out = np.zeros((N, Hp, Wp, nOut), x.dtype)  # NHWC while scattering: contiguous adds
    hspan, wspan = dH * (H - 1) + 1, dW * (W - 1) + 1
    for i in range(kH):
        for j in range(kW):
            out[:, i:i + hspan:dH, j:j + wspan:dW] += cols[:, :, :, i, j]
    y = np.ascontiguousarray(out[:, padH:padH + oH, padW:padW + oW].transpose(0, 3, 1, 2))
    if bias is not None:
        y += np.asarray(bias, dtype=x.dtype).reshape(1, nOut, 1, 1)
    return y


def full_conv2d_backward(gy, x, weight, dH, dW, padH, padW, adjH, adjW, need_input=True):
    """Gradients of full_conv2d_forward: (gx or None, gweight, gbias). The gradient of a
    transposed convolution is an ordinary convolution (im2col of gy, then GEMMs)."""
    gy = _float(gy)
    _check_4d(gy, "gradOutput")
    weight = np.asarray(weight)
    N, C, H, W = x.shape
    _, nOut, kH, kW = weight.shape
    oH, oW = gy.shape[2:]
    Hp, Wp = (H - 1) * dH + kH + adjH, (W - 1) * dW + kW + adjW
    gyp = np.zeros((N, Hp, Wp, nOut), gy.dtype)
    gyp[:, padH:padH + oH, padW:padW + oW] = gy.transpose(0, 2, 3, 1)
    win = sliding_window_view(gyp, (kH, kW), axis=(1, 2))[:, ::dH, ::dW][:, :H, :W]
    # (N, H, W, nOut, kH, kW) -> (N, H, W, kH, kW, nOut): the layout of _full_wmat
    gcols = win.transpose(0, 1, 2, 4, 5, 3).reshape(N * H * W, kH * kW * nOut)
    x2 = x.transpose(0, 2, 3, 1).reshape(N * H * W, C).astype(gy.dtype, copy=False)
    gweight = (x2.T @ gcols).reshape(C, kH, kW, nOut).transpose(0, 3, 1, 2)
    gbias = gy.sum(axis=(0, 2, 3))
    gx = None
    if need_input:
        gx = (gcols @ _full_wmat(weight, gy.dtype).T).reshape(N, H, W, C)
        gx = np.ascontiguousarray(gx.transpose(0, 3, 1, 2))
    return gx, np.ascontiguousarray(gweight), gbias


def temporal_conv_forward(x, weight, bias, kW, dW):
    """TemporalConvolution on (N, T, F): output frame t is weight @ (frames t*dW .. t*dW+kW-1
    concatenated) + bias; weight is (outputFrameSize, kW * F). Returns (y, cols)."""
    x = _float(x)
    if x.ndim != 3:
        raise ValueError(f"input should be 3D (N, T, F), got shape {x.shape}")
    N, T, F = x.shape
    if T < kW:
        raise ValueError(f"input sequence ({T} frames) is smaller than the kernel size ({kW})")
    oT = (T - kW) // dW + 1
    win = sliding_window_view(x, kW, axis=1)[:, ::dW][:, :oT]  # (N, oT, F, kW)
    cols = win.transpose(0, 1, 3, 2).reshape(N * oT, kW * F)
    y = cols @ weight.astype(x.dtype, copy=False).T
    if bias is not None:
        y += np.asarray(bias, dtype=x.dtype)
    return y.reshape(N, oT, -1), cols


def temporal_conv_backward(gy, x_shape, cols, weight, kW, dW, need_input=True):
    """Gradients of temporal_conv_forward: (gx or None, gweight, gbias)."""
    gy = _float(gy)
    N, T, F = (int(s) for s in x_shape)
    oT, nOut = gy.shape[1:]
    g2 = gy.reshape(N * oT, nOut)
    gweight = g2.T @ cols.astype(gy.dtype, copy=False)
    gbias = g2.sum(axis=0)
    gx = None
    if need_input:
        gcols = (g2 @ weight.astype(gy.dtype, copy=False)).reshape(N, oT, kW, F)
        gx = np.zeros((N, T, F), gy.dtype)
        span = dW * (oT - 1) + 1
        for k in range(kW):
            gx[:, k:k + span:dW] += gcols[:, :, k]
    return gx, gweight, gbias


# ==== distances, normalization, indexing, padding (graphc/ops/distance.py) ==================

_COS_EPS = 1e-12


def cosine_distance_forward(x1, x2):
    """Torch7 CosineDistance over the last axis: x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)).
    Returns (y with the last axis kept as size 1, state for the backward)."""
    w1 = (x1 * x2).sum(-1, keepdims=True)
    w22 = 1 / ((x1 * x1).sum(-1, keepdims=True) + _COS_EPS)
    w32 = 1 / ((x2 * x2).sum(-1, keepdims=True) + _COS_EPS)
    w = np.sqrt(w22 * w32)
    return w1 * w, (w1, w22, w32, w)


def cosine_distance_backward(gy, x1, x2, state):
    """(g1, g2); gy has the forward's output shape (last axis of size 1)."""
    w1, w22, w32, w = state
    s = w * gy
    return (x2 - w1 * w22 * x1) * s, (x1 - w1 * w32 * x2) * s


def pairwise_distance_backward(gy, x1, x2, y, p):
    """Gradient of ||x1 - x2||_p over the last axis w.r.t. x1 (x2's is its negative).
    The exact derivative: sign(d) |d|^(p-1) / y^(p-1), and 0 where y = 0."""
    d = x1 - x2
    y = y[..., None]
    if p == 1:
        return np.sign(d) * gy[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        num = np.sign(d) * np.abs(d) ** (p - 1) if p != 2 else d
        g = np.where(y > 0, num / np.where(y > 0, y, 1) ** (p - 1), 0)
    if p < 1:
        g = np.where(d == 0, 0, g)
    return (g * gy[..., None]).astype(d.dtype, copy=False)


def normalize_forward(x, p, eps):
    """Torch7 Normalize over the last axis. Finite p: norm = (sum |x|^p + eps)^(1/p);
    p = inf: norm = max |x| + eps (the first maximum is remembered for the backward)."""
    if np.isinf(p):
        a = np.abs(x)
        idx = np.argmax(a, axis=-1)[..., None]
        norm = np.take_along_axis(a, idx, -1) + eps
        return x / norm, (norm, None, idx)
    normp = (np.abs(x) ** p if p != 2 else x * x).sum(-1, keepdims=True) + eps
    norm = normp ** (1.0 / p)
    return x / norm, (norm, normp, None)


def normalize_backward(gy, x, state, p, eps):
    """Torch7's Normalize gradient (its |x| + eps guard for odd p < 2 included)."""
    norm, normp, idx = state
    cross = (x * gy).sum(-1, keepdims=True)
    if idx is not None:
        b = np.zeros_like(x)
        np.put_along_axis(b, idx, np.take_along_axis(x, idx, -1) / norm, -1)
        return (norm * gy - b * cross) / (norm * norm)
    if p == 2:
        b = x
    elif p % 2 != 0 and p < 2:
        b = (np.abs(x) + eps) ** (p - 2) * x
    else:
        b = np.abs(x) ** (p - 2) * x
    return (normp * gy - b * cross) / (normp * norm)


def index_add(g, idx, axis, size):
    """Torch's indexAdd: slice k of g along `axis` is added into slot idx[k] (0-based) of a
    zero array with `size` slots there; repeated indices add up (sorted, then reduceat)."""
    g = np.moveaxis(g, axis, 0)
    flat = g.reshape(g.shape[0], -1)
    out = np.zeros((size, flat.shape[1]), g.dtype)
    if idx.size:
        order = np.argsort(idx, kind="stable")
        s = idx[order]
        starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
        out[s[starts]] = np.add.reduceat(flat[order], starts, axis=0)
    return np.ascontiguousarray(np.moveaxis(out.reshape((size,) + g.shape[1:]), 0, axis))


def pad_insert(x, axis, pos, n, value):
    """Padding: n cells of `value` inserted before position pos (0-based) along axis."""
    shape = list(x.shape)
    shape[axis] += n
    y = np.full(shape, value, dtype=x.dtype)
    lead = (slice(None),) * axis
    y[lead + (slice(0, pos),)] = x[lead + (slice(0, pos),)]
    y[lead + (slice(pos + n, None),)] = x[lead + (slice(pos, None),)]
    return y


# ==== criteria as graph nodes (graphc/ops/criterion.py) ======================================
# Each returns the loss as a 1-element array in the input's dtype; class targets are 1-based.

def _class_rows(x, t, weights, ignore_index, module):
    C = x.shape[-1]
    x2 = x.reshape(-1, C)
    t = np.asarray(t).reshape(-1)
    if t.size != x2.shape[0]:
        raise ValueError(f"{module}: {t.size} target(s) for {x2.shape[0]} input row(s)")
    keep = t != ignore_index
    bad = keep & ((t < 1) | (t > C))
    if bad.any():
        raise ValueError(f"{module}: target {int(t[bad][0])} is out of range 1..{C} "
                         f"(class indices are 1-based) at position {position(bad)}")
    rows = np.flatnonzero(keep)
    cls = t[rows] - 1
    w = np.ones(rows.size, x.dtype) if weights is None else np.asarray(weights, x.dtype)[cls]
    return x2, rows, cls, w


def class_nll_forward(x, t, weights, size_average, ignore_index, module="ClassNLLCriterion"):
    """-sum w[t] x[t] over the rows, / sum w[t] with size_average (when non-zero)."""
    x2, rows, cls, w = _class_rows(x, t, weights, ignore_index, module)
    total = w.sum()
    loss = -(w * x2[rows, cls]).sum()
    if size_average and total != 0:
        loss = loss / total
    return np.array([loss], x.dtype), (rows, cls, w, total)


def class_nll_backward(gy, x_shape, state, size_average, dtype):
    """-w[t] (/ total) at the targets, times gradOutput[1]; all zero when total <= 0."""
    rows, cls, w, total = state
    g = np.zeros((int(np.prod(x_shape[:-1], dtype=np.int64)), x_shape[-1]), dtype)
    if total > 0:
        scale = gy[0] / total if size_average else gy[0]
        g[rows, cls] = -w * scale
    return g.reshape(x_shape)


def cross_entropy_forward(x, t, weights, size_average, ignore_index=-100,
                          module="CrossEntropyCriterion"):
    """LogSoftMax over the last axis, then ClassNLL."""
    z = x - x.max(-1, keepdims=True)
    lsm = z - np.log(np.exp(z).sum(-1, keepdims=True))
    loss, state = class_nll_forward(lsm, t, weights, size_average, ignore_index, module)
    return loss, (lsm, state)


def cross_entropy_backward(gy, state, size_average):
    lsm, nll = state
    g = class_nll_backward(gy, lsm.shape, nll, size_average, lsm.dtype)
    return g - np.exp(lsm) * g.sum(-1, keepdims=True)


def bce_check(x):
    """BCECriterion's input must lie in [0, 1]."""
    ok = (x >= 0) & (x <= 1)
    if not ok.all():
        raise ValueError(f"BCECriterion: input value should be between 0~1, but got "
                         f"{float(x[~ok].flat[0])}")
    return x


# ---- plugin modules (graphc compile --plugin FILE.py) ---------------------------------------

_PLUGINS: dict = {}


def plugin(name: str, sha256_prefix: str):
    """The plugin module `name` that generated code calls (imported once), checked against
    the source the model was compiled with: a changed plugin means other math."""
    mod = _PLUGINS.get(name)
    if mod is None:
        import hashlib
        import importlib
        mod = importlib.import_module(name)
        digest = getattr(mod, "__graphc_plugin_sha256__", None)
        if digest is None:
            with open(mod.__file__, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        if not digest.startswith(sha256_prefix):
            raise ImportError(f"plugin {name} ({mod.__file__}) is not the file this model was "
                              f"compiled with (sha256 {sha256_prefix}...): recompile the model")
        _PLUGINS[name] = mod
    return mod
