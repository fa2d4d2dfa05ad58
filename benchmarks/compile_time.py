"""How compile time grows with the size of the model: `graphc compile` (in-process
compile_spec, the numpy target or --target cpu/cuda, the generated Python module) of

- a chain of N nn.Tanh nodes that all assign the same Lua variable (N = 1k, 5k, 20k), and
- char-rnn's 2-layer LSTM (benchmarks/specs/charrnn_lstm.lua, 65 -> 128) with --unroll 50,
  200 and 1000 (straight-line backpropagation through time).

Each row is the wall time of one compile in a fresh interpreter (a subprocess, so that no
row warms the next), median of --repeat runs: with --emit ir (the front end and every pass)
and for the generated module (--emit py). The node count is the IR's forward nodes after
all passes. Compile time should grow about linearly with the nodes: the last column, the
time per 1,000 nodes, should stay roughly flat down the table.

    python benchmarks/compile_time.py              # every row
    python benchmarks/compile_time.py --quick      # the smaller rows only
    python benchmarks/compile_time.py --only tanh20000 --repeat 3 --ir-only
    python benchmarks/compile_time.py --quick --target cpu   # the kernel targets' planner
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAIN = """-- a chain of N Tanh nodes, every one assigned to the same variable
N = 1000
local x = nn.Identity()()
local h = x
for i = 1, N do
  h = nn.Tanh()(h)
end
return nn.gModule({x}, {h})
"""
LSTM = ROOT / "benchmarks" / "specs" / "charrnn_lstm.lua"
# inputs: x, prev_c1, prev_h1, prev_c2, prev_h2; outputs: next_c1, next_h1, next_c2, next_h2, logp
LSTM_STATE = [("output1", "input2"), ("output2", "input3"), ("output3", "input4"),
              ("output4", "input5")]

ROWS = {f"tanh{n}": ("chain", n) for n in (1000, 5000, 20000)}
ROWS.update({f"lstm2x{t}": ("lstm", t) for t in (50, 200, 1000)})
QUICK = ("tanh1000", "tanh5000", "lstm2x50", "lstm2x200")

CHILD = r"""
import json, sys, time
from graphc.compiler import Options, compile_spec
kind, n, path, emit, target = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[5], sys.argv[6]
warm = (Options(defines={"N": 2}, shapes={"input1": ("B", 16)}, target=target) if kind == "chain" else
        Options(entry="LSTM.lstm(3, 4, 1, 0)", target=target))
compile_spec(path, warm)  # the parser and templates, loaded once per process
if kind == "chain":
    opts = Options(defines={"N": n}, shapes={"input1": ("B", 16)}, emit=emit, target=target)
else:
    opts = Options(entry="LSTM.lstm(65, 128, 2, 0)", unroll=n, state=json.loads(sys.argv[4]),
                   emit=emit, target=target)
t0 = time.perf_counter()
res = compile_spec(path, opts)
took = time.perf_counter() - t0
print(json.dumps({"seconds": took, "nodes": len(res.graph.nodes),
                  "grad_nodes": len(res.graph.grad_nodes), "chars": len(res.source)}))
"""


def run_row(key: str, chain_file: Path, emit: str, timeout: float, target: str) -> dict | None:
    """One compile's result, or None when it ran past `timeout` seconds."""
    kind, n = ROWS[key]
    path = chain_file if kind == "chain" else LSTM
    args = [sys.executable, "-c", CHILD, kind, str(n), str(path), json.dumps(LSTM_STATE), emit, target]
    try:
        p = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0:
        raise SystemExit(f"{key}: the compile failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only " + ", ".join(QUICK))
    ap.add_argument("--only", action="append", choices=sorted(ROWS), help="one row (repeatable)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per row; the median is shown")
    ap.add_argument("--ir-only", action="store_true", help="time --emit ir only")
    ap.add_argument("--target", choices=("numpy", "cpu", "cuda"), default="numpy",
                    help="the target of the generated module (cpu, cuda: the fusion planner and "
                    "kernel generation; the C++/NVRTC build is not timed)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one compile may take "
                    "(default 900); a row over it shows '>' and the limit")
    a = ap.parse_args(argv)
    keys = a.only or (list(QUICK) if a.quick else list(ROWS))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        chain_file = Path(tmp) / "tanh_chain.lua"
        chain_file.write_text(CHAIN)
        print(f"target {a.target}")
        print(f"{'row':<12} {'fwd nodes':>9} {'bwd nodes':>9} {'ir s':>8} {'module s':>9} "
              f"{'module chars':>12} {'s / 1k nodes':>12}", flush=True)
        for key in keys:
            cells = {}
            for emit in ("ir",) if a.ir_only else ("ir", "py"):
                runs = [run_row(key, chain_file, emit, a.timeout, a.target) for _ in range(max(1, a.repeat))]
                if any(r is None for r in runs):
                    cells[emit] = None
                else:
                    cells[emit] = dict(runs[0], seconds=statistics.median(r["seconds"] for r in runs))
            first = cells["ir"] or cells.get("py") or {"nodes": 0, "grad_nodes": 0}
            show = lambda c: f"{c['seconds']:.2f}" if c else f">{a.timeout:.0f}"  # noqa: E731
            py = cells.get("py")
            per_k = (py or cells["ir"] or {}).get("seconds")
            print(f"{key:<12} {first['nodes']:>9} {first['grad_nodes']:>9} {show(cells['ir']):>8} "
                  f"{show(py) if 'py' in cells else '-':>9} {py['chars'] if py else '-':>12} "
                  f"{1000 * per_k / max(1, first['nodes']) if per_k else float('nan'):>12.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
