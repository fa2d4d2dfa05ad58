"""The CUDA target on a real GPU (run by tests/gpu/run.sh; not collected by the normal suite).

Every sample and every extra spec of tests/test_cuda.py: the CUDA-target Model on CuPy
arrays against the numpy target, forward, input gradients and parameter gradients, float64
and float32, a few batch sizes; and the NVRTC disk cache (a second process compiles nothing).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cupy  # noqa: E402  (this suite is for a machine with a GPU: tests/gpu/run.sh)

assert cupy.cuda.runtime.getDeviceCount() >= 1, "no CUDA device"

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import test_cuda as tc  # noqa: E402  (the samples, specs and helpers of the CPU half)

import graphc_runtime.cuda as rt  # noqa: E402

ROOT = HERE.parent.parent
TOL = {"float64": (1e-9, 1e-11), "float32": (1e-4, 1e-5)}


@pytest.fixture(autouse=True, scope="module")
def gpu_backend():
    old = rt.use_backend(rt.CupyBackend())
    yield
    rt.use_backend(old)


def close(ref, got, dtype, what):
    assert isinstance(got, cupy.ndarray), f"{what}: not a CuPy array ({type(got)})"
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(cupy.asnumpy(got), np.asarray(ref), rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("batch", [1, 5, 64])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(tc.SAMPLES) + list(tc.EXTRA))
def test_cuda_target_matches_numpy_target(name, dtype, batch):
    ref = tc.load_module(name, "numpy", dtype).Model(dtype=dtype, seed=0)
    m = tc.load_module(name, "cuda", dtype).Model(dtype=dtype, seed=0)
    close(ref.getParameters()[0], m.getParameters()[0], dtype, "initial weights")
    rng = np.random.default_rng(batch)
    xs = tc.random_inputs(ref, batch, dtype, rng)
    xs_gpu = [cupy.asarray(x) for x in xs]
    out_ref, out = tc.as_tuple(ref.forward(*xs)), tc.as_tuple(m.forward(*xs_gpu))
    for i, (a, b) in enumerate(zip(out_ref, out)):
        close(a, b, dtype, f"output {i + 1}")
    gys = [rng.standard_normal(np.shape(o)).astype(dtype) for o in out_ref]
    g_ref = tuple(gys) if len(gys) > 1 else gys[0]
    g_gpu = tuple(cupy.asarray(g) for g in gys) if len(gys) > 1 else cupy.asarray(gys[0])
    for _ in range(2):  # twice: parameter gradients accumulate
        gin_ref = tc.as_tuple(ref.backward(tuple(xs), g_ref))
        gin = tc.as_tuple(m.backward(tuple(xs_gpu), g_gpu))
    for i, (a, b) in enumerate(zip(gin_ref, gin)):
        close(a, b, dtype, f"gradient of input {i + 1}")
    close(ref.getParameters()[1], m.getParameters()[1], dtype, "parameter gradients")
    for x, x0 in zip(xs_gpu, xs):
        assert (cupy.asnumpy(x) == x0).all(), "an input was modified"


def test_numpy_inputs_are_copied_to_the_device():
    m = tc.load_module("lstm", "cuda", "float32").Model()
    out = m.forward(*(np.ones((4, n), np.float32) for n in (3, 2, 2)))
    assert all(isinstance(o, cupy.ndarray) and o.shape == (4, 2) for o in out)


CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
import test_cuda as tc
import graphc_runtime.cuda as rt
for name in ("lstm", "lenet"):
    for dtype in ("float32", "float64"):
        tc.load_module(name, "cuda", dtype).Model(dtype=dtype)
print(json.dumps(rt.stats))
"""


def test_kernel_cache_second_process_compiles_nothing(tmp_path):
    env = dict(os.environ, GRAPHC_CUDA_CACHE_DIR=str(tmp_path / "cache"))
    code = CHILD.format(tests=str(HERE.parent))
    runs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["compiled"] == 4 and first["loaded"] == 4, first
    assert second["compiled"] == 0 and second["cache_hits"] == 4 and second["loaded"] == 4, second
    assert len(list((tmp_path / "cache").iterdir())) == 4


@pytest.mark.parametrize("name", ["lstm", "lenet", "tables"])
def test_cuda_graph_step_matches_the_numpy_target(name):
    """Model.step(graph=True): eager first call, stream capture, then replays on new data."""
    ref = tc.load_module(name, "numpy", "float64").Model(seed=0)
    m = tc.load_module(name, "cuda", "float64").Model(seed=0)
    rng = np.random.default_rng(3)
    for step in range(4):
        xs = tc.random_inputs(ref, 3 if name != "lenet" else 2, "float64", rng)
        outs = tc.as_tuple(ref.forward(*xs))
        gys = [rng.standard_normal(np.shape(o)) for o in outs]
        g = tuple(gys) if len(gys) > 1 else gys[0]
        gin = tc.as_tuple(ref.backward(tuple(xs), g))
        out_c, gin_c = m.step([cupy.asarray(x) for x in xs],
                              tuple(cupy.asarray(x) for x in gys) if len(gys) > 1 else cupy.asarray(gys[0]),
                              graph=True)
        for i, (a, b) in enumerate(zip(outs, tc.as_tuple(out_c))):
            close(a, b, "float64", f"step {step}: output {i + 1}")
        for i, (a, b) in enumerate(zip(gin, tc.as_tuple(gin_c))):
            close(a, b, "float64", f"step {step}: input gradient {i + 1}")
        close(ref.getParameters()[1], m.getParameters()[1], "float64", f"step {step}: parameter gradients")
