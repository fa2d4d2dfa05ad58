"""The sample models (samples/*.lua) against hand-written PyTorch twins, plus the CLI on them.

Each sample is compiled in float64; the PyTorch model gets the very same flat parameter
vector (sliced in PARAMETERS order), and forward outputs, input gradients and the flat
parameter gradient must agree to ~1e-10 for random inputs and random output gradients.
The comparisons run on the numpy target and on the CPU target (--target cpu, built with its
default flags: the code users get).
"""
import importlib.util
import math
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphc.compiler import Options, compile_spec, parse_shape

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

RTOL, ATOL = 1e-10, 1e-12

# sample -> the --shape options it needs ({}: the Linear layers fix every input shape)
SHAPES = {
    "cadd": {"input1": "Bx3", "input2": "Bx3"},
    "parallel": {"input1": "10x2"},
    "rnn": {},
    "lstm": {},
    "lenet": {"input1": "Bx1x32x32"},
}


def compile_sample(name, dtype="float64", target="numpy"):
    shapes = {k: parse_shape(v) for k, v in SHAPES[name].items()}
    res = compile_spec(str(SAMPLES / f"{name}.lua"), Options(shapes=shapes, dtype=dtype, target=target))
    mod = types.ModuleType(f"sample_{name}")
    exec(compile(res.source, f"<generated {name}.lua>", "exec"), mod.__dict__)
    return mod


_cache = {}


def sample(name, target="numpy"):
    if (name, target) not in _cache:
        _cache[name, target] = compile_sample(name, target=target)
    return _cache[name, target]


# ---- the PyTorch twins: f(inputs, params) -> tuple of outputs --------------------------
# p maps a layer label to its (weight, bias) tensors; TWINS lists the labels in constructor
# order, which is the order of the flat parameter vector.


def torch_cadd(xs, p):
    x1, x2 = xs
    return (x1 + x2,)


def torch_parallel(xs, p):
    # nn.Parallel(2, 1): column j of the 10x2 input through module j, joined along dim 1
    (x,) = xs
    (w1, b1), (w2, b2) = p["lin1"], p["lin2"]
    return (torch.cat([F.linear(x[:, 0], w1, b1), F.linear(x[:, 1], w2, b2)], dim=0),)


def torch_rnn(xs, p):
    x, prev_h = xs
    return (torch.tanh(F.linear(x, *p["i2h"]) + F.linear(prev_h, *p["h2h"])),)


def torch_lstm(xs, p, rnn_size=2):
    x, prev_c, prev_h = xs
    pre = F.linear(x, *p["i2h"]) + F.linear(prev_h, *p["h2h"])
    gates = torch.sigmoid(pre[:, :3 * rnn_size])
    in_transform = torch.tanh(pre[:, 3 * rnn_size:4 * rnn_size])
    in_gate = gates[:, :rnn_size]
    forget_gate = gates[:, rnn_size:2 * rnn_size]
    out_gate = gates[:, 2 * rnn_size:3 * rnn_size]
    next_c = forget_gate * prev_c + in_gate * in_transform
    next_h = out_gate * torch.tanh(next_c)
    return next_c, next_h


def torch_lenet(xs, p):
    (x,) = xs
    y = F.max_pool2d(F.relu(F.conv2d(x, *p["conv1"])), 2, 2)
    y = F.max_pool2d(F.relu(F.conv2d(y, *p["conv2"])), 2, 2)
    y = y.reshape(y.shape[0], 16 * 5 * 5)
    y = F.relu(F.linear(y, *p["fc1"]))
    y = F.relu(F.linear(y, *p["fc2"]))
    return (F.log_softmax(F.linear(y, *p["fc3"]), dim=1),)


TWINS = {
    "cadd": (torch_cadd, []),
    "parallel": (torch_parallel, ["lin1", "lin2"]),
    "rnn": (torch_rnn, ["i2h", "h2h"]),
    "lstm": (torch_lstm, ["i2h", "h2h"]),
    "lenet": (torch_lenet, ["conv1", "conv2", "fc1", "fc2", "fc3"]),
}


def torch_params(mod, flat_w, layers):
    """Slice the flat vector in PARAMETERS order into leaf tensors, grouped (weight, bias)
    per layer in the order `layers` lists them (= constructor order)."""
    leaves, offset = [], 0
    for name, shape, _ in mod.PARAMETERS:
        n = math.prod(shape)
        t = torch.tensor(flat_w[offset:offset + n].reshape(shape), dtype=torch.float64,
                         requires_grad=True)
        leaves.append((name, t))
        offset += n
    assert offset == flat_w.size
    assert len(leaves) == 2 * len(layers), [n for n, _ in leaves]
    for (wname, w), (bname, b) in zip(leaves[0::2], leaves[1::2]):
        assert wname.endswith("weight") and bname.endswith("bias"), (wname, bname)
    grouped = {layer: (leaves[2 * i][1], leaves[2 * i + 1][1]) for i, layer in enumerate(layers)}
    return grouped, [t for _, t in leaves]


def shape_of(dims, batch):
    return tuple(batch if d == "B" else d for d in dims)


def compare(name, batch, rng, target="numpy"):
    """batch: an int, or None for inputs given without their batch dimension."""
    mod = sample(name, target)
    fn, layers = TWINS[name]
    m = mod.Model(dtype="float64", seed=0)
    flat_w, flat_g = m.getParameters()
    flat_w[...] = rng.uniform(-0.5, 0.5, flat_w.shape)  # the same random weights for both
    m.zeroGradParameters()

    batched = batch is not None
    in_shapes = [shape_of(s, batch) if batched else tuple(d for d in s if d != "B")
                 for _, s, _ in mod.INPUTS]
    out_shapes = [shape_of(s, batch) if batched else tuple(d for d in s if d != "B")
                  for _, s in mod.OUTPUTS]
    xs = [rng.standard_normal(s) for s in in_shapes]
    gs = [rng.standard_normal(s) for s in out_shapes]
    xs_before = [x.copy() for x in xs]

    out = m.forward(*xs)
    outs = out if isinstance(out, tuple) else (out,)
    gin = m.backward(tuple(xs), tuple(gs))
    gins = gin if isinstance(gin, tuple) else (gin,)
    for x, x0 in zip(xs, xs_before):
        np.testing.assert_array_equal(x, x0)  # inputs are never modified

    params, leaves = torch_params(mod, flat_w, layers)
    txs = [torch.tensor(x, requires_grad=True) for x in xs]
    # a non-batch input of a batched model is a batch of one, as in Torch
    unbatch = (not batched) and mod.INPUTS[0][1][0] == "B"
    feed = [t.unsqueeze(0) for t in txs] if unbatch else txs
    touts = fn(feed, params)
    if unbatch:
        touts = tuple(t.squeeze(0) for t in touts)
    assert len(outs) == len(touts) == len(gs)
    torch.autograd.backward(touts, [torch.tensor(g) for g in gs])

    for o, t in zip(outs, touts):
        assert o.shape == tuple(t.shape)
        np.testing.assert_allclose(o, t.detach().numpy(), rtol=RTOL, atol=ATOL)
    assert len(gins) == len(txs)
    for g, t in zip(gins, txs):
        assert g.shape == t.shape
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=RTOL, atol=ATOL)
    if leaves:
        want = np.concatenate([t.grad.numpy().ravel() for t in leaves])
        np.testing.assert_allclose(flat_g, want, rtol=RTOL, atol=ATOL)
    else:
        assert flat_g.size == 0
    return m, xs, gs, flat_g.copy()


ON_TARGETS = pytest.mark.parametrize("target", ["numpy", "cpu"])


def require(target):
    if target == "cpu":
        from cuda_host import require_cpu_target
        require_cpu_target()


@ON_TARGETS
@pytest.mark.parametrize("name", ["cadd", "rnn", "lstm", "lenet"])
@pytest.mark.parametrize("batch", [1, 5, None], ids=["B1", "B5", "nobatch"])
def test_sample_matches_torch(name, batch, rng, target):
    require(target)
    compare(name, batch, rng, target)


@ON_TARGETS
def test_parallel_matches_torch(rng, target):
    # the tutorial's input is a plain 10x2 matrix: nn.Parallel's dims are absolute
    require(target)
    compare("parallel", None, rng, target)
    assert sample("parallel").INPUTS[0][1] == (10, 2)
    assert sample("parallel").OUTPUTS[0][1] == (5,)


def test_parameter_layout():
    lstm = sample("lstm")
    assert [(n, s) for n, s, _ in lstm.PARAMETERS] == [
        ("i2h.weight", (8, 3)), ("i2h.bias", (8,)), ("h2h.weight", (8, 2)), ("h2h.bias", (8,))]
    lenet = sample("lenet")
    assert [s for _, s, _ in lenet.PARAMETERS] == [
        (6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 400), (120,), (84, 120), (84,),
        (10, 84), (10,)]
    assert lenet.Model().getParameters()[0].size == 61706


def test_backward_accumulates_parameter_gradients(rng):
    m, xs, gs, g1 = compare("lstm", 4, rng)
    m.forward(*xs)
    m.backward(tuple(xs), tuple(gs))
    np.testing.assert_allclose(m.getParameters()[1], 2 * g1, rtol=RTOL, atol=ATOL)
    m.zeroGradParameters()
    assert not m.getParameters()[1].any()


# ---- the CLI on the samples, and training -------------------------------------------------
# These run as subprocesses. They are all started together when the first test of this file
# runs (the `cli` fixture) and work in the background while the in-process tests run; each
# test below then waits for its own process.


def _graphc_cmd(*args):
    return [sys.executable, "-m", "graphc", *args]


def _shape_args(name):
    return [a for k, v in SHAPES[name].items() for a in ("--shape", f"{k}={v}")]


class Run:
    def __init__(self, cmd, env=None):
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._result = None

    def result(self):
        """(returncode, stdout, stderr), waiting for the process."""
        if self._result is None:
            out, err = self.proc.communicate(timeout=120)
            self._result = (self.proc.returncode, out, err)
        return self._result


@pytest.fixture(scope="module", autouse=True)
def cli(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    runs = {"train": Run([sys.executable, str(SAMPLES / "train_lenet.py"), "--quick",
                          "--plot", str(out / "lenet_loss.png")])}
    for name in SHAPES:
        runs[name] = Run(_graphc_cmd("compile", f"samples/{name}.lua", *_shape_args(name),
                                     "-o", str(out / f"{name}_gen.py")))
    runs["tutorial"] = Run(_graphc_cmd("compile", "samples/lenet_tutorial.lua",
                                       "--shape", "input1=Bx1x32x32"))
    for seed in ("1", "2"):  # dict/set iteration order must not leak into the output
        runs[f"lstm{seed}"] = Run(_graphc_cmd("compile", "samples/lstm.lua", "-o",
                                              str(out / f"lstm{seed}.py")),
                                  env=dict(os.environ, PYTHONHASHSEED=seed))
    yield out, runs
    for run in runs.values():
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def import_path(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", list(SHAPES))
def test_cli_compile_imports_and_runs(name, cli):
    out, runs = cli
    rc, _, err = runs[name].result()
    assert rc == 0, err
    mod = import_path(out / f"{name}_gen.py", f"{name}_gen")
    m = mod.Model(seed=0)
    assert m.dtype == np.float32
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(shape_of(s, 3)).astype(np.float32) for _, s, _ in mod.INPUTS]
    out = m.forward(*xs)
    outs = out if isinstance(out, tuple) else (out,)
    assert [o.shape for o in outs] == [shape_of(s, 3) for _, s in mod.OUTPUTS]
    assert all(np.isfinite(o).all() for o in outs)
    gin = m.backward(tuple(xs), tuple(np.ones_like(o) for o in outs))
    gins = gin if isinstance(gin, tuple) else (gin,)
    assert [g.shape for g in gins] == [x.shape for x in xs]


def test_sample_headers_give_the_command():
    for name, shapes in SHAPES.items():
        text = (SAMPLES / f"{name}.lua").read_text()
        header = text.split("\n\n")[0]
        assert f"graphc compile samples/{name}.lua" in header
        for k, v in shapes.items():
            assert f"--shape {k}={v}" in header


def test_lenet_tutorial_fails_at_the_view(cli):
    path = "samples/lenet_tutorial.lua"
    lines = (ROOT / path).read_text().splitlines()
    view_lines = [i for i, line in enumerate(lines, 1) if line.startswith("net:add(nn.View(")]
    assert len(view_lines) == 1
    line = view_lines[0]
    col = lines[line - 1].index("nn.View") + 1

    rc, out, stderr = cli[1]["tutorial"].result()
    assert rc == 1
    assert out == ""
    assert "Traceback" not in stderr
    err = stderr.splitlines()
    first = err[0]
    assert re.match(rf"^{re.escape(path)}:{line}:\d+: error: .*View", first), stderr
    assert first.startswith(f"{path}:{line}:{col}: error: "), stderr
    assert "1600" in first and "400" in first  # 16x10x10 elements, but the view holds 16*5*5
    # then the source line and a caret under the View
    assert err[1].strip() == lines[line - 1].strip()
    caret_line = err[2]
    assert caret_line.strip() == "^"
    assert err[1][caret_line.index("^"):].startswith("nn.View")


def test_lstm_compiles_deterministically(cli):
    out, runs = cli
    for seed in ("1", "2"):
        rc, _, err = runs[f"lstm{seed}"].result()
        assert rc == 0, err
    assert (out / "lstm1.py").read_bytes() == (out / "lstm2.py").read_bytes()


def test_train_lenet_quick(cli):
    rc, out, err = cli[1]["train"].result()
    assert rc == 0, err
    assert (cli[0] / "lenet_loss.png").stat().st_size > 1000, out  # matplotlib comes with .[test]
    losses = [float(v) for v in re.findall(r"^step \d+\s+loss ([0-9.]+)$", out, re.M)]
    assert len(losses) >= 3, out
    assert losses[-1] < losses[0], out
    assert re.search(r"^epoch 1\s+loss [0-9.]+\s+test accuracy [0-9.]+$", out, re.M), out
    m = re.search(r"^test accuracy: ([0-9.]+)$", out, re.M)
    assert m, out
    assert 0.0 <= float(m.group(1)) <= 1.0


def test_highway_lm_spread_over_two_files_matches_pytorch():
    """samples/highway_lm.lua requires highway_layers.lua: an embedding, two highway layers
    and a log-softmax, vs PyTorch with the same flat parameters."""
    import torch
    import torch.nn.functional as F

    from graphc.compiler import Options, compile_spec

    res = compile_spec(str(ROOT / "samples" / "highway_lm.lua"), Options(dtype="float64"))
    assert [Path(f).name for f in res.files] == ["highway_lm.lua", "highway_layers.lua"]
    ns = {}
    exec(compile(res.source, "highway_lm", "exec"), ns)
    m = ns["Model"](dtype="float64", seed=3)
    rng = np.random.default_rng(0)
    words = rng.integers(1, 31, size=5)
    out = m.forward(words)
    gy = rng.standard_normal(out.shape)
    m.backward(words, gy)
    p = [torch.tensor(w, requires_grad=True) for _, w in m.parameters()]
    x = F.embedding(torch.tensor(words - 1), p[0])
    k = 1
    for _ in range(2):
        h = torch.relu(F.linear(x, p[k], p[k + 1]))
        t = torch.sigmoid(F.linear(x, p[k + 2], p[k + 3]) - 2)
        x = t * h + (1 - t) * x
        k += 4
    ref = F.log_softmax(F.linear(x, p[k], p[k + 1]), 1)
    (ref * torch.tensor(gy)).sum().backward()
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    grads = np.concatenate([q.grad.numpy().ravel() for q in p])
    np.testing.assert_allclose(m.getParameters()[1], grads, rtol=1e-9, atol=1e-12)
