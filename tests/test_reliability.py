"""Regression tests for the defects an adversarial probe found (issue 18, items 3-14): every
sample through every emit kind, unroll limits, Sequence gradient checks, the load() cache
(required files in-process, threads, unusable directories, damaged entries), output-path and
option errors of the CLI, bad index inputs and forwards too big for GRAPHC_MAX_BYTES."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from graphc.cli import _options, _parser, main
from graphc.compiler import Options, compile_spec
from graphc.errors import OptionError, SpecError
from test_fuzz import header_command_args

ROOT = Path(__file__).resolve().parent.parent
LSTM = str(ROOT / "samples" / "lstm.lua")
SPEC_FILES = sorted(list((ROOT / "samples").glob("*.lua")) +
                    list((ROOT / "samples" / "corpus").glob("*.lua")))


def spec_commands():
    """(spec, options) for every sample and corpus spec: each of its header commands, or
    no options for a spec without one (a library that another spec requires)."""
    return [pytest.param(path, args, id=f"{path.name}:{k}") for path in SPEC_FILES
            for k, args in enumerate(header_command_args(path))]


EMITS = [("numpy", "py"), ("numpy", "ir"), ("numpy", "dot"), ("cuda", "py"), ("cuda", "cu")]


@pytest.mark.slow  # about 30 s: 7 runs of each of 26 spec commands
@pytest.mark.parametrize("path,args", spec_commands())
def test_every_spec_through_every_emit_kind_and_graph(path, args, tmp_path, capsys):
    """Item 3: every sample and corpus spec goes through every target and emit kind and
    `graphc graph` (with and without --backward), never an internal error: exit 0 where
    the spec compiles with these options, else exit 1 with the same spec error (a library
    file; lenet_tutorial.lua's documented failure); --target cuda may refuse a plugin's
    module with a located error. unet.lua's BatchNormalization crashed the dot backend."""
    argv = [str(path)] + args
    try:
        compile_spec(str(path), _options(_parser().parse_args(["compile"] + argv)))
        expected = None
    except SpecError as e:
        expected = e.message
    runs = [["compile"] + argv + ["--target", t, "--emit", e, "-o", str(tmp_path / f"{t}.{e}")]
            for t, e in EMITS]
    runs += [["graph"] + argv + ["-o", str(tmp_path / "g.dot")],
             ["graph"] + argv + ["-o", str(tmp_path / "gb.dot"), "--backward"]]
    for run in runs:
        code = main(run)
        err = capsys.readouterr().err
        assert "internal error" not in err, f"graphc {shlex.join(run)}:\n{err}"
        if expected is None and "cuda" in run and "no CUDA implementation" in err:
            assert code == 1 and re.match(r"\S+:\d+:\d+: error: ", err), err  # a plugin's module
        elif expected is None:
            assert code == 0, f"graphc {shlex.join(run)}: exit {code}\n{err}"
        else:
            assert code == 1 and expected in err, f"graphc {shlex.join(run)}: exit {code}\n{err}"
    if expected is None:
        dot = (tmp_path / "gb.dot").read_text()
        assert dot.startswith("digraph") and "grad of" in dot and dot.rstrip().endswith("}")


def test_dot_of_batchnorm_draws_no_buffer_boxes(tmp_path):
    spec = tmp_path / "bn.lua"
    spec.write_text("local x = nn.Identity()()\n"
                    "return nn.gModule({x}, {nn.BatchNormalization(3)(nn.Linear(2, 3)(x))})\n")
    out = tmp_path / "bn.dot"
    assert main(["graph", str(spec), "-o", str(out), "--backward"]) == 0
    dot = out.read_text()
    assert "nn.BatchNormalization" in dot and "grad nn.BatchNormalization" in dot
    assert "running" not in dot  # buffers are counted on the node, not drawn


# ---- item 4: --unroll limits --------------------------------------------------------------

LSTM_STATE = ["--state", "output1=input2", "--state", "output2=input3"]


@pytest.mark.parametrize("steps", ["3200", "99999999999999999"])
def test_unroll_over_the_node_limit_is_a_located_error_at_once(steps):
    """16 nodes a step: 3,200 steps are over the 50,000-node limit. Before the fix, 3,200
    steps compiled for minutes and 99999999999999999 grew memory until MemoryError."""
    p = subprocess.run([sys.executable, "-m", "graphc", "compile", LSTM, "--unroll", steps,
                        *LSTM_STATE, "-o", os.devnull], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1, p.stderr
    assert re.match(r"\S*lstm\.lua:\d+:\d+: error: --unroll \d+: ", p.stderr), p.stderr
    assert "over the limit of 50,000" in p.stderr and "--unroll T" in p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr


def test_unroll_limit_is_steps_times_nodes_per_step():
    from graphc.compiler import build_graph
    from graphc.passes.unroll import check_unroll_size
    g, _ = build_graph(LSTM, Options())
    per_step = len(g.nodes) + 1  # the nodes and the slice of the one per-step input
    most = 50_000 // per_step
    state = [(0, 1), (1, 2)]
    check_unroll_size(g, most, state)
    with pytest.raises(SpecError, match=f"unroll at most {most:,} steps"):
        check_unroll_size(g, most + 1, state)
    assert compile_spec(LSTM, Options(unroll=200, emit="ir", state=[("output1", "input2"),
                                                                      ("output2", "input3")]))


# ---- item 6: Sequence.backward checks its output gradients --------------------------------

@pytest.fixture(scope="module")
def sequence_module():
    """The LSTM cell with next_h also as a per-step output (output3)."""
    import graphc
    return graphc.compile_file(LSTM, unroll="T", state=[("output1", "input2"), ("output2", "input3")],
                               dtype="float64",
                               entry="nn.gModule(inputs, {next_c, next_h, nn.Identity()(next_h)})")


def _sequence_case(mod, steps=4, batch=3):
    seq = mod.Sequence(dtype="float64")
    rng = np.random.default_rng(0)
    xs = (rng.standard_normal((steps, batch, 3)), rng.standard_normal((batch, 2)),
          rng.standard_normal((batch, 2)))
    outs = seq.forward(*xs)
    return seq, xs, [np.ones_like(o) for o in outs]


@pytest.mark.parametrize("which,bad,words", [
    (0, lambda g: g[:1], "expected shape 3x2"),  # a final state's gradient with B=1
    (0, lambda g: np.float64(1.0), "got scalar"),
    (0, lambda g: g.astype(np.int64), "expected dtype float64, got int64"),
    (2, lambda g: g[0], "expected shape 4x3x2"),  # a per-step gradient without its T
    (2, lambda g: g[:, :1], "expected shape 4x3x2"),  # T x 1 x ...: would broadcast
    (2, lambda g: None, "got None"),
])
def test_sequence_backward_checks_output_gradients(sequence_module, which, bad, words):
    seq, xs, grads = _sequence_case(sequence_module)
    name = seq.step.OUTPUTS[which][0]
    grads[which] = bad(grads[which])
    with pytest.raises(ValueError, match=re.escape(f"gradient of output '{name}'")) as info:
        seq.backward(xs, grads)
    assert words in str(info.value)


def test_sequence_backward_takes_good_gradients(sequence_module):
    seq, xs, grads = _sequence_case(sequence_module)
    gin = seq.backward(xs, grads)
    assert gin[0].shape == xs[0].shape and gin[1].shape == xs[1].shape


# ---- items 7-10: the load() cache ---------------------------------------------------------

REQUIRING = "local L = require 'layers'\nx = nn.Identity()()\nm = nn.gModule({x}, {nn.Linear(2, L.n())(x)})\n"


def _layers(tmp_path, n):
    (tmp_path / "layers.lua").write_text(f"local M = {{}}\nfunction M.n() return {n} end\nreturn M\n")


def test_load_in_process_sees_a_changed_required_file(tmp_path, monkeypatch):
    """Item 7: the same process loads the spec again after a required file changed: the
    new model, not the module left in sys.modules."""
    import graphc
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    _layers(tmp_path, 3)
    spec = tmp_path / "m.lua"
    spec.write_text(REQUIRING)
    first = graphc.load(spec)
    assert first.PARAMETERS[0][1] == (3, 2)
    assert graphc.load(spec) is first  # unchanged: the same module
    _layers(tmp_path, 5)
    second = graphc.load(spec)
    assert second.PARAMETERS[0][1] == (5, 2)
    _layers(tmp_path, 3)
    assert graphc.load(spec).PARAMETERS[0][1] == (3, 2)


def test_load_from_several_threads_at_once(tmp_path, monkeypatch):
    """Item 8: temporary file names were per process, so threads writing one entry
    collided (FileNotFoundError)."""
    import graphc
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    results, errors = [], []
    start = threading.Barrier(6)

    def work(k):
        try:
            start.wait()
            results.append(graphc.load(LSTM, dtype="float64", defines={"rnn_size": 2 + k % 2}))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({id(m) for m in results}) == 2  # one module per distinct model
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("kind", ["a regular file", "under a regular file"])
def test_unusable_cache_dir_compiles_without_it_and_warns_once(tmp_path, monkeypatch, kind):
    """Item 9: GRAPHC_CACHE_DIR a regular file raised FileExistsError."""
    import graphc
    from graphc import cache
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    d = blocker if kind == "a regular file" else blocker / "graphc"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(d))
    monkeypatch.setattr(cache, "_warned_dirs", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m1 = graphc.load(LSTM)
        m2 = graphc.load(LSTM, dtype="float64")
    assert m1.Model().forward(np.ones((2, 3), np.float32), np.ones((2, 2), np.float32),
                              np.ones((2, 2), np.float32))[1].shape == (2, 2)
    assert m2.Model.DEFAULT_DTYPE == "float64"
    ours = [w for w in caught if "cache directory" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert str(d) in str(ours[0].message) and "without the cache" in str(ours[0].message)
    assert blocker.read_text() == "not a directory"


def test_unwritable_cache_dir_in_a_fresh_process(tmp_path):
    """The same through a new interpreter (the parser's and templates' caches share the
    directory): the model works and one warning is printed."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    code = textwrap.dedent(f"""
        import graphc, numpy as np
        m = graphc.load({LSTM!r})
        m = graphc.load({LSTM!r})
        print(m.Model().forward(np.ones((1, 3), np.float32), np.ones((1, 2), np.float32),
                                np.ones((1, 2), np.float32))[1].shape)
    """)
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(blocker))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "(1, 2)"
    assert p.stderr.count("cannot use the cache directory") == 1, p.stderr


def _entry(cache_dir: Path, stem: str) -> Path:
    (module,) = [p for p in cache_dir.glob(f"{stem}_*.py")]
    return module


def test_truncated_cache_entry_is_recompiled(tmp_path, monkeypatch):
    """Item 10: a truncated module file was imported (SyntaxError)."""
    import graphc
    from graphc import cache
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    graphc.load(LSTM, defines={"rnn_size": 3})
    module = _entry(tmp_path / "cache", "lstm")
    whole = module.read_bytes()
    module.write_bytes(whole[: len(whole) // 2])
    monkeypatch.setattr(cache, "_import_source", _fresh_import(cache._import_source))
    m = graphc.load(LSTM, defines={"rnn_size": 3})
    assert m.OUTPUTS[0][1] == ("B", 3)
    assert module.read_bytes() == whole  # repaired


def _fresh_import(real):
    """_import_source without reusing a module this process already imported, so that the
    test sees what a new process would load."""
    def imp(stem, key, source, origin):
        for name in [n for n in sys.modules if n.startswith("graphc_cached_")]:
            del sys.modules[name]
        return real(stem, key, source, origin)
    return imp


def test_swapped_cache_entry_is_recompiled(tmp_path, monkeypatch):
    """Item 10: another model's code copied over an entry's module was accepted (with or
    without its record)."""
    import graphc
    from graphc import cache
    d = tmp_path / "cache"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(d))
    monkeypatch.setattr(cache, "_import_source", _fresh_import(cache._import_source))
    graphc.load(LSTM, defines={"rnn_size": 3})
    three = _entry(d, "lstm")
    three_text = three.read_bytes()
    three.rename(tmp_path / "three.py")
    three.with_suffix(".json").rename(tmp_path / "three.json")
    graphc.load(LSTM, defines={"rnn_size": 4})
    four = _entry(d, "lstm")
    (tmp_path / "three.py").rename(three)
    (tmp_path / "three.json").rename(three.with_suffix(".json"))
    four.write_bytes(three_text)  # the module alone swapped
    assert graphc.load(LSTM, defines={"rnn_size": 4}).OUTPUTS[0][1] == ("B", 4)
    four.write_bytes(three_text)  # the module and its record swapped
    four.with_suffix(".json").write_bytes(three.with_suffix(".json").read_bytes())
    assert graphc.load(LSTM, defines={"rnn_size": 4}).OUTPUTS[0][1] == ("B", 4)
    record = json.loads(four.with_suffix(".json").read_text())
    assert record["key"] in four.name


# ---- item 11: output paths ----------------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "graphc", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args,what", [
    (["compile", LSTM, "-o", "NO_SUCH_DIR/x.py"], "cannot write NO_SUCH_DIR/x.py (-o): the directory NO_SUCH_DIR does not exist"),
    (["compile", LSTM, "-o", "."], "cannot write . (-o): it is a directory"),
    (["compile", LSTM, "-o", "{tmp}/x.py", "--depfile", "NO_SUCH_DIR/x.d"],
     "cannot write NO_SUCH_DIR/x.d (--depfile): the directory NO_SUCH_DIR does not exist"),
    (["graph", LSTM, "-o", "NO_SUCH_DIR/g.dot"], "cannot write NO_SUCH_DIR/g.dot (-o): the directory NO_SUCH_DIR does not exist"),
    (["compile", LSTM, "-o", "{tmp}/file/x.py"], "is not a directory"),
])
def test_bad_output_paths_are_the_users_io_errors(tmp_path, args, what):
    (tmp_path / "file").write_text("")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    p = subprocess.run([sys.executable, "-m", "graphc", *args], capture_output=True, text=True,
                       cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "internal error" not in p.stderr and "bug in graphc" not in p.stderr
    assert p.stderr.startswith("graphc: error: cannot write "), p.stderr
    assert what.replace("{tmp}", str(tmp_path)) in p.stderr


def test_write_failure_after_compiling_is_an_io_error(tmp_path, monkeypatch, capsys):
    """A write that fails although the path looked fine (the directory removed while
    compiling, a full disk): the same kind of message, exit 1."""
    from graphc import cli
    out = tmp_path / "gone" / "x.py"
    out.parent.mkdir()
    real = cli.compile_spec

    def compile_then_remove(*a, **k):
        res = real(*a, **k)
        out.parent.rmdir()
        return res
    monkeypatch.setattr(cli, "compile_spec", compile_then_remove)
    assert main(["compile", LSTM, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {out}: the directory {out.parent} does not exist" in err
    assert "internal error" not in err


# ---- item 12: index inputs --------------------------------------------------------------

INDEXED = """
local x = nn.Identity()()
local y = nn.Identity()()
return nn.gModule({x, y}, {nn.CAddTable()({nn.LookupTable(10, 4)(x), y})})
"""


@pytest.mark.parametrize("bad,got", [(np.array(3), "got scalar"), (None, "got None")])
def test_scalar_or_none_for_a_batched_index_input(tmp_path, bad, got):
    import graphc
    spec = tmp_path / "idx.lua"
    spec.write_text(INDEXED)
    m = graphc.compile_file(spec, shapes={"input1": ("B",), "input2": ("B", 4)}).Model()
    y = np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match=f"input 'input1': expected shape B, {got}"):
        m.forward(bad, y)
    m.forward(np.array([1, 2]), y)
    with pytest.raises(ValueError, match=f"input 'input1': expected shape B, {got}"):
        m.backward((bad, y), np.ones((2, 4), np.float32))


# ---- item 13: option mistakes are usage errors --------------------------------------------

@pytest.mark.parametrize("args,words,hint", [
    (["-D", "rnn_sise=3"], "-D rnn_sise=...: ", "(did you mean 'rnn_size'?)"),
    (["--no-grad", "inptu1"], "--no-grad inptu1: the model has no input 'inptu1'", "(did you mean 'input1'?)"),
    (["--shape", "inptu1=Bx3"], "--shape inptu1: the model has no input named 'inptu1'", "(did you mean 'input1'?)"),
    (["--unroll", "3", "--state", "output1=inptu2", "--state", "output2=input3"],
     "--state output1=inptu2: the model has no input 'inptu2'", "(did you mean 'input2'?)"),
    (["--unroll", "3", "--state", "outptu1=input2"], "--state outptu1=input2: the model has no output 'outptu1'",
     "(did you mean 'output1'?)"),
    (["--state", "output1=input2"], "--state needs --unroll", ""),
    (["--unroll", "T", "--state", "output1=input2", "--no-grad", "input2"], "--no-grad input2: a state input", ""),
])
def test_option_mistakes_exit_2_with_did_you_mean(args, words, hint):
    p = _cli("compile", LSTM, *args, "-o", os.devnull)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("graphc: error: " + words), p.stderr
    assert hint in p.stderr
    with pytest.raises(OptionError):  # and from Python: a SpecError subclass
        ns = _parser().parse_args(["compile", LSTM, *args])
        compile_spec(LSTM, _options(ns))


# ---- item 14: forward over GRAPHC_MAX_BYTES -----------------------------------------------

def test_forward_over_max_bytes_raises_before_allocating(monkeypatch):
    """A batch of 10**9 rows (a broadcast view: no memory) would need ~157 GiB of values."""
    import graphc
    m = graphc.compile_file(LSTM).Model()
    per, fixed = m.ACTIVATION_ELEMENTS
    assert per > 0 and fixed == 0
    n = 10**9
    xs = [np.broadcast_to(np.ones((1, k), np.float32), (n, k)) for k in (3, 2, 2)]
    need = n * per * 4
    tracemalloc.start()
    try:
        # the fast path (plain arrays), the general one (a Torch-style list), an unbatched
        # call is batch 1 (fine)
        for call in (lambda: m.forward(*xs), lambda: m.forward(list(xs))):
            with pytest.raises(ValueError, match=rf"batch size {n} would need .* \({need} bytes of float32\)"):
                call()
        assert tracemalloc.get_traced_memory()[1] < 2**20
    finally:
        tracemalloc.stop()
    monkeypatch.setenv("GRAPHC_MAX_BYTES", str(100 * per * 4))
    small = graphc.compile_file(LSTM).Model()
    ok = [np.ones((100, k), np.float32) for k in (3, 2, 2)]
    small.forward(*ok)
    with pytest.raises(ValueError, match="batch size 101 would need"):
        small.forward(*[np.ones((101, k), np.float32) for k in (3, 2, 2)])


def test_sequence_forward_over_max_bytes(sequence_module, monkeypatch):
    seq = sequence_module.Sequence(dtype="float64")
    per, _ = seq.step.ACTIVATION_ELEMENTS
    monkeypatch.setenv("GRAPHC_MAX_BYTES", str(10 * 4 * per * 8))
    xs = (np.zeros((10, 4, 3)), np.zeros((4, 2)), np.zeros((4, 2)))
    seq.forward(*xs)
    with pytest.raises(ValueError, match="batch size 4 and 11 steps would need"):
        seq.forward(np.zeros((11, 4, 3)), xs[1], xs[2])
