"""graphc_runtime.distributed: data-parallel training over MPI (2 processes through the
installed mpiexec) and its NCCL path against a stand-in for cupy.cuda.nccl.

The 2-process tests train float64 models (tests/distributed/cases.py) for a few optimizer
steps with each rank on half of every minibatch, and compare with one process on the whole
batch (1e-10); the ranks must end bit-identical. They need mpi4py and an MPI library (the
`test` extra installs mpi4py and the mpich wheel); where MPI cannot start, they skip and say
why.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "tests" / "distributed"
sys.path.insert(0, str(DIST))

from graphc_runtime import distributed as dist  # noqa: E402
from launch import TIMEOUT, mpiexec, run_job  # noqa: E402


# ---- running mpiexec -----------------------------------------------------------------------------

def worker(scenario, tmp_path, n=2, timeout=TIMEOUT):
    """Run tests/distributed/worker.py on n ranks: (the finished job, its output file)."""
    out = tmp_path / f"{scenario}.npz"
    r = run_job([mpiexec(), "-n", str(n), sys.executable, str(DIST / "worker.py"), scenario,
                 str(out)], timeout=timeout)
    return r, out


# ---- 2 processes: the same parameters as one process on the whole batch --------------------------

@pytest.mark.parametrize("case", ["lstm", "lenet", "lenet_uneven"])
def test_two_ranks_match_one_process_on_the_whole_batch(case, tmp_path):
    import cases

    r, out = worker(case, tmp_path)
    assert r.returncode == 0, r.stdout
    with np.load(out) as f:
        weights, size = f["weights"], int(f["size"])
    assert size == 2 and weights.shape[0] == 2
    assert np.array_equal(weights[0], weights[1]), "the ranks' parameters differ"
    reference = cases.train_one_process(case).getParameters()[0]
    start = cases.CASES[case]().new_model(seed=100).getParameters()[0]
    assert np.abs(reference - start).max() > 1e-3  # the steps did move the weights
    np.testing.assert_allclose(weights[0], reference, rtol=0, atol=1e-10)


def test_batchnorm_statistics_are_per_rank(tmp_path):
    """Each rank's BatchNorm normalizes with its own shard's statistics (as Torch's
    DataParallelTable and PyTorch DDP without SyncBatchNorm): 2 ranks equal one process
    that runs the two half batches through two copies of the model, not one process on the
    whole batch; average_buffers leaves every rank the mean of the running statistics."""
    import cases

    r, out = worker("lenet_bn", tmp_path)
    assert r.returncode == 0, r.stdout
    with np.load(out) as f:
        weights = f["weights"]
        buffers = [f[f"buffer{i}"] for i in range(6)]
    assert np.array_equal(weights[0], weights[1])
    split_w, split_buffers = cases.train_split("lenet_bn", 2)
    np.testing.assert_allclose(weights[0], split_w, rtol=0, atol=1e-10)
    for b, ref in zip(buffers, split_buffers):
        assert np.array_equal(b[0], b[1])
        np.testing.assert_allclose(b[0], ref, rtol=0, atol=1e-10)
    whole = cases.train_one_process("lenet_bn").getParameters()[0]
    assert np.abs(weights[0] - whole).max() > 1e-4  # whole-batch statistics would differ


# ---- faults ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scenario, message", [
    ("raise", "RuntimeError: rank 1 failed on purpose in step 2"),
    ("uncaught", "RuntimeError: rank 1 failed on purpose in step 2"),
    ("exit", "error: rank 1 stopped on purpose in step 2"),
])
def test_a_failing_rank_aborts_all(scenario, message, tmp_path):
    r, _ = worker(scenario, tmp_path, timeout=120)  # a hang raises TimeoutExpired
    assert r.returncode != 0
    assert message in r.stdout
    assert "[rank 1 of 2]" in r.stdout and "aborting all 2 ranks" in r.stdout
    assert "finished all steps" not in r.stdout


@pytest.mark.parametrize("scenario", ["mismatch", "count"])
def test_different_models_fail_at_broadcast(scenario, tmp_path):
    r, _ = worker(scenario, tmp_path, timeout=120)
    assert r.returncode != 0
    assert "broadcast_parameters: the ranks built different models" in r.stdout
    assert "rank 0: 12 parameters" in r.stdout
    other = "rank 1: 12 parameters" if scenario == "mismatch" else "rank 1: 61706 parameters"
    assert other in r.stdout
    assert "broadcast_parameters returned" not in r.stdout


def test_generated_modules_never_import_it():
    code = ("import sys, graphc\n"
            "m = graphc.compile_file('samples/lenet.lua', shapes={'input1': 'Bx1x32x32'})\n"
            "m.Model().forward(__import__('numpy').zeros((1, 1, 32, 32), 'float32'))\n"
            "bad = [k for k in sys.modules if 'distributed' in k or k.startswith('mpi4py')]\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# ---- in one process, against stand-ins -----------------------------------------------------------

class MirrorComm:
    """A stand-in MPI communicator: rank `rank` of `size` ranks that all hold the same data
    as this one (so a sum is size x the buffer); records the all-reduced chunk sizes."""

    def __init__(self, size=2, rank=0, others=None, root_object=None):
        self.size, self.rank, self.chunks = size, rank, []
        self.others = others  # allgather: the other ranks' values, when they differ
        self.root_object = root_object  # bcast on a rank other than the root: the root's value

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Allreduce(self, inplace, buf, op):
        self.chunks.append(buf.size)
        buf *= self.size

    def Bcast(self, buf, root):
        pass

    def allgather(self, value):
        others = self.others if self.others is not None else [value] * (self.size - 1)
        return [value, *others]

    def bcast(self, value, root):
        return value if root == self.rank else self.root_object

    def Barrier(self):
        pass

    def Abort(self, code):
        raise AssertionError("Abort")


class FakeMPI:
    IN_PLACE, SUM = object(), object()


@pytest.fixture
def world():
    def start(comm, **kw):
        dist.init(comm=comm, mpi=FakeMPI, abort_on_error=False, **kw)
        return comm
    yield start
    dist._shutdown_for_tests()


def test_shard_bounds_cover_the_items_once():
    for n in range(0, 12):
        for size in (1, 2, 3, 5):
            parts = [dist.shard_bounds(n, r, size) for r in range(size)]
            assert sum(p.stop - p.start for p in parts) == n
            assert [p.start for p in parts[1:]] == [p.stop for p in parts[:-1]]
            assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1
    assert dist.shard_bounds(7, 0, 2) == slice(0, 4) and dist.shard_bounds(7, 1, 2) == slice(4, 7)
    with pytest.raises(ValueError, match="n_items"):
        dist.shard_bounds(-1, 0, 2)
    with pytest.raises(ValueError, match="rank"):
        dist.shard_bounds(4, 2, 2)


def test_calls_before_init_and_bad_arguments(world):
    with pytest.raises(RuntimeError, match="call init"):
        dist.rank()
    with pytest.raises(ValueError, match="backend"):
        dist.init(backend="gloo", comm=MirrorComm(), mpi=FakeMPI)
    with pytest.raises(ValueError, match="bucket_bytes"):
        dist.init(comm=MirrorComm(), mpi=FakeMPI, bucket_bytes=0)
    world(MirrorComm())
    assert (dist.rank(), dist.size()) == (0, 2)
    assert dist.shard(5) == slice(0, 3)
    with pytest.raises(ValueError, match="op must be 'sum' or 'mean'"):
        dist.allreduce_gradients(np.zeros(3), op="max")
    with pytest.raises(ValueError, match="flat_g: expected a contiguous 1-D buffer"):
        dist.allreduce_gradients(np.zeros((3, 3))[:, 0])
    with pytest.raises(ValueError, match="flat_g: expected a float buffer"):
        dist.allreduce_gradients(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="flat_g: expected a numpy array"):
        dist.allreduce_gradients([0.0, 1.0])
    with pytest.raises(ValueError, match="weight must be a finite number"):
        dist.allreduce_gradients(np.zeros(3), weight=-1)
    with pytest.raises(ValueError, match="backend: init\\(\\) already ran with 'mpi'"):
        dist.init(backend="nccl")


def test_allreduce_is_bucketed_in_place_and_averages(world):
    comm = world(MirrorComm(), bucket_bytes=8 * 1000)
    g = np.arange(2500, dtype=np.float64)
    expected = g.copy()
    same = dist.allreduce_gradients(g)
    assert same is g
    assert comm.chunks == [1000, 1000, 500]  # 8000-byte buckets of float64
    np.testing.assert_array_equal(g, expected)  # the mean of identical ranks
    dist.allreduce(g, "sum")
    np.testing.assert_array_equal(g, 2 * expected)
    assert dist.stats()["allreduce_calls"] == 2 and dist.stats()["allreduce_bytes"] == 2 * g.nbytes


def test_weighted_mean_of_uneven_shards(world):
    world(MirrorComm(others=[1.0]))  # this rank has weight 3, the other (by allgather) 1
    g = np.full(4, 2.0)
    dist.allreduce_gradients(g, weight=3)
    # sum over 2 identical buffers of g * 3 / (3 + 1)
    np.testing.assert_array_equal(g, np.full(4, 2.0 * 3 / 4 * 2))
    g = np.full(4, np.nan)  # an empty shard's mean: dropped, not spread
    dist.allreduce_gradients(g, weight=0)
    np.testing.assert_array_equal(g, np.zeros(4))


def test_broadcast_refuses_different_models(world):
    import cases

    model = cases.LeNetCase().new_model(seed=0)
    world(MirrorComm())
    assert dist.broadcast_parameters(model) is model
    dist._shutdown_for_tests()
    world(MirrorComm(others=[(61706, "0123456789abcdef")]))
    with pytest.raises(ValueError, match=r"different models .*rank 0: 61706 parameters, model "
                                         r"hash [0-9a-f]{16}; rank 1: 61706 parameters, model "
                                         r"hash 0123456789abcdef"):
        dist.broadcast_parameters(model)


def test_checksum_sees_every_bit():
    for dtype in (np.float32, np.float64):
        a = np.random.default_rng(0).standard_normal(1001).astype(dtype)
        b = a.copy()
        assert dist.checksum(a) == dist.checksum(b)
        bits = b.view(np.uint32 if dtype == np.float32 else np.uint64)
        bits[500] ^= 1  # the lowest mantissa bit of one element
        assert dist.checksum(a) != dist.checksum(b)
        c = a.copy()
        c[[3, 4]] = c[[4, 3]]  # same values, other places
        assert a[3] == a[4] or dist.checksum(a) != dist.checksum(c)


def test_check_identical_names_the_ranks(world):
    world(MirrorComm(others=[12345]))
    with pytest.raises(RuntimeError, match="the ranks' parameters differ at step 7 "
                                           r"\(rank 0: [0-9a-f]{16}, rank 1: 0000000000003039\)"):
        dist.check_identical(np.ones(3), step=7)


# ---- NCCL through CuPy, against stand-ins ---------------------------------------------------------

class DeviceArray(np.ndarray):
    """A stand-in CuPy array: numpy memory with CuPy's `.data.ptr`; converting it to a host
    array (get(), cupy.asnumpy) fails the test."""

    @property
    def data(self):
        return type("MemoryPointer", (), {"ptr": self.ctypes.data})()

    def get(self):
        raise AssertionError("a host copy of a device buffer")


class FakeNccl:
    """cupy.cuda.nccl's names as the runtime uses them. Simulates rank 1 of 2 whose peer
    (rank 0) holds `peer` arrays: allReduce adds the peer's elements at the same offsets;
    bcast from root 0 copies them. Records each call with the pointers it got."""
    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 7, 8, 0

    def __init__(self):
        self.calls, self.buffers = [], []  # buffers: [(device array, peer's host array)]

    def get_unique_id(self):
        return tuple(range(128))

    def NcclCommunicator(self, ndev, uid, rank):
        self.calls.append(("init", ndev, uid, rank))
        return self

    def _locate(self, ptr, count, datatype):
        for arr, peer in self.buffers:
            offset, rest = divmod(ptr - arr.ctypes.data, arr.itemsize)
            if rest == 0 and 0 <= offset and offset + count <= arr.size:
                assert datatype == {4: self.NCCL_FLOAT32, 8: self.NCCL_FLOAT64}[arr.itemsize]
                mine = np.ndarray.view(arr, np.ndarray)
                return mine[offset:offset + count], peer[offset:offset + count]
        raise AssertionError(f"pointer {ptr:#x} is not inside a registered device buffer")

    def allReduce(self, send, recv, count, datatype, op, stream):
        assert send == recv and op == self.NCCL_SUM and stream == 4242
        self.calls.append(("allReduce", count))
        mine, peer = self._locate(send, count, datatype)
        mine += peer

    def bcast(self, ptr, count, datatype, root, stream):
        assert root == 0 and stream == 4242
        self.calls.append(("bcast", count))
        mine, peer = self._locate(ptr, count, datatype)
        mine[...] = peer


def fake_cupy():
    stream = type("Stream", (), {"ptr": 4242, "synchronize": lambda self: None})()
    used = []
    cuda = type("cuda", (), {
        "get_current_stream": staticmethod(lambda: stream),
        "runtime": type("runtime", (), {"getDeviceCount": staticmethod(lambda: 4)}),
        "Device": staticmethod(
            lambda i: type("Device", (), {"use": lambda self: used.append(i)})()),
    })
    return type("cupy", (), {"ndarray": DeviceArray, "cuda": cuda, "used": used,
                             "asnumpy": staticmethod(lambda a: DeviceArray.get(a))})


def test_nccl_path_all_reduces_device_buffers_in_place(world):
    import cases

    nccl, cupy = FakeNccl(), fake_cupy()
    uid = tuple(range(5, 133))  # rank 0's NCCL id, sent over MPI
    dist.init(backend="nccl", comm=MirrorComm(rank=1, root_object=uid), nccl=nccl, cupy=cupy,
              abort_on_error=False, bucket_bytes=4 * 1000)
    assert cupy.used == [1]  # local rank 1 of 4 GPUs
    assert nccl.calls == [("init", 2, uid, 1)]

    # broadcast_parameters: the root's (rank 0's) weights and buffers replace ours, on the device
    model = cases.LeNetBNCase().new_model(seed=1)
    host_w = model._flat_w
    model._flat_w = host_w.view(DeviceArray)
    model._buffers = [b.view(DeviceArray) for b in model._buffers]
    root = cases.LeNetBNCase().new_model(seed=2)
    nccl.buffers = [(model._flat_w, root._flat_w)] + list(zip(model._buffers, root._buffers))
    dist.broadcast_parameters(model)
    assert np.array_equal(host_w, root._flat_w)
    assert [c[0] for c in nccl.calls[1:]] == ["bcast"] * 7  # weights and 6 BatchNorm buffers

    # allreduce_gradients: float32 buffer in 1000-element chunks, summed in place, averaged
    g = np.random.default_rng(0).standard_normal(2300).astype(np.float32).view(DeviceArray)
    peer = np.random.default_rng(1).standard_normal(2300).astype(np.float32)
    expected = (np.asarray(g).astype(np.float64) + peer) / 2
    nccl.buffers = [(g, peer)]
    nccl.calls.clear()
    dist.allreduce_gradients(g)
    assert nccl.calls == [("allReduce", 1000), ("allReduce", 1000), ("allReduce", 300)]
    np.testing.assert_allclose(np.asarray(g), expected, rtol=1e-6)

    with pytest.raises(ValueError, match="flat_g: expected a CuPy array for this backend, "
                                         "got ndarray"):
        dist.allreduce_gradients(np.zeros(3, np.float32))
    assert dist.checksum(g) == dist.checksum(np.array(g))  # computed where the buffer is


def test_nccl_needs_cupy_with_nccl(world, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(ImportError, match=r"backend='nccl' needs CuPy"):
        dist.init(backend="nccl", comm=MirrorComm(), mpi=FakeMPI)
