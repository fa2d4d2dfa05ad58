"""The Python front door: graphc.compile_file, and the compiler options as users give them
(keywords of compile_file and graphc.load, or the CLI's flags). Every form goes through
`make_options`, so a value means the same and a wrong one gets the same message either way."""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from .options import Options, parse_define, parse_shape
from .errors import OptionError, OptionTypeError, did_you_mean

# name -> what it is: the docstrings of compile_file and load, and unknown-keyword errors
OPTIONS = {
    "entry": "Lua expression, evaluated after the file in its scope, that gives the model "
             "(--entry), e.g. \"LSTM.lstm(65, 128, 2)\"",
    "defines": "overrides of top-level assignments (-D): a dict {name: value}, or "
               "'NAME=VALUE' strings; a string value is read as -D reads it ('8' is a number); "
               "'opt.rnn_size' sets a field of the table a top-level assignment gives opt",
    "shapes": "input shapes (--shape): a dict {input: 'Bx1x32x32' or ('B', 1, 32, 32)}, or "
              "'NAME=SHAPE' strings",
    "dtype": "the Model's default dtype: 'float32' (default) or 'float64' (--dtype)",
    "target": "'numpy' (default), 'cuda' or 'cpu' (--target)",
    "emit": "'py' (default), 'ir', 'dot', 'cu' or 'onnx' (--emit; compile_file needs 'py')",
    "unroll": "a number of steps, or 'T' for any length (--unroll); needs state",
    "state": "with unroll: output -> input pairs (--state): 'OUT=IN' strings, (out, in) "
             "pairs or a dict {out: in}; names as `graphc check` shows them",
    "optimize": "False for -O0, the plain code (default True)",
    "no_grad": "inputs that need no gradient (--no-grad): a name or a list of names",
    "prelude": "a Lua file run first in the spec's top-level scope (--prelude), for the "
               "globals a training script would set: `opt = {...}`, `cudnn = nn`",
    "weights": "with emit='onnx': a file written by Model.save whose weights the ONNX model "
               "holds (--weights; default: a .t7's own, else the seed-0 initialisation)",
    "plugins": "Python files of modules written in Python (--plugin): a path or a list of "
               "paths (see graphc.plugin)",
}


def make_options(caller: str = "graphc.compile_file()", **kw) -> Options:
    """Options from user values (see OPTIONS); OptionTypeError for an unknown keyword or a
    value of the wrong type, OptionError (a ValueError) for a bad value."""
    for name in kw:
        if name not in OPTIONS:
            raise OptionTypeError(f"{caller} got an unknown option '{name}'"
                                  + did_you_mean(name, OPTIONS) + f"; options: {', '.join(OPTIONS)}")
    opts = Options()
    if kw.get("entry") is not None:
        opts.entry = _str(kw["entry"], "entry")
    opts.defines = _defines(kw.get("defines"))
    opts.shapes = _shapes(kw.get("shapes"))
    opts.dtype = _choice(kw.get("dtype", "float32"), "dtype", ("float32", "float64"))
    opts.target = _choice(kw.get("target", "numpy"), "target", ("numpy", "cuda", "cpu"))
    opts.emit = _choice(kw.get("emit", "py"), "emit", ("py", "ir", "dot", "cu", "onnx"))
    if opts.emit == "cu" and opts.target not in ("cuda", "cpu"):
        raise OptionError("--emit cu writes the kernels: it needs --target cuda or --target cpu")
    opts.unroll = _unroll(kw.get("unroll"))
    opts.state = _state(kw.get("state"))
    if opts.unroll is not None and not opts.state:
        raise OptionError("--unroll needs at least one --state OUT=IN")
    optimize = kw.get("optimize", True)
    if not isinstance(optimize, bool):
        raise OptionTypeError(f"optimize must be True or False, not {optimize!r}")
    opts.optimize = optimize
    opts.no_grad = _names(kw.get("no_grad"), "no_grad")
    if kw.get("prelude") is not None:
        prelude = kw["prelude"]
        if not isinstance(prelude, (str, os.PathLike)):
            raise OptionTypeError(f"prelude must be a path, not {type(prelude).__name__}")
        opts.prelude = str(prelude)
    if kw.get("weights") is not None:
        opts.weights = _str(kw["weights"], "weights")
        if opts.emit != "onnx":
            raise OptionError("--weights goes with --emit onnx")
    plugins = kw.get("plugins")
    opts.plugins = [str(p) for p in ([plugins] if isinstance(plugins, (str, Path)) else plugins or [])]
    return opts


def _str(value, name) -> str:
    if not isinstance(value, str):
        raise OptionTypeError(f"{name} must be a string, not {type(value).__name__}")
    return value


def _items(value, name, flag):
    """A dict, one 'K=V' string or a list of them (or of pairs) -> [(key, value)]."""
    if value is None:
        return []
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise OptionTypeError(f"{name} must be a dict or a list of 'K=V' strings, not "
                              f"{type(value).__name__}")
    pairs = []
    for item in value:
        if isinstance(item, str):
            if "=" not in item:
                if flag == "-D":
                    _read(parse_define, item)  # its own message
                raise OptionError(f"bad {flag} {item!r}: use {_FORMS[flag]}")
            key, v = item.split("=", 1)
            pairs.append((key.strip(), v.strip() if flag != "-D" else v))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.append(tuple(item))
        else:
            raise OptionTypeError(f"{name}: expected 'K=V' strings or (key, value) pairs, got {item!r}")
    return pairs


_FORMS = {"--shape": "NAME=SHAPE, e.g. input1=Bx3", "--state": "OUT=IN, e.g. --state output1=input2"}


def _read(parse, text):
    """parse_define/parse_shape, their ValueError as an OptionError."""
    try:
        return parse(text)
    except ValueError as e:
        raise OptionError(str(e)) from None


def _defines(value) -> dict:
    out = {}
    for key, v in _items(value, "defines", "-D"):
        if isinstance(v, str):
            key, v = _read(parse_define, f"{key}={v}")
        elif isinstance(v, bool) or v is None or isinstance(v, (int, float)):
            key, _ = _read(parse_define, f"{key}=0")  # the name's check
        else:
            raise OptionTypeError(f"defines[{key!r}] must be a number, bool, None or string, "
                                  f"not {type(v).__name__}")
        out[key] = v
    return out


def _shapes(value) -> dict:
    out = {}
    for key, shape in _items(value, "shapes", "--shape"):
        if isinstance(shape, str):
            out[key] = _read(parse_shape, shape)
        elif isinstance(shape, (list, tuple)):
            out[key] = _shape_tuple(key, shape)
        else:
            raise OptionTypeError(f"shapes[{key!r}] must be a string like 'Bx3' or a tuple, not "
                                  f"{type(shape).__name__}")
    return out


def _shape_tuple(key, shape):
    """('B', 3) as parse_shape gives it; a list of shapes is a table input."""
    if shape and all(isinstance(s, (list, tuple, str)) and not (isinstance(s, str) and s == "B")
                     for s in shape):
        return [_read(parse_shape, s) if isinstance(s, str) else _shape_tuple(key, s) for s in shape]
    text = "x".join(str(d) for d in shape)
    if not all(d == "B" or (isinstance(d, int) and not isinstance(d, bool)) for d in shape):
        raise OptionError(f"bad shape {tuple(shape)!r} for {key}: use ints and 'B', e.g. ('B', 3)")
    return _read(parse_shape, text)


def _choice(value, name, choices):
    text = str(value) if not isinstance(value, str) else value  # np.dtype('float64') is fine
    if text not in choices:
        raise OptionError(f"bad --{name} '{value}': choose from {', '.join(choices)}")
    return text


def _unroll(value):
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and (value == "T" or (value.isdigit() and int(value) >= 1)):
        return value if value == "T" else int(value)
    raise OptionError(f"bad --unroll '{value}': give a number of steps >= 1, or T for any length")


def _state(value) -> list:
    return [(str(o).strip(), str(i).strip()) for o, i in _items(value, "state", "--state")]


def _names(value, name) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise OptionTypeError(f"{name} must be an input name or a list of names, not {value!r}")


def compile_file(path, module_name: str | None = None, **options):
    """Compile the spec at `path` and import the generated module (kept in memory, never
    written; graphc.load caches it on disk instead). Returns the module: `mod.Model(...)`.

    Options (keywords; the same values as the CLI's flags, which are named in brackets):
{options}

    An unknown keyword or a value of the wrong type raises TypeError naming the valid ones;
    a bad value raises ValueError (graphc.OptionError) with the CLI's message; an error in
    the spec raises graphc.SpecError, whose str() is the located `file:line:col` message.
    """
    opts = make_options("graphc.compile_file()", **options)
    if opts.emit != "py":
        raise OptionError(f"compile_file imports the Python module: emit must be 'py', not "
                          f"{opts.emit!r} (graphc.compile_spec gives the other forms)")
    from .compiler import compile_spec  # here: graphc.load's cache hits import no compiler
    res = compile_spec(str(path), opts)
    name = module_name or ("graphc_" + re.sub(r"\W", "_", Path(path).stem))
    spec = importlib.util.spec_from_loader(name, loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__file__ = f"<graphc:{Path(path).name}>"
    code = compile(res.source, mod.__file__, "exec")
    exec(code, mod.__dict__)  # generated code, not spec text: names are mangled, strings repr'd
    return mod


def _options_doc() -> str:
    return "\n".join(f"    {name}: {text}" for name, text in OPTIONS.items())


compile_file.__doc__ = compile_file.__doc__.format(options=_options_doc())
