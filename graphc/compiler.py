"""The front door: spec file -> IR -> passes -> generated source. The CLI uses this too."""
from __future__ import annotations

import gc

import hashlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .backends.common import CodegenOptions, safe_comment, safe_doc
from .errors import Loc, OptionError, SpecError, collect_warnings, did_you_mean
from .frontend.lua import LuaTable
from .frontend.nngraph import Interpreter
from .frontend.lower import lower
from .frontend.nn import CONTAINERS, ModuleObj
from .ir.dump import dump
from .ir.graph import Graph
from .options import Options, parse_define, parse_shape  # noqa: F401 (graphc.compiler's API)
from .passes.autodiff import autodiff
from .passes.memory import plan_memory
from .passes.limits import check_sizes
from .passes.simplify import hoist_sequence_projections, merge_slice_grads
from .passes.unroll import parse_state_pairs, split_sequence_prefix, unroll
from .passes.validate import validate


@dataclass
class Result:
    graph: Graph  # after all passes
    source: str  # the generated text (per options.emit)
    files: list  # the spec and every file it required
    sources: dict  # file -> text, for error rendering
    warnings: list = field(default_factory=list)  # errors.GraphcWarning, each issued too


def build_graph(path: str, opts: Options, text: str | None = None):
    """Evaluate the spec and lower the chosen model to IR, with shapes. A `.t7` file (a
    module saved by Torch7) is read instead of evaluated (frontend/t7import.py)."""
    if text is None and path.endswith(".t7"):
        from .frontend.t7import import T7Source, read_model, t7_layout
        model, _ = read_model(path, opts.entry)
        graph = lower(model, opts.shapes)
        graph.t7_modules = t7_layout(model, graph)
        return graph, T7Source(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise SpecError(f"cannot read {path}: {e}") from None
    prelude = None
    if opts.prelude is not None:
        try:
            prelude = (str(opts.prelude), Path(opts.prelude).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            raise OptionError(f"--prelude {opts.prelude}: cannot read it: {e}") from None
    interp = Interpreter(path, text, opts.defines, prelude, compile_module=spec_time_source)
    try:
        returned = interp.run()
        model = _choose_model(interp, returned, opts)
        graph = lower(model, opts.shapes)
        from .frontend.t7import import t7_layout
        graph.t7_modules = t7_layout(model, graph)
    except RecursionError:
        raise SpecError("the spec nests too deeply to evaluate") from None
    return graph, interp


def _choose_model(interp: Interpreter, returned, opts: Options) -> ModuleObj:
    if opts.entry:
        vals = interp.eval_entry(opts.entry)
        v = vals[0] if vals else None
        if not isinstance(v, ModuleObj):
            from .frontend.lua import describe
            raise SpecError(f"--entry {opts.entry!r} gave a {describe(v)}, not a module",
                            Loc("<entry>", 1, 1))
        return v
    if returned and isinstance(returned[0], ModuleObj):
        return returned[0]
    tops = [m for m in interp.modules if m.kind in CONTAINERS
            and not m.contained]
    if tops:
        return tops[-1]
    raise interp.no_model_error(returned)


def compile_spec(path: str, opts: Options | None = None, text: str | None = None) -> Result:
    # Compiling allocates many small, long-lived objects (AST, Lua values, IR) and no
    # garbage cycles worth collecting mid-way: the cyclic GC's repeated scans of them were
    # most of the time of big specs. It runs again (as the process decides) afterwards.
    enabled = gc.isenabled()
    gc.disable()
    try:
        with collect_warnings() as found:  # issued (Python's warnings) when the compile ends
            res = _compile_spec(path, opts or Options(), text)
        res.warnings = list(found)
        return res
    finally:
        if enabled:
            gc.enable()


def _compile_spec(path: str, opts: Options, text: str | None) -> Result:
    if not opts.plugins:
        return _compile_with_ops(path, opts, text, [])
    from .plugin import registered
    with registered(opts.plugins) as plugin_files:  # the plugins' modules, for this compile
        return _compile_with_ops(path, opts, text, plugin_files)


def _compile_with_ops(path: str, opts: Options, text: str | None, plugin_files: list) -> Result:
    graph, interp = build_graph(path, opts, text)
    interp.files.extend(f for f in plugin_files if f not in interp.files)
    graph = check_sizes(validate(graph))
    sequence_parts = sequence_state = None
    no_grad = _no_grad_inputs(graph, opts.no_grad)
    if opts.unroll is not None:
        pairs = parse_state_pairs(graph, opts.state)
        if opts.unroll == "T":
            sequence_state = tuple(pairs)  # a runtime-driven loop over steps
            for _, i in pairs:  # Sequence carries BPTT's gradient through each state input
                if i in no_grad:
                    raise OptionError(f"--no-grad {no_grad[i]}: a state input's gradient "
                                      "carries backpropagation to the previous step (--unroll T)")
            if opts.optimize and opts.target == "numpy" and opts.emit == "py":
                sequence_parts = split_sequence_prefix(graph, pairs)
        else:
            graph = validate(unroll(graph, int(opts.unroll), pairs))
            if opts.optimize:
                graph = validate(hoist_sequence_projections(graph))
    elif opts.state:
        raise OptionError("--state needs --unroll")
    # inputs keep their order through unrolling (x becomes x_seq): name them by position
    no_grad_names = tuple(graph.inputs[i].name for i in no_grad)
    graph = validate(autodiff(graph, no_grad_names))
    if opts.optimize and opts.target == "numpy":  # the CUDA backend fuses these itself
        graph = validate(merge_slice_grads(graph))
    spec_text = interp.sources[path]
    name = Path(path).name
    codegen = _codegen_options(path, spec_text, opts, graph, no_grad_names, sequence_state)
    if sequence_parts is not None:  # the same passes for Sequence's two parts of the step
        prefix, rest, rest_inputs, prefix_inputs = sequence_parts
        parts = []
        for part in (prefix, rest):
            part = merge_slice_grads(validate(autodiff(validate(part), no_grad_names)))
            parts.append(validate(part))
        sequence_parts = (parts[0], parts[1], tuple(rest_inputs), tuple(prefix_inputs))
    if opts.emit == "ir":
        out = dump(graph, codegen.source_name)
    elif opts.emit == "dot":
        from .backends.dot import to_dot
        out = to_dot(graph, False, name)
    elif opts.emit == "onnx":
        if sequence_state:
            raise SpecError("--emit onnx exports one step: compile without --unroll T")
        from .backends.onnx import export_weights, generate as generate_onnx
        t7 = (path, opts.entry) if path.endswith(".t7") else None
        out = generate_onnx(graph, export_weights(graph, opts.dtype, opts.weights, t7),
                            opts.dtype, Path(path).stem)
    elif opts.target in ("cuda", "cpu"):
        from .backends.cuda import generate as generate_cuda
        py, cu = generate_cuda(graph, codegen)
        out = cu if opts.emit == "cu" else py
    elif opts.emit == "cu":
        raise ValueError("--emit cu needs --target cuda or cpu")
    else:
        from .backends.numpy import generate
        if opts.optimize:  # scratch arrays written with out= (the numpy target's memory plan)
            graph = plan_memory(graph)
            if sequence_parts is not None:
                sequence_parts = (plan_memory(sequence_parts[0]), plan_memory(sequence_parts[1]),
                                  *sequence_parts[2:])
        out = generate(graph, codegen, sequence_parts)
    return Result(graph, out, interp.files, interp.sources)


def _no_grad_inputs(graph: Graph, names) -> dict:
    """--no-grad names (own names or Lua variable names) -> {input index: name given}."""
    found = {}
    for name in names:
        i = graph.find_input(name)
        if i is None:
            listed, known = graph.io_names()
            raise OptionError(f"--no-grad {name}: the model has no input '{name}' (inputs: "
                              f"{listed})" + did_you_mean(name, known))
        found[i] = name
    return found


def spec_time_source(mod: ModuleObj, shapes: dict, path: str, spec_text: str) -> str:
    """The float64 numpy source of one module for the given input shapes: what a spec's
    `m:forward(x)` runs while the spec is evaluated (frontend/objects.py)."""
    opts = Options(dtype="float64", shapes=shapes)
    graph = check_sizes(validate(lower(mod, shapes)))
    graph = plan_memory(validate(merge_slice_grads(validate(autodiff(graph, ())))))
    from .backends.numpy import generate
    return generate(graph, _codegen_options(path, spec_text, opts, graph, (), None))


def _codegen_options(path, spec_text, opts, graph, no_grad_names, sequence_state) -> CodegenOptions:
    name = Path(path).name
    args = [name]
    if opts.prelude is not None:
        args.append(f"--prelude {_shell_quote(str(opts.prelude))}")
    if opts.entry:
        args.append(f"--entry {_shell_quote(opts.entry)}")
    for k, v in sorted(opts.defines.items()):
        args.append(f"-D {_shell_quote(f'{k}={v}')}")
    for k, s in sorted(opts.shapes.items()):
        args.append(f"--shape {_shell_quote(k + '=' + _shape_text(s))}")
    if opts.dtype != "float32":
        args.append(f"--dtype {opts.dtype}")
    if not opts.optimize:
        args.append("-O0")
    args += [f"--no-grad {_shell_quote(n)}" for n in opts.no_grad]
    args += [f"--plugin {_shell_quote(Path(p).name)}" for p in opts.plugins]
    if opts.unroll is not None:
        args.append(f"--unroll {opts.unroll}")
        args += [f"--state {_shell_quote(f'{o}={i}')}" for o, i in opts.state]
    stem = re.sub(r"[^0-9A-Za-z_]", "_", Path(path).stem) or "model"
    ins = ", ".join(re.sub(r"[^0-9A-Za-z_]", "_", v.name) for v in graph.inputs)
    outs = ", ".join("grad_" + re.sub(r"[^0-9A-Za-z_]", "_", v.name) for v in graph.outputs)
    comma_i = "," if len(graph.inputs) == 1 else ""
    comma_o = "," if len(graph.outputs) == 1 else ""
    from .passes.stats import activation_elements, node_stats
    summary = tuple((f"{Path(r.node.loc.file).name}:{r.node.loc.line}" if r.node.loc else "",
                     f"nn.{r.node.op}" + (f" [{r.node.name}]" if r.node.name else ""),
                     tuple(r.node.outputs[0].shape), r.params) for r in node_stats(graph))
    return CodegenOptions(
        activation_elements=activation_elements(graph),
        optimize=opts.optimize, no_grad=no_grad_names, sequence_state=sequence_state,
        t7_modules=graph.t7_modules,
        summary=summary, source_name=safe_comment(name),
        sha256=hashlib.sha256(spec_text.encode()).hexdigest(),
        command=safe_comment(" ".join(args)), dtype=opts.dtype, target=opts.target,
        module_name=stem,
        doc=safe_doc(f"Model compiled by graphc from {name}: {len(graph.inputs)} input(s), "
                     f"{len(graph.outputs)} output(s), {len(graph.params)} parameter array(s)."),
        usage_forward=safe_doc(f"out = m.forward({ins})"),
        usage_backward=safe_doc(f"grads = m.backward(({ins}{comma_i}), ({outs}{comma_o}))"),
    )


def _shape_text(s) -> str:
    if isinstance(s, list):
        return "{" + ",".join(_shape_text(x) for x in s) + "}"
    return "x".join(map(str, s))


def _shell_quote(s: str) -> str:
    if re.fullmatch(r"[\w.,=/+-]+", s):
        return s
    if "'" in s and not re.search(r'["$`\\!]', s):
        return f'"{s}"'  # Lua strings in an --entry: "f(1, 'mv')" reads better than '\''
    return "'" + s.replace("'", "'\\''") + "'"
