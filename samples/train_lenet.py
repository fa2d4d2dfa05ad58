"""Train samples/lenet.lua (compiled by graphc) on scikit-learn's bundled 8x8 digits.

The digits are upsampled to 24x24 (each pixel a 3x3 block), zero-padded to LeNet's 32x32
and standardized; training is minibatch SGD with momentum through Torch's closure API
(graphc_runtime.optim.sgd) and ClassNLLCriterion, as in the Torch tutorial.

    python samples/train_lenet.py              # a few epochs, prints the test accuracy
    python samples/train_lenet.py --quick      # 1 epoch on a subset (used by the tests)

About 20 s on one core. A progress bar goes to stderr (samples/progress.py); at the end the
minibatch losses are drawn to a PNG when matplotlib is installed (--plot, default
samples/build/lenet_loss.png; the script says where it wrote it, or that it skipped it).
"""
from __future__ import annotations

import argparse
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
from progress import Progress, plot_losses  # noqa: E402


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


def accuracy(model, x, y, batch=256):
    model.evaluate()
    correct = 0
    for i in range(0, len(x), batch):
        out = model.forward(x[i:i + batch])
        correct += int((out.argmax(axis=1) == y[i:i + batch]).sum())
    model.training()
    return correct / len(x)


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
    args = p.parse_args(argv)
    epochs = 1 if args.quick else args.epochs
    report_every = args.report_every or (5 if args.quick else 0)

    t0 = time.perf_counter()
    lenet = graphc.compile_file(HERE / "lenet.lua", shapes={"input1": "Bx1x32x32"},
                                dtype="float32")
    model = lenet.Model(dtype="float32", seed=args.seed)
    x_train, y_train, x_test, y_test = load_digits_32x32(args.seed)
    if args.quick:
        x_train, y_train = x_train[:600], y_train[:600]
    print(f"lenet: {sum(np.prod(s) for _, s, _ in lenet.PARAMETERS)} parameters; "
          f"{len(x_train)} training and {len(x_test)} test images", flush=True)

    criterion = ClassNLLCriterion()
    params, grad_params = model.getParameters()
    sgd_config = {"learningRate": args.lr, "learningRateDecay": args.lr_decay,
                  "momentum": args.momentum}
    rng = np.random.default_rng(args.seed)

    step = 0
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    bar = Progress(total=epochs * steps_per_epoch, desc="train", enabled=not args.no_progress)
    losses = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x_train))
        epoch_loss, n_batches, window = 0.0, 0, []
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            inputs, targets = x_train[idx], y_train[idx]

            def feval(x):
                # x is `params` itself (updated in place by sgd); reset the gradients
                grad_params[...] = 0
                output = model.forward(inputs)
                loss = criterion.forward(output, targets)
                model.backward(inputs, criterion.backward(output, targets))
                return loss, grad_params

            _, (loss,) = optim.sgd(feval, params, sgd_config)
            epoch_loss += loss
            n_batches += 1
            step += 1
            window.append(loss)
            losses.append(float(loss))
            bar.update(loss=loss)
            if report_every and step % report_every == 0:
                bar.write(f"step {step}  loss {np.mean(window):.4f}")
                window = []
        acc = accuracy(model, x_test, y_test)
        bar.write(f"epoch {epoch}  loss {epoch_loss / n_batches:.4f}  test accuracy {acc:.4f}")
    bar.close()

    if args.plot.lower() != "none":
        print(plot_losses(args.plot, {"minibatch loss": losses}, title="LeNet on 8x8 digits (graphc)",
                          xlabel="step", ylabel="ClassNLL loss", smooth=10))
    print(f"test accuracy: {acc:.4f}")
    print(f"wall time: {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
