"""Recurrence on the CUDA target (host emulation): `--unroll T` (the Sequence class over the
CUDA step Model) and `--unroll N`, against the numpy target."""
from pathlib import Path

import numpy as np
import pytest

from cuda_host import assert_close

from graphc.compiler import Options, compile_spec

ROOT = Path(__file__).resolve().parent.parent
STATE = [("output1", "input2"), ("output2", "input3")]


def load(target, **opts):
    res = compile_spec(str(ROOT / "samples" / "lstm.lua"),
                       Options(dtype="float64", target=target, state=STATE, **opts))
    ns = {}
    exec(compile(res.source, "gen", "exec"), ns)
    return ns


@pytest.mark.parametrize("unroll,cls", [("T", "Sequence"), (5, "Model")])
def test_unrolled_lstm_matches_the_numpy_target(unroll, cls, host):
    ref = load("numpy", unroll=unroll)[cls](dtype="float64", seed=0)
    m = load("cuda", unroll=unroll)[cls](dtype="float64", seed=0)
    rng = np.random.default_rng(3)
    xs, c0, h0, gc, gh = (rng.standard_normal(s) for s in ((5, 4, 3), (4, 2), (4, 2), (4, 2), (4, 2)))
    for a, b in zip(ref.forward(xs, c0, h0), m.forward(xs, c0, h0)):
        assert_close(a, b, "float64", "final state")
    for a, b in zip(ref.backward((xs, c0, h0), (gc, gh)), m.backward((xs, c0, h0), (gc, gh))):
        assert_close(a, b, "float64", "input gradient")
    assert_close(ref.getParameters()[1], m.getParameters()[1], "float64", "parameter gradients")


def test_nvcc_compiles_the_unrolled_kernels(tmp_path):
    """--unroll N's T x B x ... arrays index with strides that involve B; kernels stay the
    same size at every step (the planner stores c_t and its gradient instead of recomputing
    the chain: no spills), and the source grows linearly with N."""
    from cuda_host import check_nvcc_log, nvcc_report
    sizes = {}
    for n in (3, 6):
        src = compile_spec(str(ROOT / "samples" / "lstm.lua"),
                           Options(target="cuda", emit="cu", unroll=n, state=STATE)).source
        sizes[n] = len(src)
    assert "B * " in src
    assert sizes[6] < 2.3 * sizes[3], sizes
    for real in ("float", "double"):
        check_nvcc_log(src, *nvcc_report(src, real, tmp_path))
