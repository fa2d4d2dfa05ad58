"""graphc_runtime.distributed's NCCL backend on real GPUs (tests/gpu/run.sh; needs CuPy with
NCCL, mpi4py and mpiexec). With 2 or more GPUs: 2 ranks, one GPU each, one SGD step of the
CUDA target's LeNet on half a batch each equals the numpy target's step on the whole batch.
With one GPU NCCL cannot put 2 ranks on it: 1 rank, which checks init, the device-side
checksum and the step only."""
import sys
from pathlib import Path

import cupy
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "distributed"))

from launch import mpiexec, run_job  # noqa: E402


def test_nccl_step_matches_one_process(tmp_path):
    pytest.importorskip("cupy.cuda.nccl", reason="CuPy without NCCL (cupy.cuda.nccl)")
    ranks = min(2, cupy.cuda.runtime.getDeviceCount())
    out = tmp_path / "w.npy"
    r = run_job([mpiexec(), "-n", str(ranks), sys.executable, str(HERE / "nccl_worker.py"), str(out)])
    assert r.returncode == 0, r.stdout

    import graphc
    from graphc_runtime import ClassNLLCriterion

    mod = graphc.compile_file(ROOT / "samples" / "lenet.lua", shapes={"input1": "Bx1x32x32"},
                              dtype="float64")
    model = mod.Model(dtype="float64", seed=100)
    flat_w, flat_g = model.getParameters()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 1, 32, 32)), rng.integers(0, 10, 8)
    criterion = ClassNLLCriterion()
    flat_g[...] = 0
    o = model.forward(x)
    model.backward(x, criterion.backward(o, y))
    flat_w -= 0.1 * flat_g
    np.testing.assert_allclose(np.load(out), flat_w, rtol=0, atol=1e-10)
