"""The compiler's options and the parsers of their CLI forms: what graphc.load needs to find
a cached model, kept apart from the compiler so that a cache hit imports no front end."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# the free batch dimension, as graphc.ir.graph.B: not imported from there, so that a cache
# hit of graphc.load (which needs only Options) defines none of the IR's classes (~6 ms)
B = "B"


@dataclass
class Options:
    entry: str | None = None  # Lua expression that yields the model
    defines: dict = field(default_factory=dict)  # -D name=value (values already Lua values)
    shapes: dict = field(default_factory=dict)  # input name -> shape tuple
    dtype: str = "float32"
    emit: str = "py"  # py | ir | dot | cu (the CUDA target's kernels alone)
    # numpy | cuda (backends/cuda.py: CuPy arrays, generated kernels) | cpu (the same kernels
    # built for the host by graphc_runtime.cpu, numpy arrays)
    target: str = "numpy"
    unroll: int | str | None = None  # --unroll: a step count, or "T" for any length
    state: list = field(default_factory=list)  # --state OUT=IN pairs (names)
    optimize: bool = True  # False (-O0): the plain, unoptimized code (a reference for tests)
    no_grad: list = field(default_factory=list)  # --no-grad NAME: inputs that need no gradient
    prelude: str | None = None  # --prelude FILE.lua: run first, in the spec's top-level scope
    weights: str | None = None  # --emit onnx: a Model.save file holding the weights to export
    plugins: list = field(default_factory=list)  # --plugin FILE.py: modules written in Python



def parse_shape(text: str):
    """'Bx1x32x32' -> ('B', 1, 32, 32); a table input '{Bx3,{Bx4,Bx5}}' -> a nested list."""
    text = text.strip()
    if text.startswith("{"):
        if not text.endswith("}"):
            raise ValueError(f"bad shape {text!r}: a table shape is {{SHAPE,SHAPE,...}}")
        parts, depth, start = [], 0, 1
        for i, c in enumerate(text[1:-1], 1):
            depth += (c == "{") - (c == "}")
            if depth < 0:
                raise ValueError(f"bad shape {text!r}: unbalanced braces")
            if c == "," and depth == 0:
                parts.append(text[start:i])
                start = i + 1
        parts.append(text[start:-1])
        if depth != 0 or not all(p.strip() for p in parts):
            raise ValueError(f"bad shape {text!r}: a table shape is {{SHAPE,SHAPE,...}}")
        return [parse_shape(p) for p in parts]
    dims = []
    for i, part in enumerate(text.strip().split("x")):
        if part == "B" and i == 0:
            dims.append(B)
        elif part.isdigit() and int(part) > 0:
            dims.append(int(part))
        else:
            raise ValueError(f"bad shape {text!r}: use dims like Bx3 or 1x32x32 (B, the free "
                             "batch dim, may only come first)")
    return tuple(dims)


def parse_define(text: str):
    """-D name=value (or name.field=value, a field of a table): value is a Lua number,
    true/false/nil, or else a string."""
    if "=" not in text:
        raise ValueError(f"bad -D {text!r}: use -D name=value")
    name, value = text.split("=", 1)
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", name):
        raise ValueError(f"bad -D name {name!r}: must be a Lua identifier, or fields of one "
                         "(opt.rnn_size)")
    v = value.strip()
    if v in ("true", "false"):
        return name, v == "true"
    if v == "nil":
        return name, None
    try:
        return name, int(v)
    except ValueError:
        pass
    try:
        return name, float(v)
    except ValueError:
        return name, value
