"""Train samples/lenet.lua (compiled by graphc) on scikit-learn's bundled 8x8 digits.

The digits are upsampled to 24x24 (each pixel a 3x3 block), zero-padded to LeNet's 32x32
and standardized; training is minibatch SGD with momentum through Torch's closure API
(graphc_runtime.optim.sgd) and ClassNLLCriterion, as in the Torch tutorial.

    python samples/train_lenet.py              # a few epochs, prints the test accuracy
    python samples/train_lenet.py --quick      # 1 epoch on a subset (used by the tests)
    python samples/train_lenet.py --checkpoint build/lenet.npz --epochs 12 --resume
    mpiexec -n 2 python samples/train_lenet.py --distributed   # data parallel over 2 processes

About 20 s on one core. A progress bar goes to stderr (samples/progress.py); at the end the
minibatch losses are drawn to a PNG when matplotlib is installed (--plot, default
samples/build/lenet_loss.png; the script says where it wrote it, or that it skipped it).

With --checkpoint PATH, the weights (plus a PATH-stem.train.npz sidecar with the epoch, the
optimizer state and the shuffling RNG) are written after every epoch; --resume continues
from there with the next epoch. --distributed (under mpiexec; `pip install
"graphc[mpi]"`): each rank trains on its part of every minibatch and the gradients are
averaged (graphc_runtime.distributed), so the steps are those of one process; rank 0 alone
prints and writes the checkpoint, and the test accuracy is counted by all ranks on their
parts of the test set.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# One BLAS thread unless the environment says otherwise: LeNet's matrices are small, and
# OpenBLAS's spinning threads make training several times slower on a busy machine.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (after the thread settings)

import graphc  # noqa: E402
from graphc_runtime import ClassNLLCriterion, optim  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from progress import Progress, plot_losses, run  # noqa: E402


def load_digits_32x32(seed: int, test_fraction: float = 0.25):
    """(x_train, y_train, x_test, y_test): float32 Nx1x32x32 images, 0-based int labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()  # bundled with scikit-learn: no download
    images = digits.images.astype(np.float32) / 16.0  # N x 8 x 8, values 0..1
    big = np.kron(images, np.ones((1, 3, 3), np.float32))  # N x 24 x 24
    x = np.zeros((len(big), 1, 32, 32), np.float32)
    x[:, 0, 4:28, 4:28] = big
    y = digits.target.astype(np.int64)

    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(), x[train].std()  # statistics of the training set only
    x = (x - mean) / std
    return x[train], y[train], x[test], y[test]


def accuracy(model, x, y, dist, batch=256):
    """Test accuracy; each rank counts its part of the test set."""
    part = dist.shard(len(x))
    x, y, n = x[part], y[part], len(x)
    model.evaluate()
    correct = 0
    for i in range(0, len(x), batch):
        out = model.forward(x[i:i + batch])
        correct += int((out.argmax(axis=1) == y[i:i + batch]).sum())
    model.training()
    return dist.allreduce_value(correct, "sum") / n


SGD_SETTINGS = ("learningRate", "learningRateDecay", "momentum")


def sidecar_path(ckpt: Path) -> Path:
    return ckpt.with_name(ckpt.stem + ".train.npz")


def save_checkpoint(ckpt: Path, model, *, epoch, step, settings, sgd_config, rng, losses):
    """The weights (Model.save) and a sidecar with what else a resumed run needs."""
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    model.save(ckpt)
    state = {k: v for k, v in sgd_config.items() if k not in SGD_SETTINGS}  # momentum buffer, counter
    arrays = {f"sgd.{k}": v for k, v in state.items() if isinstance(v, np.ndarray)}
    scalars = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    meta = {"epoch": epoch, "step": step, "settings": settings, "sgd": scalars,
            "rng": rng.bit_generator.state}
    side = sidecar_path(ckpt)
    tmp = side.with_name(side.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, meta=json.dumps(meta), losses=np.asarray(losses, np.float64), **arrays)
    os.replace(tmp, side)


def load_checkpoint(ckpt: Path, model, settings, sgd_config, rng):
    """Restore what save_checkpoint wrote; returns (epoch, step, losses)."""
    side = sidecar_path(ckpt)
    if not ckpt.exists() or not side.exists():
        raise SystemExit(f"error: --resume needs {ckpt} and {side}; run without --resume first")
    with np.load(side, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        arrays = {k[len("sgd."):]: f[k].copy() for k in f.files if k.startswith("sgd.")}
        losses = [float(v) for v in f["losses"]]
    if meta["settings"] != settings:
        raise SystemExit(f"error: --resume: the checkpoint was trained with {meta['settings']}, "
                         f"not {settings}")
    model.load(ckpt)
    sgd_config.update(meta["sgd"])
    sgd_config.update(arrays)
    rng.bit_generator.state = meta["rng"]
    return meta["epoch"], meta["step"], losses


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8, help="passes over the training set (default 8)")
    p.add_argument("--quick", action="store_true",
                   help="1 epoch on a 600-image subset, loss printed every 5 minibatches")
    p.add_argument("--batch-size", type=int, default=16, help="minibatch size (default 16)")
    p.add_argument("--lr", type=float, default=0.1, help="learningRate (default 0.1)")
    p.add_argument("--lr-decay", type=float, default=2e-3,
                   help="learningRateDecay: the step is lr / (1 + steps * decay) (default 2e-3)")
    p.add_argument("--momentum", type=float, default=0.9, help="(default 0.9)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-every", type=int, default=0,
                   help="print the mean minibatch loss every N steps (0: only per epoch)")
    p.add_argument("--plot", default=str(HERE / "build" / "lenet_loss.png"),
                   help="loss-curve PNG, written when matplotlib is installed "
                        "(default samples/build/lenet_loss.png; 'none' to skip)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--checkpoint", default=None,
                   help="write the weights here after each epoch, with a NAME.train.npz "
                        "sidecar (default: none)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training over the ranks of mpiexec (see above)")
    args = p.parse_args(argv)
    if args.resume and args.checkpoint is None:
        p.error("--resume needs --checkpoint PATH (the file to continue from)")
    return run(train, args)


def train(args, dist):
    root = dist.rank() == 0
    say = print if root else (lambda *a, **k: None)
    epochs = 1 if args.quick else args.epochs
    report_every = args.report_every or (5 if args.quick else 0)

    t0 = time.perf_counter()
    lenet = graphc.compile_file(HERE / "lenet.lua", shapes={"input1": "Bx1x32x32"},
                                dtype="float32")
    model = lenet.Model(dtype="float32", seed=args.seed)
    x_train, y_train, x_test, y_test = load_digits_32x32(args.seed)
    if args.quick:
        x_train, y_train = x_train[:600], y_train[:600]
    say(f"lenet: {sum(np.prod(s) for _, s, _ in lenet.PARAMETERS)} parameters; "
        f"{len(x_train)} training and {len(x_test)} test images", flush=True)

    criterion = ClassNLLCriterion()
    params, grad_params = model.getParameters()
    sgd_config = {"learningRate": args.lr, "learningRateDecay": args.lr_decay,
                  "momentum": args.momentum}
    rng = np.random.default_rng(args.seed)

    step, first_epoch, losses, acc = 0, 1, [], None
    ckpt = Path(args.checkpoint) if args.checkpoint else None
    settings = {"seed": args.seed, "batch_size": args.batch_size, "quick": args.quick,
                "lr": args.lr, "lr_decay": args.lr_decay, "momentum": args.momentum}
    if args.resume:
        done, step, losses = load_checkpoint(ckpt, model, settings, sgd_config, rng)
        first_epoch = done + 1
        say(f"resumed from {ckpt} after epoch {done}", flush=True)
    if dist.size() > 1:
        dist.broadcast_parameters(model)  # the same weights everywhere; fails if models differ
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    bar = Progress(total=epochs * steps_per_epoch, initial=step, desc="train",
                   enabled=root and not args.no_progress)
    for epoch in range(first_epoch, epochs + 1):
        order = rng.permutation(len(x_train))  # the same order on every rank (same seed)
        epoch_loss, n_batches, window = 0.0, 0, []
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            mine = idx[dist.shard(len(idx))]  # this rank's part of the minibatch (all of it alone)
            inputs, targets = x_train[mine], y_train[mine]

            def feval(x):
                # x is `params` itself (updated in place by sgd); reset the gradients
                grad_params[...] = 0
                loss = 0.0
                if len(mine):
                    output = model.forward(inputs)
                    loss = criterion.forward(output, targets)
                    model.backward(inputs, criterion.backward(output, targets))
                if dist.size() > 1:  # the whole minibatch's mean gradient and loss
                    dist.allreduce_gradients(grad_params, weight=len(mine))
                    loss = dist.allreduce_value(loss * len(mine), "sum") / len(idx)
                return loss, grad_params

            _, (loss,) = optim.sgd(feval, params, sgd_config)
            epoch_loss += loss
            n_batches += 1
            step += 1
            window.append(loss)
            losses.append(float(loss))
            bar.update(loss=loss)
            if root and report_every and step % report_every == 0:
                bar.write(f"step {step}  loss {np.mean(window):.4f}")
                window = []
        acc = accuracy(model, x_test, y_test, dist)
        if root:
            bar.write(f"epoch {epoch}  loss {epoch_loss / n_batches:.4f}  test accuracy {acc:.4f}")
        if root and ckpt is not None:
            save_checkpoint(ckpt, model, epoch=epoch, step=step, settings=settings,
                            sgd_config=sgd_config, rng=rng, losses=losses)
    bar.close()
    if acc is None:  # resumed after the last epoch
        acc = accuracy(model, x_test, y_test, dist)
    if not root:
        return 0

    if args.plot.lower() != "none":
        print(plot_losses(args.plot, {"minibatch loss": losses}, title="LeNet on 8x8 digits (graphc)",
                          xlabel="step", ylabel="ClassNLL loss", smooth=10))
    if ckpt is not None:
        print(f"checkpoint: {ckpt}")
    print(f"test accuracy: {acc:.4f}")
    print(f"wall time: {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
