"""Table modules, index inputs, and train/evaluate modules: vs PyTorch and finite differences."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import build, central_differences, compile_error
from graphc.compiler import parse_shape

torch.set_default_dtype(torch.float64)


def fd_check(m, xs, flat_w, flat_g, gys, idx=(), eps=1e-6, rtol=1e-5):
    """Compare m's backward (already run) with central differences of sum(out * gy)."""
    def loss():
        out = m.forward(*xs)
        outs = out if isinstance(out, tuple) else (out,)
        return sum(float((o * g).sum()) for o, g in zip(outs, gys))
    np.testing.assert_allclose(flat_g, central_differences(loss, flat_w, eps), rtol=rtol, atol=1e-7)


def test_split_select_narrow_flatten(tmp_path, rng):
    spec = """
    x = nn.Identity()()
    a, b, c = nn.SplitTable(2)(nn.Reshape(3, 2)(nn.Linear(4, 6)(x))):split(3)
    t = nn.FlattenTable()(nn.Identity()({a, nn.Identity()({b, c})}))
    s = nn.CAddTable()(nn.NarrowTable(2, 2)(t))
    y = nn.CMulTable()({s, nn.SelectTable(-3)(t)})
    return nn.gModule({x}, {y})
    """
    mod = build(spec, tmp_path)
    m = mod.Model(dtype="float64")
    flat_w, flat_g = m.getParameters()
    x = rng.standard_normal((5, 4))
    y = m.forward(x)
    gy = rng.standard_normal(y.shape)
    gx = m.backward(x, gy)
    W, b = [torch.tensor(w, requires_grad=True) for _, w in m.parameters()]
    tx = torch.tensor(x, requires_grad=True)
    r = F.linear(tx, W, b).reshape(5, 3, 2)
    ty = (r[:, 1] + r[:, 2]) * r[:, 0]
    (ty * torch.tensor(gy)).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(flat_g, np.concatenate([W.grad.numpy().ravel(), b.grad.numpy()]), rtol=1e-12)
    fd_check(m, [x], flat_w, flat_g.copy(), [gy])


def test_split_output_left_unused_gets_a_zero_gradient(tmp_path, rng):
    spec = """
    x = nn.Identity()()
    y = nn.SelectTable(2)(nn.SplitTable(2)(x))
    return nn.gModule({x}, {nn.Tanh()(y)})
    """
    m = build(spec, tmp_path, shapes={"input1": ("B", 3)}).Model(dtype="float64")
    x = rng.standard_normal((2, 3))
    m.forward(x)
    g = m.backward(x, np.ones(2))
    assert np.all(g[:, [0, 2]] == 0) and np.all(g[:, 1] != 0)


def test_split_needs_a_known_shape(tmp_path):
    err, text = compile_error("x = nn.Identity()()\nm = nn.gModule({x}, {nn.CAddTable()(nn.SplitTable(2)(x))})\n")
    assert "cannot infer the shape of input 'input1'" in err.message or "--shape" in err.message


def test_table_inputs_and_nested_outputs(tmp_path, rng):
    spec = """
    t = nn.Identity()()
    h = nn.Identity()()
    j = nn.JoinTable(2)(t)
    inner = nn.ConcatTable():add(nn.Tanh()):add(nn.Sigmoid())
    return nn.gModule({t, h}, {inner(j), nn.CAddTable()({h, nn.Linear(5, 2)(j)})})
    """
    mod = build(spec, tmp_path, shapes={"input1": parse_shape("{Bx2,Bx3}"), "input2": parse_shape("Bx2")})
    assert mod.INPUT_STRUCTURE == ((0, 1), 2) and mod.OUTPUT_STRUCTURE == ((0, 1), 2)
    assert [n for n, _, _ in mod.INPUTS] == ["input1[1]", "input1[2]", "input2"]
    m = mod.Model(dtype="float64")
    a, b, h = rng.standard_normal((4, 2)), rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    (o1, o2), o3 = m.forward([a, b], h)
    j = np.concatenate([a, b], 1)
    np.testing.assert_allclose(o1, np.tanh(j))
    np.testing.assert_allclose(o2, 1 / (1 + np.exp(-j)))
    (ga, gb), gh = m.backward(([a, b], h), ([np.ones((4, 5)), np.ones((4, 5))], np.ones((4, 2))))
    assert ga.shape == (4, 2) and gb.shape == (4, 3)
    np.testing.assert_allclose(gh, np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"inputs 1: expected a table \(list\) of 2, got one array"):
        m.forward(a, h)


def test_parallel_table_and_concat(tmp_path, rng):
    spec = """
    x = nn.Identity()()
    pt = nn.ParallelTable():add(nn.Linear(3, 2)):add(nn.Tanh())
    c = nn.Concat(2):add(nn.Linear(3, 4)):add(nn.Identity())
    p1, p2 = pt({x, x2}):split(2)
    return nn.gModule({x, x2}, {p1, p2, c(x)})
    """.replace("x = nn.Identity()()", "x = nn.Identity()()\n    x2 = nn.Identity()()")
    m = build(spec, tmp_path, shapes={"input2": ("B", 2)}).Model(dtype="float64")
    x, x2 = rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    p1, p2, c = m.forward(x, x2)
    W1, b1, W2, b2 = [w for _, w in m.parameters()]
    np.testing.assert_allclose(p1, x @ W1.T + b1)
    np.testing.assert_allclose(p2, np.tanh(x2))
    np.testing.assert_allclose(c, np.concatenate([x @ W2.T + b2, x], 1))


def test_lookup_table_vs_torch(tmp_path, rng):
    spec = "i = nn.Identity()()\nreturn nn.gModule({i}, {nn.Tanh()(nn.LookupTable(7, 3)(i))})\n"
    for shape in (("B", 4), (5,)):
        mod = build(spec, tmp_path, shapes={"input1": shape})
        assert mod.INPUTS[0][2] == "index"
        m = mod.Model(dtype="float64", seed=1)
        idx = rng.integers(1, 8, (2, 4) if shape[0] == "B" else (5,))
        out = m.forward(idx)
        gy = rng.standard_normal(out.shape)
        assert m.backward(idx, gy) is None  # indices take no gradient
        W = torch.tensor(m.parameters()[0][1], requires_grad=True)
        ty = torch.tanh(F.embedding(torch.tensor(idx - 1), W))
        (ty * torch.tensor(gy)).sum().backward()
        np.testing.assert_allclose(out, ty.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(m.getParameters()[1].reshape(7, 3), W.grad.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match=r"nn.LookupTable \(input input1\): index 8 is out of range 1..7"):
        m.forward(np.array([1, 8, 2, 3, 4]))
    with pytest.raises(ValueError, match="expected an integer array"):
        m.forward(np.ones(5, bool))


def test_float_indices_are_torch_style(tmp_path):
    """LookupTable and OneHot take float arrays holding integers (char-rnn feeds them a
    float tensor), converted exactly; a fraction, NaN, or a value past 2^53 is a ValueError
    naming the input and the first bad position; int arrays are unchanged."""
    spec = ("i = nn.Identity()()\nreturn nn.gModule({i}, {nn.LookupTable(7, 3)(i), "
            "nn.OneHot(7)(i)})\n")
    m = build(spec, tmp_path, shapes={"input1": ("B", 4)}).Model(dtype="float64")
    idx = np.array([[1, 7, 2, 2], [5, 3, 1, 4]])
    want = m.forward(idx)
    for dtype in (np.float32, np.float64):
        got = m.forward(idx.astype(dtype))
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m.forward(idx[0].astype(float))[0], want[0][0])  # unbatched
    for value, text in [(2.5, "2.5"), (np.nan, "nan"), (2.0 ** 60, "1.152921504606847e+18")]:
        bad = idx.astype(float)
        bad[1, 2] = value
        with pytest.raises(ValueError, match=rf"input 'input1': index {re.escape(text)} at "
                                             r"position \[1, 2\] is not a whole number"):
            m.forward(bad)
    with pytest.raises(ValueError, match=r"nn.LookupTable \(input input1\): index 8 is out of "
                                         r"range 1..7 \(indices are 1-based\) at position \[0, 3\]"):
        m.forward(np.array([[1, 2, 3, 8], [9, 1, 1, 1]], float))


def test_sequence_takes_float_indices(tmp_path, rng):
    """--unroll T's Sequence (a T x B index input) takes them too, as char-rnn feeds it."""
    spec = ("x = nn.Identity()()\nh = nn.Identity()()\n"
            "nh = nn.Tanh()(nn.CAddTable()({nn.LookupTable(6, 3)(x), nn.Linear(3, 3)(h)}))\n"
            "return nn.gModule({x, h}, {nh})\n")
    mod = build(spec, tmp_path, shapes={"input1": ("B",), "input2": ("B", 3)}, unroll="T",
                state=[("output1", "input2")])
    seq = mod.Sequence(mod.Model(dtype="float64"))
    idx, h0 = rng.integers(1, 7, (5, 2)), rng.standard_normal((2, 3))
    want = seq.forward(idx, h0)
    np.testing.assert_array_equal(seq.forward(idx.astype(np.float32), h0), want)
    bad = idx.astype(float)
    bad[3, 1] = 0.5
    with pytest.raises(ValueError, match=r"input 'input1': index 0.5 at position \[3, 1\]"):
        seq.forward(bad, h0)


def test_lookup_padding_value_gets_no_gradient(tmp_path):
    spec = "i = nn.Identity()()\nreturn nn.gModule({i}, {nn.LookupTable(4, 2, 2)(i)})\n"
    m = build(spec, tmp_path, shapes={"input1": (3,)}).Model(dtype="float64")
    idx = np.array([1, 2, 2])
    m.forward(idx)
    m.backward(idx, np.ones((3, 2)))
    g = m.getParameters()[1].reshape(4, 2)
    np.testing.assert_array_equal(g, [[1, 1], [0, 0], [0, 0], [0, 0]])


def test_one_hot(tmp_path):
    spec = "i = nn.Identity()()\nreturn nn.gModule({i}, {nn.Linear(4, 2)(nn.OneHot(4)(i))})\n"
    mod = build(spec, tmp_path)
    m = mod.Model(dtype="float64")
    out = m.forward(np.array([1, 4, 2]))
    W, b = [w for _, w in m.parameters()]
    np.testing.assert_allclose(out, W.T[[0, 3, 1]] + b)
    assert m.backward(np.array([1, 4, 2]), np.ones((3, 2))) is None


@pytest.mark.parametrize("v1", [False, True])
def test_dropout_train_and_evaluate(tmp_path, v1):
    spec = f"x = nn.Identity()()\nreturn nn.gModule({{x}}, {{nn.Dropout(0.25, {str(v1).lower()})(x)}})\n"
    m = build(spec, tmp_path, shapes={"input1": ("B", 1000)}).Model(dtype="float64", seed=3)
    x = np.ones((20, 1000))
    y = m.forward(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1.0 if v1 else 1 / 0.75)
    g = m.backward(x, np.full_like(x, 2.0))
    np.testing.assert_allclose(g, 2 * y)  # the same mask, scaled the same way
    m.evaluate()
    np.testing.assert_allclose(m.forward(x), 0.75 if v1 else 1.0)
    np.testing.assert_allclose(m.backward(x, np.ones_like(x)), 0.75 if v1 else 1.0)
    a = build(spec, tmp_path, shapes={"input1": ("B", 1000)}).Model(dtype="float64", seed=3)
    np.testing.assert_array_equal(a.forward(x), y)  # seeded: reproducible masks


@pytest.mark.parametrize("kind,shape", [("BatchNormalization", (6, 3)), ("SpatialBatchNormalization", (4, 3, 2, 5))])
def test_batch_normalization_vs_torch(tmp_path, rng, kind, shape):
    shp = "Bx" + "x".join(map(str, shape[1:]))
    spec = f"x = nn.Identity()()\nreturn nn.gModule({{x}}, {{nn.{kind}(3, 1e-5, 0.2)(x)}})\n"
    mod = build(spec, tmp_path, shapes={"input1": parse_shape(shp)})
    assert [n for n, _, _ in mod.BUFFERS] == ["batchnormalization1.running_mean" if kind[0] == "B" else
                                             "spatialbatchnormalization1.running_mean",
                                             mod.BUFFERS[1][0]]
    m = mod.Model(dtype="float64", seed=2)
    x = rng.standard_normal(shape) * 2 + 1
    gy = rng.standard_normal(shape)
    W, b = [torch.tensor(w.copy(), requires_grad=True) for _, w in m.parameters()]
    rm, rv = torch.zeros(3), torch.ones(3)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.batch_norm(tx, rm, rv, W, b, training=True, momentum=0.2, eps=1e-5)
    (ty * torch.tensor(gy)).sum().backward()
    y = m.forward(x)
    gx = m.backward(x, gy)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m.getParameters()[1], np.concatenate([W.grad.numpy(), b.grad.numpy()]), rtol=1e-9)
    np.testing.assert_allclose(m._buffers[0], rm.numpy(), rtol=1e-12)  # running stats, unbiased var
    np.testing.assert_allclose(m._buffers[1], rv.numpy(), rtol=1e-12)
    m.evaluate()
    ey = F.batch_norm(torch.tensor(x), rm, rv, W.detach(), b.detach(), training=False, eps=1e-5)
    np.testing.assert_allclose(m.forward(x), ey.numpy(), rtol=1e-10, atol=1e-12)
    # buffers are saved and loaded with the weights
    m.save(tmp_path / "bn.npz")
    other = mod.Model(dtype="float64")
    other.load(tmp_path / "bn.npz")
    np.testing.assert_allclose(other._buffers[1], rv.numpy())
