"""graphc_runtime.criteria vs PyTorch (float64) and finite differences.

Every criterion: forward and backward against torch.nn.functional (or a direct
torch formula where PyTorch has no equivalent), size_average True/False, 1-D
and 2-D inputs, a central-difference check of backward, float32 in -> float32
out, and the errors raised on bad shapes/targets.
"""

import zlib

import numpy as np
import pytest

from graphc_runtime import criteria

import torch  # noqa: E402  (the test oracle; installed by .[test])
import torch.nn.functional as F  # noqa: E402


def _t(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def _log_softmax(a):
    a = a - a.max(axis=-1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=-1, keepdims=True))


def _red(size_average):
    return "mean" if size_average else "sum"


def _numgrad(f, x, h=1e-6):
    """Central differences of the scalar function f at x (float64)."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g


# --------------------------------------------------------------------------
# cases: name -> builder(rng, batched, size_average) returning
#   (criterion, input, target, torch_loss_fn(xt) -> tensor)
# torch_loss_fn gets the input as a float64 tensor requiring grad.


def _case_classnll(rng, batched, sa):
    C = 5
    w = rng.uniform(0.5, 2.0, size=C)
    x = _log_softmax(rng.normal(size=(6, C) if batched else C))
    t = np.array([0, 2, 4, 1, 2, 3]) if batched else 3
    ref = lambda xt: F.nll_loss(xt, torch.as_tensor(t), weight=_t(w), reduction=_red(sa))
    return criteria.ClassNLLCriterion(w, sa), x, t, ref


def _case_crossentropy(rng, batched, sa):
    C = 4
    w = rng.uniform(0.5, 2.0, size=C)
    x = rng.normal(size=(5, C) if batched else C)
    t = np.array([0, 3, 1, 1, 2]) if batched else 2
    ref = lambda xt: F.cross_entropy(xt, torch.as_tensor(t), weight=_t(w), reduction=_red(sa))
    return criteria.CrossEntropyCriterion(w, sa), x, t, ref


def _case_crossentropy_unweighted(rng, batched, sa):
    C = 3
    x = rng.normal(size=(4, C) if batched else C)
    t = np.array([2, 0, 1, 1]) if batched else 0
    ref = lambda xt: F.cross_entropy(xt, torch.as_tensor(t), reduction=_red(sa))
    return criteria.CrossEntropyCriterion(size_average=sa), x, t, ref


def _case_mse(rng, batched, sa):
    shape = (3, 4) if batched else (5,)
    x, y = rng.normal(size=shape), rng.normal(size=shape)
    return (criteria.MSECriterion(sa), x, y,
            lambda xt: F.mse_loss(xt, _t(y), reduction=_red(sa)))


def _case_abs(rng, batched, sa):
    shape = (3, 4) if batched else (5,)
    x, y = rng.normal(size=shape), rng.normal(size=shape)
    return (criteria.AbsCriterion(sa), x, y,
            lambda xt: F.l1_loss(xt, _t(y), reduction=_red(sa)))


def _case_smoothl1(rng, batched, sa):
    shape = (4, 5) if batched else (7,)
    x, y = rng.normal(scale=1.5, size=shape), rng.normal(size=shape)
    return (criteria.SmoothL1Criterion(sa), x, y,
            lambda xt: F.smooth_l1_loss(xt, _t(y), reduction=_red(sa), beta=1.0))


def _case_bce(rng, batched, sa):
    shape = (4, 3) if batched else (3,)
    x = rng.uniform(0.01, 0.99, size=shape)
    y = (rng.uniform(size=shape) > 0.5).astype(float)
    w = rng.uniform(0.5, 2.0, size=3)
    return (criteria.BCECriterion(w, sa), x, y,
            # weight= is slow to warm up in torch (~1.5 s); weight the unreduced loss
            lambda xt: getattr(F.binary_cross_entropy(xt, _t(y), reduction="none") * _t(w),
                               _red(sa))())


def _case_bce_soft_unweighted(rng, batched, sa):
    shape = (2, 5) if batched else (5,)
    x, y = rng.uniform(0.01, 0.99, size=shape), rng.uniform(size=shape)
    return (criteria.BCECriterion(size_average=sa), x, y,
            lambda xt: F.binary_cross_entropy(xt, _t(y), reduction=_red(sa)))


def _case_distkldiv(rng, batched, sa):
    shape = (3, 4) if batched else (6,)
    x = _log_softmax(rng.normal(size=shape))
    y = np.exp(_log_softmax(rng.normal(size=shape)))
    y.reshape(-1)[[1, 4]] = 0.0               # zero targets contribute nothing
    n = x.size if sa else 1
    return (criteria.DistKLDivCriterion(sa), x, y,
            lambda xt: F.kl_div(xt, _t(y), reduction="sum") / n)


def _case_margin(rng, batched, sa):
    shape = (3, 4) if batched else (6,)
    x = rng.normal(size=shape)
    y = np.where(rng.uniform(size=shape) > 0.5, 1.0, -1.0)
    margin = 0.7
    n = x.size if sa else 1
    return (criteria.MarginCriterion(margin, sa), x, y,
            lambda xt: torch.clamp(margin - xt * _t(y), min=0).sum() / n)


def _multimargin(p, weighted, margin):
    def case(rng, batched, sa):
        C = 5
        x = rng.normal(size=(4, C) if batched else C)
        t = np.array([1, 0, 4, 2]) if batched else 3
        w = rng.uniform(0.5, 2.0, size=C) if weighted else None
        ref = lambda xt: F.multi_margin_loss(
            xt, torch.as_tensor(t), p=p, margin=margin,
            weight=None if w is None else _t(w), reduction=_red(sa))
        return criteria.MultiMarginCriterion(p, w, margin, sa), x, t, ref
    return case


_CASES = {
    "ClassNLL_weighted": _case_classnll,
    "CrossEntropy_weighted": _case_crossentropy,
    "CrossEntropy": _case_crossentropy_unweighted,
    "MSE": _case_mse,
    "Abs": _case_abs,
    "SmoothL1": _case_smoothl1,
    "BCE_weighted": _case_bce,
    "BCE_soft": _case_bce_soft_unweighted,
    "DistKLDiv": _case_distkldiv,
    "Margin": _case_margin,
    "MultiMargin_p1": _multimargin(1, False, 1.0),
    "MultiMargin_p2_weighted": _multimargin(2, True, 0.5),
    "MultiMargin_p1_weighted_margin2": _multimargin(1, True, 2.0),
}


@pytest.mark.parametrize("size_average", [True, False])
@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("name", sorted(_CASES))
def test_vs_torch_and_finite_differences(name, batched, size_average):
    rng = np.random.default_rng(zlib.crc32(f"{name}{batched}{size_average}".encode()))
    crit, x, t, ref_fn = _CASES[name](rng, batched, size_average)
    loss = crit.forward(x, t)
    g = crit.backward(x, t)
    assert isinstance(loss, float) and crit.output == loss
    assert crit.gradInput is g
    assert g.shape == np.shape(x) and g.dtype == np.float64

    xt = _t(x, grad=True)
    ref = ref_fn(xt)
    ref.backward()
    # BCE: Torch7 takes log(x + 1e-12), PyTorch log(x) clamped at -100
    rtol = 1e-9 if name.startswith("BCE") else 1e-12
    assert loss == pytest.approx(ref.item(), rel=rtol, abs=1e-14)
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=max(rtol, 1e-10), atol=1e-14)

    num = _numgrad(lambda v: crit.forward(v, t), x)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)
    # forward/backward are pure: the input is untouched, aliases agree
    assert crit.updateOutput(x, t) == loss and crit(x, t) == loss
    np.testing.assert_array_equal(crit.updateGradInput(x, t), g)


@pytest.mark.parametrize("name", sorted(_CASES))
def test_float32_in_float32_out(name):
    rng = np.random.default_rng(7)
    crit, x, t, _ = _CASES[name](rng, True, True)
    x32 = np.asarray(x, dtype=np.float32)
    t32 = np.asarray(t, dtype=np.float32) if np.issubdtype(np.asarray(t).dtype, np.floating) else t
    loss64 = crit.forward(x, t)
    loss32 = crit.forward(x32, t32)
    g = crit.backward(x32, t32)
    assert g.dtype == np.float32 and g.shape == x32.shape
    assert loss32 == pytest.approx(loss64, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(g, crit.backward(x, t), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("size_average", [True, False])
def test_size_average_aliases(size_average):
    for cls in (criteria.MSECriterion, criteria.AbsCriterion, criteria.SmoothL1Criterion,
                criteria.DistKLDivCriterion, criteria.BCECriterion,
                criteria.CrossEntropyCriterion, criteria.MultiMarginCriterion,
                criteria.MarginCriterion, criteria.CosineEmbeddingCriterion):
        c = cls(sizeAverage=size_average)
        assert c.size_average is size_average and c.sizeAverage is size_average
        c.sizeAverage = not size_average
        assert c.size_average is (not size_average)


# --------------------------------------------------------------------------
# criterion-specific semantics


def test_abs_gradient_at_zero_is_positive_like_torch7():
    # THNN AbsCriterion: (x - y) >= 0 ? norm : -norm  (PyTorch l1_loss: 0)
    g = criteria.AbsCriterion().backward(np.array([1.0, 2.0]), np.array([1.0, 3.0]))
    np.testing.assert_array_equal(g, [0.5, -0.5])


def test_smoothl1_values_and_kink():
    c = criteria.SmoothL1Criterion(size_average=False)
    x = np.array([0.0, 0.5, 1.0, -3.0])
    assert c.forward(x, np.zeros(4)) == pytest.approx(0 + 0.125 + 0.5 + 2.5)
    np.testing.assert_array_equal(c.backward(x, np.zeros(4)), [0, 0.5, 1, -1])


def test_distkldiv_zero_and_negative_targets_are_skipped():
    c = criteria.DistKLDivCriterion(size_average=False)
    x = np.array([-1.0, -2.0, -0.5])
    y = np.array([0.0, 1.0, -0.25])        # only target > 0 counts (Torch)
    assert c.forward(x, y) == pytest.approx(1.0 * (0.0 + 2.0))
    np.testing.assert_array_equal(c.backward(x, y), [0.0, -1.0, 0.0])
    # size_average divides by the number of elements, not the batch size
    c2 = criteria.DistKLDivCriterion()
    assert c2.forward(x.reshape(1, 3), y.reshape(1, 3)) == pytest.approx(2.0 / 3)


def test_bce_eps_and_gradient_formula():
    c = criteria.BCECriterion(size_average=False)
    x, y = np.array([0.0, 1.0, 0.3]), np.array([0.0, 1.0, 1.0])
    # log(0 + 1e-12) never appears for matching 0/1 pairs; eps keeps it finite
    assert c.forward(x, y) == pytest.approx(-(np.log(1 + 1e-12) * 2 + np.log(0.3 + 1e-12)))
    assert np.isfinite(c.forward(np.array([0.0]), np.array([1.0])))   # -log(1e-12)
    eps = 1e-12
    np.testing.assert_allclose(c.backward(x, y), -(y - x) / ((1 - x + eps) * (x + eps)))


def test_bce_weights_broadcast_over_batch():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0.1, 0.9, size=(4, 3)), rng.uniform(size=(4, 3))
    w = np.array([1.0, 0.0, 2.0])
    c, plain = criteria.BCECriterion(w), criteria.BCECriterion()
    gw, gp = c.backward(x, y), plain.backward(x, y)
    np.testing.assert_allclose(gw, gp * w)
    assert c.forward(x, y) * 12 == pytest.approx(
        sum(w[j] * plain.forward(x[:, j], y[:, j]) * 4 for j in range(3)))


def test_crossentropy_squeezes_like_torch():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1, 5))
    c = criteria.CrossEntropyCriterion()
    loss = c.forward(x, np.array([3]))
    assert loss == pytest.approx(c.forward(x[0], 3))
    g = c.backward(x, np.array([3]))
    assert g.shape == (1, 5)
    np.testing.assert_allclose(g[0], c.backward(x[0], 3))
    # (B, 1, C) is squeezed to (B, C); the gradient keeps the original shape
    x3 = rng.normal(size=(4, 1, 3))
    t = np.array([[0], [2], [1], [1]])
    g3 = c.backward(x3, t)
    assert g3.shape == (4, 1, 3)
    np.testing.assert_allclose(g3[:, 0], c.backward(x3[:, 0], t[:, 0]))
    # rows of the softmax gradient sum to 0
    np.testing.assert_allclose(g3.sum(axis=-1), 0, atol=1e-15)
    assert c.weights is None


def test_crossentropy_extreme_logits_are_stable():
    c = criteria.CrossEntropyCriterion()
    x = np.array([[1000.0, 0.0, -1000.0]])
    assert c.forward(x, np.array([0])) == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.isfinite(c.backward(x, np.array([2]))))


def test_multimargin_matches_thnn_loop():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4))
    t = np.array([2, 0, 3])
    w = np.array([1.0, 2.0, 0.5, 3.0])
    margin, p = 0.8, 2
    total = 0.0
    for i in range(3):
        for d in range(4):
            z = margin - x[i, t[i]] + x[i, d]
            if d != t[i] and z > 0:
                total += z ** p * w[t[i]]
    c = criteria.MultiMarginCriterion(p, w, margin, size_average=False)
    assert c.forward(x, t) == pytest.approx(total / 4)
    assert criteria.MultiMarginCriterion(p, w, margin).forward(x, t) == pytest.approx(total / 12)


@pytest.mark.parametrize("size_average", [True, False])
@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("margin", [0.0, 0.3, -0.2])
def test_cosine_embedding_vs_torch(batched, size_average, margin):
    rng = np.random.default_rng(int(batched) * 10 + int(size_average) + int(margin * 10) + 50)
    shape = (6, 4) if batched else (4,)
    x1, x2 = rng.normal(size=shape), rng.normal(size=shape)
    if batched:
        y = np.array([1, -1, -1, 1, -1, 1])
        x2[1] = x1[1] * 2.0                      # cos = 1 for a y = -1 row
    else:
        y = -1.0
    crit = criteria.CosineEmbeddingCriterion(margin, size_average)
    loss = crit.forward((x1, x2), y)
    g1, g2 = crit.backward([x1, x2], y)
    assert crit.gradInput[0] is g1 and crit.gradInput[1] is g2
    assert g1.shape == shape and g2.shape == shape

    a, b = _t(x1, grad=True), _t(x2, grad=True)
    ref = F.cosine_embedding_loss(a, b, _t(y), margin=margin, reduction=_red(size_average))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(g1, a.grad.numpy(), rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(g2, b.grad.numpy(), rtol=1e-9, atol=1e-13)

    n1 = _numgrad(lambda v: crit.forward((v, x2), y), x1)
    n2 = _numgrad(lambda v: crit.forward((x1, v), y), x2)
    np.testing.assert_allclose(g1, n1, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g2, n2, rtol=1e-6, atol=1e-8)


def test_cosine_embedding_float32_and_inactive_rows():
    x1 = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    x2 = np.array([[0.0, 1.0], [0.0, 2.0]], dtype=np.float32)
    c = criteria.CosineEmbeddingCriterion(0.0, size_average=False)
    # row 0: y=-1, cos=0 -> max(0, 0) = 0 (inactive); row 1: y=1, cos=1 -> 0 (inactive)
    assert c.forward((x1, x2), np.array([-1, 1])) == pytest.approx(0.0, abs=1e-6)
    g1, g2 = c.backward((x1, x2), np.array([-1, 1]))
    assert g1.dtype == np.float32 and not g1.any() and not g2.any()


# --------------------------------------------------------------------------
# SequencerCriterion


def test_sequencer_criterion_sums_steps_and_returns_list():
    rng = np.random.default_rng(8)
    T, B, C = 4, 3, 5
    xs = [_log_softmax(rng.normal(size=(B, C))) for _ in range(T)]
    ts = [rng.integers(0, C, size=B) for _ in range(T)]
    inner = criteria.ClassNLLCriterion()
    seq = criteria.SequencerCriterion(inner)
    loss = seq.forward(xs, ts)
    assert loss == pytest.approx(sum(inner.forward(x, t) for x, t in zip(xs, ts)))
    grads = seq.backward(xs, ts)
    assert isinstance(grads, list) and len(grads) == T and seq.gradInput is grads
    for x, t, g in zip(xs, ts, grads):
        np.testing.assert_array_equal(g, inner.backward(x, t))
    # one clone per step, each keeping its own output/gradInput
    assert len(seq.clones) == T and len({id(c) for c in seq.clones}) == T
    assert all(c is not inner for c in seq.clones)
    assert seq.clones[2].gradInput is grads[2]
    # vs torch: the summed per-step NLL
    xt = [_t(x, grad=True) for x in xs]
    ref = sum(F.nll_loss(a, torch.as_tensor(t)) for a, t in zip(xt, ts))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    for g, a in zip(grads, xt):
        np.testing.assert_allclose(g, a.grad.numpy(), rtol=1e-12)


def test_sequencer_criterion_arrays_size_average_and_tables():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 2, 3))
    seq = criteria.SequencerCriterion(criteria.MSECriterion(), size_average=True)
    assert seq.sizeAverage is True
    loss = seq.forward(x, y)
    mse = criteria.MSECriterion()
    assert loss == pytest.approx(np.mean([mse.forward(x[i], y[i]) for i in range(5)]))
    g = seq.backward(x, y)
    assert isinstance(g, np.ndarray) and g.shape == x.shape
    np.testing.assert_allclose(g[3], mse.backward(x[3], y[3]) / 5)
    num = _numgrad(lambda v: seq.forward(v, y), x)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-9)
    # a table criterion per step: gradients are per-step pairs
    cos = criteria.SequencerCriterion(criteria.CosineEmbeddingCriterion())
    pairs = [(rng.normal(size=(2, 3)), rng.normal(size=(2, 3))) for _ in range(3)]
    ys = [np.array([1, -1])] * 3
    loss = cos.forward(pairs, ys)
    grads = cos.backward(pairs, ys)
    assert len(grads) == 3 and all(len(p) == 2 for p in grads)
    assert loss == pytest.approx(sum(criteria.CosineEmbeddingCriterion().forward(p, t)
                                     for p, t in zip(pairs, ys)))


def test_sequencer_criterion_errors():
    seq = criteria.SequencerCriterion(criteria.MSECriterion())
    with pytest.raises(ValueError, match="as many elements"):
        seq.forward([np.zeros(2)] * 3, [np.zeros(2)] * 2)
    with pytest.raises(ValueError, match="as many elements"):
        seq.backward(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(TypeError):
        seq.forward(1.0, [1.0])
    with pytest.raises(TypeError, match="criterion"):
        criteria.SequencerCriterion(object())


# --------------------------------------------------------------------------
# errors


def test_shape_and_target_errors():
    x = np.zeros((2, 3))
    for c in (criteria.MSECriterion(), criteria.AbsCriterion(), criteria.SmoothL1Criterion(),
              criteria.DistKLDivCriterion(), criteria.BCECriterion(), criteria.MarginCriterion()):
        with pytest.raises(ValueError, match="same number of elements"):
            c.forward(x, np.zeros(5))
        with pytest.raises(ValueError, match="same number of elements"):
            c.backward(x, np.zeros(7))
    with pytest.raises(ValueError, match="between 0~1"):
        criteria.BCECriterion().forward(np.array([0.5, 1.5]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="between 0~1"):
        criteria.BCECriterion().backward(np.array([np.nan]), np.array([0.0]))
    with pytest.raises(ValueError, match="weights has 2"):
        criteria.BCECriterion(np.ones(2)).forward(np.full((2, 3), 0.5), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="1-D"):
        criteria.BCECriterion(np.ones((2, 2)))
    with pytest.raises(ValueError, match="must be 1 or -1"):
        criteria.MarginCriterion().forward(np.zeros(3), np.array([1, 0, -1]))
    with pytest.raises(ValueError, match="p=1 and p=2"):
        criteria.MultiMarginCriterion(p=3)
    mm = criteria.MultiMarginCriterion()
    with pytest.raises(ValueError, match=r"target 3 .*out of range.*0\.\.2"):
        mm.forward(x, np.array([0, 3]))
    with pytest.raises(ValueError, match="batch size 2"):
        mm.forward(x, np.array([0]))
    with pytest.raises(ValueError, match="vector or matrix"):
        mm.forward(np.zeros((2, 2, 2)), np.array([0, 1]))
    with pytest.raises(TypeError, match="integer"):
        mm.forward(x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="weights has 4"):
        criteria.MultiMarginCriterion(1, np.ones(4)).forward(x, np.array([0, 1]))
    ce = criteria.CrossEntropyCriterion()
    with pytest.raises(ValueError, match="1D or 2D"):
        ce.forward(np.zeros((2, 3, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"target 4 .*out of range"):
        ce.backward(x, np.array([4, 0]))
    with pytest.raises(ValueError, match="weights has 2"):
        criteria.CrossEntropyCriterion(np.ones(2)).forward(x, np.array([0, 1]))
    cos = criteria.CosineEmbeddingCriterion()
    with pytest.raises(ValueError, match="pair"):
        cos.forward(np.zeros((2, 3)), np.array([1, 1]))
    with pytest.raises(ValueError, match="same shape"):
        cos.forward((np.zeros((2, 3)), np.zeros((2, 4))), np.array([1, 1]))
    with pytest.raises(ValueError, match="2 row"):
        cos.forward((np.ones((2, 3)), np.ones((2, 3))), np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="must be 1 or -1"):
        cos.backward((np.ones((2, 3)), np.ones((2, 3))), np.array([1, 0]))
    with pytest.raises(ValueError, match="1D or 2D"):
        cos.forward((np.ones((1, 2, 3)), np.ones((1, 2, 3))), np.array([1]))
