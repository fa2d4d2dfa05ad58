"""Modules written in Python: the plugin API (`graphc compile --plugin mymods.py`).

A Torch module whose updateOutput is tensor code (treelstm's CRowAddTable, torch-ntm's
SmoothCosineSimilarity) cannot be compiled from its Lua. Its author ports it once to
Python, in a plugin file that graphc loads beside the spec; the spec itself never loads
Python. A plugin module has the parts graphc's own ops have:

    from graphc.plugin import Module, Param, ShapeError

    class CRowAddTable(Module):
        '''nn.CRowAddTable: adds a row vector (input 2) to every row of a matrix (input 1).'''
        table_input = True             # called on a table {matrix, vector}

        def shape(attrs, in_shapes):   # graphc's shapes: a leading "B" is the free batch dim
            m, v = in_shapes
            if m[-1] != v[-1]:
                raise ShapeError(f"row sizes differ: {m} and {v}")
            return m

        def forward(attrs, inputs, params):
            m, v = inputs
            return m + v[..., None, :]

        def backward(attrs, inputs, params, output, grad_output):
            # one gradient per input, then one per parameter (None: not needed)
            return [grad_output, grad_output.sum(-2)]

- `signature`: the Lua constructor's arguments in graphc's form, e.g.
  "inputSize:int, outputSize:int, bias:bool=true" (types int, num, bool, str, table; `*`
  for a variable count); they reach the other parts as the dict `attrs`.
- `params`: `Param(name, shape, init)` per parameter: `shape(attrs) -> tuple`, `init` one of
  ("uniform", stdv), ("uniform01", high), ("normal", std), ("const", value), or
  `attrs -> that`. Torch's reset() is usually ("uniform", 1/sqrt(fan_in)).
- `forward(attrs, inputs, params) -> array` and `backward(attrs, inputs, params, output,
  grad_output) -> [gradient per input, then per parameter]`: numpy code. Parameter
  gradients are added to the model's gradient buffer; do not modify the arguments.
- Shapes are tuples of ints and the batch: "B", or B times k after Torch's View(-1, ...)
  folds time steps into it (graphc.ir.graph.BatchDim, printed (B*5));
  `graphc.ir.graph.is_symbolic(d)` is true for both.
- `input_hint(attrs, slot, in_shapes)` (optional): the shape an input must have, so that
  graphc can infer a graph input's shape from it (a Linear-like module: ("B", inputSize)).
- `cuda_forward` / `cuda_backward` (optional, for elementwise modules): C expressions for
  the CUDA target, as graphc's pointwise ops write them (`{{x}}` or `{{xs[0]}}`, `{{gy}}`,
  `{{y}}`; `cuda_backward` maps "x" or "xs" to an expression, `{{i}}` the table index).

The generated module imports the plugin by its file name (`mymods.py` -> `import mymods`
at run time, checked against the source it was compiled with), so keep the plugin beside
the generated module or on the Python path; graphc.compile_file and graphc.load make it
importable for you. `graphc.testing.check_module` checks a plugin module the way graphc
checks its own: forward and backward against finite differences, batch and non-batch.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import SpecError
from .ir.graph import B  # noqa: F401  (the free batch dimension, for plugins' shape rules)
from .ops.registry import REGISTRY, CudaRule, OpDef, ParamSpec, ShapeError  # noqa: F401


@dataclass
class Param:
    name: str
    shape: Callable[[dict], tuple]
    init: Any  # ('uniform', stdv) ... or attrs -> that


class Module:
    """Base class of plugin modules: see the module docstring."""
    signature: str = ""
    table_input: bool = False
    params: tuple = ()
    cuda_forward: str | None = None
    cuda_backward: dict | None = None
    input_hint = None  # optional (attrs, slot, in_shapes) -> the shape input `slot` must have

    def shape(attrs, in_shapes):  # noqa: N805 (called on the class)
        return in_shapes[0]

    # forward and backward have no default: a class without them is refused when its
    # plugin file is loaded (registered), not when a model runs


_MADE: dict = {}  # module kind -> (sha256 of its plugin file, the OpDef made for it)


@contextlib.contextmanager
def registered(paths):
    """Load plugin files and register their modules as ops for the duration of one compile
    (then the registry is as before); yields the files (for --depfile and cache keys). A
    module name that graphc or another plugin already has is an error, unless the plugin
    class says `overrides_builtin = True` (as a Torch file that redefines nn.Normalize)."""
    saved = dict(REGISTRY)
    files, defined = [], {}
    try:
        for path in paths:
            path = Path(path)
            try:
                data = path.read_bytes()
            except OSError as e:
                raise SpecError(f"--plugin {path}: cannot read it ({e.strerror})") from None
            name = path.stem
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise SpecError(f"--plugin {path}: the file name must be a Python module name "
                                "(letters, digits, _), since the generated code imports it")
            digest = hashlib.sha256(data).hexdigest()
            module = _import(name, path, digest)
            for cls in _plugin_classes(module):
                kind = cls.__name__
                made = _MADE.get(kind)
                if made is not None and made[0] == digest and saved.get(kind) is made[1]:
                    defined[kind] = name  # registered already (a compile inside a CLI command)
                    continue
                if kind in defined:
                    raise SpecError(f"--plugin {path}: module {kind} is already defined by "
                                    f"plugin {defined[kind]}")
                if kind in saved and not getattr(cls, "overrides_builtin", False):
                    raise SpecError(f"--plugin {path}: graphc already has nn.{kind}; set "
                                    f"overrides_builtin = True in the class to replace it")
                missing = [m for m in ("forward", "backward") if not callable(getattr(cls, m, None))]
                if missing:
                    raise SpecError(f"--plugin {path}: module {kind} defines no "
                                    f"{' and no '.join(missing)} (see graphc.plugin)")
                REGISTRY[kind] = _opdef(cls, name, digest, path)
                _MADE[kind] = (digest, REGISTRY[kind])
                defined[kind] = name
            files.append(str(path))
        yield files
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)


def _import(name: str, path: Path, digest: str):
    """The plugin as a Python module under its own name (so the generated code's import
    finds this very file); a different file already imported under that name is an error."""
    have = sys.modules.get(name)
    if have is not None and getattr(have, "__graphc_plugin_sha256__", None) == digest:
        return have
    if have is not None and not hasattr(have, "__graphc_plugin_sha256__"):
        raise SpecError(f"--plugin {path}: a Python module named '{name}' is already imported "
                        f"from {getattr(have, '__file__', '?')}; rename the plugin file")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    module.__graphc_plugin_sha256__ = digest
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise SpecError(f"--plugin {path}: importing it raised {type(e).__name__}: {e}") from None
    return module


def _plugin_classes(module) -> list:
    return [c for _, c in sorted(vars(module).items()) if inspect.isclass(c)
            and issubclass(c, Module) and c is not Module and c.__module__ == module.__name__]


def _opdef(cls, plugin: str, digest: str, path: Path) -> OpDef:
    kind = cls.__name__
    call = f"rt.plugin({plugin!r}, {digest[:16]!r}).{kind}"
    ins = "xs" if cls.table_input else "[x]"
    pnames = [p.name for p in cls.params]
    plist = "[" + ", ".join("{{" + p + "}}" for p in pnames) + "]"
    forward = f"{{{{y}}}} = {call}.forward({{{{ a|pyrepr }}}}, {_list(ins)}, {plist})"
    # one gradient per input, then per parameter; `_` for those nobody needs
    slots = ("{% for t in g.xs %}{{ t or '_' }}, {% endfor %}" if cls.table_input
             else "{{ g.x or '_' }}, ") + "".join("{{ g.%s or '_' }}, " % p for p in pnames)
    backward = (f"{slots}= {call}.backward({{{{ a|pyrepr }}}}, {_list(ins)}, {plist}, "
                "{{y}}, {{gy}})")
    cuda = None
    if cls.cuda_forward:
        cuda = CudaRule("pointwise", forward=cls.cuda_forward, backward=dict(cls.cuda_backward or {}))
    return OpDef(
        name=kind, signature=cls.signature, shape=_shape_rule(cls),
        inputs=("xs",) if cls.table_input else ("x",),
        params=tuple(ParamSpec(p.name, p.shape, p.init if callable(p.init) else (lambda a, i=p.init: i))
                     for p in cls.params),
        input_hint=cls.input_hint, forward=forward, backward_stmt=backward,
        doc=(cls.__doc__ or "").strip().split("\n")[0],
        torch_diff=f"a plugin module ({path.name})", cuda=cuda,
        row_wise=cuda is not None)  # CUDA bodies are for elementwise modules: row-wise too


def _list(ins: str) -> str:
    return "[{{ xs|join(', ') }}]" if ins == "xs" else "[{{x}}]"


def _shape_rule(cls):
    def rule(attrs, in_shapes):
        try:
            out = cls.shape(attrs, [tuple(s) for s in in_shapes])
        except ShapeError:
            raise
        except Exception as e:  # the plugin's bug, said at the spec's node
            raise ShapeError(f"the plugin's shape rule raised {type(e).__name__}: {e}") from None
        if not isinstance(out, (tuple, list)):
            raise ShapeError(f"the plugin's shape rule returned {out!r}, not a shape")
        return tuple(out)
    return rule
