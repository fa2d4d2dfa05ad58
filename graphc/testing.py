"""Checks for modules written as plugins (graphc.plugin), the way graphc checks its own ops.

    from graphc.testing import check_module
    check_module("mymods.py", "nn.CRowAddTable()", [(3, 4), (4,)])

compiles a one-module model around the call (through the whole compiler, so the generated
code is what is checked), in float64, once with a batch dimension B and once without,
and compares its backward (every input's and parameter's gradient) with central finite
differences of sum(output * G) for a random G. A mismatch raises AssertionError naming the
case, the array and the worst element.
"""
from __future__ import annotations

import tempfile
import types
from pathlib import Path

import numpy as np


def check_module(plugins, call: str, input_shapes, *, batch: int = 3, seed: int = 0,
                 eps: float = 1e-6, rtol: float = 1e-6, atol: float = 1e-8,
                 make_inputs=None) -> dict:
    """`plugins`: the plugin file(s); `call`: the Lua constructor (`"nn.MyModule(3, 4)"`);
    `input_shapes`: one shape per input, per sample (without B); several make a table input.
    `make_inputs(rng, shapes)`: the input arrays for those shapes (default: standard normal),
    for modules defined on part of the reals only. Returns {case: largest relative error}
    for the cases 'batch' and 'no batch'."""
    from .api import make_options
    from .compiler import compile_spec

    shapes = [tuple(s) for s in input_shapes]
    names = [f"x{i}" for i in range(1, len(shapes) + 1)]
    arg = names[0] if len(names) == 1 else "{" + ", ".join(names) + "}"
    spec = ("require 'nngraph'\n" + "".join(f"local {n} = nn.Identity()()\n" for n in names)
            + f"local y = {call}({arg})\nreturn nn.gModule({{{', '.join(names)}}}, {{y}})\n")
    errors = {}
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "check_module.lua")
        Path(path).write_text(spec)
        for case, lead in (("batch", ("B",)), ("no batch", ())):
            given = {f"input{i}": lead + s for i, s in enumerate(shapes, 1)}
            opts = make_options("check_module()", shapes=given, dtype="float64", plugins=plugins)
            res = compile_spec(path, opts)
            mod = types.ModuleType("graphc_check_module")
            exec(compile(res.source, "<check_module>", "exec"), mod.__dict__)  # generated code
            full = [(batch,) * len(lead) + s for s in shapes]
            xs = (make_inputs or _normal)(rng, full)
            errors[case] = _check(mod.Model(seed=seed), xs, rng, eps, rtol, atol, f"{call} ({case})")
    return errors


def _normal(rng, shapes):
    return [rng.standard_normal(s) for s in shapes]


def _check(model, xs, rng, eps, rtol, atol, what) -> float:
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    y = model.forward(*xs)
    if not isinstance(y, np.ndarray):
        raise AssertionError(f"{what}: check_module handles modules with one tensor output")
    g = rng.standard_normal(y.shape)

    def loss():
        return float((model.forward(*xs) * g).sum())
    model.forward(*xs)
    model.zeroGradParameters()
    grads = model.backward(xs if len(xs) > 1 else xs[0], g)
    grads = list(grads) if isinstance(grads, tuple) else [grads]
    flat_w, flat_g = model.getParameters()
    arrays = [(f"input {i}", x, gx) for i, (x, gx) in enumerate(zip(xs, grads), 1)]
    if flat_w.size:
        arrays.append(("parameters", flat_w, flat_g.copy()))
    worst = 0.0
    for name, x, analytic in arrays:
        numeric = _central_differences(loss, x, eps)
        err = np.abs(analytic - numeric)
        bound = atol + rtol * np.abs(numeric)
        if not np.all(err <= bound):
            k = int(np.argmax(err - bound))
            raise AssertionError(f"{what}: the gradient of {name} differs from finite "
                                 f"differences at flat index {k}: backward gives "
                                 f"{analytic.flat[k]!r}, finite differences {numeric.flat[k]!r}")
        worst = max(worst, float((err / (np.abs(numeric) + atol)).max(initial=0.0)))
    return worst


def _central_differences(f, x, eps):
    num = np.zeros_like(x)
    for i in range(x.size):
        old = x.flat[i]
        x.flat[i] = old + eps
        up = f()
        x.flat[i] = old - eps
        down = f()
        x.flat[i] = old
        num.flat[i] = (up - down) / (2 * eps)
    return num
