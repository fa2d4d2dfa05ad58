"""Differential fuzzing of the CUDA target: random valid nngraph specs (test_fuzz.specs: DAGs
over the core modules, tables, shared modules, containers, -O0/-O1) compiled for both
targets; the CUDA-target Model, run in host emulation (tests/cuda_host.py), must match the
numpy target's forward, input gradients and parameter gradients in float64.

GRAPHC_CUDA_FUZZ_EXAMPLES=N runs N examples with a random seed (default: a fixed,
derandomized set small enough for CI: each example builds its kernels with g++)."""
import os
import types

import numpy as np
from hypothesis import HealthCheck, given, settings

from cuda_host import assert_close
from test_fuzz import _flatten, _lists, _nest, specs

import reference_interpreter as ref
from graphc.compiler import Options, compile_spec


def _load(case, target, n):
    res = compile_spec("fuzz.lua", Options(dtype="float64", shapes=case.shapes, optimize=case.optimize,
                                           target=target), text=case.text)
    mod = types.ModuleType(f"graphc_cuda_fuzz_{target}_{n}")
    exec(compile(res.source, f"<generated fuzz {target}>", "exec"), mod.__dict__)
    return res.graph, mod.Model(dtype="float64", seed=case.seed)


def check_cuda_case(case, n=0):
    g, ref_model = _load(case, "numpy", n)
    _, cuda_model = _load(case, "cuda", n)
    rng = np.random.default_rng(case.seed)
    flat = rng.uniform(-1, 1, ref_model.getParameters()[0].size)
    ref_model.getParameters()[0][:] = flat
    cuda_model.getParameters()[0][:] = flat
    xs = [rng.uniform(-1.5, 1.5, ref.concrete(v.shape, case.batch)) for v in g.inputs]
    args = _lists(_nest(xs, g.input_struct))
    outs = []
    for m in (ref_model, cuda_model):
        out = m.forward(*args)
        out = (out,) if len(g.output_struct) == 1 else out
        outs.append(_flatten(out, g.output_struct, [None] * len(g.outputs)))
    for k, (a, b) in enumerate(zip(*outs)):
        assert_close(a, b, "float64", f"output {k + 1}")
    gys = _lists(_nest([rng.standard_normal(np.shape(a)) for a in outs[0]], g.output_struct))
    gins = []
    for m in (ref_model, cuda_model):
        gin = m.backward(tuple(args), tuple(gys) if len(g.output_struct) > 1 else (gys[0],))
        gin = (gin,) if len(g.input_struct) == 1 else gin
        gins.append(_flatten(gin, g.input_struct, [None] * len(g.inputs)))
    for k, (a, b) in enumerate(zip(*gins)):
        assert_close(a, b, "float64", f"gradient of input {k + 1}")
    assert_close(ref_model.getParameters()[1], cuda_model.getParameters()[1], "float64",
                 "parameter gradients")


def test_cuda_differential_fuzz(host):
    n = os.environ.get("GRAPHC_CUDA_FUZZ_EXAMPLES")
    common = dict(deadline=None, database=None, print_blob=False,
                  suppress_health_check=list(HealthCheck))
    chosen = settings(max_examples=int(n), **common) if n else \
        settings(max_examples=12, derandomize=True, **common)
    ran = []

    @chosen
    @given(case=specs())
    def check(case):
        check_cuda_case(case, len(ran))
        ran.append(case)

    check()
    assert len(ran) >= 5


def test_softmax_over_the_batch_dim(host):
    """Found by the fuzz: Torch reads a 3-D input as CxHxW, so SoftMax of a Bx1x1 input runs
    over B (a kernel loop bound that is the batch size)."""
    from test_fuzz import Case
    for optimize in (False, True):
        check_cuda_case(Case(text="require 'nngraph'\nlocal x1 = nn.Identity()()\n"
                                  "return nn.gModule({x1}, {nn.LogSoftMax()(nn.SoftMax()(x1))})\n",
                             shapes={"input1": ("B", 1, 2)}, optimize=optimize, batch=3, seed=0))


def test_elem_op_reading_a_slice(host):
    """Found by the fuzz: an elem kernel (Replicate) whose input is a strided slice of a
    stored array (Select made as an array view) gets a contiguous copy."""
    from test_fuzz import Case
    text = ("require 'nngraph'\nlocal x1 = nn.Identity()()\nlocal v2 = nn.Select(2, 1)(x1)\n"
            "local v3 = nn.Replicate(1, 2)(v2)\nlocal t4 = nn.SplitTable(2)(v3)\n"
            "local v6 = nn.Tanh()(nn.Tanh()(v3))\nreturn nn.gModule({x1}, {t4, v6})\n")
    for optimize in (False, True):
        check_cuda_case(Case(text=text, shapes={"input1": ("B", 2, 3)}, optimize=optimize, batch=2, seed=0))


def test_convolution_of_a_fixed_size_batch(host):
    """Found by the fuzz: the im2col kernel of an N x C x H x W input with a fixed N (not B)
    filled only the first image's rows."""
    from test_fuzz import Case
    text = ("require 'nngraph'\nlocal x1 = nn.Identity()()\n"
            "local v = nn.SpatialConvolution(2, 3, 3, 2, 1, 1, 1, 0)(nn.Tanh()(x1))\n"
            "return nn.gModule({x1}, {nn.SpatialMaxPooling(2, 2)(v)})\n")
    check_cuda_case(Case(text=text, shapes={"input1": (3, 2, 5, 6)}, optimize=True, batch=1, seed=0))
