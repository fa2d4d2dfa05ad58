"""Symbolic batch dims: Torch's View/Reshape batch rules and nn.Bottle.

A dim may be B times a whole number, (B*5) after View(-1, 4) on Bx5x4. Each case runs the
generated numpy module against PyTorch (forward, input and parameter gradients) and its
backward against central finite differences (float64), at two batch sizes; then the shape
texts (check, --emit ir, INPUTS/OUTPUTS), the runtime's checks of B*k arrays, the memory
plan's B*k scratch arrays, and the located errors where Torch only guessed.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import build, central_differences
from graphc.compiler import Options, compile_spec, parse_shape
from graphc.errors import SpecError
from graphc.ir.graph import B, BatchDim

torch.set_default_dtype(torch.float64)

# name -> (spec body applied to x (or x1, x2), shapes, torch reference(inputs, params),
#          the output shape graphc gives)
CASES = {
    # a -1 absorbs the batch: (B*5)x4, and a Linear over every position
    "View_fold": ("nn.Linear(4, 3)(nn.View(-1, 4)(x))", {"x": "Bx5x4"},
                  lambda xs, ps: F.linear(xs[0].reshape(-1, 4), ps[0], ps[1]), (BatchDim(5), 3)),
    # ... and View(-1, T, D) folds it back
    "View_unfold": ("nn.View(-1, 5, 3)(nn.Tanh()(nn.Linear(4, 3)(nn.View(-1, 4)(x))))", {"x": "Bx5x4"},
                    lambda xs, ps: torch.tanh(F.linear(xs[0].reshape(-1, 4), ps[0], ps[1])).reshape(-1, 5, 3),
                    (B, 5, 3)),
    # View(-1) without setNumInputDims flattens the batch too (Torch)
    "View_flatten_all": ("nn.View(-1)(x)", {"x": "Bx3x4"}, lambda xs, ps: xs[0].reshape(-1),
                         (BatchDim(12),)),
    # the batch ends where the -1 is: 3x(B*2) from Bx6, as Torch's view gives
    "View_minus1_inside": ("nn.View(3, -1)(x)", {"x": "Bx6"}, lambda xs, ps: xs[0].reshape(3, -1),
                           (3, BatchDim(2))),
    # setNumInputDims(n): the dims before the last n are the batch, folded into one
    "View_setNumInputDims": ("nn.View(2, 2):setNumInputDims(1)(x)", {"x": "Bx5x4"},
                             lambda xs, ps: xs[0].reshape(-1, 2, 2), (BatchDim(5), 2, 2)),
    "View_setNumInputDims_minus1": ("nn.View(-1):setNumInputDims(2)(x)", {"x": "Bx2x3x4"},
                                    lambda xs, ps: xs[0].reshape(-1, 12), (BatchDim(2), 12)),
    # Reshape keeps a folded batch first (batchMode nil and true)
    "Reshape_folded": ("nn.Reshape(2, 2)(nn.View(-1, 4)(x))", {"x": "Bx5x4"},
                       lambda xs, ps: xs[0].reshape(-1, 2, 2), (BatchDim(5), 2, 2)),
    "Reshape_batchMode": ("nn.Reshape(4, 1, true)(x)", {"x": "Bx4"},
                          lambda xs, ps: xs[0].reshape(-1, 4, 1), (B, 4, 1)),
    # nn.Bottle: the module runs on the leading dims folded into one
    "Bottle_Linear": ("nn.Bottle(nn.Linear(4, 3))(x)", {"x": "Bx5x4"},
                      lambda xs, ps: F.linear(xs[0], ps[0], ps[1]), (B, 5, 3)),
    "Bottle_4d_Sequential": ("nn.Bottle(nn.Sequential():add(nn.Linear(4, 3)):add(nn.SoftMax()))(x)",
                             {"x": "Bx2x5x4"},
                             lambda xs, ps: torch.softmax(F.linear(xs[0], ps[0], ps[1]), -1), (B, 2, 5, 3)),
    "Bottle_nOutputDim": ("nn.Bottle(nn.Sum(2), 2, 1)(x)", {"x": "Bx5x4"},
                          lambda xs, ps: xs[0].sum(2), (B, 5)),
    "Bottle_nInputDim4": ("nn.Bottle(nn.SpatialConvolution(2, 3, 3, 3), 4)(x)", {"x": "Bx2x2x5x5"},
                          lambda xs, ps: F.conv2d(xs[0].reshape(-1, 2, 5, 5), ps[0], ps[1]).reshape(-1, 2, 3, 3, 3),
                          (B, 2, 3, 3, 3)),
    # no fold needed: the module gets the input as it is
    "Bottle_no_fold": ("nn.Bottle(nn.Linear(4, 3))(x)", {"x": "Bx4"},
                       lambda xs, ps: F.linear(xs[0], ps[0], ps[1]), (B, 3)),
}


def make_spec(body, shapes):
    names = list(shapes)
    lines = [f"local {n} = nn.Identity()()" for n in names]
    lines.append(f"local out = {body}")
    lines.append(f"return nn.gModule({{{', '.join(names)}}}, {{out}})")
    return "\n".join(lines) + "\n"


def compiled(case, tmp_path, **opts):
    body, shapes, ref, _ = CASES[case]
    shape_opts = {f"input{i + 1}": parse_shape(s) for i, s in enumerate(shapes.values())}
    return build(make_spec(body, shapes), tmp_path, shapes=shape_opts, **opts)


def random_inputs(case, batch, rng):
    return [rng.standard_normal([batch if d == "B" else int(d) for d in s.split("x")])
            for s in CASES[case][1].values()]


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_shape(case):
    body, shapes, _, want = CASES[case]
    opts = Options(shapes={f"input{i + 1}": parse_shape(s) for i, s in enumerate(shapes.values())})
    g = compile_spec("case.lua", opts, text=make_spec(body, shapes)).graph
    assert g.outputs[0].shape == want


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("batch", [3, 1])
def test_forward_backward_vs_torch(case, batch, tmp_path, rng):
    mod = compiled(case, tmp_path)
    m = mod.Model(dtype="float64", seed=3)
    flat_w, _ = m.getParameters()
    flat_w[:] = rng.standard_normal(flat_w.size) * 0.5
    xs = random_inputs(case, batch, rng)
    out = m.forward(*xs)
    gy = rng.standard_normal(out.shape)
    m.zeroGradParameters()
    gins = m.backward(tuple(xs), (gy,))
    gins = gins if isinstance(gins, tuple) else (gins,)
    txs = [torch.tensor(x, requires_grad=True) for x in xs]
    tps = [torch.tensor(w, requires_grad=True) for _, w in m.parameters()]
    t_out = CASES[case][2](txs, tps)
    (t_out * torch.tensor(gy)).sum().backward()
    assert out.shape == tuple(t_out.shape)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, t in zip(gins, txs):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)
    for (name, g), t in zip(m.gradParameters(), tps):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_backward_vs_finite_differences(case, tmp_path, rng):
    mod = compiled(case, tmp_path)
    m = mod.Model(dtype="float64", seed=5)
    flat_w, flat_g = m.getParameters()
    xs = random_inputs(case, 2, rng)
    out = m.forward(*xs)
    gy = rng.standard_normal(out.shape)
    m.zeroGradParameters()
    gins = m.backward(tuple(xs), (gy,))
    gins = gins if isinstance(gins, tuple) else (gins,)

    def loss():
        return float((m.forward(*xs) * gy).sum())

    for x, gx in zip(xs, gins):
        np.testing.assert_allclose(gx, central_differences(loss, x), rtol=1e-5, atol=1e-7)
    if flat_w.size:
        np.testing.assert_allclose(flat_g, central_differences(loss, flat_w), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", sorted(CASES))
def test_unbatched_call_is_a_batch_of_one(case, tmp_path, rng):
    """Inputs without B: a batch of one; outputs that start with B lose it, a B*k dim is k."""
    mod = compiled(case, tmp_path)
    m = mod.Model(dtype="float64")
    xs = random_inputs(case, 1, rng)
    batched = m.forward(*xs)
    single = m.forward(*[x[0] for x in xs])
    lead = mod.OUTPUTS[0][1][0] == "B"
    np.testing.assert_allclose(single, batched[0] if lead else batched, rtol=1e-12)
    gy = rng.standard_normal(single.shape)
    g1 = m.backward(tuple(x[0] for x in xs), (gy,))
    gb = m.backward(tuple(xs), (gy[None] if lead else gy,))
    np.testing.assert_allclose(g1, gb[0], rtol=1e-12)


# ---- the shape texts -------------------------------------------------------------------------

FOLD = """
local x = nn.Identity()()
local rows = nn.View(-1, 4)(x)
local h = nn.Tanh()(nn.Linear(4, 3)(rows))
return nn.gModule({x}, {nn.View(-1, 5, 3)(h), h})
"""


def test_shapes_are_written_with_the_product(tmp_path):
    opts = Options(shapes={"input1": parse_shape("Bx5x4")}, emit="ir")
    ir = compile_spec("fold.lua", opts, text=FOLD).source
    assert "%3: (B*5)x4 = View{sizes=(-1, 4)}" in ir
    assert "= View{sizes=(-1, 5, 3)}" in ir and ": Bx5x3 = View" in ir
    mod = build(FOLD, tmp_path, shapes={"input1": parse_shape("Bx5x4")})
    assert mod.INPUTS == (("input1", ("B", 5, 4), "float"),)
    assert mod.OUTPUTS == (("output1", ("B", 5, 3)), ("output2", ("B*5", 3)))
    assert "output2: (B*5)x3" in repr(mod.Model())


def test_check_prints_the_product(tmp_path, capsys):
    from graphc.cli import main
    spec = tmp_path / "fold.lua"
    spec.write_text(FOLD)
    assert main(["check", str(spec), "--shape", "input1=Bx5x4"]) == 0
    out = capsys.readouterr().out
    assert "(B*5)x4" in out and "output2 (h): (B*5)x3" in out


# ---- the runtime -----------------------------------------------------------------------------

def test_runtime_checks_product_dims(tmp_path, rng):
    mod = build(FOLD, tmp_path, shapes={"input1": parse_shape("Bx5x4")})
    m = mod.Model(dtype="float64")
    x = rng.standard_normal((3, 5, 4))
    back, rows = m.forward(x)
    assert back.shape == (3, 5, 3) and rows.shape == (15, 3)
    np.testing.assert_array_equal(back.reshape(15, 3), rows)
    g = m.backward(x, (np.ones((3, 5, 3)), np.ones((15, 3))))
    assert g.shape == (3, 5, 4)
    with pytest.raises(ValueError, match=r"gradient of output 'output2': expected shape "
                                         r"\(B\*5\)x3, got 14x3 \(dim 1 must be 5 times"):
        m.backward(x, (np.ones((3, 5, 3)), np.ones((14, 3))))
    with pytest.raises(ValueError, match=r"expected shape \(B\*5\)x3, got 10x3 .*batch size 3"):
        m.backward(x, (np.ones((3, 5, 3)), np.ones((10, 3))))
    # an unbatched call is a batch of one: B*5 rows are 5 rows, and B-first outputs lose B
    back1, rows1 = m.forward(x[0])
    assert back1.shape == (5, 3) and rows1.shape == (5, 3)
    g1 = m.backward(x[0], (np.ones((5, 3)), np.ones((5, 3))))
    assert g1.shape == (5, 4)
    np.testing.assert_allclose(g1, m.backward(x[:1], (np.ones((1, 5, 3)), np.ones((5, 3))))[0])


WIDE = """
local x = nn.Identity()()
local rows = nn.View(-1, 64)(x)
local h = nn.Tanh()(nn.Linear(64, 64)(rows))
local y = nn.Sigmoid()(nn.Linear(64, 64)(h))
return nn.gModule({x}, {nn.View(-1, 5, 64)(nn.CMulTable()({h, y}))})
"""


def test_memory_plan_scratch_arrays_of_product_shape(tmp_path, rng):
    shapes = {"input1": parse_shape("Bx5x64")}
    planned = build(WIDE, tmp_path, shapes=shapes)
    plain = build(WIDE, tmp_path, shapes=shapes, optimize=False)
    shapes_used = planned.SCRATCH["forward"] + planned.SCRATCH["backward"]
    assert ("B*5", 64) in shapes_used, shapes_used
    a, b = planned.Model(dtype="float64", seed=0), plain.Model(dtype="float64", seed=0)
    for batch in (3, 2, 3):  # scratch arrays are made per batch size and reused
        x = rng.standard_normal((batch, 5, 64))
        gy = rng.standard_normal((batch, 5, 64))
        np.testing.assert_allclose(a.forward(x), b.forward(x), rtol=1e-13)
        np.testing.assert_allclose(a.backward(x, gy), b.backward(x, gy), rtol=1e-13)
        np.testing.assert_allclose(a.getParameters()[1], b.getParameters()[1], rtol=1e-13)


SEQUENCE_LOSS = """
local x = nn.Identity()()
local target = nn.Identity()()
local scores = nn.LogSoftMax()(nn.Linear(4, 6)(nn.View(-1, 4)(x)))
local loss = nn.ClassNLLCriterion()({scores, nn.View(-1)(target)})
return nn.gModule({x, target}, {loss})
"""


def test_sequence_loss_over_folded_rows(tmp_path, rng):
    """A loss over every time step: scores and targets folded to (B*5) rows."""
    mod = build(SEQUENCE_LOSS, tmp_path, shapes={"input1": parse_shape("Bx5x4"),
                                                 "input2": parse_shape("Bx5")})
    assert mod.INPUTS[1] == ("input2", ("B", 5), "index")
    m = mod.Model(dtype="float64", seed=0)
    x, t = rng.standard_normal((3, 5, 4)), rng.integers(1, 7, (3, 5))
    loss = m.forward(x, t)
    gx, gt = m.backward((x, t), np.ones(1))
    assert gt is None
    tx = torch.tensor(x, requires_grad=True)
    w, b = (torch.tensor(a, requires_grad=True) for _, a in m.parameters())
    want = F.nll_loss(F.log_softmax(F.linear(tx.reshape(-1, 4), w, b), 1),
                      torch.tensor(t).reshape(-1) - 1)
    want.backward()
    np.testing.assert_allclose(loss, [want.item()], rtol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.getParameters()[1], np.concatenate([w.grad.numpy().ravel(),
                                                                     b.grad.numpy()]), rtol=1e-10)
    np.testing.assert_allclose(gx, central_differences(lambda: float(m.forward(x, t)[0]), x),
                               rtol=1e-5, atol=1e-8)


# ---- errors: where Torch only guessed ----------------------------------------------------------

@pytest.mark.parametrize("body,shape,message", [
    # sizes without -1 whose per-sample count does not match: Torch guessed a batch size
    ("nn.View(8)(x)", "Bx5x4", r"nn\.View\(8\): the input has 5x4 = 20 elements per sample, but "
                               r"the view holds 8 \(input shape: Bx5x4\)"),
    ("nn.View(-1, 3)(x)", "Bx5x4", r"nn\.View\(-1, 3\): cannot fit 20 elements into -1x3"),
    ("nn.View(3):setNumInputDims(1)(x)", "Bx5x4", r"setNumInputDims\(1\): the input Bx5x4 has 4 = 4 "
                                                  r"elements per sample, but the view holds 3"),
    ("nn.Reshape(4, false)(x)", "Bx4", r"batchMode=false cannot reshape across the batch dim B"),
    ("nn.Reshape(3)(nn.View(-1, 4)(x))", "Bx5x4", r"the input has 4 = 4 elements per sample, but "
                                                  r"the shape holds 3"),
    ("nn.Linear(4, 3)(nn.View(2, -1)(x))", "Bx4", r"Linear\(4 -> 3\) expects input of shape 4 or "
                                                  r"Nx4, got 2x\(B\*2\)"),
    ("nn.Bottle(nn.Sum(2))(x)", "Bx5x4", r"nn\.Bottle: its module gives a 1-D \(\(B\*5\)\) output "
                                         r"for the folded input \(B\*5\)x4; expected 2-D"),
    ("nn.Bottle(nn.Linear(4, 3))(x)", "Bx5x6", r"Linear\(4 -> 3\) expects input of shape 4 or "
                                               r"Nx4, got \(B\*5\)x6"),
])
def test_located_errors(body, shape, message):
    spec = make_spec(body, {"x": shape})
    with pytest.raises(SpecError, match=message) as e:
        compile_spec("bad.lua", Options(shapes={"input1": parse_shape(shape)}), text=spec)
    assert e.value.loc is not None and e.value.loc.line == 2


def test_bottle_needs_a_module():
    with pytest.raises(SpecError, match=r"nn\.Bottle expects a module first"):
        compile_spec("bad.lua", Options(), text="return nn.Bottle(2)")


def test_a_batch_dim_in_an_image_s_height_is_a_located_error():
    """A View that moves B into a convolution's height was an internal error (found by
    compiling lstm-char-cnn without its --shape): now it is located at the convolution."""
    from conftest import compile_error
    err, text = compile_error(
        "local input = nn.Identity()()\n"
        "local out = nn.SpatialConvolution(1, 2, 3, 1)(nn.View(1, -1, 3):setNumInputDims(2)(input))\n"
        "return nn.gModule({input}, {out})\n", shapes={"input1": ("B", 3)})
    assert (err.loc.line, err.loc.col) == (2, 13)
    assert "nn.SpatialConvolution: an image's height and width must be fixed sizes, but one is " \
           "the batch dimension B" in text


def test_cudnn_reports_a_version():
    from conftest import build
    mod = build("require 'cudnn'\nlocal x = nn.Identity()()\nlocal n = cudnn.version >= 4000 "
                "and 3 or 1\nreturn nn.gModule({x}, {cudnn.ReLU()(nn.Linear(3, n)(x))})\n")
    assert mod.OUTPUTS[0][1] == ("B", 3)
