#!/usr/bin/env python3
"""Data-parallel char-rnn: 1 process against 2 (mpiexec) on samples/train_charrnn.py.

    python benchmarks/distributed.py               # 60 steps per run, the sample's default model
    python benchmarks/distributed.py --steps 30 --rnn-size 64

Runs (float32, the sample's defaults: 2 layers of 128, 50 streams of 50 characters):
  1 process          python samples/train_charrnn.py
  2 ranks, strong    mpiexec -n 2 ... --distributed: the same 50 streams, 25 per rank
  2 ranks, weak      mpiexec -n 2 ... --distributed --batch-size 100: 50 streams per rank
and, alone, MPI_Allreduce of a buffer of the model's size (float32) between 2 ranks.

Reports steps/s, the parallel efficiency (strong: speedup / 2; weak: steps/s ratio, each
step doing twice the work), and the all-reduce's share of a step. Numbers depend on the
machine and its load: with 2 ranks on a 2-core machine, any other process competes with
them (the load average is printed before and after).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "train_charrnn.py"


def mpiexec() -> str:
    bin_dir = str(Path(sys.executable).parent)
    exe = shutil.which("mpiexec", path=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))
    if exe is None:
        raise SystemExit("error: no mpiexec: pip install -e '.[mpi]' (mpi4py and the mpich wheel)")
    return exe


def run(cmd) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    if m is None:
        raise SystemExit(f"error: no match for {pattern!r} in:\n{text}")
    return float(m.group(1))


def train(args, tmp: Path, ranks: int, batch: int) -> dict:
    cmd = [sys.executable, str(SAMPLE), "--steps", str(args.steps), "--batch-size", str(batch),
           "--rnn-size", str(args.rnn_size), "--sample-chars", "0", "--plot", "none",
           "--no-progress", "--checkpoint-every", "0",
           "--checkpoint", str(tmp / f"c{ranks}_{batch}.npz")]
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks), *cmd, "--distributed"]
    out = run(cmd)
    result = {"steps/s": number(r"steps/s: ([0-9.]+)", out),
              "parameters": int(number(r"([0-9,]+) parameters", out.replace(",", "")))}
    if ranks > 1:
        result["allreduce ms"] = number(r"allreduce: ([0-9.]+) ms per step", out)
        result["allreduce %"] = number(r"\(([0-9.]+)% of the training time\)", out)
    return result


ALLREDUCE_ONLY = r"""
import sys, time
import numpy as np
from graphc_runtime import distributed as dist
dist.init()
g = np.ones(int(sys.argv[1]), np.float32)
times = []
for _ in range(int(sys.argv[2])):
    dist.barrier()
    t = time.perf_counter()
    dist.allreduce_gradients(g)
    times.append(time.perf_counter() - t)
if dist.rank() == 0:
    print("median_ms", 1e3 * sorted(times)[len(times) // 2])
"""


def allreduce_alone(n: int, reps: int) -> float:
    out = run([mpiexec(), "-n", "2", sys.executable, "-c", ALLREDUCE_ONLY, str(n), str(reps)])
    return number(r"median_ms ([0-9.]+)", out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60, help="training steps per run (default 60)")
    p.add_argument("--rnn-size", type=int, default=128, help="LSTM units per layer (default 128)")
    p.add_argument("--batch-size", type=int, default=50,
                   help="streams of the 1-process run (default 50)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each setting; the median is kept")
    args = p.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)

    def median_run(ranks, batch):
        runs = [train(args, tmp, ranks, batch) for _ in range(args.repeat)]
        return {k: statistics.median(r[k] for r in runs) for k in runs[0]}

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        one = median_run(1, args.batch_size)
        strong = median_run(2, args.batch_size)
        weak = median_run(2, 2 * args.batch_size)
    n = int(one["parameters"])
    alone = allreduce_alone(n, 200)
    step_ms = 1e3 / one["steps/s"]
    print(f"char-rnn: 2 layers of {args.rnn_size}, {n:,} parameters = {4 * n / 1e6:.2f} MB of "
          f"float32 gradients per step; {args.steps} steps per run, median of {args.repeat}")
    print(f"{'run':34s} {'steps/s':>8s} {'efficiency':>10s} {'allreduce ms/step':>18s}")
    print(f"{'1 process, batch %d' % args.batch_size:34s} {one['steps/s']:8.2f}")
    strong_eff = strong["steps/s"] / (2 * one["steps/s"])  # speedup / 2
    weak_eff = weak["steps/s"] / one["steps/s"]  # each step does twice the work
    for label, r, eff in ((f"2 ranks, batch {args.batch_size} (strong)", strong, strong_eff),
                          (f"2 ranks, batch {2 * args.batch_size} (weak)", weak, weak_eff)):
        print(f"{label:34s} {r['steps/s']:8.2f} {eff:10.0%} "
              f"{r['allreduce ms']:9.2f} ({r['allreduce %']:.0f}%)")
    print(f"MPI_Allreduce alone of {n:,} float32 (2 ranks, median of 200): {alone:.3f} ms "
          f"= {100 * alone / step_ms:.1f}% of a 1-process step ({step_ms:.1f} ms)")
    print(f"load average after: {os.getloadavg()[0]:.2f}; {time.perf_counter() - t0:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
