"""Train samples/charrnn.lua (char-rnn's 2-layer LSTM, compiled by graphc) on tiny Shakespeare.

What char-rnn's train.lua does, with the compiled model: the step model is compiled with
`unroll="T"` (a Sequence over time, one set of weights), the text is cut into `batch-size`
parallel streams read `seq-length` characters at a time, and training is truncated
backpropagation through time: the final LSTM states of one chunk are the initial states of
the next (reset to zero at each pass over the data). Each step: forward over the chunk,
SequencerCriterion(ClassNLLCriterion) averaged over batch and time, backward, each gradient
element clamped to [-grad-clip, grad-clip], then optim.rmsprop (or adam) through Torch's
closure API. Weights start as in char-rnn: uniform(-0.08, 0.08), forget-gate biases 1.

    python samples/train_charrnn.py                 # the default run: 300 steps, 1-2 minutes
    python samples/train_charrnn.py --steps 30 --rnn-size 32 --batch-size 16
    python samples/train_charrnn.py --steps 600 --resume   # continue the last run to step 600
    mpiexec -n 2 python samples/train_charrnn.py --distributed   # data parallel over 2 processes

A checkpoint (weights via Sequence.save, plus a `.train.npz` sidecar with the vocabulary,
step, optimizer state and carried LSTM states) is written every --checkpoint-every steps and
at the end; --resume continues from it exactly as if the run had not stopped. At the end the
script samples text one character at a time from the one-step model, writes a loss-curve PNG
when matplotlib is installed, and prints `final loss: X` (mean training loss of the last
report interval, nats per character) and `unigram entropy: Y` (the entropy of the text's
character frequencies: the loss of the best model that ignores context).

The progress bar goes to stderr; stdout gets plain lines only.

--distributed (under mpiexec; needs `pip install "graphc[mpi]"`): each of the N ranks trains
batch-size/N of the parallel streams (its shard; the sizes may differ by one), the gradients
are averaged over the ranks before clipping and the optimizer (graphc_runtime.distributed),
so the run takes the same steps as one process with the whole batch. Rank 0 alone prints,
samples and writes the checkpoint, which holds every stream's LSTM state: --resume works
with any number of ranks (all ranks read the checkpoint, so it must be on a file system they
share). --check-every N verifies every N steps that the ranks' weights are bit-identical.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

# One BLAS thread unless the environment says otherwise: the matrices are small (batch x 512),
# and OpenBLAS's spinning threads slow such loops down on a busy machine.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (after the thread settings)

import graphc  # noqa: E402
from graphc_runtime import ClassNLLCriterion, SequencerCriterion, optim  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from progress import Progress, plot_losses, run  # noqa: E402

DATA = HERE / "data" / "tinyshakespeare.txt"
BUILD = HERE / "build"  # git-ignored
SIDECAR_VERSION = 1

# Options that fix the model, the data layout or the optimizer: a resumed run takes them from
# the checkpoint (an explicitly different value on the command line is an error), except
# --lr, which may be changed on resume.
FIXED = ("data", "rnn_size", "num_layers", "dropout", "seq_length", "batch_size", "optim",
         "lr", "decay_rate", "grad_clip", "val_frac", "seed", "dtype")
RESUME_OVERRIDES = ("lr",)


# ---- data ----------------------------------------------------------------------------------

def unigram_entropy(ids: np.ndarray, vocab_size: int) -> float:
    """Entropy (nats) of the character frequencies: the loss of the best context-free model."""
    counts = np.bincount(ids, minlength=vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


class Batches:
    """char-rnn's CharSplitLMMinibatchLoader: the text as `batch` parallel streams, cut into
    chunks of `seq` steps; chunk i+1 of stream b continues chunk i of stream b, so the final
    LSTM state of one chunk is the right initial state of the next. Chunks are T x B arrays:
    inputs 1-based (OneHot/LookupTable indices), targets 0-based (ClassNLLCriterion)."""

    def __init__(self, ids: np.ndarray, batch: int, seq: int, val_frac: float):
        per_chunk = batch * seq
        n_chunks = len(ids) // per_chunk
        if n_chunks < 2:
            raise SystemExit(f"error: the text has {len(ids)} characters, too few for two chunks "
                             f"of --batch-size {batch} x --seq-length {seq}")
        data = ids[:n_chunks * per_chunk]
        ydata = np.empty_like(data)
        ydata[:-1], ydata[-1] = data[1:], data[0]  # as char-rnn: the last target wraps around
        xs = data.reshape(batch, -1)  # stream b is row b
        ys = ydata.reshape(batch, -1)
        self.x = [np.ascontiguousarray(xs[:, i * seq:(i + 1) * seq].T) + 1 for i in range(n_chunks)]
        self.y = [np.ascontiguousarray(ys[:, i * seq:(i + 1) * seq].T) for i in range(n_chunks)]
        n_val = int(n_chunks * val_frac) if val_frac > 0 else 0
        if val_frac > 0 and n_val == 0 and n_chunks >= 3:
            n_val = 1
        self.n_train = n_chunks - n_val
        self.n_val = n_val

    def train(self, i):
        return self.x[i], self.y[i]

    def val(self, i):
        return self.x[self.n_train + i], self.y[self.n_train + i]


# ---- the model -----------------------------------------------------------------------------

def state_pairs(num_layers: int):
    """next_c/next_h of layer L (outputs 2L-1, 2L) feed prev_c/prev_h (inputs 2L, 2L+1)."""
    pairs = []
    for layer in range(1, num_layers + 1):
        pairs.append((f"output{2 * layer - 1}", f"input{2 * layer}"))
        pairs.append((f"output{2 * layer}", f"input{2 * layer + 1}"))
    return pairs


def compile_charrnn(vocab_size: int, rnn_size: int, num_layers: int, dropout: float,
                    dtype: str = "float32"):
    return graphc.compile_file(
        HERE / "charrnn.lua",
        entry=f"LSTM.lstm({vocab_size}, {rnn_size}, {num_layers}, {dropout!r})",
        shapes={"input1": ("B",)}, dtype=dtype, unroll="T", state=state_pairs(num_layers))


def zero_state(num_layers: int, batch: int, rnn_size: int, dtype: str = "float32"):
    return [np.zeros((batch, rnn_size), dtype) for _ in range(2 * num_layers)]


def init_like_charrnn(seq, rnn_size: int, seed: int):
    """char-rnn's initialization: every parameter uniform(-0.08, 0.08), then the forget-gate
    biases (the second quarter of each i2h bias) set to 1 so the cells remember at first."""
    flat_w, _ = seq.getParameters()
    flat_w[...] = np.random.default_rng(seed).uniform(-0.08, 0.08, flat_w.shape)
    for name, w in seq.parameters():
        if name.startswith("i2h_") and name.endswith(".bias"):
            w[rnn_size:2 * rnn_size] = 1.0


def dropout_rng(seq):
    # The step model's dropout RNG: part of the training state for an exact resume. The
    # runtime has no public accessor for it (yet), hence the getattr.
    return getattr(seq.step, "_rng", None)


# ---- checkpoints ---------------------------------------------------------------------------

def sidecar_path(ckpt: Path) -> Path:
    return ckpt.with_name(ckpt.stem + ".train.npz")


def weights_digest(flat_w: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(flat_w).tobytes()).hexdigest()


def save_checkpoint(ckpt: Path, seq, *, step, vocab, config, optim_state, carried, losses,
                    rank_rngs=None):
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    seq.save(ckpt)
    flat_w, _ = seq.getParameters()
    arrays, scalars = {}, {}
    for key, value in optim_state.items():
        if isinstance(value, np.ndarray):
            arrays[f"optim.{key}"] = value
        else:
            scalars[key] = value
    rng = dropout_rng(seq)
    meta = {
        "version": SIDECAR_VERSION, "step": step, "vocab": vocab, "config": config,
        "optim_scalars": scalars, "weights_sha256": weights_digest(flat_w),
        "dropout_rng": rng.bit_generator.state if rng is not None else None,
        "dropout_rng_ranks": rank_rngs,  # --distributed: each rank's, in rank order
    }
    for i, s in enumerate(carried):
        arrays[f"state.{i}"] = s
    side = sidecar_path(ckpt)
    tmp = side.with_name(side.name + f".{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, meta=json.dumps(meta), losses=np.asarray(losses, np.float64), **arrays)
        os.replace(tmp, side)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_sidecar(ckpt: Path):
    side = sidecar_path(ckpt)
    if not ckpt.exists() or not side.exists():
        raise SystemExit(f"error: --resume needs {ckpt} and {side}; run without --resume first")
    with np.load(side, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        if meta.get("version") != SIDECAR_VERSION:
            raise SystemExit(f"error: {side}: unknown sidecar version {meta.get('version')!r}")
        arrays = {k: f[k].copy() for k in f.files if k != "meta"}
    return meta, arrays


def restore_training_state(seq, meta, arrays):
    """After seq.load(): the optimizer state, carried LSTM states and losses of the sidecar."""
    flat_w, _ = seq.getParameters()
    if weights_digest(flat_w) != meta["weights_sha256"]:
        raise SystemExit("error: the checkpoint's weights and its .train.npz sidecar do not "
                         "belong together (a run stopped between writing the two?)")
    optim_state = dict(meta["optim_scalars"])
    for key, value in arrays.items():
        if key.startswith("optim."):
            optim_state[key[len("optim."):]] = value.astype(flat_w.dtype, copy=False)
    n_state = sum(1 for k in arrays if k.startswith("state."))
    carried = [arrays[f"state.{i}"].astype(flat_w.dtype) for i in range(n_state)]
    rng = dropout_rng(seq)
    if rng is not None and meta.get("dropout_rng") is not None:
        rng.bit_generator.state = meta["dropout_rng"]
    return optim_state, carried, [float(v) for v in arrays["losses"]]


# ---- several processes (--distributed) -----------------------------------------------------

def seed_dropout_per_rank(seq, seed: int, dist, meta):
    """Each rank draws its own dropout masks: its generator state from the checkpoint when
    it was written by as many ranks, else seeded from (seed, rank, step)."""
    rng = dropout_rng(seq)
    if rng is None:
        return
    saved = (meta or {}).get("dropout_rng_ranks")
    if saved and len(saved) == dist.size():
        rng.bit_generator.state = saved[dist.rank()]
    else:
        step = int(meta["step"]) if meta else 0
        fresh = np.random.default_rng([seed, dist.rank(), step])
        rng.bit_generator.state = fresh.bit_generator.state


def gather_dropout_rngs(seq, dist):
    rng = dropout_rng(seq)
    if rng is None or dist.size() == 1:
        return None
    return dist.allgather_object(rng.bit_generator.state)


def stop_now(interrupted: list, dist) -> bool:
    """Ctrl-C reaches the ranks at different moments: all stop when any one was interrupted."""
    if dist.size() == 1:
        return bool(interrupted)
    return dist.allreduce_value(1.0 if interrupted else 0.0, "sum") > 0


# ---- sampling ------------------------------------------------------------------------------

def sample_text(step_model, vocab: str, n_chars: int, prime: str, temperature: float,
                num_layers: int, rnn_size: int, seed: int) -> str:
    """char-rnn's sample.lua: feed the prime text, then draw each next character from
    softmax(log-probabilities / temperature) and feed it back, carrying the LSTM states."""
    rng = np.random.default_rng(seed)
    index = {c: i for i, c in enumerate(vocab)}
    step_model.evaluate()
    state = zero_state(num_layers, 1, rnn_size, step_model.dtype)
    prime_ids = [index[c] for c in prime if c in index] or [rng.integers(len(vocab))]
    logp = None
    for c in prime_ids:
        *state, logp = step_model.forward(np.array([c + 1]), *state)
    out = []
    for _ in range(n_chars):
        z = logp[0].astype(np.float64) / max(temperature, 1e-6)
        p = np.exp(z - z.max())
        c = int(rng.choice(len(vocab), p=p / p.sum()))
        out.append(vocab[c])
        *state, logp = step_model.forward(np.array([c + 1]), *state)
    step_model.training()
    return "".join(out)


def evaluate_loss(seq, batches: Batches, criterion, cfg) -> float | None:
    """Mean loss over the validation chunks (dropout off), states carried from zero."""
    if batches.n_val == 0:
        return None
    seq.evaluate()
    state = zero_state(cfg["num_layers"], cfg["batch_size"], cfg["rnn_size"], cfg["dtype"])
    total = 0.0
    for i in range(batches.n_val):
        x, y = batches.val(i)
        *state, logp = seq.forward(x, *state)
        total += criterion.forward(logp, y)
    seq.training()
    return total / batches.n_val


# ---- main ----------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300,
                   help="train until this many steps (minibatches) in all (default 300); with "
                        "--resume the count includes the checkpoint's steps")
    p.add_argument("--data", default=None, help=f"a text file (default {DATA.relative_to(HERE.parent)})")
    p.add_argument("--seq-length", type=int, default=None, help="BPTT steps per chunk (default 50)")
    p.add_argument("--batch-size", type=int, default=None, help="parallel streams (default 50)")
    p.add_argument("--rnn-size", type=int, default=None, help="LSTM units per layer (default 128)")
    p.add_argument("--num-layers", type=int, default=None, help="LSTM layers (default 2)")
    p.add_argument("--dropout", type=float, default=None,
                   help="dropout between layers and before the decoder (default 0)")
    p.add_argument("--optim", choices=("rmsprop", "adam"), default=None, help="(default rmsprop)")
    p.add_argument("--lr", type=float, default=None, help="learningRate (default 2e-3)")
    p.add_argument("--decay-rate", type=float, default=None,
                   help="rmsprop's alpha (default 0.95, as char-rnn)")
    p.add_argument("--grad-clip", type=float, default=None,
                   help="clamp each gradient element to [-x, x] (default 5)")
    p.add_argument("--val-frac", type=float, default=None,
                   help="fraction of the chunks held out for the validation loss (default 0.05)")
    p.add_argument("--seed", type=int, default=None, help="initialization seed (default 0)")
    p.add_argument("--checkpoint", default=str(BUILD / "charrnn.npz"),
                   help="weights file (the sidecar is NAME.train.npz next to it; default "
                        "samples/build/charrnn.npz)")
    p.add_argument("--checkpoint-every", type=int, default=100,
                   help="also save every N steps (default 100; 0: only at the end)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--report-every", type=int, default=0,
                   help="print the mean loss every N steps (default: steps/10)")
    p.add_argument("--sample-chars", type=int, default=200,
                   help="characters to sample at the end (default 200; 0: none)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--prime", default="\n", help="text fed to the model before sampling")
    p.add_argument("--plot", default=None,
                   help="loss-curve PNG (default: the checkpoint's name with _loss.png); "
                        "'none' to skip")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="the model's float type (default float32)")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training over the ranks of mpiexec (see above)")
    p.add_argument("--check-every", type=int, default=0,
                   help="with --distributed: check every N steps that the ranks' weights are "
                        "bit-identical (a debug check; default 0: never)")
    return p.parse_args(argv)


DEFAULTS = {"data": str(DATA), "rnn_size": 128, "num_layers": 2, "dropout": 0.0,
            "seq_length": 50, "batch_size": 50, "optim": "rmsprop", "lr": 2e-3,
            "decay_rate": 0.95, "grad_clip": 5.0, "val_frac": 0.05, "seed": 0, "dtype": "float32"}


def main(argv=None):
    args = parse_args(argv)
    return run(train, args)


def train(args, dist):
    root = dist.rank() == 0
    say = print if root else (lambda *a, **k: None)
    t0 = time.perf_counter()
    ckpt = Path(args.checkpoint)

    # ---- configuration: command line, or the checkpoint's on --resume ----------------------
    given = {k: getattr(args, k) for k in FIXED if getattr(args, k) is not None}
    if "data" in given:
        given["data"] = str(Path(given["data"]).resolve())
    if args.resume:
        meta, arrays = read_sidecar(ckpt)
        cfg = {"dtype": "float32", **meta["config"]}  # checkpoints before --dtype: float32
        cfg.update({k: v for k, v in given.items() if k in RESUME_OVERRIDES})
        clash = {k: (v, cfg[k]) for k, v in given.items() if k in cfg and v != cfg[k]}
        if clash:
            raise SystemExit("error: --resume keeps the checkpoint's settings; these differ: " +
                             ", ".join(f"--{k.replace('_', '-')} {a!r} (checkpoint: {b!r})"
                                       for k, (a, b) in clash.items()))
        vocab = meta["vocab"]
    else:
        meta = arrays = None
        cfg = {**DEFAULTS, **given}
        vocab = None

    text = Path(cfg["data"]).read_text(encoding="utf-8")
    if vocab is None:
        vocab = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(vocab)}
    unknown = set(text) - set(index)
    if unknown:
        raise SystemExit(f"error: the text has characters outside the checkpoint's vocabulary: "
                         f"{''.join(sorted(unknown))!r}")
    ids = np.fromiter((index[c] for c in text), np.int64, len(text))
    batches = Batches(ids, cfg["batch_size"], cfg["seq_length"], cfg["val_frac"])
    entropy = unigram_entropy(ids, len(vocab))

    # ---- the model ------------------------------------------------------------------------
    tc = time.perf_counter()
    mod = compile_charrnn(len(vocab), cfg["rnn_size"], cfg["num_layers"], cfg["dropout"],
                          cfg["dtype"])
    seq = mod.Sequence(dtype=cfg["dtype"], seed=cfg["seed"])
    compile_s = time.perf_counter() - tc
    flat_w, flat_g = seq.getParameters()
    if args.resume:
        seq.load(ckpt)
        optim_state, carried, losses = restore_training_state(seq, meta, arrays)
        step = int(meta["step"])
    else:
        init_like_charrnn(seq, cfg["rnn_size"], cfg["seed"])
        optim_state, carried, losses, step = {}, None, [], 0
    ranks = dist.size()
    if ranks > 1:
        dist.broadcast_parameters(seq)  # the same weights everywhere; fails if the models differ
        seed_dropout_per_rank(seq, cfg["seed"], dist, meta)

    n_layers, rnn, dtype = cfg["num_layers"], cfg["rnn_size"], cfg["dtype"]
    # This rank's streams: the columns `rows` of each T x B chunk, and of the carried states.
    rows = dist.shard(cfg["batch_size"])
    batch = rows.stop - rows.start
    if batch == 0:
        raise SystemExit(f"error: --batch-size {cfg['batch_size']} gives rank {dist.rank()} of "
                         f"{ranks} no streams; use a batch size of at least {ranks}")
    say(f"charrnn: {len(vocab)} characters, {cfg['num_layers']} layers of {cfg['rnn_size']}, "
          f"{flat_w.size:,} parameters (compiled in {compile_s:.1f} s); "
          f"{batches.n_train} training and {batches.n_val} validation chunks of "
          f"{cfg['batch_size']}x{cfg['seq_length']} characters", flush=True)
    if ranks > 1:
        say(f"distributed: {ranks} ranks share the {cfg['batch_size']} streams "
            f"(rank 0: {batch})", flush=True)
    if args.resume:
        say(f"resumed from {ckpt} at step {step}", flush=True)
        carried = [s[rows] for s in carried]  # the checkpoint holds every stream's state

    criterion = SequencerCriterion(ClassNLLCriterion(), size_average=True)
    optimizer = {"rmsprop": optim.rmsprop, "adam": optim.adam}[cfg["optim"]]
    optim_config = {"learningRate": cfg["lr"]}
    if cfg["optim"] == "rmsprop":
        optim_config["alpha"] = cfg["decay_rate"]
    clip = cfg["grad_clip"]
    zero_grads = [np.zeros((batch, rnn), dtype) for _ in range(2 * n_layers)]
    if carried is None:
        carried = zero_state(n_layers, batch, rnn, dtype)
    report_every = args.report_every or max(args.steps // 10, 1)

    def checkpoint():
        # every rank takes part (the states are gathered from all); rank 0 writes
        everyone = [dist.allgather(s) for s in carried]
        rng_states = gather_dropout_rngs(seq, dist)
        if root:
            save_checkpoint(ckpt, seq, step=step, vocab=vocab, config=cfg,
                            optim_state=optim_state, carried=everyone, losses=losses,
                            rank_rngs=rng_states)

    # ---- training: truncated BPTT, states carried between chunks --------------------------
    bar = Progress(total=max(args.steps, step), initial=step, desc="train",
                   enabled=root and not args.no_progress)
    window = []
    start_step, t_train = step, time.perf_counter()
    interrupted = []  # Ctrl-C stops at the end of the current step (a second one at once)

    def on_sigint(signum, frame):
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)

    try:
        previous_handler = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: Ctrl-C keeps its default behaviour
        previous_handler = None
    try:
        while step < args.steps and not stop_now(interrupted, dist):
            i = step % batches.n_train
            if i == 0:  # a new pass over the text: the streams start again from zero state
                carried = zero_state(n_layers, batch, rnn, dtype)
            x, y = batches.train(i)
            x, y = x[:, rows], y[:, rows]  # this rank's streams (all of them in one process)
            final = []

            def feval(w):
                # w is flat_w itself, updated in place by the optimizer
                flat_g[...] = 0
                *last, logp = seq.forward(x, *carried)
                loss = criterion.forward(logp, y)
                seq.backward((x, *carried), (*zero_grads, criterion.backward(logp, y)))
                if ranks > 1:
                    # the whole batch's mean gradient and loss: each rank's weighted by its streams
                    dist.allreduce_gradients(flat_g, weight=batch)
                    loss = dist.allreduce_value(loss * batch, "sum") / cfg["batch_size"]
                np.clip(flat_g, -clip, clip, out=flat_g)
                final[:] = [np.array(s, dtype) for s in last]
                return loss, flat_g

            _, (loss,) = optimizer(feval, flat_w, optim_config, optim_state)
            carried = final  # the next chunk starts where this one ended
            loss = float(loss)
            if not np.isfinite(loss):
                bar.close()
                raise SystemExit(f"error: the loss is {loss} at step {step + 1}; try a lower --lr")
            step += 1
            losses.append(loss)
            window.append(loss)
            bar.update(loss=loss)
            if root and (step % report_every == 0 or step == args.steps):
                bar.write(f"step {step}/{args.steps}  loss {np.mean(window):.4f}  "
                          f"{bar.rate:.2f} steps/s")
                window = []
            if args.checkpoint_every and step % args.checkpoint_every == 0 and step < args.steps:
                checkpoint()
            if ranks > 1 and args.check_every and step % args.check_every == 0:
                dist.check_identical(flat_w, step=step)
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    if step < args.steps:  # interrupted (on some rank)
        bar.close()
        checkpoint()
        say(f"interrupted at step {step}: saved {ckpt} (continue with --resume)", flush=True)
        return 130
    bar.close()
    train_s = time.perf_counter() - t_train
    steps_done = step - start_step
    checkpoint()
    say(f"checkpoint: wrote {ckpt} and {sidecar_path(ckpt).name} (step {step})", flush=True)
    if not root:
        return 0  # rank 0 alone evaluates, samples and reports

    # ---- results ---------------------------------------------------------------------------
    val_loss = evaluate_loss(seq, batches, criterion, cfg)  # all streams: rank 0 has the weights
    if args.sample_chars > 0:
        text_out = sample_text(seq.step, vocab, args.sample_chars, args.prime, args.temperature,
                               n_layers, rnn, seed=cfg["seed"])
        print(f"sample ({args.sample_chars} characters, temperature {args.temperature}):")
        print("-" * 60)
        print(text_out)
        print("-" * 60, flush=True)
    plot = args.plot or str(ckpt.with_name(ckpt.stem + "_loss.png"))
    if plot.lower() != "none":
        print(plot_losses(plot, {"training loss (per step)": losses},
                          hlines={"unigram entropy": entropy},
                          title="char-rnn LSTM on tiny Shakespeare (graphc)",
                          xlabel="step", ylabel="loss (nats per character)"))
    if steps_done:
        print(f"steps/s: {steps_done / train_s:.2f} ({steps_done} steps in {train_s:.1f} s)")
    if steps_done and ranks > 1:
        # rank 0's time inside the gradient all-reduces, waiting for slower ranks included
        st = dist.stats()
        print(f"allreduce: {1e3 * st['allreduce_s'] / steps_done:.2f} ms per step "
              f"({100 * st['allreduce_s'] / train_s:.1f}% of the training time), "
              f"{st['allreduce_bytes'] / max(st['allreduce_calls'], 1) / 1e6:.3f} MB per step")
    print(f"wall time: {time.perf_counter() - t0:.1f} s")
    if val_loss is not None:
        print(f"validation loss: {val_loss:.4f}")
    tail = losses[-report_every:]
    print(f"final loss: {np.mean(tail):.4f}" if tail else "final loss: nan")
    print(f"unigram entropy: {entropy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
