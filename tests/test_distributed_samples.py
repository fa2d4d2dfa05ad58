"""The samples' --distributed mode under `mpiexec -n 2`: char-rnn (float64, uneven shards of
the streams, a distributed --resume) ends with the weights of one process training on the
whole batch (1e-10); LeNet (float32) likewise after a distributed --resume (1e-5); rank 0
alone prints. Skips, saying why, where MPI cannot start (see tests/distributed/launch.py)."""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "distributed"))

from launch import mpiexec, run_job  # noqa: E402

CHARRNN = ROOT / "samples" / "train_charrnn.py"
LENET = ROOT / "samples" / "train_lenet.py"


def run(args, ranks=None):
    cmd = [sys.executable, *map(str, args)]
    if ranks:
        cmd = [mpiexec(), "-n", str(ranks), *cmd, "--distributed"]
    r = run_job(cmd)
    assert r.returncode == 0, r.stdout
    return r.stdout


def test_charrnn_two_ranks_and_resume_match_one_process(tmp_path):
    mpiexec()  # skip at once where MPI cannot start
    small = [CHARRNN, "--rnn-size", "16", "--batch-size", "5", "--seq-length", "10",
             "--dtype", "float64", "--sample-chars", "0", "--plot", "none", "--no-progress",
             "--checkpoint-every", "0"]
    run([*small, "--steps", "6", "--checkpoint", tmp_path / "one.npz"])
    first = run([*small, "--steps", "3", "--check-every", "1", "--checkpoint", tmp_path / "two.npz"],
                ranks=2)
    then = run([CHARRNN, "--steps", "6", "--resume", "--check-every", "1", "--sample-chars", "0",
                "--plot", "none", "--no-progress", "--checkpoint", tmp_path / "two.npz"], ranks=2)
    for out in (first, then):  # rank 0 alone prints
        assert out.count("charrnn: 61 characters") == 1
        assert out.count("distributed: 2 ranks share the 5 streams (rank 0: 3)") == 1
        assert out.count("final loss:") == 1
    assert "resumed from" in then
    with np.load(tmp_path / "one.npz") as a, np.load(tmp_path / "two.npz") as b:
        one, two = a["flat"], b["flat"]
    assert one.dtype == np.float64
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-10)
    with np.load(tmp_path / "one.train.npz") as a, np.load(tmp_path / "two.train.npz") as b:
        for key in ("state.0", "state.3", "optim.m", "losses"):  # every stream's state, in order
            np.testing.assert_allclose(b[key], a[key], rtol=0, atol=1e-10)


def test_lenet_two_ranks_and_resume_match_one_process(tmp_path):
    mpiexec()
    common = [LENET, "--plot", "none", "--no-progress"]  # checkpoints under tmp_path
    one = run([*common, "--epochs", "2", "--checkpoint", tmp_path / "one.npz"])
    first = run([*common, "--epochs", "1", "--checkpoint", tmp_path / "two.npz"], ranks=2)
    then = run([*common, "--epochs", "2", "--resume", "--checkpoint", tmp_path / "two.npz"], ranks=2)
    for out in (first, then):
        assert out.count("lenet: 61706 parameters") == 1 and out.count("test accuracy:") == 1
    assert "resumed from" in then and "epoch 2 " in then and "epoch 1 " not in then
    with np.load(tmp_path / "one.npz") as a, np.load(tmp_path / "two.npz") as b:
        np.testing.assert_allclose(b["flat"], a["flat"], rtol=0, atol=1e-5)
    acc = [line for line in one.splitlines() if line.startswith("test accuracy:")]
    assert acc and acc[0] in then  # the same test accuracy, counted over both ranks' parts


def test_charrnn_dropout_resume_keeps_each_ranks_masks(tmp_path):
    """With dropout each rank draws its own masks; the checkpoint keeps every rank's
    generator, so a distributed --resume continues the run exactly."""
    mpiexec()
    small = [CHARRNN, "--rnn-size", "16", "--batch-size", "4", "--seq-length", "10",
             "--dropout", "0.3", "--dtype", "float64", "--sample-chars", "0", "--plot", "none",
             "--no-progress", "--checkpoint-every", "0"]
    run([*small, "--steps", "4", "--checkpoint", tmp_path / "straight.npz"], ranks=2)
    run([*small, "--steps", "2", "--checkpoint", tmp_path / "resumed.npz"], ranks=2)
    run([CHARRNN, "--steps", "4", "--resume", "--sample-chars", "0", "--plot", "none",
         "--no-progress", "--checkpoint", tmp_path / "resumed.npz"], ranks=2)
    run([*small, "--steps", "4", "--checkpoint", tmp_path / "one.npz"])
    with np.load(tmp_path / "straight.npz") as a, np.load(tmp_path / "resumed.npz") as b, \
            np.load(tmp_path / "one.npz") as c:
        np.testing.assert_array_equal(b["flat"], a["flat"])
        assert np.abs(c["flat"] - a["flat"]).max() > 1e-6  # other masks than one process's
