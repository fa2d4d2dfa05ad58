"""One rank of a data-parallel test job: `mpiexec -n 2 python tests/distributed/worker.py
SCENARIO OUT.npz`. Rank 0 writes every rank's final parameters and buffers to OUT.npz.

Scenarios: a training case of cases.py (lstm, lenet, lenet_uneven, lenet_bn); or a fault:
  raise       rank 1 raises in its second step while rank 0 waits in the all-reduce
  exit        the same with SystemExit("error: ...") (which sys.excepthook never sees)
  uncaught    like raise, outside fail_together(): init()'s sys.excepthook aborts
  mismatch    rank 1 built a different model with as many parameters (hash mismatch)
  count       rank 1 built a model with another parameter count
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases  # noqa: E402

import graphc  # noqa: E402
from graphc_runtime import distributed as dist  # noqa: E402


def fault(name):
    if name in ("mismatch", "count"):
        spec = "wrong_a.lua" if dist.rank() == 0 else ("wrong_b.lua" if name == "mismatch" else None)
        if spec is None:
            model = cases.LeNetCase().new_model(seed=0)
        else:
            model = graphc.compile_file(cases.HERE / spec, dtype="float64").Model(dtype="float64")
        dist.broadcast_parameters(model)
        print("broadcast_parameters returned", flush=True)
        return
    flat_g = np.ones(1000)
    for step in range(3):
        if dist.rank() == 1 and step == 1:
            if name == "raise":
                raise RuntimeError("rank 1 failed on purpose in step 2")
            raise SystemExit("error: rank 1 stopped on purpose in step 2")
        dist.allreduce_gradients(flat_g)
    print("finished all steps", flush=True)


def main(scenario, out):
    dist.init()
    if scenario == "uncaught":
        return fault("raise")
    with dist.fail_together():
        if scenario not in cases.CASES:
            return fault(scenario)
        model = cases.train_distributed(scenario, dist)
        flat_w, _ = model.getParameters()
        weights = dist.allgather(flat_w[None])
        step = getattr(model, "step", model)
        buffers = [dist.allgather(b[None]) for b in step._buffers]
        if dist.rank() == 0:
            np.savez(out, weights=weights, size=dist.size(),
                     **{f"buffer{i}": b for i, b in enumerate(buffers)},
                     allreduce_calls=dist.stats()["allreduce_calls"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
