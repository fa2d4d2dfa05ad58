"""The op-test harness, shared by the op case tables (tests/test_ops.py, test_ops_library.py,
test_ops_more.py): each case is one module applied to graph inputs, checked forward against
PyTorch, backward against PyTorch autograd and against central finite differences (float64),
non-batch input as a batch of one, and float32 kept float32, on the numpy target and on the
CPU target (--target cpu: the fused kernels, built at -O2 here, vectorized as at -O3).

A CASES table maps a case name to (body, shapes, torch reference[, input makers[, rtol]]):
`body` is Lua applied to the inputs named in `shapes` (name -> "Bx3"...), `reference(xs, ps)`
computes the output from torch tensors (inputs, parameters in PARAMETERS order), the
optional makers turn standard normal arrays into what the case feeds (one for all inputs,
or a list with one per input), and rtol defaults to 1e-10. A test file gets the four tests
for its table with

    (test_forward_backward_vs_torch, test_backward_vs_finite_differences,
     test_non_batch_input_is_a_batch_of_one, test_float32_stays_float32) = op_tests(CASES)
"""
import warnings

import numpy as np
import pytest
import torch

from conftest import build, central_differences
from graphc.compiler import parse_shape

torch.set_default_dtype(torch.float64)


def make_spec(body, shapes):
    names = list(shapes)
    lines = [f"local {n} = nn.Identity()()" for n in names]
    lines.append(f"local out = {body}")
    lines.append(f"return nn.gModule({{{', '.join(names)}}}, {{out}})")
    return "\n".join(lines) + "\n"


def shape_opts(shapes):
    return {f"input{i + 1}": parse_shape(s) for i, s in enumerate(shapes.values())}


_compiled = {}


def compiled(entry, tmp_path, dtype="float64", target="numpy"):
    """The compiled case (cached, since compiling is most of a test's time; the key holds
    the memory plan's threshold, which tests/test_memory_plan.py lowers)."""
    from graphc.passes import memory
    body, shapes = entry[:2]
    key = (body, tuple(shapes.items()), dtype, memory.MIN_ELEMENTS, target)
    if key not in _compiled:
        _compiled[key] = build(make_spec(body, shapes), tmp_path, dtype=dtype,
                               shapes=shape_opts(shapes), target=target)
    return _compiled[key]


TARGETS = ("numpy", "cpu")  # the `target` fixture (conftest.py) of the harness tests




def tolerance(entry):
    return entry[4] if len(entry) > 4 else 1e-10


def random_inputs(entry, batch, rng):
    shapes = entry[1]
    makers = entry[3] if len(entry) > 3 else None
    if not isinstance(makers, list):
        makers = [makers] * len(shapes)
    xs = []
    for s, fn in zip(shapes.values(), makers):
        dims = [batch if d == "B" else int(d) for d in s.split("x")]
        x = rng.standard_normal(dims)
        xs.append(fn(x) if fn else x)
    return xs


def is_float(x):
    return np.issubdtype(x.dtype, np.floating)


def torch_run(ref, xs, params, gy):
    txs = [torch.tensor(x, requires_grad=is_float(x)) for x in xs]
    tps = [torch.tensor(p, requires_grad=True) for p in params]
    out = ref(txs, tps)
    (out * torch.tensor(gy)).sum().backward()
    grads = [(t.grad.numpy() if t.grad is not None else np.zeros_like(x)) if is_float(x) else None
             for t, x in zip(txs, xs)]
    return (out.detach().numpy(), grads,
            [t.grad.numpy() if t.grad is not None else np.zeros_like(p) for t, p in zip(tps, params)])


def as_tuple(g):
    return g if isinstance(g, tuple) else (g,)


def check_forward_backward_vs_torch(entry, tmp_path, rng, target_zero_grad=False, target="numpy"):
    """Forward, input and parameter gradients against PyTorch (float64), and gradients
    accumulating across backward calls (accGradParameters). `target_zero_grad`: input 2 is a
    criterion's target, which gets a zero gradient (ModuleFromCriterion), not its derivative."""
    mod = compiled(entry, tmp_path, target=target)
    ref = entry[2]
    m = mod.Model(dtype="float64", seed=3)
    flat_w, flat_g = m.getParameters()
    flat_w[:] = rng.standard_normal(flat_w.size) * 0.5
    xs = random_inputs(entry, 3, rng)
    out = m.forward(*xs)
    gy = rng.standard_normal(out.shape)
    m.zeroGradParameters()
    gins = as_tuple(m.backward(tuple(xs), (gy,)))
    t_out, t_gin, t_gp = torch_run(ref, xs, [w for _, w in m.parameters()], gy)
    if target_zero_grad and t_gin[1] is not None:
        t_gin[1] = np.zeros_like(t_gin[1])
    tol = tolerance(entry)
    assert out.shape == t_out.shape
    np.testing.assert_allclose(out, t_out, rtol=tol, atol=tol / 100)
    for a, b in zip(gins, t_gin):
        if b is None:
            assert a is None  # integer inputs get no gradient
            continue
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol / 100)
    for (name, g), b in zip(m.gradParameters(), t_gp):
        np.testing.assert_allclose(g, b, rtol=tol, atol=tol / 100, err_msg=name)
    if flat_g.size:
        before = flat_g.copy()
        m.forward(*xs)
        m.backward(tuple(xs), (gy,))
        np.testing.assert_allclose(flat_g, 2 * before, rtol=1e-12)


def check_backward_vs_finite_differences(entry, tmp_path, rng, target_zero_grad=False, target="numpy"):
    mod = compiled(entry, tmp_path, target=target)
    m = mod.Model(dtype="float64", seed=5)
    flat_w, flat_g = m.getParameters()
    xs = random_inputs(entry, 2, rng)
    out = m.forward(*xs)
    gy = rng.standard_normal(out.shape)
    m.zeroGradParameters()
    gins = as_tuple(m.backward(tuple(xs), (gy,)))

    def loss():
        return float((m.forward(*xs) * gy).sum())

    for k, (x, gx) in enumerate(zip(xs, gins)):
        if not is_float(x):
            continue
        if k == 1 and target_zero_grad:
            assert not gx.any()
            continue
        np.testing.assert_allclose(gx, central_differences(loss, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(flat_g, central_differences(loss, flat_w), rtol=1e-5, atol=1e-7)


def check_non_batch_input_is_a_batch_of_one(entry, tmp_path, rng, target="numpy"):
    mod = compiled(entry, tmp_path, target=target)
    m = mod.Model(dtype="float64")
    xs = random_inputs(entry, 1, rng)
    batched = m.forward(*xs)
    single = m.forward(*[x[0] for x in xs])
    if mod.OUTPUTS[0][1][0] == "B":
        assert single.shape == batched.shape[1:]
        np.testing.assert_allclose(single, batched[0], rtol=1e-12)
    else:  # a criterion's loss: a 1-element tensor either way
        assert single.shape == batched.shape == (1,)
        np.testing.assert_allclose(single, batched, rtol=1e-12)
    gy = rng.standard_normal(single.shape)
    g1 = as_tuple(m.backward(tuple(x[0] for x in xs), (gy,)))
    for g, x in zip(g1, xs):
        assert g is None or g.shape == x.shape[1:]


def check_float32_stays_float32(entry, tmp_path, rng, target="numpy"):
    mod = compiled(entry, tmp_path, dtype="float32", target=target)
    m = mod.Model()
    xs = [x.astype("float32") if is_float(x) else x for x in random_inputs(entry, 2, rng)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / divide warnings either
        out = m.forward(*xs)
        assert out.dtype == np.float32
        gins = as_tuple(m.backward(tuple(xs), (np.ones_like(out),)))
    assert all(g.dtype == np.float32 for g in gins if g is not None)
    assert m.getParameters()[1].dtype == np.float32


def op_tests(cases, criteria=()):
    """The four harness tests, parametrized over `cases`. `criteria`: case-name prefixes
    whose second input is a criterion's target (it gets a zero gradient)."""
    batched = sorted(c for c in cases if all(s.startswith("B") for s in cases[c][1].values()))

    on_targets = pytest.mark.parametrize("target", TARGETS, indirect=True)

    @on_targets
    @pytest.mark.parametrize("case", sorted(cases))
    def test_forward_backward_vs_torch(case, tmp_path, rng, target):
        check_forward_backward_vs_torch(cases[case], tmp_path, rng, case.startswith(criteria), target)

    @on_targets
    @pytest.mark.parametrize("case", sorted(cases))
    def test_backward_vs_finite_differences(case, tmp_path, rng, target):
        check_backward_vs_finite_differences(cases[case], tmp_path, rng, case.startswith(criteria),
                                             target)

    @on_targets
    @pytest.mark.parametrize("case", batched)
    def test_non_batch_input_is_a_batch_of_one(case, tmp_path, rng, target):
        check_non_batch_input_is_a_batch_of_one(cases[case], tmp_path, rng, target)

    @on_targets
    @pytest.mark.parametrize("case", sorted(cases))
    def test_float32_stays_float32(case, tmp_path, rng, target):
        check_float32_stays_float32(cases[case], tmp_path, rng, target)

    return (test_forward_backward_vs_torch, test_backward_vs_finite_differences,
            test_non_batch_input_is_a_batch_of_one, test_float32_stays_float32)
