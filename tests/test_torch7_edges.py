"""Torch7 edge semantics a differential test found: SpatialMaxPooling's ceil mode with no
padding and a stride larger than the kernel (Torch7 keeps a last window that starts past the
input), and Normalize's gradient for p < 2 (Torch7's formula, not the exact gradient). Each
against a PyTorch transcription of the Torch7 source, plus finite differences where exact, the
numpy target and the CUDA target (host emulation)."""
import math

import numpy as np
import pytest
import torch

from conftest import build, central_differences, torch7_max_pool2d
from cuda_host import compare_with_numpy_target

torch.set_default_dtype(torch.float64)


def gmodule(body):
    return f"local x = nn.Identity()()\nreturn nn.gModule({{x}}, {{{body}(x)}})\n"


def batch(shape, n):
    return tuple(n if d == "B" else d for d in shape)


# ---- SpatialMaxPooling:ceil() ----------------------------------------------------------------

# (module, input shape, output shape Torch7 gives); kW, kH, dW, dH, padW, padH
POOL = [
    ("nn.SpatialMaxPooling(1, 1, 4, 4):ceil()", (1, 4, 4), (1, 2, 2)),  # the example
    ("nn.SpatialMaxPooling(1, 3, 2, 3, 0, 0):ceil()", (2, 5, 2), (2, 2, 2)),  # width 2 (PyTorch 1)
    ("nn.SpatialMaxPooling(2, 1, 4, 3):ceil()", ("B", 2, 5, 7), ("B", 2, 3, 3)),  # both axes
    ("nn.SpatialMaxPooling(2, 2, 3, 3):ceil()", ("B", 1, 7, 8), ("B", 1, 3, 3)),  # none past
    # padding on one axis: Torch7 drops the window past the input on both axes, as PyTorch
    ("nn.SpatialMaxPooling(2, 3, 4, 3, 0, 1):ceil()", ("B", 2, 5, 7), ("B", 2, 2, 2)),
]


def pool_args(ctor):
    """(kernel, stride, padding) as (h, w) pairs from a constructor's numbers."""
    nums = [int(v) for v in ctor[ctor.index("(") + 1:ctor.index(")")].split(",")]
    kW, kH, dW, dH = nums[:4]
    pW, pH = nums[4:6] if len(nums) > 4 else (0, 0)
    return (kH, kW), (dH, dW), (pH, pW)


@pytest.mark.parametrize("ctor, shape, out", POOL)
def test_maxpool_ceil_keeps_torch7_window_past_the_input(ctor, shape, out, tmp_path, rng):
    mod = build(gmodule(ctor), tmp_path, shapes={"input1": shape})
    assert tuple(mod.RESULT.graph.outputs[0].shape) == out
    m = mod.Model()
    x = rng.standard_normal(batch(shape, 3))
    y = m.forward(x)
    assert y.shape == batch(out, 3)
    # PyTorch with Torch7's rule (conftest.torch7_max_pool2d: -inf rows/columns added)
    xt = torch.tensor(x if len(shape) == 4 else x[None], requires_grad=True)
    yt, _ = torch7_max_pool2d(xt, *pool_args(ctor), ceil_mode=True)
    yt = yt if len(shape) == 4 else yt[0]
    np.testing.assert_array_equal(y, yt.detach().numpy())
    gy = rng.standard_normal(y.shape)
    gx = m.backward(x, gy)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(gx, (xt.grad if len(shape) == 4 else xt.grad[0]).numpy(), rtol=1e-12)


@pytest.mark.parametrize("ctor, shape, out", POOL[:3])
def test_maxpool_ceil_window_past_the_input_is_minus_inf_and_passes_no_gradient(
        ctor, shape, out, tmp_path, rng):
    m = build(gmodule(ctor), tmp_path, shapes={"input1": shape}).Model()
    x = rng.standard_normal(batch(shape, 2))
    y = m.forward(x)
    past = np.isneginf(y)
    assert past.any() and (past[..., -1, :].all() or past[..., :, -1].all())
    gy = rng.standard_normal(y.shape) * ~past  # 0 * -inf would be NaN: the loss skips them

    def loss():
        out = m.forward(x)
        return float((np.where(past, 0, out) * gy).sum())

    gx = m.backward(x, rng.standard_normal(y.shape) * past + gy)  # any gradient there: unused
    np.testing.assert_allclose(gx, central_differences(loss, x), rtol=1e-6, atol=1e-8)


@pytest.mark.slow  # a g++ build of the CUDA target's kernels
def test_maxpool_ceil_cuda_matches_numpy(host):
    body = ", ".join(f"{c}(x{k})" for k, (c, _, _) in enumerate(POOL))
    spec = ("local " + ", ".join(f"x{k}" for k in range(len(POOL))) + " = "
            + ", ".join(["nn.Identity()()"] * len(POOL)) + "\n"
            f"return nn.gModule({{{', '.join(f'x{k}' for k in range(len(POOL)))}}}, {{{body}}})\n")
    shapes = {f"input{k + 1}": "x".join(map(str, s)) for k, (_, s, _) in enumerate(POOL)}
    ref, cuda = compare_with_numpy_target(spec, shapes, "float64", steps=2)
    out = ref.forward(*[np.ones(batch(s, 2)) for _, s, _ in POOL])
    assert all(o.shape == batch(want, 2) for o, (_, _, want) in zip(out, POOL))


def test_maxpool_ceil_rule_is_documented():
    from graphc.ops import REGISTRY
    doc = REGISTRY["SpatialMaxPooling"].doc
    assert "past the input" in doc and "-inf" in doc and "no gradient" in doc


# ---- Normalize: Torch7's gradient -------------------------------------------------------------


def torch7_normalize_grad(x, gy, p, eps):
    """Normalize.lua's updateGradInput, transcribed (x, gy: N x d tensors)."""
    if math.isinf(p):
        absx = x.abs()
        norm, idx = absx.max(1, keepdim=True)
        norm = norm + eps
        g = norm * gy
        b = torch.zeros_like(x).scatter(1, idx, x.gather(1, idx) / norm)
        return (g - b * (x * gy).sum(1, keepdim=True)) / (norm * norm)
    buf = x.abs() ** p if p % 2 != 0 else x ** p
    normp = buf.sum(1, keepdim=True) + eps
    norm = normp ** (1 / p)
    if p % 2 != 0:
        b = ((x.abs() + eps) ** (p - 2) if p < 2 else x.abs() ** (p - 2)) * x
    elif p == 2:
        b = x
    else:
        b = x ** (p - 2) * x
    return (normp * gy - b * (x * gy).sum(1, keepdim=True)) / (normp * norm)


def exact_normalize_grad(x, gy, p, eps):
    xt = x.clone().requires_grad_(True)
    if math.isinf(p):
        y = xt / (xt.abs().max(1, keepdim=True)[0] + eps)
    else:
        y = xt / ((xt.abs() ** p).sum(1, keepdim=True) + eps) ** (1 / p)
    (y * gy).sum().backward()
    return xt.grad


NORMALIZE = [(p, eps) for p in (0.5, 1, 1.5, 2, 2.5, 3, 4, math.inf) for eps in (0.5, 1e-3)]


@pytest.mark.parametrize("p, eps", NORMALIZE)
@pytest.mark.parametrize("shape", [("B", 5), (4,)])
def test_normalize_gradient_is_torch7s_formula(p, eps, shape, tmp_path, rng):
    lua_p = "math.huge" if math.isinf(p) else repr(p)
    m = build(gmodule(f"nn.Normalize({lua_p}, {eps!r})"), tmp_path, shapes={"input1": shape}).Model()
    x = rng.standard_normal(batch(shape, 3))
    gy = rng.standard_normal(x.shape)
    m.forward(x)
    gx = m.backward(x, gy)
    t7 = torch7_normalize_grad(torch.tensor(x).reshape(-1, x.shape[-1]),
                               torch.tensor(gy).reshape(-1, x.shape[-1]), p, eps)
    np.testing.assert_allclose(gx, t7.reshape(x.shape).numpy(), rtol=1e-10, atol=1e-12)
    exact = exact_normalize_grad(torch.tensor(x).reshape(-1, x.shape[-1]),
                                 torch.tensor(gy).reshape(-1, x.shape[-1]), p, eps)
    off = np.abs(gx - exact.reshape(x.shape).numpy()).max()
    if p < 2 or math.isinf(p):  # Torch7's approximations; their error grows with eps
        assert off > (1e-3 if eps == 0.5 else 1e-9), off
    else:  # exact: autograd and finite differences agree
        assert off < 1e-10, off

        def loss():
            return float((m.forward(x) * gy).sum())
        np.testing.assert_allclose(gx, central_differences(loss, x), rtol=1e-5, atol=1e-7)


def test_normalize_gradient_choice_is_documented():
    from graphc.ops import REGISTRY
    diff = REGISTRY["Normalize"].torch_diff
    assert "(abs(x) + eps)^(p-2) x" in diff and "p < 2" in diff and "finite differences" in diff
    assert "math.huge" in diff
