"""samples/train_charrnn.py as a user runs it (subprocesses, a tiny model), plus the shared
progress bar / loss-curve helper of the training samples (samples/progress.py).

The char-rnn runs start together in a module fixture (one short training run, and the
resume check: 10 steps + --resume to 20 against 20 straight steps), then each test reads
the results. About 15 s on two cores.
"""
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SCRIPT = SAMPLES / "train_charrnn.py"

# a tiny model so that a run takes seconds: 2 layers of 32 units, 16 streams x 25 steps
TINY = ["--rnn-size", "32", "--batch-size", "16", "--seq-length", "25", "--lr", "5e-3"]

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def _env():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), str(ROOT / "samples")] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("GRAPHC_NO_PROGRESS", None)
    return env


def _start(*args):
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)


def _finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("charrnn")
    paths = {"short": d / "short.npz", "split": d / "split.npz", "straight": d / "straight.npz"}
    # start the independent runs together
    short = _start("--steps", "30", "--report-every", "5", "--checkpoint", str(paths["short"]),
                   "--sample-chars", "40", *TINY)
    straight = _start("--steps", "20", "--checkpoint", str(paths["straight"]),
                      "--checkpoint-every", "0", "--sample-chars", "0", "--plot", "none",
                      "--no-progress", *TINY)
    first = _start("--steps", "10", "--checkpoint", str(paths["split"]), "--checkpoint-every", "0",
                   "--sample-chars", "0", "--plot", "none", "--no-progress", *TINY)
    results = {"first": _finish(first)}
    # the second half: no model options (they come from the checkpoint)
    resumed = _start("--steps", "20", "--resume", "--checkpoint", str(paths["split"]),
                     "--sample-chars", "0", "--plot", "none", "--no-progress")
    results["resumed"] = _finish(resumed)
    results["straight"] = _finish(straight)
    results["short"] = _finish(short)
    return results, paths


def _ok(result):
    rc, out, err = result
    assert rc == 0, f"exit {rc}\nstdout:\n{out}\nstderr:\n{err}"
    return out, err


def _value(label, out):
    m = re.search(rf"^{label}: ([0-9.]+)$", out, re.M)
    assert m, f"no '{label}:' line in\n{out}"
    return float(m.group(1))


def test_short_run_learns(runs):
    out, _ = _ok(runs[0]["short"])
    losses = [float(v) for v in re.findall(r"^step \d+/30\s+loss ([0-9.]+)\s+[0-9.]+ steps/s$",
                                           out, re.M)]
    assert len(losses) == 6, out
    assert losses[-1] < losses[0] - 0.3, out  # from about log(vocab) = 4.1 towards 3.3
    final, entropy = _value("final loss", out), _value("unigram entropy", out)
    assert final == pytest.approx(losses[-1], abs=1e-4)
    assert 3.0 < entropy < 3.6, out  # tiny Shakespeare: about 3.3 nats per character
    assert re.search(r"^steps/s: [0-9.]+ \(30 steps in [0-9.]+ s\)$", out, re.M), out
    assert re.search(r"^sample \(40 characters, temperature 0\.8\):$", out, re.M), out


def test_checkpoint_written(runs):
    _ok(runs[0]["short"])
    ckpt = runs[1]["short"]
    assert ckpt.exists() and ckpt.with_name("short.train.npz").exists()
    with np.load(ckpt) as f:
        assert f["flat"].dtype == np.float32 and f["flat"].size > 0


def test_loss_curve_png_or_skip_message(runs):
    out, _ = _ok(runs[0]["short"])
    png = runs[1]["short"].with_name("short_loss.png")
    if HAVE_MPL:
        assert f"loss curve: wrote {png}" in out
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "loss curve: skipped the PNG (matplotlib is not installed)" in out
        assert not png.exists()


def test_progress_on_stderr_and_clean_stdout(runs):
    out, err = _ok(runs[0]["short"])
    assert "\r" not in out and "[#" not in out and "eta" not in out
    # not a terminal: one plain line per tenth of the run, ending at 30/30
    bars = [line for line in err.splitlines() if line.startswith("train [")]
    assert 3 <= len(bars) <= 11, err
    assert re.search(r"30/30\s+[0-9.]+ steps/s\s+loss [0-9.]+", bars[-1]), err


def test_resume_continues_exactly(runs):
    results, paths = runs
    _ok(results["first"])
    resumed_out, _ = _ok(results["resumed"])
    straight_out, _ = _ok(results["straight"])
    assert "resumed from" in resumed_out and "at step 10" in resumed_out
    with np.load(paths["split"]) as a, np.load(paths["straight"]) as b:
        wa, wb = a["flat"], b["flat"]
    assert wa.shape == wb.shape
    np.testing.assert_allclose(wa, wb, rtol=0, atol=1e-5)
    assert _value("final loss", resumed_out) == pytest.approx(_value("final loss", straight_out),
                                                              abs=1e-4)
    # and the sidecars agree on the step and the whole loss history
    with np.load(paths["split"].with_name("split.train.npz")) as a, \
            np.load(paths["straight"].with_name("straight.train.npz")) as b:
        np.testing.assert_allclose(a["losses"], b["losses"], rtol=0, atol=1e-5)
        assert len(a["losses"]) == 20


def test_resume_refuses_other_model_options(runs, tmp_path):
    ckpt = runs[1]["split"]
    rc, out, err = _finish(_start("--steps", "30", "--resume", "--checkpoint", str(ckpt),
                                  "--rnn-size", "64"))
    assert rc != 0 and "--rnn-size 64" in err and "checkpoint: 32" in err, err
    rc, out, err = _finish(_start("--resume", "--checkpoint", str(tmp_path / "none.npz")))
    assert rc != 0 and "run without --resume first" in err, err


# ---- samples/progress.py -------------------------------------------------------------------

def _progress():
    spec = importlib.util.spec_from_file_location("samples_progress", SAMPLES / "progress.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_progress_bar_lines_when_not_a_terminal():
    progress = _progress()
    stream = io.StringIO()
    bar = progress.Progress(total=20, desc="train", stream=stream)
    for i in range(20):
        bar.update(loss=3.0 - i * 0.1)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in stream.getvalue()
    assert lines[-1].startswith("train [" + "#" * 24 + "] 20/20") and "loss 1.1000" in lines[-1]


def test_progress_bar_redraws_on_a_terminal(capsys):
    progress = _progress()

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = progress.Progress(total=4, desc="t", stream=stream, min_interval=0)
    bar.update(loss=2.0)
    bar.write("step 1  loss 2.0000")  # to stdout, the bar cleared and redrawn
    bar.update(3)
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") >= 3 and text.endswith("\n") and "4/4" in text
    assert capsys.readouterr().out == "step 1  loss 2.0000\n"


def test_progress_disabled_writes_nothing():
    progress = _progress()
    stream = io.StringIO()
    bar = progress.Progress(total=5, stream=stream, enabled=False)
    bar.update(5, loss=1.0)
    bar.close()
    assert stream.getvalue() == "" and bar.rate > 0


def test_plot_losses_without_matplotlib(monkeypatch, tmp_path):
    progress = _progress()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    msg = progress.plot_losses(tmp_path / "x.png", {"loss": [3.0, 2.0]})
    assert msg == "loss curve: skipped the PNG (matplotlib is not installed)"
    assert not (tmp_path / "x.png").exists()


def test_plot_losses_with_matplotlib(tmp_path):  # matplotlib comes with .[test]
    progress = _progress()
    path = tmp_path / "sub" / "x.png"
    msg = progress.plot_losses(path, {"loss": [3.0, 2.5, 2.0]}, hlines={"entropy": 2.8}, smooth=2)
    assert msg == f"loss curve: wrote {path}" and path.stat().st_size > 1000
