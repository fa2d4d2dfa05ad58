"""Data-parallel training over MPI (CPU, through mpi4py) or NCCL (CUDA target, through CuPy).

Every rank holds the whole model and trains on its own part of each minibatch; after each
backward the flat gradient buffer is all-reduced (averaged), so the unchanged `optim.*`
functions take the same step on every rank and the ranks' parameters stay identical. The
generated modules never import this module: the training script opts in.

    from graphc_runtime import distributed as dist
    dist.init()                               # under `mpiexec -n N python train.py`
    flat_w, flat_g = model.getParameters()
    dist.broadcast_parameters(model)          # rank 0's weights everywhere; checks the models match
    part = dist.shard(len(batch))             # this rank's slice of the minibatch
    ... forward / backward on batch[part] ...
    dist.allreduce_gradients(flat_g)          # in place: the mean over ranks
    optim.sgd(...)                            # unchanged

Transport: `init()` (backend "mpi") all-reduces numpy buffers with MPI_Allreduce, in place,
in chunks of at most `bucket_bytes` for large models. `init(backend="nccl")` starts MPI only
to launch the ranks and agree on a NCCL id, then all-reduces and broadcasts the CUDA target's
device buffers (CuPy arrays) with `cupy.cuda.nccl`, on the current stream, without host
copies. Small host values (model signatures, checksums, losses) always go over MPI.

Faults: after `init()` in a multi-rank run, an uncaught exception on any rank prints its
traceback (with the rank) and aborts every rank (MPI_Abort), so the others never wait
forever in a collective. SystemExit never reaches that hook: run the script's main inside
`with fail_together():` (or call `abort(message)`) so that an error exit aborts all too.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
import traceback

import numpy as np

DEFAULT_BUCKET_BYTES = 64 << 20  # per MPI_Allreduce call: bounds MPI's temporary buffers

_state = None  # the _World after init()


class _World:
    def __init__(self, comm, transport, bucket_bytes, backend):
        self.backend = backend
        self.previous_hook = None  # sys.excepthook before init() replaced it
        self.comm = comm  # mpi4py communicator: launch, ranks, small host values
        self.transport = transport  # buffer collectives: _MpiTransport or _NcclTransport
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.bucket_bytes = bucket_bytes
        self.allreduce_s = 0.0  # wall time inside allreduce_gradients / allreduce
        self.allreduce_calls = 0
        self.allreduce_bytes = 0


class _MpiTransport:
    """Collectives on numpy buffers through mpi4py's buffer interface (no pickling)."""

    def __init__(self, comm, mpi):
        self.comm, self.mpi = comm, mpi

    def is_buffer(self, x):
        return isinstance(x, np.ndarray)

    def allreduce_sum(self, chunk):
        self.comm.Allreduce(self.mpi.IN_PLACE, chunk, op=self.mpi.SUM)

    def bcast(self, buf, root):
        self.comm.Bcast(buf, root=root)

    def sync(self):
        pass


class _NcclTransport:
    """Collectives on CuPy device buffers through cupy.cuda.nccl, in place, on the current
    stream (later CuPy work on that stream is ordered after them: no synchronization)."""

    def __init__(self, comm, nccl, cupy):
        self.nccl, self.cupy = nccl, cupy
        uid = nccl.get_unique_id() if comm.Get_rank() == 0 else None
        uid = comm.bcast(uid, root=0)
        self.comm = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())
        self.types = {np.dtype("float32"): nccl.NCCL_FLOAT32,
                      np.dtype("float64"): nccl.NCCL_FLOAT64}

    def is_buffer(self, x):
        return isinstance(x, self.cupy.ndarray)

    def _type(self, buf):
        kind = self.types.get(np.dtype(buf.dtype))
        if kind is None:
            raise ValueError(f"buf: NCCL collectives here take float32 or float64, got {buf.dtype}")
        return kind

    def allreduce_sum(self, chunk):
        ptr = chunk.data.ptr
        self.comm.allReduce(ptr, ptr, chunk.size, self._type(chunk), self.nccl.NCCL_SUM,
                            self.cupy.cuda.get_current_stream().ptr)

    def bcast(self, buf, root):
        self.comm.bcast(buf.data.ptr, buf.size, self._type(buf), root,
                        self.cupy.cuda.get_current_stream().ptr)

    def sync(self):
        self.cupy.cuda.get_current_stream().synchronize()


# ---- setup -------------------------------------------------------------------------------------

def init(backend: str = "mpi", *, abort_on_error: bool = True,
         bucket_bytes: int = DEFAULT_BUCKET_BYTES, comm=None, mpi=None, nccl=None, cupy=None):
    """Join the job started by mpiexec (a plain `python` run is a job of one rank).

    backend: "mpi" (numpy buffers) or "nccl" (the CUDA target's CuPy buffers; each rank uses
    GPU `local rank % GPUs on its node`). abort_on_error: an uncaught exception on one rank
    aborts all (only when there are several). bucket_bytes: the most bytes one all-reduce call
    moves. comm / mpi / nccl / cupy: stand-ins for MPI.COMM_WORLD, mpi4py.MPI, cupy.cuda.nccl
    and cupy (tests).
    Calling init() again returns at once."""
    global _state
    if _state is not None:
        if _state.backend != backend:
            raise ValueError(f"backend: init() already ran with {_state.backend!r}, "
                             f"got {backend!r}")
        return
    if backend not in ("mpi", "nccl"):
        raise ValueError(f"backend must be 'mpi' or 'nccl', got {backend!r}")
    if not isinstance(bucket_bytes, int) or bucket_bytes < 8:
        raise ValueError(f"bucket_bytes must be an integer >= 8, got {bucket_bytes!r}")
    if comm is None:
        mpi = mpi or _import_mpi()
        comm = mpi.COMM_WORLD
    if backend == "mpi":
        mpi = mpi or _import_mpi()
        transport = _MpiTransport(comm, mpi)
    else:
        if cupy is None:
            try:
                import cupy
            except ImportError as e:
                raise ImportError("backend='nccl' needs CuPy built with NCCL: pip install "
                                  "'graphc[cuda]' (cupy) on a machine with a GPU") from e
        if nccl is None:
            try:
                from cupy.cuda import nccl
            except ImportError as e:
                raise ImportError("backend='nccl': this CuPy has no NCCL support (cupy.cuda."
                                  "nccl); install NCCL for it or use backend='mpi'") from e
        _use_local_gpu(comm, cupy, mpi)
        transport = _NcclTransport(comm, nccl, cupy)
    _state = _World(comm, transport, bucket_bytes, backend)
    if abort_on_error and _state.size > 1:
        _install_abort_hook()


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("graphc_runtime.distributed needs mpi4py and an MPI library: "
                          "pip install 'graphc[mpi]' (mpi4py and the mpich wheel)") from e
    return MPI


def _use_local_gpu(comm, cupy, mpi):
    """One GPU per rank: the rank's index among the ranks on its node, modulo the GPU count."""
    if mpi is not None and hasattr(mpi, "COMM_TYPE_SHARED"):
        local = comm.Split_type(mpi.COMM_TYPE_SHARED).Get_rank()
    else:
        local = comm.Get_rank()
    n = cupy.cuda.runtime.getDeviceCount()
    cupy.cuda.Device(local % n).use()


def _install_abort_hook():
    def abort_all(kind, value, tb):
        _fail("".join(traceback.format_exception(kind, value, tb)), 1)
    _state.previous_hook = sys.excepthook
    sys.excepthook = abort_all


def _fail(text: str, code: int):
    """Print `text` with this rank's number, then end every rank (MPI_Abort). MPICH's
    MPI_Abort can return to the caller while the launcher ends the job: exit here too."""
    w = _state
    sys.stdout.flush()
    sys.stderr.write(f"[rank {w.rank} of {w.size}] {text.rstrip()}\n"
                     f"[rank {w.rank} of {w.size}] aborting all {w.size} ranks\n")
    sys.stderr.flush()
    # The launcher forwards each rank's output on its own time and drops what it has not
    # forwarded when the job is torn down: give it a moment, or the error can go unseen
    # (seen in CI: an empty log from an aborted 2-rank job).
    time.sleep(1.0)
    w.comm.Abort(code)
    os._exit(code)


@contextlib.contextmanager
def fail_together():
    """Run a block (a training script's main) so that any way it fails on one rank ends all
    ranks: an exception, and also SystemExit with an error (which sys.excepthook never
    sees, and which would leave the other ranks waiting in a collective). A clean
    SystemExit (code 0 or None) passes. Does nothing special in a one-rank job."""
    try:
        yield
    except SystemExit as e:
        if _state is None or _state.size == 1 or e.code in (None, 0):
            raise
        code = e.code if isinstance(e.code, int) else 1
        _fail(str(e.code) if not isinstance(e.code, int) else f"exit status {e.code}", code)
    except BaseException as e:
        if _state is None or _state.size == 1:
            raise
        _fail("".join(traceback.format_exception(type(e), e, e.__traceback__)),
              130 if isinstance(e, KeyboardInterrupt) else 1)


def _world() -> _World:
    if _state is None:
        raise RuntimeError("graphc_runtime.distributed: call init() first")
    return _state


def is_initialized() -> bool:
    return _state is not None


def rank() -> int:
    return _world().rank


def size() -> int:
    return _world().size


def barrier():
    _world().comm.Barrier()


def abort(message: str, code: int = 1):
    """Print `message` (with the rank) and end every rank of the job now (in a one-rank
    job: SystemExit(message))."""
    w = _world()
    if w.size == 1:
        raise SystemExit(message)
    _fail(message, code)


def _shutdown_for_tests():
    """Forget init() (and restore sys.excepthook): lets one process test several setups."""
    global _state
    if _state is not None and _state.previous_hook is not None:
        sys.excepthook = _state.previous_hook
    _state = None


# ---- data --------------------------------------------------------------------------------------

def shard_bounds(n_items: int, rank: int, size: int) -> slice:
    """Rank `rank`'s contiguous block of n_items split among `size` ranks: the first
    n_items % size ranks get one item more; a rank may get none (n_items < size)."""
    if not isinstance(n_items, (int, np.integer)) or n_items < 0:
        raise ValueError(f"n_items must be a non-negative integer, got {n_items!r}")
    if not 0 <= rank < size:
        raise ValueError(f"rank must be in [0, {size}), got {rank!r}")
    base, extra = divmod(int(n_items), size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def shard(n_items: int) -> slice:
    """This rank's part of n_items (a data set, or one minibatch) as a slice."""
    w = _world()
    return shard_bounds(n_items, w.rank, w.size)


# ---- collectives on flat buffers -----------------------------------------------------------------

def _check_buffer(w: _World, buf, what: str):
    if not w.transport.is_buffer(buf):
        kind = "a CuPy array" if isinstance(w.transport, _NcclTransport) else "a numpy array"
        raise ValueError(f"{what}: expected {kind} for this backend, got {type(buf).__name__}")
    if buf.ndim != 1 or not buf.flags.c_contiguous:
        raise ValueError(f"{what}: expected a contiguous 1-D buffer (a model's flat buffer), "
                         f"got shape {tuple(buf.shape)}")
    if np.dtype(buf.dtype).kind != "f":
        raise ValueError(f"{what}: expected a float buffer, got {buf.dtype}")


def allreduce(buf, op: str = "sum", *, what: str = "buf"):
    """Sum (op="sum") or average (op="mean") `buf` over the ranks, in place, in chunks of at
    most bucket_bytes. Returns buf."""
    w = _world()
    if op not in ("sum", "mean"):
        raise ValueError(f"op must be 'sum' or 'mean', got {op!r}")
    _check_buffer(w, buf, what)
    t0 = time.perf_counter()
    if w.size > 1:
        step = max(w.bucket_bytes // buf.itemsize, 1)
        for start in range(0, buf.size, step):
            w.transport.allreduce_sum(buf[start:start + step])
        if op == "mean":
            buf /= w.size
    w.allreduce_s += time.perf_counter() - t0
    w.allreduce_calls += 1
    w.allreduce_bytes += buf.nbytes
    return buf


def allreduce_gradients(flat_g, op: str = "mean", *, weight: float | None = None):
    """All-reduce the flat gradient buffer in place (after backward, before the optimizer).

    op="mean" (default): the average of the ranks' gradients, which is the whole-batch
    gradient when each rank's loss is a mean over an equal share of the batch. op="sum": the
    sum. weight (with op="mean"): this rank's share of the batch (e.g. its number of items);
    the result is sum(weight_r * g_r) / sum(weight_r), the whole-batch mean for unequal
    shards (a rank with weight 0 contributes nothing). Returns flat_g."""
    if weight is None:
        return allreduce(flat_g, op, what="flat_g")
    if op != "mean":
        raise ValueError(f"weight goes with op='mean', got op={op!r}")
    if not np.isfinite(weight) or weight < 0:
        raise ValueError(f"weight must be a finite number >= 0, got {weight!r}")
    total = allreduce_value(weight, "sum")
    if total <= 0:
        raise ValueError("weight: the ranks' weights sum to 0")
    if weight == 0:
        flat_g[...] = 0  # also drops a NaN from an empty shard's mean
    else:
        flat_g *= weight / total
    return allreduce(flat_g, "sum", what="flat_g")


def allreduce_value(value: float, op: str = "mean") -> float:
    """A Python number's sum or mean over the ranks (a loss to report, a count), over MPI."""
    w = _world()
    if op not in ("sum", "mean"):
        raise ValueError(f"op must be 'sum' or 'mean', got {op!r}")
    total = float(np.sum(w.comm.allgather(float(value))))
    return total / w.size if op == "mean" else total


def allgather(array: np.ndarray, axis: int = 0) -> np.ndarray:
    """The ranks' host arrays joined along `axis` in rank order (e.g. per-rank LSTM states
    back into the whole batch, for a checkpoint). Every rank gets the result."""
    w = _world()
    array = np.asarray(array)
    parts = w.comm.allgather(array)
    return np.concatenate(parts, axis=axis)


def allgather_object(value) -> list:
    """Every rank's (picklable) value, in rank order, over MPI."""
    return _world().comm.allgather(value)


# ---- parameters ---------------------------------------------------------------------------------

def _parts(model):
    """(flat weights, buffers, signature text) of a Module, Sequence or CudaModule."""
    step = getattr(model, "step", model)  # a Sequence's parameters are its step model's
    flat_w, _ = model.getParameters()
    layout = ";".join(f"{n}:{'x'.join(map(str, s))}" for n, s, _ in step.PARAMETERS + step.BUFFERS)
    signature = f"{type(step).__name__}|{np.dtype(flat_w.dtype)}|{flat_w.size}|{layout}"
    return flat_w, list(getattr(step, "_buffers", [])), signature


def broadcast_parameters(model_or_flat_w, root: int = 0):
    """Give every rank the root's parameters (and, for a model, its buffers: BatchNorm's
    running statistics) before training, after checking that every rank built the same
    model: its parameter count, dtype, and (for a model) the names and shapes of its
    parameters and buffers. A mismatch raises ValueError on every rank naming each rank's
    count and signature hash."""
    w = _world()
    if hasattr(model_or_flat_w, "getParameters"):
        flat_w, buffers, signature = _parts(model_or_flat_w)
    else:
        flat_w, buffers = model_or_flat_w, []
        _check_buffer(w, flat_w, "flat_w")
        signature = f"flat|{np.dtype(flat_w.dtype)}|{flat_w.size}"
    if not 0 <= root < w.size:
        raise ValueError(f"root must be in [0, {w.size}), got {root!r}")
    _check_buffer(w, flat_w, "flat_w")
    digest = hashlib.sha256(signature.encode()).hexdigest()[:16]
    seen = w.comm.allgather((int(flat_w.size), digest))
    if len(set(seen)) > 1:
        rows = "; ".join(f"rank {r}: {n} parameters, model hash {h}"
                         for r, (n, h) in enumerate(seen))
        raise ValueError("broadcast_parameters: the ranks built different models "
                         f"(same spec, options and sizes on every rank?): {rows}")
    if w.size > 1:
        w.transport.bcast(flat_w, root)
        for b in buffers:
            w.transport.bcast(b.reshape(-1), root)
    return model_or_flat_w


def average_buffers(model):
    """Average a model's buffers (BatchNorm's running mean and variance) over the ranks, in
    place. In training each rank's BatchNorm normalizes with its own shard's statistics and
    updates its own running averages; call this before evaluating or saving so every rank
    holds the same running statistics."""
    _world()
    _, buffers, _ = _parts(model)
    for b in buffers:
        allreduce(b.reshape(-1), "mean", what="buffer")
    return model


def checksum(buf) -> int:
    """A 64-bit checksum of a float buffer's exact bits, computed where the buffer lives
    (numpy or CuPy): only the number comes back to the host."""
    bits = buf.view(np.uint64 if buf.itemsize == 8 else np.uint32).astype(np.uint64)
    mod = sys.modules.get("cupy") if not isinstance(buf, np.ndarray) else None
    xp = mod if mod is not None else np
    weights = xp.arange(1, 2 * bits.size, 2, dtype=np.uint64)  # position-dependent: odd, nonzero
    with np.errstate(over="ignore"):
        return int((bits * weights).sum(dtype=np.uint64)) ^ int(bits.sum(dtype=np.uint64))


def check_identical(buf, what: str = "parameters", step: int | None = None):
    """Debug check: raise RuntimeError on every rank when this buffer's bits differ between
    ranks (they must not: each rank applies the same averaged gradient)."""
    w = _world()
    w.transport.sync()
    sums = w.comm.allgather(checksum(buf))
    if len(set(sums)) > 1:
        at = f" at step {step}" if step is not None else ""
        rows = ", ".join(f"rank {r}: {s:016x}" for r, s in enumerate(sums))
        raise RuntimeError(f"check_identical: the ranks' {what} differ{at} ({rows})")


def stats() -> dict:
    """Time and traffic of this rank's allreduce / allreduce_gradients calls so far (for
    benchmarks): seconds inside them (waiting for slower ranks included; on the NCCL backend
    only the time to enqueue the work on the stream), calls and bytes."""
    w = _world()
    return {"allreduce_s": w.allreduce_s, "allreduce_calls": w.allreduce_calls,
            "allreduce_bytes": w.allreduce_bytes}
