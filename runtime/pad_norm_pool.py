"""numpy kernels of Torch7's image padding (zero, reflection, replication), nearest
upsampling, cross-map LRN, subtractive normalization, dilated convolution, LP pooling and
temporal max pooling. Image kernels work on the last three axes (C, H, W), with any leading
axes (a batch or none); none modifies its arguments. graphc_runtime.kernels re-exports them
(generated code calls them as `rt.<name>`)."""

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "zero_pad2d", "pad_index", "gather2d", "gather2d_backward", "upsample_nearest",
    "upsample_nearest_backward", "cross_map_lrn_forward", "cross_map_lrn_backward",
    "local_mean_forward", "local_mean_backward", "dilated_conv2d_forward",
    "dilated_conv2d_backward", "lp_pool2d_forward", "lp_pool2d_backward",
    "temporal_maxpool_forward", "temporal_maxpool_backward",
]


# ---- padding -----------------------------------------------------------------------------


def zero_pad2d(x, left, right, top, bottom):
    """x with `top`/`bottom` zero rows and `left`/`right` zero columns added; a negative pad
    crops instead (Torch's SpatialZeroPadding). Its adjoint is the same call with the pads
    negated."""
    H, W = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (H + top + bottom, W + left + right), x.dtype)
    rows = H - max(-top, 0) - max(-bottom, 0)  # input rows that survive the crop
    cols = W - max(-left, 0) - max(-right, 0)
    if rows > 0 and cols > 0:
        t, l = max(top, 0), max(left, 0)
        st, sl = max(-top, 0), max(-left, 0)
        out[..., t:t + rows, l:l + cols] = x[..., st:st + rows, sl:sl + cols]
    return out


@functools.lru_cache(maxsize=256)
def pad_index(size, before, after, mode):
    """For each output position along one axis, the input position it copies: `before` +
    `size` + `after` positions; mode 'reflect' mirrors without repeating the edge (Torch's
    SpatialReflectionPadding), 'replicate' repeats the edge."""
    j = np.arange(-before, size + after)
    if mode == "reflect":
        j = np.abs(j)
        j = np.where(j > size - 1, 2 * (size - 1) - j, j)
    else:
        j = np.clip(j, 0, size - 1)
    j.setflags(write=False)
    return j


def gather2d(x, rows, cols):
    """y[..., i, j] = x[..., rows[i], cols[j]]."""
    return x[..., rows[:, None], cols]


def _one_hot(index, size, dtype):
    m = np.zeros((index.size, size), dtype)
    m[np.arange(index.size), index] = 1
    return m


def gather2d_backward(gy, rows, cols, H, W):
    """The adjoint of gather2d: each output gradient added to the input cell it copied
    (two small matrix products: one-hot rows^T @ gy @ one-hot cols)."""
    return _one_hot(rows, H, gy.dtype).T @ gy @ _one_hot(cols, W, gy.dtype)


def upsample_nearest(x, scale):
    return np.repeat(np.repeat(x, scale, -2), scale, -1)


def upsample_nearest_backward(gy, scale):
    """Sum of each scale x scale block."""
    H, W = gy.shape[-2] // scale, gy.shape[-1] // scale
    return gy.reshape(gy.shape[:-2] + (H, scale, W, scale)).sum((-3, -1))


# ---- local normalization -------------------------------------------------------------------


def _channel_window_sum(v, before, after):
    """Sum over channels c - before .. c + after (clipped to the channels) of v (axis -3)."""
    C = v.shape[-3]
    pad = [(0, 0)] * v.ndim
    pad[-3] = (before + 1, after)
    cs = np.cumsum(np.pad(v, pad), axis=-3)
    return cs[..., before + 1 + after:, :, :][..., :C, :, :] - cs[..., :C, :, :]


def cross_map_lrn_forward(x, size, alpha, beta, k):
    """Torch7's SpatialCrossMapLRN: y = x * scale^-beta with scale = k + alpha / size * (the
    sum of x^2 over channels c - size // 2 .. c + (size - 1) // 2). Returns (y, scale)."""
    scale = _channel_window_sum(x * x, size // 2, (size - 1) // 2)
    scale *= alpha / size
    scale += k
    return x * scale ** -beta, scale


def cross_map_lrn_backward(gy, x, y, scale, size, alpha, beta):
    """The exact gradient: gy scale^-beta - 2 alpha beta / size * x * (the sum of gy y / scale
    over the channels whose window holds c)."""
    ratio = _channel_window_sum(gy * y / scale, (size - 1) // 2, size // 2)
    return gy * scale ** -beta - (2 * alpha * beta / size) * x * ratio


def _correlate_same(v, kernel):
    """2-D correlation of the last two axes of v with an odd-sized kernel, zero padding that
    keeps the size."""
    kh, kw = kernel.shape
    pad = [(0, 0)] * (v.ndim - 2) + [(kh // 2, kh // 2), (kw // 2, kw // 2)]
    win = sliding_window_view(np.pad(v, pad), kernel.shape, axis=(-2, -1))
    return np.einsum("...ij,ij->...", win, kernel)


def local_mean_forward(x, kernel):
    """Torch7's SpatialSubtractiveNormalization: x minus the kernel-weighted mean of its
    neighbourhood over all channels, each mean divided by the kernel's weight inside the
    image (so borders are not darkened)."""
    kernel = np.asarray(kernel, x.dtype)
    coef = _correlate_same(np.ones(x.shape[-2:], x.dtype), kernel) * x.shape[-3]
    mean = _correlate_same(x.sum(-3), kernel) / coef
    return x - mean[..., None, :, :]


def local_mean_backward(gy, kernel):
    """The adjoint (the map is linear): gy minus the flipped-kernel correlation of the
    channel sum of gy / coef."""
    kernel = np.asarray(kernel, gy.dtype)
    coef = _correlate_same(np.ones(gy.shape[-2:], gy.dtype), kernel) * gy.shape[-3]
    back = _correlate_same(gy.sum(-3) / coef, kernel[::-1, ::-1])
    return gy - back[..., None, :, :]


# ---- dilated convolution, LP pooling ----------------------------------------------------------


def _dilated_cols(x, kH, kW, dH, dW, padH, padW, dilH, dilW):
    """The im2col matrix of the zero-padded x, (..., C * kH * kW, oH * oW): a contiguous
    copy, so the products below are plain (batched) GEMMs whose results are already NCHW."""
    pad = [(0, 0)] * (x.ndim - 2) + [(padH, padH), (padW, padW)]
    span = (dilH * (kH - 1) + 1, dilW * (kW - 1) + 1)
    win = sliding_window_view(np.pad(x, pad), span, axis=(-2, -1))
    win = win[..., ::dH, ::dW, ::dilH, ::dilW]  # (..., C, oH, oW, kH, kW)
    oH, oW = win.shape[-4:-2]
    win = np.moveaxis(win, (-2, -1), (-4, -3))  # (..., C, kH, kW, oH, oW)
    return np.ascontiguousarray(win).reshape(x.shape[:-3] + (-1, oH * oW)), (oH, oW)


def dilated_conv2d_forward(x, weight, bias, dH, dW, padH, padW, dilH, dilW):
    """x (..., C, H, W), weight (O, C, kH, kW) -> (..., O, oH, oW)."""
    O, _, kH, kW = weight.shape
    cols, (oH, oW) = _dilated_cols(x, kH, kW, dH, dW, padH, padW, dilH, dilW)
    y = weight.reshape(O, -1) @ cols  # (..., O, oH * oW)
    if bias is not None:
        y += bias[:, None]
    return y.reshape(x.shape[:-3] + (O, oH, oW))


def dilated_conv2d_backward(gy, x, weight, dH, dW, padH, padW, dilH, dilW, need_input=True):
    """(input gradient or None, weight gradient, bias gradient); the batch axes are summed
    for the parameters."""
    O, C, kH, kW = weight.shape
    cols, (oH, oW) = _dilated_cols(x, kH, kW, dH, dW, padH, padW, dilH, dilW)
    g = gy.reshape(gy.shape[:-2] + (oH * oW,))  # (..., O, oH * oW)
    gw = (g @ np.swapaxes(cols, -1, -2)).reshape((-1,) + weight.shape).sum(0)
    gb = g.sum(tuple(range(g.ndim - 2)) + (-1,))
    if not need_input:
        return None, gw, gb
    gcols = (weight.reshape(O, -1).T @ g).reshape(x.shape[:-3] + (C, kH, kW, oH, oW))
    H, W = x.shape[-2:]
    gxp = np.zeros(x.shape[:-2] + (H + 2 * padH, W + 2 * padW), gy.dtype)
    for kh in range(kH):  # each kernel tap's rows back to the cells it read
        for kw in range(kW):
            h0, w0 = kh * dilH, kw * dilW
            gxp[..., h0:h0 + dH * (oH - 1) + 1:dH, w0:w0 + dW * (oW - 1) + 1:dW] += \
                gcols[..., kh, kw, :, :]
    return gxp[..., padH:padH + H, padW:padW + W], gw, gb


def lp_pool2d_forward(x, p, kH, kW, dH, dW):
    """Torch7's SpatialLPPooling: (sum over each kH x kW window of x^p)^(1/p). Returns
    (y, the window sums)."""
    xp = x ** p
    oH, oW = (x.shape[-2] - kH) // dH + 1, (x.shape[-1] - kW) // dW + 1
    s = np.zeros(x.shape[:-2] + (oH, oW), x.dtype)
    for kh in range(kH):  # one strided slice per window cell: faster than a windowed sum
        for kw in range(kW):
            s += xp[..., kh:kh + dH * (oH - 1) + 1:dH, kw:kw + dW * (oW - 1) + 1:dW]
    return s ** (1.0 / p), s


def lp_pool2d_backward(gy, x, y, s, p, kH, kW, dH, dW):
    """d y / d x = (y / s) x^(p-1) summed over the windows holding x."""
    g = gy * y / s
    gx = np.zeros_like(x)
    oH, oW = gy.shape[-2:]
    for kh in range(kH):
        for kw in range(kW):
            gx[..., kh:kh + dH * (oH - 1) + 1:dH, kw:kw + dW * (oW - 1) + 1:dW] += g
    return gx * x ** (p - 1)


# ---- temporal max pooling --------------------------------------------------------------------


def temporal_maxpool_forward(x, kW, dW):
    """x (..., T, F): max over windows of kW frames every dW frames, per feature. Returns
    (y, the window offset 0..kW-1 of each max: the first one on ties, as Torch)."""
    win = sliding_window_view(x, kW, axis=-2)[..., ::dW, :, :]  # (..., oT, F, kW)
    arg = win.argmax(-1)
    return np.take_along_axis(win, arg[..., None], -1)[..., 0], arg


def temporal_maxpool_backward(gy, arg, x_shape, kW, dW):
    gx = np.zeros(x_shape, gy.dtype)
    oT = gy.shape[-2]
    for k in range(kW):
        gx[..., k:k + dW * (oT - 1) + 1:dW, :] += np.where(arg == k, gy, 0)
    return gx
