"""samples/Makefile: a parallel build of every sample; a second run does nothing; touching
a required file rebuilds only its dependents (graphc --depfile)."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make(cwd):
    env = dict(os.environ, GRAPHC=f"{sys.executable} -m graphc")
    r = subprocess.run(["make", "-j2"], cwd=cwd, capture_output=True, text=True, env=env)
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
