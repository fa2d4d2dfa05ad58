"""Starting MPI jobs from the tests: the installed mpiexec (the mpich wheel's, in the venv's
bin folder, comes first), checked once; where MPI cannot start, the test skips and prints why."""
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from shutil import which

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180  # seconds for one mpiexec job; a hang fails the test instead of blocking CI
_probe = {}


def _mpiexec_path():
    bin_dir = str(Path(sys.executable).parent)
    return which("mpiexec", path=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))


def mpiexec():
    """The mpiexec command, after checking once that it starts 2 ranks of mpi4py; otherwise
    the test skips, naming what is missing and how to get it."""
    if "result" not in _probe:
        _probe["result"] = _check_mpi()
    ok, what = _probe["result"]
    if not ok:
        print(f"skipping: {what}")
        pytest.skip(what)
    return what


def _check_mpi():
    if importlib.util.find_spec("mpi4py") is None:
        return False, "mpi4py is not installed (pip install -e '.[test]' or '.[mpi]')"
    exe = _mpiexec_path()
    if exe is None:
        return False, "no mpiexec on PATH (pip install mpich, part of the mpi/test extras)"
    code = "from mpi4py import MPI; assert MPI.COMM_WORLD.Get_size() == 2"
    try:
        r = run_job([exe, "-n", "2", sys.executable, "-c", code], timeout=120)
    except subprocess.TimeoutExpired:
        return False, f"{exe} -n 2 did not finish in 120 s"
    if r.returncode != 0:
        return False, f"{exe} -n 2 cannot start 2 mpi4py ranks: {r.stdout[-500:]}"
    return True, exe


def run_job(cmd, timeout=TIMEOUT, cwd=ROOT):
    """Run a command (mpiexec and its ranks) in its own process group; on timeout the whole
    group is killed and TimeoutExpired raised. stdout and stderr together in .stdout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, None)
