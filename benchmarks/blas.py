#!/usr/bin/env python3
"""BLAS builds from PyPI on graphc's GEMM shapes: numpy's own OpenBLAS, torch's BLAS (MKL on
x86-64), and, where installed, the scipy-openblas32 wheel and Intel's mkl wheel called through
their C interface (cblas_sgemm, via ctypes), as a native target could link them, and BLIS
(the `blis` wheel's gemm, single-threaded).

    pip install -e ".[bench]"                 # brings scipy-openblas32 and mkl (x86-64)
    python benchmarks/blas.py                 # LSTM-1024's GEMMs, at 1 and 2 threads
    python benchmarks/blas.py --only mlp128 --threads 1

The GEMMs are those of one graphc numpy-target training step of the row (recorded by
run.py's machinery: shapes and strides, so transposed operands stay transposed), each timed
alone per library (best of repeated calls, results checked against numpy's), plus a
square sgemm as each library's peak. Measuring only: graphc's runtime links none of these.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __name__ == "__main__":  # thread counts reach every library before it loads
    for _i, _a in enumerate(sys.argv):
        if _a.startswith("--threads"):
            _n = _a.split("=", 1)[1] if "=" in _a else (sys.argv[_i + 1:] or [""])[0]
            if _n.isdigit():
                for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                    os.environ[_v] = _n

import numpy as np  # noqa: E402

sys.path.insert(0, str(HERE))
import run  # noqa: E402  (benchmarks/run.py: the rows, GEMM recording, timing helpers)

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


class Cblas:
    """sgemm of one BLAS shared library through its cblas interface."""

    def __init__(self, label, path, symbol):
        self.label = label
        self.lib = ctypes.CDLL(str(path))
        self.fn = getattr(self.lib, symbol)
        i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
        self.fn.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
        self.fn.restype = None

    @staticmethod
    def _operand(a):
        """(transpose flag, leading dimension) of a 2-D float32 array, row-major."""
        s0, s1 = (s // 4 for s in a.strides)
        if s1 == 1:
            return NO_TRANS, max(s0, a.shape[1], 1)
        if s0 == 1:  # a transposed view of a row-major array
            return TRANS, max(s1, a.shape[0], 1)
        raise ValueError(f"strides {a.strides} are not one row-major matrix or its transpose")

    def matmul(self, a, b):
        (m, k), n = a.shape, b.shape[1]
        c = np.empty((m, n), np.float32)
        ta, lda = self._operand(a)
        tb, ldb = self._operand(b)
        self.fn(ROW_MAJOR, ta, tb, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, 0.0,
                c.ctypes.data, n)
        return c


def _contiguous(a):
    """(a C-contiguous array, whether to transpose it) that give `a`."""
    if a.flags.c_contiguous:
        return a, False
    if a.T.flags.c_contiguous:
        return a.T, True
    return np.ascontiguousarray(a), False


def libraries() -> tuple[list, list]:
    """(label, matmul) for every BLAS found, and why each missing one is missing."""
    import torch
    found = [("numpy (its OpenBLAS)", lambda a, b: a @ b),
             ("torch", lambda a, b: (torch.from_numpy(a) @ torch.from_numpy(b)).numpy())]
    missing = []
    try:
        import scipy_openblas32 as so
        path = Path(so.get_lib_dir()) / f"lib{so.get_library()}.so"
        found.append(("scipy-openblas32", Cblas("scipy-openblas32", path,
                                                "scipy_cblas_sgemm").matmul))
    except (ImportError, OSError, AttributeError) as e:
        missing.append(f"scipy-openblas32: {run._why(e)}")
    try:
        from blis.py import gemm as blis_gemm

        def blis_matmul(a, b):
            (a, ta), (b, tb) = _contiguous(a), _contiguous(b)
            return blis_gemm(a, b, trans1=ta, trans2=tb, beta=0.0)
        found.append(("blis (single-threaded)", blis_matmul))
    except ImportError as e:
        missing.append(f"blis: {run._why(e)}")
    mkl = Path(sys.prefix) / "lib" / "libmkl_rt.so.3"  # where the mkl wheel puts it
    if mkl.exists():
        found.append(("mkl", Cblas("mkl", mkl, "cblas_sgemm").matmul))
    else:
        missing.append(f"mkl: no {mkl} (pip install mkl)")
    return found, missing


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", choices=sorted(run.WORKLOADS),
                    help="rows whose GEMMs to time (default lstm1024; repeatable)")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--budget", type=float, default=0.3, help="seconds per GEMM and library")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    if len(threads) > 1 or os.environ.get("OPENBLAS_NUM_THREADS") != str(threads[0]):
        rc = 0
        base = run._without(argv, ("--threads",))
        for n in threads:
            rc = rc or subprocess.run([sys.executable, str(Path(__file__).resolve()), *base,
                                       "--threads", str(n)]).returncode
            print(flush=True)
        return rc
    import torch
    torch.set_num_threads(threads[0])
    libs, missing = libraries()
    print(f"BLAS libraries on graphc's GEMMs, {threads[0]} thread(s), float32; load average "
          f"{run._loadavg():.2f}")
    for m in missing:
        print(f"  absent: {m}")
    rng = np.random.default_rng(0)
    square = []
    for n in (1024, 2048):
        a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
        square.append((f"{n}x{n} @ {n}x{n}", 1, a, b))
    for key in args.only or ["lstm1024"]:
        g = run.graphc_sides(run.WORKLOADS[key]())[0]
        rec = run.GemmRecorder()
        saved = g.m, g.mod
        mod = run.recording_module(g.source, g.key, rec)
        g.m, g.mod = mod["Model"](dtype="float32", seed=0), mod
        g.step()
        g.m, g.mod = saved
        counts = {}
        for c in rec.calls:
            counts[c] = counts.get(c, 0) + 1
        rows = []
        for (la, lb), n in counts.items():
            if len(la[0]) != 2 or len(lb[0]) != 2:
                print(f"  {key}: {run.gemm_text(la, lb)} is batched: timed by numpy only in run.py")
                continue
            rows.append((run.gemm_text(la, lb), n, run._strided(la, rng), run._strided(lb, rng)))
        table = []
        for text, n, a, b in square + rows:
            want = a @ b
            cells = []
            for label, mm in libs:
                got = mm(a, b)
                err = float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))
                if err > 1e-4:
                    cells.append(f"WRONG ({err:.1e})")
                    continue
                t = run._best_time(lambda: mm(a, b), args.budget)
                flops = run.gemm_flops(run._layout(a), run._layout(b))
                cells.append(f"{run._fmt_time(t)} {run._gflops(flops, t)}")
            table.append((text, str(n), *cells))
        print(f"\n{key}: time and GFLOP/s of one call (calls: per step; the square ones: each "
              "library's peak)")
        run._table(("GEMM", "calls", *(label for label, _ in libs)), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
