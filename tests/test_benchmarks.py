"""benchmarks/run.py as a tool: a quick row runs with every peer, each side's loss and
gradients are checked against PyTorch eager before timing, the table and the JSON rows come
out. The timings themselves are not tested (they depend on the machine)."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"


def _run_module():
    spec = importlib.util.spec_from_file_location("graphc_bench_run", RUN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def torch_float32():
    """The benchmark builds its PyTorch models in torch's default dtype, float32, as its own
    process has it (the op tests set float64 for the whole test session)."""
    torch = pytest.importorskip("torch")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    yield
    torch.set_default_dtype(old)


@pytest.mark.parametrize("key", ["lstm3", "lstm128x50", "lenet1", "mlp128"])
def test_every_side_agrees_with_pytorch_eager_and_a_wrong_side_is_caught(key, torch_float32):
    pytest.importorskip("torch")
    bench = _run_module()
    w = bench.WORKLOADS[key]()
    g = bench.graphc_sides(w)[0]
    eager = bench.TorchSide("PyTorch eager", w.torch_module(), w.torch_loss, w.torch_inputs,
                            bench._param_grads)
    sides = [g, eager]
    fused = w.fused()
    if fused is not None:
        label, module, loss_fn, grads = fused
        sides.append(bench.TorchSide(label, module, loss_fn, w.torch_inputs, grads))
    if importlib.util.find_spec("jax") is not None:
        sides.append(bench.JaxSide(w.jax_loss, w.params0, w.jax_data))
    assert bench.check(sides, eager) == {}
    # graphc computes no input gradient (--no-grad on every input)
    assert all(x is None for x in g.input_grads())
    # a graphc side that forgets to zero its gradients accumulates two steps: caught
    g.m.zeroGradParameters = lambda: None
    problems = bench.check([g, eager], eager)
    assert "parameter gradients differ" in problems["graphc numpy"]
    # one that raises is reported with its error, and the others still check
    g.m.forward = lambda *xs: 1 / 0
    problems = bench.check(sides, eager)
    assert list(problems) == ["graphc numpy"]
    assert problems["graphc numpy"].startswith("the step raised ZeroDivisionError")


@pytest.mark.slow
def test_quick_row_runs_and_prints_the_table(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "rows.json"
    r = subprocess.run([sys.executable, str(RUN), "--quick", "--only", "lstm3", "--threads", "1",
                        "--no-compile-time", "--block-ms", "0", "--markdown", "--json", str(out)],
                       capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, GRAPHC_CPU_CACHE_DIR=str(tmp_path / "cpu-cache")))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    (row,) = json.loads(out.read_text())
    assert row["key"] == "lstm3" and row["threads"] == 1 and not row["mismatch"]
    sides = {s["label"]: s for s in row["sides"]}
    expected = ["graphc numpy", "graphc cpu", "PyTorch eager", "torch.compile",
                "nn.LSTMCell (fused)", "JAX jit"]
    assert list(sides) == expected
    for label in ("graphc numpy", "PyTorch eager", "nn.LSTMCell (fused)"):
        assert sides[label]["median"] > 0 and sides[label]["absent"] is None
    for s in sides.values():  # timed, or absent with a reason; never a disagreement
        assert (s["median"] or 0) > 0 or s["absent"]
        assert not (s["absent"] or "").startswith("MISMATCH"), s
    assert row["verdict"] in ("pass", "FAIL") and row["ratio"] > 0
    # the summary table (Markdown): a ratio to eager or 'absent' per side, the verdict
    lines = r.stdout.splitlines()
    hdr = next(ln for ln in lines if ln.startswith("| row |"))
    (line,) = [ln for ln in lines if ln.startswith("| lstm3 |")]
    cells = dict(zip([c.strip() for c in hdr.strip("|").split("|")],
                     [c.strip() for c in line.strip("|").split("|")]))
    assert cells["threads"] == "1" and cells["result"].split()[0] == row["verdict"]
    eager = sides["PyTorch eager"]["median"]
    for label in ("graphc numpy", "graphc cpu", "torch.compile", "JAX jit", "fused"):
        s = sides["nn.LSTMCell (fused)" if label == "fused" else label]
        assert cells[label] == (f"{s['median'] / eager:.3f}" if s["median"] else "absent")
    assert "GEMMs of one step of each graphc target" in r.stdout


def test_verdict_is_graphc_best_against_the_best_peer_with_each_target():
    bench = _run_module()

    def row(times, eager_target=None):
        sides = [dict(label=k, kind="graphc" if k.startswith("graphc") else "peer",
                      median=v, absent=None if v else "absent: why") for k, v in times.items()]
        r = dict(sides=sides, eager_target=eager_target, mismatch=False)
        bench.verdict(r)
        return r

    r = row({"graphc numpy": 2.0, "graphc cpu": 0.9, "PyTorch eager": 3.0, "JAX jit": 1.0})
    assert (r["verdict"], r["graphc_best"], r["best_peer"]) == ("pass", "graphc cpu", "JAX jit")
    assert r["ratio"] == pytest.approx(0.9)
    r = row({"graphc numpy": 1.1, "graphc cpu": None, "PyTorch eager": 3.0, "JAX jit": 1.0})
    assert r["verdict"] == "FAIL" and "graphc numpy / JAX jit = 1.10 > 1.0" in r["why"]
    # the B=1 cell's own bound against PyTorch eager
    r = row({"graphc numpy": 0.2, "PyTorch eager": 3.0, "JAX jit": 1.0}, eager_target=0.05)
    assert r["verdict"] == "FAIL" and r["eager_ratio"] == pytest.approx(0.2 / 3.0)
    # the cpu target may not be slower than the numpy target, even when it beats the peers
    r = row({"graphc numpy": 0.5, "graphc cpu": 0.6, "PyTorch eager": 3.0})
    assert r["verdict"] == "FAIL" and r["why"] == ["graphc cpu slower than graphc numpy"]
    assert r["short"] == ["cpu>numpy"]


def test_thread_counts_are_taken_off_the_command_line_for_each_fresh_process():
    bench = _run_module()
    argv = ["--quick", "--threads", "1,2", "--only", "lstm3", "--json=x.json"]
    assert bench._without(argv, ("--threads", "--json")) == ["--quick", "--only", "lstm3"]
    assert bench._threads_arg(["run.py", "--threads=2"]) == "2"
