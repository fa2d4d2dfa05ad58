"""What the training samples share: a small terminal progress bar (no dependencies), the
loss plot, and run (one process, or every rank of mpiexec with --distributed).

It writes to stderr, so stdout keeps only the samples' result lines:

    bar = Progress(total=300, desc="train")
    for step in range(300):
        ...
        bar.update(loss=loss)
        if step % 50 == 0:
            bar.write(f"step {step}  loss {loss:.4f}")  # a stdout line; the bar is redrawn
    bar.close()

On a terminal the bar is redrawn in place (at most 10 times a second):

    train [#########.............]  120/300  4.3 steps/s  loss 2.1034  eta 0:42

When stderr is not a terminal (a log file, a pipe, a test) it prints a plain line at each
tenth of the way instead, so logs get a few lines rather than hundreds of carriage returns.
`enabled=False` (or the environment variable GRAPHC_NO_PROGRESS=1) turns it off.
"""
from __future__ import annotations

import os
import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    def __init__(self, total: int, desc: str = "", *, initial: int = 0, width: int = 24,
                 stream=None, enabled: bool | None = None, min_interval: float = 0.1):
        self.total = max(int(total), 0)
        self.desc = desc
        self.n = int(initial)
        self.start_n = self.n
        self.width = width
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = os.environ.get("GRAPHC_NO_PROGRESS", "") in ("", "0")
        self.enabled = enabled
        self.min_interval = min_interval
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.loss = None
        self.t0 = time.perf_counter()
        self._last_draw = 0.0
        self._last_len = 0
        self._next_tenth = self._tenth_after(self.n)
        self._emitted_n = self.n  # non-terminal mode: the count on the last line printed
        self.closed = False

    # ---- numbers ---------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def rate(self) -> float:
        """Steps per second since the bar started (steps done before `initial` excluded)."""
        done = self.n - self.start_n
        return done / self.elapsed if done > 0 and self.elapsed > 0 else 0.0

    def _tenth_after(self, n: int) -> int:
        if self.total <= 0:
            return 1 << 62
        tenth = max(self.total // 10, 1)
        return (n // tenth + 1) * tenth

    def line(self) -> str:
        total = self.total
        frac = min(self.n / total, 1.0) if total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        digits = len(str(total))
        parts = [f"{self.desc} [{bar}] {self.n:>{digits}}/{total}"]
        rate = self.rate
        parts.append(f"{rate:.1f} steps/s" if rate else "-- steps/s")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if rate and self.n < total:
            parts.append(f"eta {_clock((total - self.n) / rate)}")
        else:
            parts.append(f"time {_clock(self.elapsed)}")
        return "  ".join(parts).lstrip()

    # ---- output ----------------------------------------------------------------------

    def update(self, n: int = 1, loss: float | None = None):
        self.n += n
        if loss is not None:
            self.loss = float(loss)
        if not self.enabled or self.closed:
            return
        if self.tty:
            now = time.perf_counter()
            if now - self._last_draw >= self.min_interval or self.n >= self.total:
                self._draw()
                self._last_draw = now
        elif self.n >= self._next_tenth or self.n >= self.total:
            self._next_tenth = self._tenth_after(self.n)
            self._emitted_n = self.n
            self._emit(self.line() + "\n")

    def _draw(self):
        text = self.line()
        pad = " " * max(self._last_len - len(text), 0)
        self._emit("\r" + text + pad)
        self._last_len = len(text)

    def _clear(self):
        if self.enabled and self.tty and self._last_len:
            self._emit("\r" + " " * self._last_len + "\r")
            self._last_len = 0

    def _emit(self, text: str):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop training
            self.enabled = False

    def write(self, text: str, file=None):
        """Print a line (to stdout by default) without garbling the bar."""
        self._clear()
        print(text, file=file if file is not None else sys.stdout, flush=True)
        if self.enabled and self.tty and not self.closed and self.n:
            self._draw()

    def close(self):
        if self.closed:
            return
        if self.enabled:
            if self.tty:
                self._draw()
                self._emit("\n")
            elif self.n != self._emitted_n:
                self._emit(self.line() + "\n")
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def plot_losses(path, series: dict, *, hlines: dict | None = None, title: str = "",
                xlabel: str = "step", ylabel: str = "loss", smooth: int = 0) -> str:
    """Write a loss-curve PNG with matplotlib, if it is installed (it is optional).

    `series` maps a label to a list of values (x = 1, 2, ...); `hlines` maps a label to a
    constant drawn as a dashed line; `smooth` > 1 adds a moving average of that width.
    Returns the line to print: where it wrote the PNG, or that it skipped it.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return "loss curve: skipped the PNG (matplotlib is not installed)"
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for label, values in series.items():
        xs = range(1, len(values) + 1)
        ax.plot(xs, values, label=label, linewidth=0.8, alpha=0.6 if smooth > 1 else 1.0)
        if smooth > 1 and len(values) >= smooth:
            kernel = [1.0 / smooth] * smooth
            avg = [sum(values[i:i + smooth]) * kernel[0] for i in range(len(values) - smooth + 1)]
            ax.plot(range(smooth, len(values) + 1), avg, label=f"{label}, mean of {smooth}")
    for label, value in (hlines or {}).items():
        ax.axhline(value, linestyle="--", color="gray", linewidth=1)
        ax.annotate(f"{label} {value:.3f}", (0.99, value), xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", fontsize=8, color="gray")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"loss curve: wrote {path}"


class OneProcess:
    """graphc_runtime.distributed's calls as used here, for a run without --distributed."""

    def rank(self):
        return 0

    def size(self):
        return 1

    def shard(self, n):
        return slice(0, n)

    def allreduce_value(self, value, op="mean"):
        return value

    def allgather(self, array, axis=0):
        return array


def run(train, args):
    """train(args, dist) on this process alone, or with --distributed on every rank of
    mpiexec (graphc_runtime.distributed), where an error on one rank ends them all."""
    if not args.distributed:
        return train(args, OneProcess())
    from graphc_runtime import distributed as dist

    dist.init()
    with dist.fail_together():
        return train(args, dist)
