"""samples/Makefile: a parallel build of every sample; a second run does nothing; touching
a required file rebuilds only its dependents (graphc --depfile)."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make(cwd, *goals, **env_vars):
    env = dict(os.environ, GRAPHC=f"{sys.executable} -m graphc", PYTHON=sys.executable, **env_vars)
    r = subprocess.run(["make", "-j2", *goals], cwd=cwd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return [line for line in r.stdout.splitlines() if " compile " in line], r.stdout


def test_make_builds_once_and_tracks_required_files(tmp_path):
    for f in list((ROOT / "samples").glob("*.lua")) + [ROOT / "samples" / "Makefile"]:
        shutil.copy(f, tmp_path)
    built, _ = make(tmp_path)
    assert len(built) == 7
    for name in ("lstm", "highway_lm", "charrnn"):
        compile((tmp_path / "build" / f"{name}.py").read_text(), name, "exec")
    assert (tmp_path / "build" / "highway_lm.d").read_text().startswith(
        "build/highway_lm.py: highway_lm.lua highway_layers.lua")
    again, out = make(tmp_path)
    assert again == [] and "Nothing to be done" in out
    time.sleep(0.01)
    (tmp_path / "highway_layers.lua").touch()
    rebuilt, _ = make(tmp_path)
    assert len(rebuilt) == 1 and "highway_lm.lua" in rebuilt[0]


def test_make_cpu_builds_the_kernels_ahead_of_time(tmp_path):
    from cuda_host import require_cpu_target
    require_cpu_target()
    for f in [ROOT / "samples" / "lstm.lua", ROOT / "samples" / "Makefile"]:
        shutil.copy(f, tmp_path)
    cache = tmp_path / "cache"
    _, out = make(tmp_path, "cpu", GRAPHC_CPU_CACHE_DIR=str(cache))
    assert "build/lstm_cpu.py: built in" in out
    assert len(list(cache.glob("graphc_cpu_*.so"))) == 1
    _, out = make(tmp_path, "cpu", GRAPHC_CPU_CACHE_DIR=str(cache))
    assert "Nothing to be done" in out
    code = ("import sys; sys.path.insert(0, 'build'); import lstm_cpu, graphc_runtime.cpu as c; "
            "lstm_cpu.Model(); print(c.backend().stats)")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env=dict(os.environ, GRAPHC_CPU_CACHE_DIR=str(cache)))
    assert r.returncode == 0, r.stderr
    assert "'compiles': 0, 'cache_hits': 1" in r.stdout  # the import built nothing
