"""The `graphc` command. Exit status: 0 success, 1 spec error, 2 usage error."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from .paths import atomic_write
from .version import __version__
from .compiler import Options, compile_spec
from .api import make_options
from .errors import OptionError, SpecError, collect_warnings

EPILOG_COMPILE = """examples:
  graphc compile samples/lstm.lua -o lstm.py
  graphc compile samples/lenet.lua --shape input1=Bx1x32x32 -o lenet.py
  graphc compile char_lstm.lua --entry "LSTM.lstm(65, 128, 2, 0.5)" -o lstm.py
  graphc compile samples/rnn.lua -D rnn_size=64 --dtype float64 -o rnn.py
  graphc compile samples/lstm.lua --emit ir
  graphc compile samples/lstm.lua --emit onnx -o lstm.onnx
  graphc compile lm_lstm_epoch30.t7 --entry protos.rnn -o char_rnn.py
  graphc compile samples/lstm.lua --unroll T --state output1=input2 --state output2=input3 -o seq.py
  graphc compile samples/lstm.lua --target cuda -o lstm_cuda.py
  graphc compile samples/lstm.lua --target cpu -o lstm_cpu.py
  graphc compile samples/lstm.lua -o build/lstm.py --depfile build/lstm.d
"""
EPILOG_CHECK = """examples:
  graphc check samples/lstm.lua
  graphc check samples/lenet.lua --shape input1=Bx1x32x32 --batch 64
  graphc check samples/lstm.lua --json
"""
EPILOG_GRAPH = """examples:
  graphc graph samples/lstm.lua -o lstm.dot
  graphc graph samples/lstm.lua -o lstm.svg --backward     # needs Graphviz's `dot`
  graphc graph samples/lenet.lua --shape input1=Bx1x32x32 -o lenet.png
"""


class UsageError(Exception):
    pass


class OutputError(OSError):
    """An output file that cannot be written (exit 1): the user's I/O problem, not a bug
    in graphc. The message says which file and why."""


def _why_unwritable(path) -> str | None:
    """Why `path` cannot be an output file, when that is plain before writing anything."""
    p = Path(path)
    if p.is_dir():
        return "it is a directory"
    parent = p.parent
    if not parent.exists():
        return f"the directory {parent} does not exist"
    if not parent.is_dir():
        return f"{parent} is not a directory"
    return None


def _output_error(path, e: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {_why_unwritable(path) or e.strerror or e}")


class _Parser(argparse.ArgumentParser):
    """argparse with a 'did you mean' for misspelt flags and commands (and no silent
    abbreviations: --shap is an error, not --shape)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        import difflib
        import re as _re
        m = _re.search(r"unrecognized arguments: (\S+)", message)
        if m:
            known = [o for a in self._actions for o in a.option_strings]
            for sub in self._actions:
                if isinstance(sub, argparse._SubParsersAction):
                    known += [o for p in sub.choices.values() for a in p._actions for o in a.option_strings]
            best = difflib.get_close_matches(m.group(1).split("=")[0], sorted(set(known)), n=1)
            if best:
                message += f" (did you mean {best[0]}?)"
        m = _re.search(r"invalid choice: '([^']*)'", message)
        if m:
            best = difflib.get_close_matches(m.group(1), ["compile", "check", "graph"], n=1)
            if best:
                message += f" (did you mean {best[0]}?)"
        super().error(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="graphc", description="Compile nngraph-style Lua model "
                                "definitions to generated numpy code.")
    p.add_argument("--version", action="version", version=f"graphc {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def common(sp):
        sp.add_argument("spec", metavar="SPEC.lua", help="the model definition")
        sp.add_argument("--entry", metavar="EXPR", help="Lua expression, evaluated after the "
                        "file in its scope, that gives the model (e.g. \"LSTM.lstm(65, 128, 2)\")")
        sp.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                        help="override a top-level assignment `NAME = ...`, or set field F of the "
                        "table it assigns with NAME.F=VALUE (repeatable)")
        sp.add_argument("--prelude", metavar="FILE.lua", help="run FILE.lua first, in the spec's "
                        "top-level scope: the globals a training script sets (opt = {...}, "
                        "cudnn = nn)")
        sp.add_argument("--shape", dest="shapes", action="append", default=[], metavar="NAME=SHAPE",
                        help="input shape like input1=Bx1x32x32; B is the free batch dim (repeatable)")
        sp.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="the generated Model's default dtype (default float32)")
        sp.add_argument("--no-grad", dest="no_grad", action="append", default=[], metavar="NAME",
                        help="input NAME needs no gradient: backward returns None for it and "
                             "skips the work (repeatable)")
        sp.add_argument("-O", dest="opt", type=int, choices=(0, 1), default=1,
                        help="-O0: no optimizing passes (plain code, a reference); -O1 (default)")
        sp.add_argument("--unroll", metavar="T", help="compile a one-step recurrent model for a "
                        "sequence: a number of steps (straight-line code), or T for any length "
                        "(adds a Sequence class); needs --state")
        sp.add_argument("--state", dest="state", action="append", default=[], metavar="OUT=IN",
                        help="with --unroll: output OUT feeds input IN at the next step (repeatable)")
        sp.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="FILE.py",
                        help="modules written in Python (see graphc.plugin; repeatable)")

    c = sub.add_parser("compile", help="compile a spec to a Python module",
                       epilog=EPILOG_COMPILE, formatter_class=argparse.RawDescriptionHelpFormatter)
    common(c)
    c.add_argument("-o", "--output", metavar="OUT", help="output file (default: stdout); "
                   "written atomically and only when its bytes change")
    c.add_argument("--target", choices=("numpy", "cuda", "cpu"), default="numpy",
                   help="code target: numpy (default); cuda (CuPy arrays, generated fused "
                   "CUDA kernels and cuBLAS GEMMs; the module needs CuPy to run); or cpu (the "
                   "same fused kernels built for this CPU with a C++ compiler and OpenMP, "
                   "numpy arrays)")
    c.add_argument("--emit", choices=("py", "ir", "dot", "cu", "onnx"), default="py",
                   help="py: the Python module (default); ir: the IR text dump; dot: Graphviz; "
                   "cu: the kernels alone (--target cuda or cpu); onnx: the forward graph as "
                   "an ONNX model with the weights (needs -o; pip install \"graphc[onnx]\")")
    c.add_argument("--weights", metavar="FILE", help="with --emit onnx: the weights, a file "
                   "written by Model.save (default: a .t7's own weights, else the seed-0 init)")
    c.add_argument("--depfile", metavar="OUT.d", help="also write make's dependency file: "
                   "OUT depends on the spec and every file it requires")
    k = sub.add_parser("check", help="parse, evaluate and infer shapes; print a per-node table",
                       epilog=EPILOG_CHECK, formatter_class=argparse.RawDescriptionHelpFormatter)
    common(k)
    k.add_argument("--batch", type=int, default=1, metavar="N",
                   help="batch size for FLOPs and memory (default 1)")
    k.add_argument("--json", action="store_true", help="machine-readable output")
    gr = sub.add_parser("graph", help="draw the graph (.dot; .svg/.png through Graphviz)",
                        epilog=EPILOG_GRAPH, formatter_class=argparse.RawDescriptionHelpFormatter)
    common(gr)
    gr.add_argument("-o", "--output", metavar="OUT", required=True,
                    help="OUT.dot, OUT.svg or OUT.png")
    gr.add_argument("--backward", action="store_true", help="draw the backward graph too")
    return p


def _options(args) -> Options:
    """The flags as graphc.load's keywords: one reading of every option (user_options)."""
    if getattr(args, "emit", "py") == "onnx" and not getattr(args, "output", None):
        raise UsageError("--emit onnx writes a binary file: give -o OUT.onnx")
    return make_options(
        "graphc", entry=args.entry, defines=args.defines, shapes=args.shapes, dtype=args.dtype,
        emit=getattr(args, "emit", "py"), target=getattr(args, "target", "numpy"),
        unroll=getattr(args, "unroll", None), state=getattr(args, "state", []),
        optimize=bool(args.opt), no_grad=list(args.no_grad), prelude=args.prelude,
        plugins=list(args.plugins), weights=getattr(args, "weights", None))


def write_if_changed(path: str, text: str) -> bool:
    """Atomically replace `path` with `text` unless it already holds exactly that."""
    return _write_bytes_if_changed(path, text.encode("utf-8"))


def _mode_for(p: Path) -> int:
    """An existing file's mode, else what a plain open() would give (0666 minus umask)."""
    try:
        return p.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write_bytes_if_changed(path: str, data: bytes) -> bool:
    try:
        return _replace_if_changed(Path(path), data)
    except OutputError:
        raise
    except OSError as e:
        raise _output_error(path, e) from None


def _replace_if_changed(p: Path, data: bytes) -> bool:
    if p.is_dir():
        raise OutputError(f"cannot write {p}: it is a directory")
    if p.exists() and not p.is_file():  # /dev/null, a FIFO, /dev/stdout: write, never replace
        with open(p, "wb") as f:
            f.write(data)
        return True
    try:
        if p.read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write(p, data, _mode_for(p))  # outputs get the usual permissions
    return True


def _check_report(graph, batch: int) -> dict:
    from .ir.graph import shape_str
    from .passes.stats import node_stats, peak_activation_bytes
    rows = node_stats(graph, batch)
    return {
        "batch": batch,
        "inputs": [{"name": v.name, "aliases": _aliases_of(graph.input_aliases, v.name),
                    "shape": shape_str(v.shape)} for v in graph.inputs],
        "outputs": [{"name": n, "aliases": _aliases_of(graph.output_aliases, n),
                     "shape": shape_str(v.shape)} for n, v in zip(graph.output_names, graph.outputs)],
        "nodes": [{"location": f"{Path(r.node.loc.file).name}:{r.node.loc.line}" if r.node.loc else "",
                   "module": f"nn.{r.node.op}", "name": r.node.name,
                   "output_shape": shape_str(r.node.outputs[0].shape), "params": r.params,
                   "flops_forward": r.flops_fwd, "flops_backward": r.flops_bwd} for r in rows],
        "total_params": sum(r.params for r in rows),
        "parameter_arrays": len(graph.params),
        "total_flops_forward": sum(r.flops_fwd for r in rows),
        "total_flops_backward": sum(r.flops_bwd for r in rows),
        "peak_activation_bytes_float32": peak_activation_bytes(graph, batch),
    }


def _check_table(rep: dict) -> str:
    head = ("node", "module", "output shape", "params", "fwd FLOPs", "bwd FLOPs")
    rows = [head] + [(n["location"], n["module"] + (f" [{n['name']}]" if n["name"] else ""),
                      n["output_shape"], _num(n["params"]), _num(n["flops_forward"]),
                      _num(n["flops_backward"])) for n in rep["nodes"]]
    rows.append(("total", "", "", _num(rep["total_params"]), _num(rep["total_flops_forward"]),
                 _num(rep["total_flops_backward"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    right = (False, False, False, True, True, True)
    fmt = lambda r: "  ".join(c.rjust(w) if rt else c.ljust(w)  # noqa: E731
                              for c, w, rt in zip(r, widths, right)).rstrip()
    lines = [fmt(r) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    def io(v):
        return v["name"] + (f" ({', '.join(v['aliases'])})" if v["aliases"] else "") + f": {v['shape']}"
    ins = ", ".join(map(io, rep["inputs"]))
    outs = ", ".join(map(io, rep["outputs"]))
    mem = rep["peak_activation_bytes_float32"]
    lines += ["", f"inputs:  {ins}", f"outputs: {outs}",
              f"parameters: {rep['total_params']} in {rep['parameter_arrays']} arrays",
              f"peak activation memory at batch {rep['batch']}: {mem} bytes (float32; "
              f"{mem * 2} in float64)"]
    return "\n".join(lines) + "\n"


def _aliases_of(aliases: dict, name: str) -> list:
    """The Lua variable names that --state/--no-grad also accept for input/output `name`."""
    return sorted(a for a, target in aliases.items() if target == name)


def _num(n: int) -> str:
    return f"{n:,}" if n else ""


def write_depfile(path: str, target: str, files: list) -> None:
    def esc(f):
        if any(c in str(f) for c in "\n\r"):  # a make rule is one line: it would start a recipe
            raise UsageError(f"--depfile: cannot write the file name {str(f)!r} (it holds a line "
                             "break) as a make dependency")
        return str(f).replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")
    text = f"{esc(target)}: " + " ".join(esc(f) for f in files) + "\n"
    text += "".join(f"{esc(f)}:\n" for f in files[1:])  # like gcc -MP: removed files don't break make
    write_if_changed(path, text)


def _render_graph(dot_text: str, out: str) -> None:
    import shutil
    import subprocess
    suffix = Path(out).suffix.lower()
    if suffix == ".dot" or suffix == ".gv":
        write_if_changed(out, dot_text)
        return
    if suffix not in (".svg", ".png", ".pdf"):
        raise UsageError(f"graph output must end in .dot, .svg, .png or .pdf, not {suffix or 'nothing'}")
    exe = shutil.which("dot")
    if exe is None:
        raise UsageError(f"writing {suffix[1:]} needs Graphviz's `dot` program, which is not "
                         "installed (Debian/Ubuntu: apt-get install graphviz); .dot output works without it")
    r = subprocess.run([exe, f"-T{suffix[1:]}"], input=dot_text.encode(), capture_output=True)
    if r.returncode != 0:
        raise UsageError(f"dot failed: {r.stderr.decode(errors='replace').strip()}")
    _write_bytes_if_changed(out, r.stdout)


def main(argv=None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    sources, found = {}, []
    stack = contextlib.ExitStack()
    try:
        opts = _options(args)
        if args.command in ("check", "graph"):
            opts.emit = "ir"
        if not Path(args.spec).is_file():
            raise UsageError(f"no such file: {args.spec}")
        if args.command == "check" and args.batch < 1:
            raise UsageError("--batch must be at least 1")
        for flag, out in (("-o", getattr(args, "output", None)), ("--depfile", getattr(args, "depfile", None))):
            why = out and _why_unwritable(out)
            if why:  # before compiling: say it at once
                raise OutputError(f"cannot write {out} ({flag}): {why}")
        if opts.plugins:  # the plugins' modules stay known for check's and graph's tables
            from .plugin import registered
            stack.enter_context(registered(opts.plugins))
        with collect_warnings(issue=False) as found:
            res = compile_spec(args.spec, opts)
        sources = res.sources
        _print_warnings(found, sources)
        if args.command == "check":
            rep = _check_report(res.graph, args.batch)
            sys.stdout.write(json.dumps(rep, indent=1) + "\n" if args.json else _check_table(rep))
        elif args.command == "graph":
            from .backends.dot import to_dot
            _render_graph(to_dot(res.graph, args.backward, Path(args.spec).name), args.output)
            print(f"graphc: wrote {args.output}", file=sys.stderr)
        elif args.output and isinstance(res.source, bytes):  # --emit onnx
            _write_bytes_if_changed(args.output, res.source)
            if args.depfile:
                write_depfile(args.depfile, args.output, res.files)
        elif args.output:
            write_if_changed(args.output, res.source)
            if args.depfile:
                write_depfile(args.depfile, args.output, res.files)
        else:
            if args.depfile:
                raise UsageError("--depfile needs -o OUT (the make target)")
            sys.stdout.write(res.source)
        return 0
    except UsageError as e:
        print(f"graphc: error: {e}", file=sys.stderr)
        return 2
    except OptionError as e:  # an option that does not fit the model: a usage error
        print(e.format(), file=sys.stderr)
        return 2
    except OutputError as e:
        print(f"graphc: error: {e}", file=sys.stderr)
        return 1
    except SpecError as e:
        srcs = dict(sources)
        if not srcs:
            try:
                srcs = _read_sources(e, args, found)
            except Exception:
                srcs = {}
        _print_warnings(found, srcs)
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
    finally:
        stack.close()


def _print_warnings(found, sources) -> None:
    for w in found:
        print(w.format(sources), file=sys.stderr)


def _read_sources(err: SpecError, args, found=()) -> dict:
    locs = [err.loc] + [l for l, _ in err.notes] + [w.loc for w in found]
    files = {loc.file for loc in locs if loc is not None}
    out = {}
    for f in files:
        if f == "<entry>":
            out[f] = args.entry or ""
        elif Path(f).is_file():
            out[f] = Path(f).read_text(encoding="utf-8", errors="replace")
    return out


if __name__ == "__main__":
    sys.exit(main())
