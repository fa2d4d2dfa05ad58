"""Every corpus spec (the `graphc compile` command in each header of samples/corpus/) and the
char-rnn sample, compiled for --target cuda and run in host emulation against the numpy
target: forward outputs, input gradients and parameter gradients, float64, training mode
(Dropout masks come from the same seeded RNG on both targets)."""
import numpy as np
import pytest

from cuda_host import assert_close, load_text
from graphc.compiler import parse_define
from graphc.errors import SpecError
from test_corpus import header_commands

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _options(args):
    entry, shapes, defines, prelude, plugins = None, {}, {}, None, []
    it = iter(args)
    for a in it:
        if a == "--plugin":
            plugins.append(str(ROOT / next(it)))
        if a == "--entry":
            entry = next(it)
        elif a == "--shape":
            name, shape = next(it).split("=", 1)
            shapes[name] = shape
        elif a == "-D":
            name, value = parse_define(next(it))
            defines[name] = value
        elif a == "--prelude":
            prelude = str(ROOT / next(it))
        elif a == "-o":
            next(it)
    return entry, shapes, defines, prelude, plugins


CASES = [(name, args) for name, _, args in header_commands()] + [
    ("../charrnn.lua", ["--entry", "LSTM.lstm(11, 8, 2, 0.25)", "--shape", "input1=B"])]


def _inputs(model, rng, batch=3):
    xs = []
    for _, shape, kind in model.INPUTS:
        dims = [batch if d == "B" else d for d in shape]
        xs.append(rng.integers(1, 3, dims) if kind == "index" else rng.standard_normal(dims))
    return xs


def _flat(x):
    return [a for e in x for a in _flat(e)] if isinstance(x, (tuple, list)) else [x]


def _regroup(like, it):
    if isinstance(like, (tuple, list)):
        return type(like)(_regroup(e, it) for e in like)
    return next(it)


@pytest.mark.parametrize("name,args", CASES, ids=[f"{n}:{' '.join(a)}" for n, a in CASES])
def test_corpus_spec_on_cuda_matches_numpy(name, args, host):
    path = ROOT / "samples" / "corpus" / name
    entry, shapes, defines, prelude, plugins = _options(args)
    text = path.read_text()
    if plugins:  # modules written in Python without CUDA bodies: refused, at the module
        with pytest.raises(SpecError, match=r"ntm_head.lua:\d+:\d+: error: nn\.\w+ has no CUDA "):
            load_text(text, shapes, "cuda", "float64", name=str(path.with_suffix("")),
                      entry=entry, defines=defines, plugins=plugins)
        return
    models = []
    for target in ("numpy", "cuda"):
        mod = load_text(text, shapes, target, "float64", name=str(path.with_suffix("")),
                        entry=entry, defines=defines, prelude=prelude, plugins=plugins)
        models.append(mod.Model(dtype="float64", seed=0))
    ref, cuda = models
    rng = np.random.default_rng(5)
    xs = ref._nest(tuple(_inputs(ref, rng)), ref._in_struct())  # table inputs nest
    xs = xs if isinstance(xs, tuple) else (xs,)
    out_r, out_c = ref.forward(*xs), cuda.forward(*xs)
    outs = _flat(out_r)
    for i, (a, b) in enumerate(zip(outs, _flat(out_c))):
        assert_close(a, b, "float64", f"output {i + 1}")
    g = _regroup(out_r, iter([rng.standard_normal(np.shape(o)) for o in outs]))
    gin_r, gin_c = ref.backward(xs, g), cuda.backward(xs, g)
    for i, (a, b) in enumerate(zip(_flat(gin_r), _flat(gin_c))):
        assert_close(a, b, "float64", f"gradient of input {i + 1}")
    assert_close(ref.getParameters()[1], cuda.getParameters()[1], "float64", "parameter gradients")


def test_cuda_output_is_byte_identical_across_hash_seeds():
    """The attention GRU (MixtureTable, MV, elem kernels with aux arrays, host lines) and a
    BatchNorm/LookupTable model compile to the same bytes under different hash seeds."""
    import os
    import subprocess
    import sys
    specs = [["samples/corpus/attention_gru.lua", "--entry", "AttentionGRU(3, 4, 5)", "--shape",
              "input1=3", "--shape", "input2=4", "--shape", "input3=5x4"],
             ["samples/corpus/char_lstm.lua", "--entry", "CharLSTM.step(5, 3, 2, 0, true)"]]
    for args in specs:
        outs = []
        for seed in ("0", "4242"):
            r = subprocess.run([sys.executable, "-m", "graphc", "compile", *args, "--target", "cuda"],
                               cwd=ROOT, env=dict(os.environ, PYTHONHASHSEED=seed), capture_output=True)
            assert r.returncode == 0, r.stderr
            outs.append(r.stdout)
        assert outs[0] == outs[1] and b"__global__" in outs[0]
