"""Hostile and broken input, by fuzzing.

1. Differential fuzzing (hypothesis): random valid nngraph specs (DAGs over the core modules,
   batched and fixed shapes, several inputs and outputs, table inputs and outputs, shared
   modules, SplitTable / SelectTable / :split, containers, nested gModules) are compiled with
   graphc (float64, -O1 or -O0); the generated module's forward must match the reference
   interpreter (tests/reference_interpreter.py) to 1e-10, its backward must match central
   finite differences of the reference forward, and float32 / unbatched calls must agree.
2. Regressions: every tests/fuzz_regressions/NNN.lua replays. A differential finding has a
   `-- graphc-fuzz: --shape ... --batch N --seed N` header (what hypothesis prints for a
   falsifying Case: save that text as the next NNN.lua); a frontend finding has a
   `-- graphc-fuzz-frontend: ...` header (see test_fuzz_regression).
3. Mutation fuzzing of the frontend: every sample spec with random token deletions,
   insertions, swaps and odd numbers (seeded, a fixed case list) must compile or raise a
   located SpecError within 5 s; 20 cases also go through the CLI. Plus every registered
   module's constructor with odd arguments.

GRAPHC_FUZZ_EXAMPLES=N runs N differential examples with a random seed (default: a fixed,
derandomized set small enough for CI); GRAPHC_FUZZ_MUTATIONS=N sets the mutations per file,
GRAPHC_FUZZ_ARG_TRIALS=N the argument sets per module.
"""
from __future__ import annotations

import atexit
import itertools
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

import reference_interpreter as ref
from graphc.compiler import Options, compile_spec, parse_shape
from graphc.errors import SpecError

# hypothesis keeps caches under ./.hypothesis: put them in a temporary directory instead
# (no example database either: settings(database=None) below)
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="graphc-hypothesis-")
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)
set_hypothesis_home_dir(_HYPOTHESIS_HOME)

ROOT = Path(__file__).resolve().parent.parent
REGRESSIONS = Path(__file__).resolve().parent / "fuzz_regressions"
B = "B"


# =====================================================================================
# Part 1: a generator of random valid specs
# =====================================================================================

@dataclass
class Tensor:
    """A graph node whose output is one tensor."""
    name: str
    shape: tuple
    live: int = 0  # uses by nodes that reach an output
    dead: bool = False  # made only to be dropped: not an output, nothing live uses it


@dataclass
class Table:
    """A graph node whose output is a table of tensors."""
    name: str
    items: list  # item shapes
    live: int = 0
    dead: bool = False


@dataclass
class Mod:
    """A module object bound to a Lua local, callable again (shared parameters)."""
    name: str
    apply: object  # shape -> output shape, or None where it does not fit


def _numel(shape):
    return int(np.prod([d for d in shape if d != B], dtype=np.int64))


def _batched(shape):
    return bool(shape) and shape[0] == B


def _shape_text(s):
    if isinstance(s, list):
        return "{" + ",".join(_shape_text(x) for x in s) + "}"
    return "x".join(map(str, s))


def _lua_num(c):
    return repr(c)


def _factorizations(n, parts):
    """All ordered tuples of `parts` positive ints with product n."""
    if parts == 1:
        return [(n,)]
    out = []
    for d in range(1, n + 1):
        if n % d == 0:
            out += [(d,) + rest for rest in _factorizations(n // d, parts - 1)]
    return out


ELEMENTWISE = ["nn.Tanh()", "nn.Sigmoid()", "nn.ReLU()", "nn.Exp()", "nn.Square()", "nn.Abs()",
               "nn.Identity()", "nn.MulConstant({c})", "nn.AddConstant({c})",
               "nn.LeakyReLU(0.25)", "nn.SoftSign()"]
CONSTANTS = [0.5, -2, 3, -0.25, 1.5]


class Gen:
    """Draws one gModule's body (recursively, for nested gModules) as Lua lines."""

    def __init__(self, draw, names, depth, mods, indent=""):
        self.draw = draw
        self.names = names
        self.depth = depth
        self.mods = list(mods)  # visible shareable module objects
        self.indent = indent
        self.lines = []
        self.vals = []  # Tensor | Table, in creation order
        self.inputs = []

    # ---- drawing helpers
    def int(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def chance(self, k, n):
        """True with probability about k/n (shrinks toward False)."""
        return self.draw(st.integers(0, n - 1)) >= n - k

    def pick(self, seq):
        return self.draw(st.sampled_from(list(seq)))

    def fresh(self, prefix):
        return f"{prefix}{next(self.names)}"

    def emit(self, line):
        self.lines.append(self.indent + line)

    # ---- values
    def tensor(self, shape, expr, dead=False):
        v = Tensor(self.fresh("v"), tuple(shape), dead=dead)
        self.emit(f"local {v.name} = {expr}")
        self.vals.append(v)
        return v

    def use(self, *vals, dead=False):
        if not dead:
            for v in vals:
                v.live += 1

    def pick_tensor(self, pred=lambda v: True, prefer_sinks=True):
        cands = [v for v in self.vals if isinstance(v, Tensor) and not v.dead and pred(v)]
        if not cands:
            return None
        sinks = [v for v in cands if v.live == 0]
        if prefer_sinks and sinks and not self.chance(1, 4):
            cands = sinks
        # recent values first: index from the end shrinks toward the newest
        return cands[-1 - self.int(0, len(cands) - 1)]

    # ---- module constructors applied to one tensor
    def unary(self, shape, allow_shared=True):
        """(constructor text, output shape) of a module that fits `shape`."""
        if allow_shared and self.mods and self.chance(1, 4):
            fits = [m for m in self.mods if m.apply(shape) is not None]
            if fits:
                m = self.pick(fits)
                return m.name, m.apply(shape)
        kinds = ["elementwise"]
        rank = len(shape)
        free = [k for k, d in enumerate(shape) if d != B]
        if rank in (1, 2) and shape[-1] != B:
            kinds += ["linear", "linear"]
        if 1 <= rank <= 4:
            kinds.append("softmax")
        if free:
            kinds += ["narrow", "sum"]
        if rank >= 2 and free:
            kinds.append("select")
        if _numel(shape) >= 1:
            kinds += ["view", "reshape"]
        if len(free) >= 2:
            kinds.append("transpose")
        if rank <= 3:
            kinds += ["replicate", "unsqueeze"]
        if any(shape[k] == 1 for k in free):
            kinds.append("squeeze")
        kinds += ["cmul", "scalar_param"]
        if len(shape) in (3, 4) and all(d != B for d in shape[-3:]):
            kinds += ["conv"] * 4 + ["maxpool"] * 2
        if rank >= 1 and (rank == 1 or shape[1] != B):
            kinds.append("prelu")
        kind = self.pick(kinds)
        ctor, out, apply = getattr(self, "_" + kind)(shape)
        if apply is not None and self.chance(1, 4):
            name = self.fresh("m")
            self.emit(f"local {name} = {ctor}")
            self.mods.append(Mod(name, apply))
            ctor = name
        return ctor, out

    def _elementwise(self, shape):
        ctor = self.pick(ELEMENTWISE).format(c=_lua_num(self.pick(CONSTANTS)))
        return ctor, shape, (lambda s: s)

    def _linear(self, shape):
        n_in, n_out = shape[-1], self.int(1, 4)
        form = self.int(0, 2)
        ctor = [f"nn.Linear({n_in}, {n_out})", f"nn.Linear({n_in}, {n_out}, false)",
                f"nn.Linear({n_in}, {n_out}):noBias()"][form]

        def apply(s):
            return s[:-1] + (n_out,) if len(s) in (1, 2) and s[-1] == n_in else None
        return ctor, apply(shape), apply

    def _softmax(self, shape):
        ctor = self.pick(["nn.SoftMax()", "nn.LogSoftMax()"])
        return ctor, shape, (lambda s: s if 1 <= len(s) <= 4 else None)

    def _dim_text(self, axis, rank):
        """A Torch dim for 0-based `axis`: 1-based, or negative from the end."""
        return str(axis + 1) if not self.chance(1, 3) else str(axis - rank)

    def _narrow(self, shape):
        rank = len(shape)
        axis = self.pick([k for k, d in enumerate(shape) if d != B])
        size = shape[axis]
        offset = self.int(1, size)
        length = self.int(1, size - offset + 1)
        ltext = str(length)
        if self.chance(1, 3):  # Torch: a negative length counts from the end
            ltext = str(length - (size - offset + 2))
        out = list(shape)
        out[axis] = length
        if length == 1 and ltext == "1" and self.chance(1, 2):
            return f"nn.Narrow({self._dim_text(axis, rank)}, {offset})", tuple(out), None
        return f"nn.Narrow({self._dim_text(axis, rank)}, {offset}, {ltext})", tuple(out), None

    def _select(self, shape):
        rank = len(shape)
        axis = self.pick([k for k, d in enumerate(shape) if d != B])
        size = shape[axis]
        i = self.int(1, size)
        itext = str(i) if not self.chance(1, 3) else str(i - size - 1)
        out = tuple(d for k, d in enumerate(shape) if k != axis)
        return f"nn.Select({self._dim_text(axis, rank)}, {itext})", out, None

    def _sum(self, shape):
        rank = len(shape)
        axis = self.pick([k for k, d in enumerate(shape) if d != B])
        mean = self.chance(1, 3)
        squeeze, size_average = True, False
        nid = "nil"
        dim = self._dim_text(axis, rank)
        if _batched(shape) and axis >= 1 and self.chance(1, 3):
            nid, dim = str(rank - 1), str(axis)  # nInputDims: a positive dim skips B
        if mean:
            ctor = f"nn.Mean({dim}, {nid})" if nid != "nil" else f"nn.Mean({dim})"
        else:
            size_average, squeeze = self.chance(1, 3), not self.chance(1, 4)
            if nid == "nil" and not size_average and squeeze:
                ctor = f"nn.Sum({dim})"
            else:
                ctor = (f"nn.Sum({dim}, {nid}, {str(size_average).lower()}, "
                        f"{str(squeeze).lower()})")
        out = list(shape)
        if squeeze and rank > 1:
            del out[axis]
        else:
            out[axis] = 1
        return ctor, tuple(out), None

    def _window(self, size, max_pad):
        """(k, d, pad) of a window that fits `size` (the output has at least one cell)."""
        pad = self.int(0, max_pad)
        k = self.int(max(1, 2 * pad), max(1, min(3, size + 2 * pad)))
        if k < 2 * pad:
            pad = 0
        return k, self.int(1, 2), pad

    def _conv(self, shape):
        c, h, w = shape[-3:]
        n_out = self.int(1, 3)
        kw, dw, pw = self._window(w, 1)
        kh, dh, ph = self._window(h, 1)
        oh, ow = (h + 2 * ph - kh) // dh + 1, (w + 2 * pw - kw) // dw + 1
        args = [c, n_out, kw, kh, dw, dh, pw, ph]
        if ph == pw and self.chance(1, 2):
            args.pop()  # padH defaults to padW
            while len(args) > 4 and args[-1] == [1, 1, 0][len(args) - 5] and self.chance(1, 2):
                args.pop()  # dW = dH = 1, padW = 0 by default
        ctor = f"nn.SpatialConvolution({', '.join(map(str, args))})"
        if self.chance(1, 4):
            ctor += ":noBias()"

        def apply(s):
            if len(s) not in (3, 4) or s[-3] != c or B in s[-3:]:
                return None
            h2, w2 = s[-2:]
            o = (h2 + 2 * ph - kh) // dh + 1, (w2 + 2 * pw - kw) // dw + 1
            return s[:-3] + (n_out,) + o if min(o) >= 1 else None
        return ctor, shape[:-3] + (n_out, oh, ow), apply

    def _maxpool(self, shape):
        c, h, w = shape[-3:]
        kw, dw, pw = self._window(w, 1)
        kh, dh, ph = self._window(h, 1)
        ceil = self.chance(1, 3) and dw <= kw and dh <= kh
        dims = []
        for size, k, d, p in ((h, kh, dh, ph), (w, kw, dw, pw)):
            span = size - k + 2 * p
            out = (-(-span // d) if ceil else span // d) + 1
            if p and (out - 1) * d >= size + p:
                out -= 1
            dims.append(out)
        ctor = f"nn.SpatialMaxPooling({kw}, {kh}, {dw}, {dh}, {pw}, {ph})"
        if ceil:
            ctor += ":ceil()"
        return ctor, shape[:-2] + tuple(dims), None

    def _transpose(self, shape):
        rank = len(shape)
        free = [k for k, d in enumerate(shape) if d != B]
        nid = rank - 1 if _batched(shape) and self.chance(1, 2) else None
        off = rank - nid if nid is not None else 0
        perm, pairs = list(shape), []
        for _ in range(self.int(1, 2)):
            i, j = self.pick(free), self.pick(free)
            perm[i], perm[j] = perm[j], perm[i]
            pairs.append(f"{{{i + 1 - off}, {j + 1 - off}}}")
        ctor = f"nn.Transpose({', '.join(pairs)})"
        if nid is not None:
            ctor += f":setNumInputDims({nid})"
        return ctor, tuple(perm), None

    def _replicate(self, shape):
        rank = len(shape)
        n = self.int(1, 3)
        lo = 2 if _batched(shape) else 1
        if _batched(shape) and self.chance(1, 2):  # ndim: a batched input shifts dim by one
            dim = self.int(1, rank)
            out = list(shape)
            out.insert(dim, n)
            return f"nn.Replicate({n}, {dim}, {rank - 1})", tuple(out), None
        dim = self.int(lo, rank + 1)
        out = list(shape)
        out.insert(dim - 1, n)
        return (f"nn.Replicate({n}, {dim})" if dim != 1 or self.chance(1, 2) else
                f"nn.Replicate({n})"), tuple(out), None

    def _unsqueeze(self, shape):
        rank = len(shape)
        if _batched(shape) and self.chance(1, 2):  # numInputDims: pos counts after B
            pos = self.int(1, rank)
            out = list(shape)
            out.insert(pos, 1)
            return f"nn.Unsqueeze({pos}, {rank - 1})", tuple(out), None
        pos = self.int(2 if _batched(shape) else 1, rank + 1)
        out = list(shape)
        out.insert(pos - 1, 1)
        return f"nn.Unsqueeze({pos})", tuple(out), None

    def _squeeze(self, shape):
        ones = [k for k, d in enumerate(shape) if d == 1]
        if self.chance(1, 2) and len(shape) > 1:
            k = self.pick(ones)
            out = tuple(d for j, d in enumerate(shape) if j != k)
            return f"nn.Squeeze({self._dim_text(k, len(shape))})", out, None
        out = tuple(d for d in shape if d != 1) or (1,)
        return "nn.Squeeze()", out, None

    def _cmul(self, shape):
        name = self.pick(["nn.CMul", "nn.CAdd"])
        per = tuple(d for d in shape if d != B)
        mode = self.int(0, 2)
        if mode == 0 and not _batched(shape):  # the same element count: elementwise
            size = self.pick(_factorizations(_numel(per), len(per)) if per else [(1,)])
        elif mode <= 1:  # the same number of dims: size-1 dims broadcast
            size = tuple(1 if d == B or self.chance(1, 3) else d for d in shape)
        elif _batched(shape) and len(shape) >= 2:  # a row of each sample
            size = self.pick(_factorizations(_numel(per), self.int(1, 2)))
            if len(size) == len(shape):
                size = (_numel(per),)
        else:
            size = tuple(1 if d == B or self.chance(1, 3) else d for d in shape)
        return f"{name}({', '.join(map(str, size))})", shape, None

    def _scalar_param(self, shape):
        if not _batched(shape) or len(shape) < 2 or self.chance(1, 2):
            if self.chance(1, 2):
                return "nn.Mul()", shape, (lambda s: s)
            if not _batched(shape) and len(shape) == 1 and self.chance(1, 2):
                return f"nn.Add({shape[0]})", shape, None
            return f"nn.Add({_numel(shape)}, true)", shape, (lambda s: s)
        return f"nn.Add({_numel(shape)})", shape, None  # one bias per sample element

    def _prelu(self, shape):
        if self.chance(1, 2) or len(shape) == 0:
            return "nn.PReLU()", shape, (lambda s: s)
        axis = 0 if len(shape) == 1 else 1
        if shape[axis] == B:
            return "nn.PReLU()", shape, (lambda s: s)
        return f"nn.PReLU({shape[axis]})", shape, None

    def _sizes_text(self, sizes, minus_one):
        sizes = list(sizes)
        if minus_one is not None:
            sizes[minus_one] = -1
        return ", ".join(map(str, sizes))

    def _view(self, shape):
        if _batched(shape):
            n = _numel(shape)
            sizes = self.pick(_factorizations(n, self.int(1, 3)))
            m1 = self.int(0, len(sizes) - 1) if self.chance(1, 3) else None
            # a -1 would absorb the batch (Torch); setNumInputDims keeps it per sample
            nid = f":setNumInputDims({len(shape) - 1})" if m1 is not None else ""
            return f"nn.View({self._sizes_text(sizes, m1)}){nid}", (B,) + sizes, None
        n = _numel(shape)
        rank = len(shape)
        if rank >= 2 and self.chance(1, 4):  # setNumInputDims: the leading dims form a batch
            nid = self.int(1, rank - 1)
            lead = _numel(shape[:rank - nid])
            sizes = self.pick(_factorizations(_numel(shape[rank - nid:]), self.int(1, 2)))
            m1 = self.int(0, len(sizes) - 1) if self.chance(1, 3) else None
            return (f"nn.View({self._sizes_text(sizes, m1)}):setNumInputDims({nid})",
                    (lead,) + sizes, None)
        if self.chance(1, 3):  # Torch infers a leading batch dim from the element count
            k = self.pick([d for d in range(2, n + 1) if n % d == 0] or [1])
            if k > 1:
                sizes = self.pick(_factorizations(n // k, self.int(1, 2)))
                return f"nn.View({self._sizes_text(sizes, None)})", (k,) + sizes, None
        sizes = self.pick(_factorizations(n, self.int(1, 3)))
        m1 = self.int(0, len(sizes) - 1) if self.chance(1, 3) else None
        return f"nn.View({self._sizes_text(sizes, m1)})", sizes, None

    def _reshape(self, shape):
        if _batched(shape):
            sizes = self.pick(_factorizations(_numel(shape), self.int(1, 3)))
            mode = ", true" if self.chance(1, 4) else ""
            return f"nn.Reshape({', '.join(map(str, sizes))}{mode})", (B,) + sizes, None
        n, rank = _numel(shape), len(shape)
        if rank >= 2 and self.chance(1, 2):  # batch mode: the first dim is kept
            sizes = self.pick(_factorizations(_numel(shape[1:]), self.int(1, 2)))
            mode = ", true" if self.chance(1, 3) else ""
            out = (shape[0],) + sizes
            if not mode and _numel(sizes) == n and shape[0] != 1:
                out = sizes  # (shape[0] == 1 is the only way numel(sizes) == n here)
            return f"nn.Reshape({', '.join(map(str, sizes))}{mode})", out, None
        sizes = self.pick(_factorizations(n, self.int(1, 3)))
        if self.chance(1, 3):
            return f"nn.Reshape({', '.join(map(str, sizes))}, false)", sizes, None
        out = sizes if shape[0] != 1 else (1,) + sizes
        return f"nn.Reshape({', '.join(map(str, sizes))})", out, None

    # ---- steps
    def step(self):
        kinds = ["unary"] * 4 + ["seq", "table", "table", "split", "concat", "dead", "mm",
                                 "concat_dim", "slices", "slices"]
        if any(isinstance(v, Table) and not v.dead for v in self.vals):
            kinds += ["use_table"] * 3 + ["parallel_table"]
        if self.depth > 0:
            kinds += ["gmodule"]
        getattr(self, "step_" + self.pick(kinds))()

    def step_unary(self, dead=False):
        v = self.pick_tensor(lambda v: v.live > 0) if dead else self.pick_tensor()
        if v is None:
            return
        ctor, out = self.unary(v.shape)
        self.use(v, dead=dead)
        self.tensor(out, f"{ctor}({v.name})", dead=dead)

    def step_dead(self):
        self.step_unary(dead=True)

    def step_seq(self):
        v = self.pick_tensor()
        if v is None:
            return
        shape, ctors = v.shape, []
        for _ in range(self.int(1, 3)):
            ctor, shape = self.unary(shape)
            ctors.append(ctor)
        self.use(v)
        body = "".join(f":add({c})" for c in ctors)
        self.tensor(shape, f"nn.Sequential(){body}({v.name})")

    def step_concat(self):
        v = self.pick_tensor()
        if v is None:
            return
        outs = [self.unary(v.shape) for _ in range(self.int(1, 3))]
        self.use(v)
        t = Table(self.fresh("t"), [s for _, s in outs])
        body = "".join(f":add({c})" for c, _ in outs)
        self.emit(f"local {t.name} = nn.ConcatTable(){body}({v.name})")
        self.vals.append(t)

    def step_split(self):
        v = self.pick_tensor(lambda v: len(v.shape) >= 2 and any(d != B for d in v.shape))
        if v is None:
            return
        rank = len(v.shape)
        axis = self.pick([k for k, d in enumerate(v.shape) if d != B])
        dim = self._dim_text(axis, rank)
        if _batched(v.shape) and axis >= 1 and self.chance(1, 3):
            dim = f"{axis}, {rank - 1}"  # nInputDims
        items = [tuple(d for k, d in enumerate(v.shape) if k != axis)] * v.shape[axis]
        self.use(v)
        t = Table(self.fresh("t"), items)
        self.emit(f"local {t.name} = nn.SplitTable({dim})({v.name})")
        self.vals.append(t)

    def _partner(self, v, pred):
        """Another live tensor satisfying pred (not v itself), or a fresh node made from v."""
        cands = [u for u in self.vals if isinstance(u, Tensor) and not u.dead and u is not v
                 and pred(u.shape)]
        if cands and not self.chance(1, 4):
            return self.pick(cands), None
        # a second node from v: an elementwise module (or Identity) applied to it inline
        ctor = self.pick(ELEMENTWISE).format(c=_lua_num(self.pick(CONSTANTS)))
        return None, f"{ctor}({v.name})"

    def step_table(self):
        op = self.pick(["nn.CAddTable()", "nn.CMulTable()", "nn.CSubTable()", "join",
                        "nn.CDivTable()"])
        v = self.pick_tensor()
        if v is None:
            return
        if op == "join":
            free = [k for k, d in enumerate(v.shape) if d != B]
            if not free:
                return
            axis = self.pick(free)

            def fits(s):
                return len(s) == len(v.shape) and s[axis] != B and all(
                    a == b for k, (a, b) in enumerate(zip(s, v.shape)) if k != axis)
            n = self.int(2, 3)
        else:
            def fits(s):
                return _batched(s) == _batched(v.shape) and _numel(s) == _numel(v.shape)
            n = 2 if op in ("nn.CSubTable()", "nn.CDivTable()") else self.int(2, 3)
        parts, exprs, shapes = [v], [v.name], [v.shape]
        for _ in range(n - 1):
            u, expr = self._partner(v, fits)
            if u is not None and u in parts:  # nngraph forbids a node twice in one table
                expr, shape = f"nn.Identity()({u.name})", u.shape
            elif u is not None:
                parts.append(u)
                expr, shape = u.name, u.shape
            else:
                shape = v.shape
            exprs.append(expr)
            shapes.append(shape)
        self.use(*parts)
        if op == "nn.CDivTable()":  # a denominator away from 0
            exprs[1] = f"nn.AddConstant(2)(nn.Square()({exprs[1]}))"
        if op == "join":
            rank = len(v.shape)
            dim = self._dim_text(axis, rank)
            if _batched(v.shape) and axis >= 1 and self.chance(1, 3):
                dim = f"{axis}, {rank - 1}"  # nInputDims
            out = list(v.shape)
            out[axis] = sum(s[axis] for s in shapes)
            self.tensor(tuple(out), f"nn.JoinTable({dim})({{{', '.join(exprs)}}})")
        else:
            self.tensor(v.shape, f"{op}({{{', '.join(exprs)}}})")

    def step_slices(self):
        """Several Narrows of one value along one axis (an LSTM's gates): tiling it, with
        gaps, overlapping or repeated; -O1 merges their gradients."""
        v = self.pick_tensor(lambda v: any(d != B and d >= 2 for d in v.shape))
        if v is None:
            return
        rank = len(v.shape)
        axis = self.pick([k for k, d in enumerate(v.shape) if d != B and d >= 2])
        size = v.shape[axis]
        if self.chance(1, 2):  # tile it
            cuts = sorted(set(self.draw(st.lists(st.integers(1, size - 1), max_size=3))))
            bounds = list(zip([0] + cuts, cuts + [size]))
        else:
            bounds = []
            for _ in range(self.int(1, 4)):
                a = self.int(0, size - 1)
                bounds.append((a, self.int(a + 1, size)))
        self.use(v)
        dim = self._dim_text(axis, rank)
        for a, b in bounds:
            out = list(v.shape)
            out[axis] = b - a
            self.tensor(tuple(out), f"nn.Narrow({dim}, {a + 1}, {b - a})({v.name})")

    def step_mm(self):
        v = self.pick_tensor(lambda v: len(v.shape) in (2, 3) and B not in v.shape[-2:])
        if v is None:
            return
        r = len(v.shape)
        n, k = v.shape[-2:]
        form = self.int(0, 2)
        if form == 0:
            expr, out = f"nn.MM(false, true)({{{v.name}, nn.Identity()({v.name})}})", (n, n)
        elif form == 1:
            expr, out = f"nn.MM(true, false)({{{v.name}, nn.Tanh()({v.name})}})", (k, k)
        else:
            expr, out = (f"nn.MM()({{{v.name}, nn.Transpose({{{r - 1}, {r}}})({v.name})}})",
                         (n, n))
        self.use(v)
        self.tensor(v.shape[:-2] + out, expr)

    def step_concat_dim(self):
        v = self.pick_tensor(lambda v: any(d != B for d in v.shape))
        if v is None:
            return
        outs = [self.unary(v.shape) for _ in range(self.int(1, 3))]
        shapes = [s for _, s in outs]
        rank = len(shapes[0])

        def axes():
            return [k for k in range(rank) if all(
                len(s) == rank and s[k] != B and all(
                    a == b for j, (a, b) in enumerate(zip(s, shapes[0])) if j != k)
                for s in shapes)]
        if not axes():  # fall back to shape-keeping branches
            outs = [(self.pick(ELEMENTWISE).format(c=_lua_num(self.pick(CONSTANTS))), v.shape)
                    for _ in outs]
            shapes, rank = [v.shape] * len(outs), len(v.shape)
        axis = self.pick(axes())
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        self.use(v)
        body = "".join(f":add({c})" for c, _ in outs)
        self.tensor(tuple(out), f"nn.Concat({self._dim_text(axis, rank)}){body}({v.name})")

    def step_parallel_table(self):
        tabs = [t for t in self.vals if isinstance(t, Table) and not t.dead]
        t = tabs[-1 - self.int(0, len(tabs) - 1)]
        outs = [self.unary(s) for s in t.items]
        self.use(t)
        u = Table(self.fresh("t"), [s for _, s in outs])
        body = "".join(f":add({c})" for c, _ in outs)
        self.emit(f"local {u.name} = nn.ParallelTable(){body}({t.name})")
        self.vals.append(u)

    def step_use_table(self):
        tabs = [t for t in self.vals if isinstance(t, Table) and not t.dead]
        t = tabs[-1 - self.int(0, len(tabs) - 1)]
        how = self.pick(["split", "select", "reduce", "narrow"])
        n = len(t.items)
        if how == "narrow":
            offset = self.int(1, n)
            length = self.int(1, n - offset + 1)
            self.use(t)
            u = Table(self.fresh("t"), t.items[offset - 1: offset - 1 + length])
            self.emit(f"local {u.name} = nn.NarrowTable({offset}, {length})({t.name})")
            self.vals.append(u)
            return
        if how == "split" and n >= 2:
            names = [self.fresh("v") for _ in t.items]
            self.emit(f"local {', '.join(names)} = {t.name}:split({n})")
            self.use(t)
            for name, s in zip(names, t.items):
                self.vals.append(Tensor(name, s))
        elif how == "reduce" and n >= 1 and all(
                _batched(s) == _batched(t.items[0]) and _numel(s) == _numel(t.items[0])
                for s in t.items):
            op = self.pick(["nn.CAddTable()", "nn.CMulTable()"] +
                           (["nn.CSubTable()"] if n == 2 else []))
            self.use(t)
            self.tensor(t.items[0], f"{op}({t.name})")
        elif how == "reduce" and n >= 1 and all(len(s) == len(t.items[0]) for s in t.items):
            s0 = t.items[0]
            free = [k for k, d in enumerate(s0) if d != B and all(
                s[k] != B and all(a == b for j, (a, b) in enumerate(zip(s, s0)) if j != k)
                for s in t.items)]
            if not free:
                return
            axis = self.pick(free)
            out = list(s0)
            out[axis] = sum(s[axis] for s in t.items)
            self.use(t)
            self.tensor(tuple(out), f"nn.JoinTable({self._dim_text(axis, len(s0))})({t.name})")
        else:
            i = self.int(1, n)
            itext = str(i) if not self.chance(1, 3) else str(i - n - 1)
            self.use(t)
            self.tensor(t.items[i - 1], f"nn.SelectTable({itext})({t.name})")

    def step_gmodule(self):
        args = []
        for _ in range(self.int(1, 2)):
            v = self.pick_tensor(lambda v: v not in args)
            if v is not None:
                args.append(v)
        if not args:
            return
        g = self.fresh("g")
        self.emit(f"local {g}")
        self.emit("do")
        inner = Gen(self.draw, self.names, self.depth - 1, self.mods, self.indent + "  ")
        for v in args:
            inner.add_input(v.shape)
        for _ in range(self.int(1, 4)):
            inner.step()
        outs = inner.finish()
        self.lines += inner.lines
        self.emit(f"  {g} = nn.gModule({{{', '.join(x.name for x in inner.inputs)}}}, "
                  f"{{{', '.join(o.name for o in outs)}}})")
        self.emit("end")
        shapes = [o.shape for o in outs]
        if len(args) == 1 and len(shapes) == 1:  # a module like any other: share it anywhere
            self.mods.append(Mod(g, lambda s, i=args[0].shape, o=shapes[0]: o if s == i else None))
        for call in range(1 + self.chance(1, 3)):
            if call and self.chance(1, 2):  # again on other values of the same shapes
                again = []
                for v in args:
                    again.append(self.pick_tensor(lambda u, s=v.shape: u.shape == s and u not in again,
                                                  prefer_sinks=False))
                args = again
            arg = args[0].name if len(args) == 1 else "{" + ", ".join(a.name for a in args) + "}"
            self.use(*args)
            call_g = f"nn.Sequential():add({g})" if self.chance(1, 4) else g  # as a container child
            if len(shapes) == 1:
                self.tensor(shapes[0], f"{call_g}({arg})")
            else:
                t = Table(self.fresh("t"), shapes)
                self.emit(f"local {t.name} = {call_g}({arg})")
                self.vals.append(t)

    # ---- graph inputs and outputs
    def add_input(self, shape):
        name = self.fresh("x")
        self.emit(f"local {name} = nn.Identity()()")
        v = Table(name, list(shape)) if isinstance(shape, list) else Tensor(name, tuple(shape))
        self.inputs.append(v)
        self.vals.append(v)
        return v

    def finish(self, allow_tables=False):
        """The gModule's outputs: every live value nothing uses (so every node and input
        reaches an output), sometimes plus one that is also used."""
        if not allow_tables:  # nested gModules return tensors: split their table sinks
            for t in [t for t in self.vals if isinstance(t, Table) and not t.dead and t.live == 0]:
                names = [self.fresh("v") for _ in t.items]
                if len(names) == 1:
                    self.emit(f"local {names[0]} = nn.SelectTable(1)({t.name})")
                else:
                    self.emit(f"local {', '.join(names)} = {t.name}:split({len(names)})")
                self.use(t)
                self.vals += [Tensor(n, s) for n, s in zip(names, t.items)]
        outs = [v for v in self.vals if not v.dead and v.live == 0]
        extra = [v for v in self.vals if not v.dead and v.live > 0 and
                 (allow_tables or isinstance(v, Tensor))]
        if extra and self.chance(1, 4):
            outs.insert(self.int(0, len(outs)), self.pick(extra))
        tensors = [v for v in outs if isinstance(v, Tensor)]
        if tensors and self.chance(1, 5):  # an output given twice (through an Identity)
            v = self.pick(tensors)
            outs.insert(self.int(0, len(outs)), Tensor(f"nn.Identity()({v.name})", v.shape))
        return outs


@dataclass
class Case:
    text: str
    shapes: dict  # input name -> shape (tuple, or a list for a table input)
    optimize: bool = True
    batch: int = 2
    seed: int = 0

    def header(self):
        args = [f"--shape {k}={_shape_text(v)}" for k, v in self.shapes.items()]
        if not self.optimize:
            args.append("-O0")
        args += [f"--batch {self.batch}", f"--seed {self.seed}"]
        return "-- graphc-fuzz: " + " ".join(args)

    def __repr__(self):  # hypothesis prints this for a falsifying example
        return f"Case(\n{self.header()}\n{self.text})"


def parse_case(text: str) -> Case:
    m = re.search(r"^-- graphc-fuzz: (.*)$", text, re.M)
    assert m, "a regression spec needs a `-- graphc-fuzz: ...` header line"
    case = Case(text, {})
    it = iter(shlex.split(m.group(1)))
    for a in it:
        if a == "--shape":
            k, v = next(it).split("=", 1)
            case.shapes[k] = parse_shape(v)
        elif a == "-O0":
            case.optimize = False
        elif a == "--batch":
            case.batch = int(next(it))
        elif a == "--seed":
            case.seed = int(next(it))
        else:
            raise AssertionError(f"unknown option {a!r}")
    return case


@st.composite
def specs(draw, max_steps=10):
    names = itertools.count(1)
    gen = Gen(draw, names, depth=1 + (draw(st.integers(0, 3)) == 0), mods=[])
    gen.emit("require 'nngraph'")
    batched = draw(st.integers(0, 3)) > 0
    shapes = {}
    for i in range(draw(st.integers(1, 3))):
        def one():
            b = batched != (draw(st.integers(0, 7)) == 0)  # sometimes mixed
            dims = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 3))))
            return ((B,) if b else ()) + dims
        shape = [one() for _ in range(draw(st.integers(2, 3)))] if draw(
            st.integers(0, 7)) == 0 else one()
        shapes[f"input{i + 1}"] = shape
        gen.add_input(shape)
    for _ in range(draw(st.integers(1, max_steps))):
        gen.step()
    outs = gen.finish(allow_tables=True)
    gen.emit(f"return nn.gModule({{{', '.join(x.name for x in gen.inputs)}}}, "
             f"{{{', '.join(o.name for o in outs)}}})")
    return Case("\n".join(gen.lines) + "\n", shapes, optimize=draw(st.integers(0, 3)) > 0,
                batch=draw(st.integers(1, 3)), seed=draw(st.integers(0, 2**16)))


# =====================================================================================
# Part 2: the differential check
# =====================================================================================

_count = itertools.count()


def _nest(flat, struct):
    return tuple(flat[s] if isinstance(s, int) else _nest(flat, s) for s in struct)


def _flatten(nested, struct, into):
    for x, s in zip(nested, struct):
        if isinstance(s, int):
            into[s] = x
        else:
            assert isinstance(x, (list, tuple)) and len(x) == len(s), (type(x), s)
            _flatten(x, s, into)
    return into


def _lists(nested):
    """Tables as Lua-style lists (the generated module's argument convention)."""
    return [_lists(x) if isinstance(x, tuple) else x for x in nested]


# Finite differences lose their precision where a small term is added to a huge one (exp of
# exp): generated cases whose intermediate values grow past this are skipped.
MAX_MAGNITUDE = 1e3


def check_case(case: Case, path="fuzz.lua", skip=None):
    res = compile_spec(path, Options(dtype="float64", shapes=case.shapes,
                                     optimize=case.optimize), text=case.text)
    g = res.graph
    mod = types.ModuleType(f"graphc_fuzz_{next(_count)}")
    exec(compile(res.source, f"<generated {path}>", "exec"), mod.__dict__)
    m = mod.Model(dtype="float64", seed=case.seed)
    rng = np.random.default_rng(case.seed)
    flat_w, flat_g = m.getParameters()
    flat_w[:] = rng.uniform(-1, 1, flat_w.size)
    assert [n for n, _ in m.parameters()] == [p.name for p in g.params]
    params = [w.copy() for _, w in m.parameters()]
    xs = [rng.uniform(-1.5, 1.5, ref.concrete(v.shape, case.batch)) for v in g.inputs]

    # forward
    xs_before = [x.copy() for x in xs]
    args = _lists(_nest(xs, g.input_struct))
    out = m.forward(*args)
    out = (out,) if len(g.output_struct) == 1 else out
    got = _flatten(out, g.output_struct, [None] * len(g.outputs))
    values = []
    want = ref.forward(g, params, xs, values=values)
    if skip is not None:
        skip(max((np.abs(v).max(initial=0) for v in values + xs), default=0) > MAX_MAGNITUDE)
    for k, (a, b) in enumerate(zip(got, want)):
        assert np.shape(a) == b.shape, f"output {k + 1}: shape {np.shape(a)}, reference {b.shape}"
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * max(1.0, np.abs(b).max(initial=0)),
                                   err_msg=f"forward output {k + 1}")

    # backward, against finite differences of the reference forward
    gys = [rng.standard_normal(b.shape) for b in want]
    m.zeroGradParameters()
    gys_before = [gy.copy() for gy in gys]
    outs_before = [np.array(a, copy=True) for a in got]
    gin = m.backward(tuple(args), tuple(_lists(_nest(gys, g.output_struct))))
    gin = (gin,) if len(g.input_struct) == 1 else gin
    for k, (x, x0) in enumerate(zip(xs, xs_before)):
        assert np.array_equal(x, x0), f"forward/backward wrote into input {k + 1}"
    for k, (gy, gy0) in enumerate(zip(gys, gys_before)):
        assert np.array_equal(gy, gy0), f"backward wrote into output gradient {k + 1}"
    for k, (a, a0) in enumerate(zip(got, outs_before)):
        assert np.array_equal(a, a0), f"backward changed forward's output {k + 1}"
    got_in = _flatten(gin, g.input_struct, [None] * len(g.inputs))
    fd_in, fd_p = ref.finite_difference_grads(g, params, xs, gys)

    def close(a, b, what):
        assert a is not None and np.shape(a) == b.shape, f"{what}: shape {np.shape(a)}, want {b.shape}"
        scale = max(1.0, np.abs(b).max(initial=0))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * scale, err_msg=what)

    for k, (a, b) in enumerate(zip(got_in, fd_in)):
        close(a, b, f"gradient of input {k + 1} ({g.inputs[k].name})")
    for (name, gw), b in zip(m.gradParameters(), fd_p):
        close(gw, b, f"gradient of parameter {name}")
    # a second backward accumulates parameter gradients (Torch's accGradParameters)
    if flat_g.size:
        first = flat_g.copy()
        m.forward(*args)
        m.backward(tuple(args), tuple(_lists(_nest(gys, g.output_struct))))
        np.testing.assert_allclose(flat_g, 2 * first, rtol=1e-12, atol=1e-300)

    # float32: the same module in single precision stays single precision
    m32 = mod.Model(dtype="float32", seed=case.seed)
    m32.getParameters()[0][:] = flat_w
    args32 = _lists(_nest([x.astype(np.float32) for x in xs], g.input_struct))
    out32 = m32.forward(*args32)
    out32 = (out32,) if len(g.output_struct) == 1 else out32
    got32 = _flatten(out32, g.output_struct, [None] * len(g.outputs))
    for k, (a, b) in enumerate(zip(got32, want)):
        assert np.asarray(a).dtype == np.float32, f"float32 model: output {k + 1} is {a.dtype}"
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(b).max(initial=0)),
                                   err_msg=f"float32 forward output {k + 1}")
    gin32 = m32.backward(tuple(args32), tuple(_lists(_nest(
        [gy.astype(np.float32) for gy in gys], g.output_struct))))
    gin32 = (gin32,) if len(g.input_struct) == 1 else gin32
    for k, a in enumerate(_flatten(gin32, g.input_struct, [None] * len(g.inputs))):
        assert np.asarray(a).dtype == np.float32, f"float32 model: input gradient {k + 1} is {a.dtype}"
    assert m32.getParameters()[1].dtype == np.float32

    # unbatched arguments (all inputs batched) run as a batch of one
    if g.inputs and all(v.shape[:1] == (B,) for v in g.inputs):
        one = m.forward(*_lists(_nest([x[:1] for x in xs], g.input_struct)))
        one = (one,) if len(g.output_struct) == 1 else one
        one = _flatten(one, g.output_struct, [None] * len(g.outputs))
        single = m.forward(*_lists(_nest([x[0] for x in xs], g.input_struct)))
        single = (single,) if len(g.output_struct) == 1 else single
        single = _flatten(single, g.output_struct, [None] * len(g.outputs))
        for k, (a, b, v) in enumerate(zip(single, one, g.outputs)):
            b = b[0] if v.shape[:1] == (B,) else b
            assert np.shape(a) == np.shape(b), f"unbatched output {k + 1}: {np.shape(a)} vs {np.shape(b)}"
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"unbatched output {k + 1}")
    return res


def _fuzz_settings():
    n = os.environ.get("GRAPHC_FUZZ_EXAMPLES")
    common = dict(deadline=None, database=None, print_blob=False,
                  suppress_health_check=list(HealthCheck))
    if n:
        return settings(max_examples=int(n), **common)
    return settings(max_examples=150, derandomize=True, **common)


def test_differential_fuzz():
    ran, skipped = [], []
    start = time.perf_counter()

    def skip(too_big):
        if too_big:
            skipped.append(1)
        assume(not too_big)

    @_fuzz_settings()
    @given(case=specs())
    def check(case):
        check_case(case, skip=skip)
        ran.append(case)

    check()
    print(f"\ndifferential fuzz: {len(ran)} examples checked ({len(skipped)} more skipped: "
          f"values over {MAX_MAGNITUDE:g}) in {time.perf_counter() - start:.1f}s")
    assert len(ran) >= 10


def regression_files():
    return sorted(REGRESSIONS.glob("*.lua"))


@pytest.mark.parametrize("path", regression_files(), ids=lambda p: p.name)
def test_fuzz_regression(path, tmp_path):
    """Replays one saved fuzz finding. Its header line says which check:
    `-- graphc-fuzz: ...` the differential check (see Case.header), or
    `-- graphc-fuzz-frontend: [--shape N=S] [--entry E] [--limit S] [--expect-error]
    [--max-message N]`: `graphc compile` (a subprocess, 3 GiB of address space) must exit 0
    or 1 within --limit seconds (default 5), with no traceback; an error must be located
    (file:line:col: error:) and at most --max-message characters long."""
    text = path.read_text()
    if re.search(r"^-- graphc-fuzz: ", text, re.M):
        check_case(parse_case(text), path=path.name)
    else:
        check_frontend_case(path, text, tmp_path)


def _limit_memory():
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def check_frontend_case(path, text, tmp_path):
    m = re.search(r"^-- graphc-fuzz-frontend:(.*)$", text, re.M)
    assert m, f"{path.name} needs a `-- graphc-fuzz:` or `-- graphc-fuzz-frontend:` header line"
    args, limit, expect_error, max_message = [], 5.0, False, 10000
    it = iter(shlex.split(m.group(1)))
    for a in it:
        if a in ("--shape", "--entry", "-D"):
            args += [a, next(it)]
        elif a == "--limit":
            limit = float(next(it))
        elif a == "--expect-error":
            expect_error = True
        elif a == "--max-message":
            max_message = int(next(it))
        else:
            raise AssertionError(f"{path.name}: unknown header option {a!r}")
    cmd = [sys.executable, "-m", "graphc", "compile", str(path), "-o", str(tmp_path / "out.py")]
    start = time.perf_counter()
    try:
        p = subprocess.run(cmd + args, capture_output=True, text=True, timeout=limit, cwd=ROOT,
                           preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"graphc compile {path.name} ran over {limit:g}s (a hang?)") from None
    took = time.perf_counter() - start
    err = p.stderr
    assert p.returncode in (0, 1) and "Traceback" not in err, f"exit {p.returncode}:\n{err[-3000:]}"
    if expect_error:
        assert p.returncode == 1, f"expected an error, but it compiled (in {took:.1f}s)"
    if p.returncode == 1:
        assert re.match(r"\S+:\d+:\d+: error: ", err), f"not a located error: {err[:1000]}"
        assert len(err) <= max_message, (f"a {len(err)}-character error message (at most "
                                         f"{max_message} wanted): {err[:300]}...")


def test_case_header_round_trip():
    """A saved differential case (header + text) reads back and replays."""
    case = Case("local x = nn.Identity()()\nlocal t = nn.Identity()()\n"
                "local a, b = t:split(2)\n"
                "return nn.gModule({x, t}, {nn.Linear(3, 2)(x), nn.CMulTable()({a, b}), t})\n",
                {"input1": (B, 3), "input2": [(B, 2), (B, 1, 2)]}, optimize=False, batch=3, seed=7)
    back = parse_case(case.header() + "\n" + case.text)
    assert (back.shapes, back.optimize, back.batch, back.seed) == (
        case.shapes, case.optimize, case.batch, case.seed)
    check_case(back)


def test_reference_interpreter_sanity():
    """The interpreter agrees with hand-computed numbers on a small graph (so a fuzz failure
    points at graphc, not at the interpreter)."""
    spec = """
local x = nn.Identity()()
local y = nn.Identity()()
local l = nn.Linear(3, 2)
local a = nn.Tanh()(l(x))
local s1, s2 = nn.SplitTable(2)(nn.Reshape(2, 2)(nn.JoinTable(2)({a, nn.Sigmoid()(y)}))):split(2)
local z = nn.CSubTable()({nn.SoftMax()(s1), nn.Narrow(2, 1, 2)(nn.Mean(3)(nn.View(2, -1):setNumInputDims(1)(y)))})
return nn.gModule({x, y}, {z, nn.Sum(2)(s2), nn.Select(-1, -2)(nn.LogSoftMax()(a))})
"""
    shapes = {"input1": (B, 3), "input2": (B, 2)}
    g = compile_spec("sanity.lua", Options(dtype="float64", shapes=shapes), text=spec).graph
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((2, 3)), rng.standard_normal(2)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    outs = ref.forward(g, [w, b], [x, y])
    a = np.tanh(x @ w.T + b)
    joined = np.concatenate([a, 1 / (1 + np.exp(-y))], 1).reshape(4, 2, 2)
    s1, s2 = joined[:, 0], joined[:, 1]
    sm = np.exp(s1) / np.exp(s1).sum(1, keepdims=True)
    yv = y.reshape(4, 2, 1).mean(2)  # View(2, -1):setNumInputDims(1): 2x1 per sample
    np.testing.assert_allclose(outs[0], sm - yv, rtol=1e-14)
    np.testing.assert_allclose(outs[1], s2.sum(1), rtol=1e-14)
    lsm = a - np.log(np.exp(a).sum(1, keepdims=True))
    np.testing.assert_allclose(outs[2], lsm[:, 0], rtol=1e-14)
    # finite differences of a known function
    gi, gp = ref.finite_difference_grads(g, [w, b], [x, y], [np.ones((4, 2)), np.zeros(4), np.zeros(4)])
    num = gi[0]
    assert num.shape == x.shape and np.abs(num).max() > 0


# =====================================================================================
# Part 3: mutation fuzzing of the frontend
# =====================================================================================

LUA_WORDS = ["and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto",
             "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true",
             "until", "while"]
LUA_PUNCT = ["+", "-", "*", "/", "%", "^", "#", "==", "~=", "<=", ">=", "<", ">", "=", "(",
             ")", "{", "}", "[", "]", ";", ":", ",", ".", "..", "...", "::", "'", '"', "[[",
             "]]", "--", "--[[", "0", "-1", "1e309", "0x", "nn", "nn.gModule", "self", "_ENV"]
_TOKEN = re.compile(r"""
    --\[(=*)\[.*?\]\1\]        # long comment
  | --[^\n]*                   # comment
  | \[(=*)\[.*?\]\2\]          # long string
  | "(?:\\.|[^"\\\n])*"        # strings
  | '(?:\\.|[^'\\\n])*'
  | 0[xX][0-9a-fA-F.]+(?:[pP][+-]?\d+)?
  | \d+\.?\d*(?:[eE][+-]?\d+)? | \.\d+(?:[eE][+-]?\d+)?
  | [A-Za-z_][A-Za-z0-9_]*
  | \.\.\.|\.\.|==|~=|<=|>=|::|//|<<|>>
  | \s+
  | .
""", re.S | re.X)


ODD_NUMBERS = ["0", "-1", "-3", "0.5", "1e9", "2147483648", "1e308", "1e400", "-0", "0x7fffffff",
               "(0/0)", "(-1/0)", "100000", "3", "2^53"]


def lua_tokens(text):
    return [m.group(0) for m in _TOKEN.finditer(text)]


def mutate(text, rng: random.Random):
    """1-3 token-level mutations: delete a token, insert one (from the file, or a Lua
    keyword / punctuation), or swap two (adjacent, or anywhere)."""
    toks = lua_tokens(text)
    assert "".join(toks) == text
    pool = [t for t in toks if not t.isspace()]
    for _ in range(rng.randint(1, 3)):
        solid = [i for i, t in enumerate(toks) if not t.isspace()]
        numbers = [i for i in solid if re.match(r"\.?\d", toks[i])]
        op = rng.choice(["delete", "insert", "insert", "swap", "number"])
        i = rng.choice(solid)
        if op == "number" and numbers:  # a number in range for the parser, odd for a module
            toks[rng.choice(numbers)] = rng.choice(ODD_NUMBERS)
        elif op == "delete":
            del toks[i]
        elif op == "insert":
            new = rng.choice([rng.choice(pool), rng.choice(LUA_WORDS), rng.choice(LUA_PUNCT)])
            toks[i:i] = [new, " "] if rng.random() < 0.5 else [new]
        else:
            j = rng.choice(solid) if rng.random() < 0.3 else min(
                [k for k in solid if k > i] or [i])
            toks[i], toks[j] = toks[j], toks[i]
    return "".join(toks)


def header_options(path: Path) -> Options:
    """The options in the spec's first `graphc compile` header command (none if it has no
    header command, e.g. a library file that another spec requires)."""
    text = path.read_text()
    joined = re.sub(r"\\\n--\s*", " ", text)
    m = re.search(r"graphc compile \S+ (.*)", joined)
    opts = Options(dtype="float64")
    if not m:
        return opts
    it = iter(shlex.split(m.group(1).split("(fails")[0]))
    for a in it:
        if a == "--entry":
            opts.entry = next(it)
        elif a == "--shape":
            k, v = next(it).split("=", 1)
            opts.shapes[k] = parse_shape(v)
        elif a == "-D":
            k, v = next(it).split("=", 1)
            opts.defines[k] = int(v) if v.lstrip("-").isdigit() else v
        elif a in ("-o", "--output"):
            next(it)
    return opts


SPEC_FILES = sorted(list((ROOT / "samples").glob("*.lua")) +
                    list((ROOT / "samples" / "corpus").glob("*.lua")))
MUTATIONS_PER_FILE = int(os.environ.get("GRAPHC_FUZZ_MUTATIONS", "16"))


MAX_MESSAGE = 10000  # characters in one formatted error (source lines and notes included)


class CompileTimeout(BaseException):
    """Raised by SIGALRM inside a compile: a BaseException, so that no `except Exception` in
    the code under test can swallow it."""


def _on_alarm(signum, frame):
    if frame is not None and frame.f_code.co_name == "gc_callback":
        return  # hypothesis's gc hook, where an exception would be ignored: the timer repeats
    raise CompileTimeout()


def compile_outcome(path: Path, text: str, opts: Options, limit=5.0):
    """None if `text` compiles, else the located SpecError; anything else fails the test."""
    old = signal.signal(signal.SIGALRM, _on_alarm)
    # and again every 0.25 s after the limit: an exception raised where Python ignores it
    # (a __del__, a weakref callback) must not end the watch
    signal.setitimer(signal.ITIMER_REAL, limit, 0.25)
    try:
        compile_spec(str(path), opts, text=text)
        return None
    except SpecError as e:
        return e
    except CompileTimeout:
        raise AssertionError(f"compiling took over {limit}s (a hang?)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check_located(err: SpecError, path: Path, text: str):
    loc = err.loc
    assert loc is not None, f"a SpecError without a location: {err.message!r}"
    assert loc.file and loc.line >= 1 and loc.col >= 1, f"bad location {loc!r}: {err.message!r}"
    if loc.file == str(path):
        n_lines = len(text.splitlines()) + 1
        assert loc.line <= n_lines, f"line {loc.line} is past the end ({n_lines}): {err.message!r}"
    formatted = err.format({str(path): text})
    assert formatted.startswith(f"{loc.file}:{loc.line}:{loc.col}: error:"), formatted
    assert len(formatted) <= MAX_MESSAGE, (f"a {len(formatted)}-character error message: "
                                           f"{formatted[:300]}...")


def mutation_cases():
    cases = []
    for path in SPEC_FILES:
        for k in range(MUTATIONS_PER_FILE):
            cases.append((path, k))
    return cases


def test_mutated_specs_compile_or_fail_located():
    """Every mutated sample compiles or fails with a located SpecError within 5 s. (One test
    over all cases, so the count and time are reported and a failure lists every bad case.)"""
    start = time.perf_counter()
    failures, n_ok, n_err, slowest = [], 0, 0, (0.0, None)
    for path, k in mutation_cases():
        opts = header_options(path)
        text = mutate(path.read_text(), random.Random(f"{path.name}:{k}"))
        t0 = time.perf_counter()
        try:
            err = compile_outcome(path, text, opts)
            if err is None:
                n_ok += 1
            else:
                check_located(err, path, text)
                n_err += 1
        except Exception as e:  # noqa: BLE001 - any other exception is the finding
            failures.append(f"{path.relative_to(ROOT)} mutation {k}: {type(e).__name__}: {e}")
        slowest = max(slowest, (time.perf_counter() - t0, f"{path.name} mutation {k}"))
    took = time.perf_counter() - start
    print(f"\nmutation fuzz: {n_ok + n_err + len(failures)} cases ({n_ok} compile, {n_err} "
          f"located errors, {len(failures)} bad) in {took:.1f}s; slowest {slowest[0]:.2f}s "
          f"({slowest[1]})")
    assert not failures, "\n".join(failures)


def _cli_cases():
    cases = mutation_cases()
    return cases[:: max(1, len(cases) // 20)][:20]


def test_mutated_specs_through_the_cli(tmp_path):
    """~20 mutated specs through `python -m graphc compile`: exit 0 or 1, never a traceback;
    an exit-1 message starts with file:line:col: error:."""
    procs = []
    for n, (path, k) in enumerate(_cli_cases()):
        d = tmp_path / f"case{n}"
        d.mkdir()
        for sib in path.parent.glob("*.lua"):  # required files resolve next to the spec
            (d / sib.name).write_text(sib.read_text())
        text = mutate(path.read_text(), random.Random(f"{path.name}:{k}"))
        target = d / path.name
        target.write_text(text)
        args = [sys.executable, "-m", "graphc", "compile", str(target), "-o", str(d / "out.py")]
        opts = header_options(path)
        if opts.entry:
            args += ["--entry", opts.entry]
        for name, s in opts.shapes.items():
            args += ["--shape", f"{name}={_shape_text(s)}"]
        for name, v in opts.defines.items():
            args += ["-D", f"{name}={v}"]
        procs.append((path, k, args))
    failures = []

    def run(item):
        path, k, args = item
        return item, subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=4) as pool:
        for (path, k, args), p in pool.map(run, procs):
            what = f"{path.name} mutation {k}"
            if p.returncode not in (0, 1) or "Traceback" in p.stderr:
                failures.append(f"{what}: exit {p.returncode}\n{p.stderr[-2000:]}")
            elif p.returncode == 1 and not re.match(r"\S+:\d+:\d+: error: ", p.stderr):
                failures.append(f"{what}: unlocated error: {p.stderr[:500]}")
    print(f"\nCLI mutation fuzz: {len(procs)} cases")
    assert not failures, "\n\n".join(failures)


# ---- every module's constructor with odd arguments ------------------------------------------

ODD_ARGS = {"int": ["0", "-1", "1", "2", "3", "1e9", "0.5", "(1/0)", "(0/0)", "-2"],
            "num": ["0", "-1", "1", "2", "0.5", "1e308", "(1/0)", "(0/0)", "-(1/0)"],
            "bool": ["true", "false", "1"], "str": ["'x'", "nil"],
            "table": ["{1, 2}", "{}", "{0, 9}"]}
ARG_SHAPES = [(B, 3), (3,), (B, 2, 3, 4), (2, 3, 4, 5), (B, 1), (B, 3, 8, 8)]
ARG_TRIALS = int(os.environ.get("GRAPHC_FUZZ_ARG_TRIALS", "10"))


def module_argument_cases():
    from graphc.ops import REGISTRY
    cases = []
    for name, op in sorted(REGISTRY.items()):
        rng = random.Random(f"args:{name}")
        sig = [s.strip() for s in op.signature.split(",") if s.strip()]
        for _ in range(ARG_TRIALS):
            args = []
            for item in sig:
                _, ty = item.split(":")
                optional = "=" in ty
                ty = ty.split("=")[0]
                star = ty.endswith("*")
                if optional and rng.random() < 0.3:
                    break
                args += [rng.choice(ODD_ARGS.get(ty.rstrip("*"), ["1"]))
                         for _ in range(rng.randint(1, 3) if star else 1)]
            call = "({x, nn.Identity()(x)})" if op.inputs == ("xs",) else "(x)"
            spec = (f"local x = nn.Identity()()\n"
                    f"return nn.gModule({{x}}, {{nn.{name}({', '.join(args)}){call}}})\n")
            cases.append((spec, rng.choice(ARG_SHAPES)))
    return cases


def test_module_arguments_fuzz():
    """Every registered module built with odd arguments (0, negative, huge, inf, nan, wrong
    types) on a few input shapes: it compiles or fails with a located SpecError."""
    start = time.perf_counter()
    cases, failures = module_argument_cases(), []
    for spec, shape in cases:
        path = Path("args.lua")
        try:
            err = compile_outcome(path, spec, Options(shapes={"input1": shape}))
            if err is not None:
                check_located(err, path, spec)
        except Exception as e:  # noqa: BLE001 - any other exception is the finding
            failures.append(f"{spec.splitlines()[1]}  (input1={_shape_text(shape)}): "
                            f"{type(e).__name__}: {e}")
    print(f"\nmodule argument fuzz: {len(cases)} cases, {len(failures)} bad, "
          f"{time.perf_counter() - start:.1f}s")
    assert not failures, "\n".join(sorted(set(failures)))
