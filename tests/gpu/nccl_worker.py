"""One rank of the NCCL check on GPUs (run by test_distributed_nccl.py under mpiexec): the
CUDA target's LeNet on this rank's GPU, broadcast_parameters over NCCL, then one training
step on this rank's half of a batch with allreduce_gradients; rank 0 writes the weights."""
import sys
from pathlib import Path

import cupy
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import graphc  # noqa: E402
from graphc_runtime import ClassNLLCriterion  # noqa: E402
from graphc_runtime import distributed as dist  # noqa: E402


def main(out):
    dist.init(backend="nccl")
    with dist.fail_together():
        mod = graphc.compile_file(ROOT / "samples" / "lenet.lua", target="cuda",
                                  shapes={"input1": "Bx1x32x32"}, dtype="float64")
        model = mod.Model(dtype="float64", seed=100 + dist.rank())
        dist.broadcast_parameters(model)
        flat_w, flat_g = model.getParameters()
        assert isinstance(flat_g, cupy.ndarray)
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((8, 1, 32, 32)), rng.integers(0, 10, 8)
        rows = dist.shard(8)
        criterion = ClassNLLCriterion()
        flat_g[...] = 0
        out_d = model.forward(cupy.asarray(x[rows]))
        out_h = cupy.asnumpy(out_d)
        model.backward(cupy.asarray(x[rows]), cupy.asarray(criterion.backward(out_h, y[rows])))
        dist.allreduce_gradients(flat_g)
        flat_w -= 0.1 * flat_g
        dist.check_identical(flat_w, step=1)
        if dist.rank() == 0:
            np.save(out, cupy.asnumpy(flat_w))


if __name__ == "__main__":
    main(sys.argv[1])
