"""The `graphc` command. Exit status: 0 success, 1 spec error, 2 usage error."""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

from . import __version__
from .compiler import Options, compile_spec, parse_define, parse_shape
from .errors import SpecError

EPILOG_COMPILE = """examples:
  graphc compile samples/lstm.lua -o lstm.py
  graphc compile samples/lenet.lua --shape input1=Bx1x32x32 -o lenet.py
  graphc compile char_lstm.lua --entry "LSTM.lstm(65, 128, 2, 0.5)" -o lstm.py
  graphc compile samples/rnn.lua -D rnn_size=64 --dtype float64 -o rnn.py
  graphc compile samples/lstm.lua --emit ir
"""
EPILOG_CHECK = """examples:
  graphc check samples/lstm.lua
  graphc check samples/lenet.lua --shape input1=Bx1x32x32
"""


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graphc", description="Compile nngraph-style Lua model "
                                "definitions to generated numpy code.")
    p.add_argument("--version", action="version", version=f"graphc {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def common(sp):
        sp.add_argument("spec", metavar="SPEC.lua", help="the model definition")
        sp.add_argument("--entry", metavar="EXPR", help="Lua expression, evaluated after the "
                        "file in its scope, that gives the model (e.g. \"LSTM.lstm(65, 128, 2)\")")
        sp.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                        help="override a top-level assignment `NAME = ...` (repeatable)")
        sp.add_argument("--shape", dest="shapes", action="append", default=[], metavar="NAME=SHAPE",
                        help="input shape like input1=Bx1x32x32; B is the free batch dim (repeatable)")
        sp.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="the generated Model's default dtype (default float32)")

    c = sub.add_parser("compile", help="compile a spec to a Python module",
                       epilog=EPILOG_COMPILE, formatter_class=argparse.RawDescriptionHelpFormatter)
    common(c)
    c.add_argument("-o", "--output", metavar="OUT", help="output file (default: stdout); "
                   "written atomically and only when its bytes change")
    c.add_argument("--target", choices=("numpy",), default="numpy", help="code target")
    c.add_argument("--emit", choices=("py", "ir"), default="py",
                   help="py: the Python module (default); ir: the IR text dump")
    k = sub.add_parser("check", help="parse, evaluate and infer shapes; print a summary",
                       epilog=EPILOG_CHECK, formatter_class=argparse.RawDescriptionHelpFormatter)
    common(k)
    return p


def _options(args) -> Options:
    try:
        defines = dict(parse_define(d) for d in args.defines)
        shapes = {}
        for s in args.shapes:
            if "=" not in s:
                raise ValueError(f"bad --shape {s!r}: use NAME=SHAPE, e.g. input1=Bx3")
            name, shape = s.split("=", 1)
            shapes[name.strip()] = parse_shape(shape)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return Options(entry=args.entry, defines=defines, shapes=shapes, dtype=args.dtype,
                   emit=getattr(args, "emit", "py"))


def write_if_changed(path: str, text: str) -> bool:
    """Atomically replace `path` with `text` unless it already holds exactly that."""
    data = text.encode("utf-8")
    p = Path(path)
    try:
        if p.read_bytes() == data:
            return False
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent.resolve()))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


def _check_table(graph) -> str:
    from .ir.graph import shape_str
    rows = [("node", "module", "output shape", "params")]
    total = 0
    counted = set()
    pvals = {p.value for p in graph.params}
    for n in graph.nodes:
        nparams = 0
        for v in n.inputs:
            if v in pvals and v not in counted:
                counted.add(v)
                nparams += math.prod(v.shape)
        total += nparams
        where = f"{Path(n.loc.file).name}:{n.loc.line}" if n.loc else ""
        rows.append((where, f"nn.{n.op}" + (f" [{n.name}]" if n.name else ""),
                     shape_str(n.outputs[0].shape), str(nparams) if nparams else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    ins = ", ".join(f"{v.name}: {shape_str(v.shape)}" for v in graph.inputs)
    outs = ", ".join(f"{v.name}: {shape_str(v.shape)}" for v in graph.outputs)
    lines += ["", f"inputs:  {ins}", f"outputs: {outs}",
              f"parameters: {total} in {len(graph.params)} arrays"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    sources = {}
    try:
        opts = _options(args)
        if args.command == "check":
            opts.emit = "ir"
        if not Path(args.spec).is_file():
            raise UsageError(f"no such file: {args.spec}")
        res = compile_spec(args.spec, opts)
        sources = res.sources
        if args.command == "check":
            sys.stdout.write(_check_table(res.graph))
        elif args.output:
            write_if_changed(args.output, res.source)
        else:
            sys.stdout.write(res.source)
        return 0
    except UsageError as e:
        print(f"graphc: error: {e}", file=sys.stderr)
        return 2
    except SpecError as e:
        srcs = dict(sources)
        if not srcs:
            try:
                srcs = _read_sources(e, args)
            except Exception:
                srcs = {}
        print(e.format(srcs), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug in graphc: say so, without a traceback
        import traceback
        print(f"graphc: internal error: {type(e).__name__}: {e}\n"
              "This is a bug in graphc, not in your spec. Please report it with the spec and "
              "this command line; set GRAPHC_TRACEBACK=1 for details.", file=sys.stderr)
        if os.environ.get("GRAPHC_TRACEBACK"):
            traceback.print_exc()
        return 1


def _read_sources(err: SpecError, args) -> dict:
    files = {loc.file for loc in [err.loc] + [l for l, _ in err.notes] if loc is not None}
    out = {}
    for f in files:
        if f == "<entry>":
            out[f] = args.entry or ""
        elif Path(f).is_file():
            out[f] = Path(f).read_text(encoding="utf-8", errors="replace")
    return out


if __name__ == "__main__":
    sys.exit(main())
