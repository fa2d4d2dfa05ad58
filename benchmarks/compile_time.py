"""How compile time grows with the size of the model: `graphc compile` (in-process
compile_spec, numpy target, the generated Python module) of

- a chain of N nn.Tanh nodes that all assign the same Lua variable (N = 1k, 5k, 20k), and
- char-rnn's 2-layer LSTM (benchmarks/specs/charrnn_lstm.lua, 65 -> 128) with --unroll 50,
  200 and 1000 (straight-line backpropagation through time).

Each row is the wall time of one compile in a fresh interpreter (a subprocess, so that no
row warms the next), median of --repeat runs. The node count is the IR's forward nodes after
all passes. Compile time should grow about linearly with the nodes: the last column, the
time per 1,000 nodes, should stay roughly flat down the table.

    python benchmarks/compile_time.py              # every row (a few minutes)
    python benchmarks/compile_time.py --quick      # the smaller rows only
    python benchmarks/compile_time.py --only tanh20000 --repeat 3
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
kind, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "chain":
    opts = Options(defines={"N": n}, shapes={"input1": ("B", 16)})
else:
    opts = Options(entry="LSTM.lstm(65, 128, 2, 0)", unroll=n, state=json.loads(sys.argv[4]))
t0 = time.perf_counter()
res = compile_spec(path, opts)
took = time.perf_counter() - t0
print(json.dumps({"seconds": took, "nodes": len(res.graph.nodes),
                  "grad_nodes": len(res.graph.grad_nodes), "chars": len(res.source)}))
"""


def run_row(key: str, chain_file: Path) -> dict:
    kind, n = ROWS[key]
    path = chain_file if kind == "chain" else LSTM
    args = [sys.executable, "-c", CHILD, kind, str(n), str(path), json.dumps(LSTM_STATE)]
    p = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"{key}: the compile failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only " + ", ".join(QUICK))
    ap.add_argument("--only", action="append", choices=sorted(ROWS), help="one row (repeatable)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per row; the median is shown")
    a = ap.parse_args(argv)
    keys = a.only or (list(QUICK) if a.quick else list(ROWS))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        chain_file = Path(tmp) / "tanh_chain.lua"
        chain_file.write_text(CHAIN)
        print(f"{'row':<12} {'fwd nodes':>9} {'bwd nodes':>9} {'source chars':>12} "
              f"{'compile s':>9} {'s / 1k nodes':>12}")
        for key in keys:
            runs = [run_row(key, chain_file) for _ in range(max(1, a.repeat))]
            sec = statistics.median(r["seconds"] for r in runs)
            r = runs[0]
            print(f"{key:<12} {r['nodes']:>9} {r['grad_nodes']:>9} {r['chars']:>12} "
                  f"{sec:>9.2f} {1000 * sec / max(1, r['nodes']):>12.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
