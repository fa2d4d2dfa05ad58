"""MixtureTable: the gater-weighted sum of a table of experts or of an expert tensor."""
import numpy as np
import pytest
import torch

from conftest import build
from graphc.compiler import parse_shape


@pytest.mark.parametrize("form", ["table", "tensor", "table_1d"])
def test_mixture_table_vs_torch(tmp_path, rng, form):
    if form == "table":
        spec = """g = nn.Identity()(); e1 = nn.Identity()(); e2 = nn.Identity()(); e3 = nn.Identity()()
        return nn.gModule({g, e1, e2, e3}, {nn.MixtureTable()({nn.SoftMax()(g), nn.Identity()({e1, e2, e3})})})"""
        shapes = {"input1": "Bx3", "input2": "Bx2x4", "input3": "Bx2x4", "input4": "Bx2x4"}
    elif form == "table_1d":
        spec = """g = nn.Identity()(); e1 = nn.Identity()(); e2 = nn.Identity()()
        return nn.gModule({g, e1, e2}, {nn.MixtureTable()({g, nn.Identity()({e1, e2})})})"""
        shapes = {"input1": "2", "input2": "5", "input3": "5"}
    else:
        spec = """g = nn.Identity()(); e = nn.Identity()()
        return nn.gModule({g, e}, {nn.MixtureTable()({nn.SoftMax()(g), e})})"""
        shapes = {"input1": "Bx3", "input2": "Bx3x4"}
    m = build(spec, tmp_path, shapes={k: parse_shape(v) for k, v in shapes.items()}).Model(dtype="float64")
    xs = [rng.standard_normal([4 if d == "B" else int(d) for d in s.split("x")]) for s in shapes.values()]
    out = m.forward(*xs)
    gy = rng.standard_normal(out.shape)
    grads = m.backward(tuple(xs), gy)
    t = [torch.tensor(x, requires_grad=True) for x in xs]
    if form == "table":
        w = torch.softmax(t[0], 1)
        ref = sum(w[:, i].reshape(-1, 1, 1) * t[i + 1] for i in range(3))
    elif form == "table_1d":
        ref = t[0][0] * t[1] + t[0][1] * t[2]
    else:
        ref = torch.einsum("bn,bnd->bd", torch.softmax(t[0], 1), t[1])
    (ref * torch.tensor(gy)).sum().backward()
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-12)
    for a, b in zip(grads, t):
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=1e-10, atol=1e-13)
