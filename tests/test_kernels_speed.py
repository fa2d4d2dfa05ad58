"""Correctness of the fast paths in runtime/kernels.py (conv2d and max pooling).

conv2d: "wide" im2col rows (dW == 1), plain rows (dW > 1 or a kernel nearly as
wide as the input), the stride-1 shift-and-reduce col2im, the tiling col2im
(stride == kernel), the strided-add col2im, batch chunking (a partial last
chunk included) and dtype handling.  max pooling: every window geometry
(non-overlapping, leftovers, ceil mode, padding, overlapping, stride > kernel,
more than 256 cells per window), ties, -inf windows, NaN, and both backward
paths (scatter and scatter-add).  References are torch.nn.functional and a
loop transcription of THNN.  No timing assertions.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import torch7_max_pool2d
from graphc_runtime import kernels


def _rng(seed):
    return np.random.default_rng(seed)


def _tol(dtype):
    return dict(rtol=1e-10, atol=1e-11) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-4)


# ==========================================================================
# convolution

# N, C, H, W, nOut, kH, kW, dH, dW, padH, padW, bias     (which path they take)
_CONV = [
    (3, 1, 32, 32, 6, 5, 5, 1, 1, 0, 0, True),     # LeNet conv1: wide rows, shift col2im
    (4, 6, 14, 14, 16, 5, 5, 1, 1, 0, 0, True),    # LeNet conv2
    (2, 3, 11, 9, 4, 3, 3, 1, 1, 1, 1, False),     # odd sizes, padding
    (2, 2, 7, 10, 3, 3, 4, 1, 1, 2, 0, True),      # pad on one axis, kH != kW
    (2, 2, 9, 6, 3, 2, 3, 1, 1, 0, 1, True),
    (2, 3, 8, 8, 5, 1, 1, 1, 1, 0, 0, True),       # 1x1: rows are whole planes, no wrap
    (1, 2, 6, 5, 2, 1, 3, 1, 1, 0, 1, False),      # kH == 1
    (2, 2, 5, 8, 3, 3, 1, 1, 1, 1, 0, True),       # kW == 1 with padding
    (2, 2, 9, 8, 3, 7, 7, 1, 1, 0, 0, True),       # kernel nearly as wide as the input: plain rows
    (2, 3, 11, 10, 4, 3, 3, 2, 1, 1, 1, True),     # dH > 1, dW == 1: wide rows, strided col2im
    (2, 3, 10, 11, 4, 3, 3, 1, 2, 1, 0, True),     # dW > 1: plain rows
    (2, 3, 12, 12, 4, 2, 2, 2, 2, 0, 0, True),     # stride == kernel: tiling col2im
    (2, 3, 13, 11, 4, 2, 3, 2, 3, 0, 0, True),     # tiling with leftover rows / columns
    (2, 2, 9, 9, 3, 3, 3, 3, 3, 1, 1, True),       # tiling with padding
    (2, 2, 10, 9, 3, 2, 2, 3, 3, 0, 0, False),     # stride > kernel: cells no window reads
    (2, 2, 9, 10, 3, 3, 3, 2, 2, 0, 0, True),      # overlapping strided windows
    (1, 2, 3, 3, 2, 3, 3, 1, 1, 0, 0, True),       # one output pixel
]


def _conv_check(case, dtype, seed=0):
    N, C, H, W, nOut, kH, kW, dH, dW, pH, pW, has_bias = case
    rng = _rng(seed)
    x = rng.normal(size=(N, C, H, W)).astype(dtype)
    w = rng.normal(size=(nOut, C, kH, kW)).astype(dtype)
    b = rng.normal(size=nOut).astype(dtype) if has_bias else None
    copies = [a.copy() for a in (x, w)]
    y, cols = kernels.conv2d_forward(x, w, b, dH, dW, pH, pW)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if has_bias else None
    yt = F.conv2d(xt, wt, bt, stride=(dH, dW), padding=(pH, pW))
    assert y.shape == tuple(yt.shape) and y.dtype == dtype and y.flags.c_contiguous
    tol = _tol(dtype)
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)

    gy = rng.normal(size=y.shape).astype(dtype)
    gy0 = gy.copy()
    yt.backward(torch.tensor(gy))
    gx, gw, gb = kernels.conv2d_backward(gy, x.shape, cols, w, dH, dW, pH, pW)
    assert gx.dtype == gw.dtype == gb.dtype == dtype
    assert gx.shape == x.shape and gw.shape == w.shape and gb.shape == (nOut,)
    np.testing.assert_allclose(gx, xt.grad.numpy(), **tol)
    np.testing.assert_allclose(gw, wt.grad.numpy(), **tol)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), **tol)
    if has_bias:
        np.testing.assert_allclose(gb, bt.grad.numpy(), **tol)
    gx2, gw2, gb2 = kernels.conv2d_backward(gy, x.shape, cols, w, dH, dW, pH, pW,
                                            need_input=False)
    assert gx2 is None
    np.testing.assert_array_equal(gw2, gw)
    np.testing.assert_array_equal(gb2, gb)
    for a, a0 in zip((x, w, gy), copies + [gy0]):
        np.testing.assert_array_equal(a, a0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", _CONV)
def test_conv2d_paths_vs_torch(case, dtype):
    _conv_check(case, dtype)


@pytest.mark.parametrize("chunk_bytes", [1, 3000, 20000])
@pytest.mark.parametrize("case", [_CONV[0], _CONV[2], _CONV[9], _CONV[10], _CONV[12],
                                  _CONV[15]])
def test_conv2d_batch_chunks(case, chunk_bytes, monkeypatch):
    # tiny chunk budgets: one sample per chunk, and chunks that leave a partial last one
    monkeypatch.setattr(kernels, "_CONV_CHUNK_BYTES", chunk_bytes)
    case = (7,) + case[1:]
    _conv_check(case, np.float64, seed=1)


def test_conv2d_dtypes_follow_data():
    rng = _rng(2)
    x = rng.normal(size=(2, 3, 9, 8)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 3))                    # float64 weight, float32 input
    b = rng.normal(size=4)
    y, cols = kernels.conv2d_forward(x, w, b, 1, 1, 1, 1)
    assert y.dtype == np.float32
    ref = F.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w), torch.tensor(b),
                   padding=1)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-4)
    gy = rng.normal(size=y.shape)                        # float64 gradient: float64 results
    gx, gw, gb = kernels.conv2d_backward(gy, x.shape, cols, w, 1, 1, 1, 1)
    assert gx.dtype == gw.dtype == gb.dtype == np.float64
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    F.conv2d(xt, wt, None, padding=1).backward(torch.tensor(gy))
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-6, atol=1e-6)   # x was float32
    # integer input is computed in float64
    y, _ = kernels.conv2d_forward(np.ones((1, 1, 4, 4), dtype=np.int32), np.ones((1, 1, 2, 2)),
                                  None, 1, 1, 0, 0)
    assert y.dtype == np.float64 and np.all(y == 4)


def test_conv2d_noncontiguous_input_and_saved_copy():
    rng = _rng(3)
    base = rng.normal(size=(9, 8, 3, 2))
    x = base.transpose(3, 2, 0, 1)                       # (2, 3, 9, 8), not contiguous
    w = rng.normal(size=(4, 3, 3, 3))
    y, cols = kernels.conv2d_forward(x, w, None, 1, 1, 1, 1)
    xt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    yt = F.conv2d(xt, wt, None, padding=1)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-11)
    gy = rng.normal(size=y.shape)
    yt.backward(torch.tensor(gy))
    base[...] = 0               # the saved value is a private copy: later writes do not leak in
    gx, gw, _ = kernels.conv2d_backward(gy, x.shape, cols, w, 1, 1, 1, 1)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-11)


def test_conv2d_backward_rejects_mismatched_arguments():
    x = np.zeros((2, 3, 8, 8))
    w = np.zeros((4, 3, 3, 3))
    y, cols = kernels.conv2d_forward(x, w, None, 1, 1, 0, 0)
    with pytest.raises(ValueError, match="gradOutput shape"):
        kernels.conv2d_backward(np.zeros((2, 4, 5, 5)), x.shape, cols, w, 1, 1, 0, 0)
    _, other = kernels.conv2d_forward(x[:1], w, None, 1, 1, 0, 0)
    with pytest.raises(ValueError, match="cols"):
        kernels.conv2d_backward(np.zeros_like(y), x.shape, other, w, 1, 1, 0, 0)


# ==========================================================================
# max pooling

# N, C, H, W, kH, kW, dH, dW, padH, padW, ceil
_POOL = [
    (4, 6, 28, 28, 2, 2, 2, 2, 0, 0, False),       # LeNet pool1
    (3, 16, 10, 10, 2, 2, 2, 2, 0, 0, False),      # LeNet pool2
    (2, 3, 7, 9, 2, 2, 2, 2, 0, 0, False),         # leftover row / column, dropped
    (2, 3, 7, 9, 2, 2, 2, 2, 0, 0, True),          # ceil: partial last windows
    (2, 2, 9, 7, 3, 2, 3, 2, 0, 0, True),
    (2, 2, 8, 8, 2, 2, 2, 2, 1, 1, False),         # non-overlapping with padding
    (2, 2, 9, 8, 3, 3, 3, 3, 1, 1, True),
    (2, 3, 9, 8, 3, 3, 2, 2, 1, 1, False),         # overlapping
    (2, 3, 9, 8, 3, 3, 2, 2, 1, 1, True),
    (1, 2, 7, 6, 3, 2, 1, 1, 1, 0, False),         # stride 1
    (1, 2, 10, 11, 2, 2, 3, 3, 0, 0, False),       # stride > kernel
    (1, 2, 10, 11, 2, 2, 3, 3, 1, 1, True),
    (1, 2, 5, 5, 1, 1, 3, 3, 0, 0, True),
    (1, 2, 5, 6, 1, 1, 1, 1, 0, 0, False),         # 1x1 window
    (1, 1, 20, 19, 17, 17, 1, 2, 8, 8, False),     # 289 cells per window (> 256)
    (1, 2, 6, 9, 2, 3, 2, 1, 0, 1, False),         # overlap on one axis only
]


def _ref_maxpool(x, kH, kW, dH, dW, pH, pW, oH, oW):
    """Loop transcription of THNN SpatialMaxPooling: a later cell wins if it is
    larger or NaN; a window of -inf keeps its first real cell."""
    N, C, H, W = x.shape
    y = np.empty((N, C, oH, oW), x.dtype)
    idx = np.empty((N, C, oH, oW), dtype=np.int64)
    for n, c, i, j in np.ndindex(N, C, oH, oW):
        best, arg = -np.inf, -1
        for h in range(max(i * dH - pH, 0), min(i * dH - pH + kH, H)):
            for w in range(max(j * dW - pW, 0), min(j * dW - pW + kW, W)):
                v = x[n, c, h, w]
                if arg < 0 or v > best or np.isnan(v):
                    best, arg = v, ((n * C + c) * H + h) * W + w
        y[n, c, i, j], idx[n, c, i, j] = best, arg
    return y, idx


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", _POOL)
def test_maxpool2d_paths_vs_torch(case, dtype):
    N, C, H, W, kH, kW, dH, dW, pH, pW, ceil = case
    rng = _rng(4)
    x = rng.permutation(N * C * H * W).reshape(N, C, H, W).astype(dtype)   # no ties
    x0 = x.copy()
    y, am = kernels.maxpool2d_forward(x, kH, kW, dH, dW, pH, pW, ceil)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = torch7_max_pool2d(xt, (kH, kW), (dH, dW), (pH, pW), ceil)
    assert y.shape == tuple(yt.shape) and y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_array_equal(y, yt.detach().numpy())
    plane = (np.arange(N * C) * (H * W)).reshape(N, C, 1, 1)
    assert am.dtype == np.int64 and am.shape == y.shape
    np.testing.assert_array_equal(am, np.where(it.numpy() < 0, -1, it.numpy() + plane))
    gy = rng.normal(size=y.shape).astype(dtype)
    gy0 = gy.copy()
    yt.backward(torch.tensor(gy))
    gx = kernels.maxpool2d_backward(gy, am, x.shape, kH, kW, dH, dW, pH, pW)
    assert gx.shape == x.shape and gx.dtype == dtype
    np.testing.assert_allclose(gx, xt.grad.numpy(), **_tol(dtype))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(gy, gy0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", _POOL)
def test_maxpool2d_ties_and_nan_vs_thnn_loop(case, dtype):
    N, C, H, W, kH, kW, dH, dW, pH, pW, ceil = case
    rng = _rng(5)
    x = rng.integers(0, 3, size=(N, C, H, W)).astype(dtype)        # many ties
    y, am = kernels.maxpool2d_forward(x, kH, kW, dH, dW, pH, pW, ceil)
    ry, ridx = _ref_maxpool(x, kH, kW, dH, dW, pH, pW, *y.shape[2:])
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(am, ridx)
    gx = kernels.maxpool2d_backward(np.ones_like(y), am, x.shape, kH, kW, dH, dW, pH, pW)
    np.testing.assert_array_equal(gx, np.bincount(ridx[ridx >= 0], minlength=x.size)
                                  .reshape(x.shape))
    # NaN wins (the last one of a window), -inf cells and windows
    x[rng.random(x.shape) < 0.15] = np.nan
    x[rng.random(x.shape) < 0.15] = -np.inf
    y, am = kernels.maxpool2d_forward(x, kH, kW, dH, dW, pH, pW, ceil)
    ry, ridx = _ref_maxpool(x, kH, kW, dH, dW, pH, pW, *y.shape[2:])
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(am, ridx)
    yt, _ = torch7_max_pool2d(torch.tensor(x), (kH, kW), (dH, dW), (pH, pW), ceil)
    np.testing.assert_array_equal(y, yt.numpy())


def test_maxpool2d_all_minus_inf_windows_pick_a_real_cell():
    # padded windows whose real cells are all -inf: the first real cell wins
    x = np.full((2, 3, 5, 6), -np.inf, dtype=np.float32)
    x[0, 0, 4, 5] = 1.0
    for args in ((3, 3, 2, 2, 1, 1, True), (2, 2, 2, 2, 1, 1, False), (3, 2, 1, 3, 1, 1, True)):
        y, am = kernels.maxpool2d_forward(x, *args)
        ry, ridx = _ref_maxpool(x, *args[:6], *y.shape[2:])
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(am, ridx)
        _, it = F.max_pool2d(torch.tensor(x), args[:2], args[2:4], args[4:6], ceil_mode=args[6],
                             return_indices=True)
        plane = (np.arange(6) * 30).reshape(2, 3, 1, 1)
        np.testing.assert_array_equal(am, it.numpy() + plane)


def test_maxpool2d_backward_accumulates_shared_winners():
    # overlapping windows share a winner: its gradient is the sum
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0
    y, am = kernels.maxpool2d_forward(x, 2, 2, 1, 1, 0, 0, False)
    assert np.all(am == 4)
    gy = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    gx = kernels.maxpool2d_backward(gy, am, x.shape, 2, 2, 1, 1, 0, 0)
    assert gx[0, 0, 1, 1] == 10.0 and gx.sum() == 10.0


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("case", [_CONV[0], _CONV[2], _CONV[3], _CONV[9], _CONV[10]])
def test_conv2d_non_finite_values_stay_where_torch_puts_them(case):
    # the wide rows compute (and drop) wrap-around columns; an inf there must not leak
    # into the gradients as 0 * inf = nan
    N, C, H, W, nOut, kH, kW, dH, dW, pH, pW, has_bias = case
    rng = _rng(6)
    x = rng.normal(size=(N, C, H, W))
    w = rng.normal(size=(nOut, C, kH, kW))
    x[0, 0, 1, 0] = np.inf
    x[-1, -1, -1, -1] = -np.inf
    w[0, 0, -1, -1] = np.inf
    y, cols = kernels.conv2d_forward(x, w, None, dH, dW, pH, pW)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    yt = F.conv2d(xt, wt, None, stride=(dH, dW), padding=(pH, pW))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-11)
    gy = rng.normal(size=y.shape)
    yt.backward(torch.tensor(gy))
    gx, gw, _ = kernels.conv2d_backward(gy, x.shape, cols, w, dH, dW, pH, pW)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-11)
