"""graphc as a tool: graph pictures, check tables, depfiles, the load() cache."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LSTM = str(ROOT / "samples" / "lstm.lua")


def graphc(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "graphc", *args], capture_output=True, text=True,
                          cwd=cwd, env=env)


ANNOTATED = """
x = nn.Identity()():annotate{name = 'x'}
h = nn.Tanh()(nn.Linear(3, 4)(x)):annotate{
  name = 'hidden', description = 'the "hidden" layer',
  graphAttributes = {color = 'red', style = 'filled', fillcolor = 'yellow'}}
m = nn.gModule({x}, {h})
"""


def test_graph_dot_has_boxes_shapes_and_graph_attributes(tmp_path):
    spec = tmp_path / "a.lua"
    spec.write_text(ANNOTATED)
    out = tmp_path / "a.dot"
    r = graphc("graph", str(spec), "-o", str(out), "--backward")
    assert r.returncode == 0, r.stderr
    dot = out.read_text()
    assert 'label="input x\\nBx3"' in dot and 'label="output hidden\\nBx4"' in dot
    assert 'nn.Linear\\nBx4\\n16 params' in dot
    assert '"fillcolor"="yellow"' in dot and '"color"="red"' in dot
    assert 'the \\"hidden\\" layer' in dot  # description shown, quotes escaped
    assert "grad nn.Tanh" in dot and "grad of x" in dot
    assert dot.count("->") >= 6


def test_graph_svg_through_graphviz_or_a_clear_message(tmp_path):
    out = tmp_path / "g.svg"
    r = graphc("graph", LSTM, "-o", str(out))
    import shutil
    if shutil.which("dot"):
        assert r.returncode == 0, r.stderr
        svg = out.read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "nn.Linear" in svg
    # without `dot` on PATH: exit 2 and a message naming the package to install
    env = dict(os.environ, PATH=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "graphc", "graph", LSTM, "-o", str(tmp_path / "h.png")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2
    assert "apt-get install graphviz" in r.stderr and not (tmp_path / "h.png").exists()


def test_check_table_and_json():
    r = graphc("check", LSTM, "--batch", "32")
    assert r.returncode == 0, r.stderr
    assert "nn.Linear [i2h]" in r.stdout and "fwd FLOPs" in r.stdout
    assert "parameters: 56 in 4 arrays" in r.stdout
    assert "peak activation memory at batch 32:" in r.stdout
    rep = json.loads(graphc("check", LSTM, "--json", "--batch", "2").stdout)
    assert rep["total_params"] == 56 and rep["batch"] == 2
    lin = rep["nodes"][0]
    assert lin["module"] == "nn.Linear" and lin["flops_forward"] == 2 * 2 * 3 * 8
    assert rep["peak_activation_bytes_float32"] > 0


def test_depfile_lists_spec_and_required_files(tmp_path):
    (tmp_path / "layers.lua").write_text("local M = {}\nfunction M.cell(x) return nn.Tanh()(nn.Linear(3, 3)(x)) end\nreturn M\n")
    (tmp_path / "model.lua").write_text("local L = require 'layers'\nx = nn.Identity()()\nm = nn.gModule({x}, {L.cell(x)})\n")
    r = graphc("compile", "model.lua", "-o", "model.py", "--depfile", "model.d", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    dep = (tmp_path / "model.d").read_text()
    assert dep.splitlines()[0] == "model.py: model.lua layers.lua"
    assert "layers.lua:" in dep.splitlines()


def test_load_caches_and_recompiles_when_a_required_file_changes(tmp_path):
    (tmp_path / "layers.lua").write_text("local M = {}\nfunction M.n() return 3 end\nreturn M\n")
    spec = tmp_path / "m.lua"
    spec.write_text("local L = require 'layers'\nx = nn.Identity()()\nm = nn.gModule({x}, {nn.Linear(2, L.n())(x)})\n")
    code = textwrap.dedent(f"""
        import graphc, sys
        m = graphc.load({str(spec)!r})
        print(m.PARAMETERS[0][1], 'graphc.frontend.lua' in sys.modules)
    """)
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path / "cache"))
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split()[0] == "(3,"
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert first.stdout.split()[-1] == "True"  # a miss compiles: the front end is loaded
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert second.stdout == first.stdout.replace("True", "False")  # a hit: no front end
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == files
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
    (tmp_path / "layers.lua").write_text("local M = {}\nfunction M.n() return 5 end\nreturn M\n")
    third = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert third.stdout.split() == ["(5,", "2)", "True"]  # recompiled
    assert any(p.stat().st_mtime_ns != t for p, t in mtimes.items())


def test_load_keys_on_every_option_and_on_the_compiler(tmp_path, monkeypatch):
    """Options that change the generated code (e.g. --unroll, -O0) get their own cache
    entries, and so does a changed graphc (its own files' fingerprint)."""
    import graphc
    from graphc import cache
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    plain = graphc.load(LSTM)
    seq = graphc.load(LSTM, unroll="T", state=[("output1", "input2"), ("output2", "input3")])
    unoptimized = graphc.load(LSTM, optimize=False)
    assert not hasattr(plain, "Sequence") and hasattr(seq, "Sequence")
    assert len({id(plain), id(seq), id(unoptimized)}) == 3
    assert graphc.load(LSTM) is plain
    monkeypatch.setattr(cache, "compiler_fingerprint", lambda: "another graphc")
    assert graphc.load(LSTM) is not plain
    assert len(list((tmp_path / "cache").glob("*.py"))) == 4


def test_load_is_safe_under_concurrent_processes(tmp_path):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path / "cache"))
    code = ("import graphc, numpy as np\n"
            f"m = graphc.load({LSTM!r}, dtype='float64')\n"
            "out = m.Model(dtype='float64').forward(np.ones((2, 3)), np.ones((2, 2)), np.ones((2, 2)))\n"
            "print(round(float(out[1].sum()), 9))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(6)]
    outs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    assert len({o for o, _ in outs}) == 1
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]


def test_did_you_mean_for_flags_commands_and_annotate_keys(tmp_path):
    r = graphc("compile", LSTM, "--shap", "input1=Bx3")
    assert r.returncode == 2 and "(did you mean --shape?)" in r.stderr
    r = graphc("compil", LSTM)
    assert r.returncode == 2 and "(did you mean compile?)" in r.stderr
    spec = tmp_path / "a.lua"
    spec.write_text("x = nn.Identity()():annotate{nmae = 'x'}\nm = nn.gModule({x}, {nn.Tanh()(x)})\n")
    r = graphc("check", str(spec), "--shape", "input1=Bx3")
    assert r.returncode == 1 and "unknown key 'nmae' (did you mean 'name'?)" in r.stderr
    assert "Traceback" not in r.stderr


def test_every_command_has_help_with_examples_and_a_version():
    for cmd in ("compile", "check", "graph"):
        r = graphc(cmd, "--help")
        assert r.returncode == 0 and "examples:" in r.stdout
    r = graphc("--version")
    assert r.returncode == 0 and r.stdout.startswith("graphc ")


def test_internal_errors_say_so_without_a_traceback(tmp_path, monkeypatch):
    from graphc import cli
    spec = tmp_path / "a.lua"
    spec.write_text("x = nn.Identity()()\nm = nn.gModule({x}, {nn.Tanh()(x)})\n")

    def boom(*a, **k):
        raise KeyError("oops")
    monkeypatch.setattr(cli, "compile_spec", boom)
    import io
    import contextlib
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli.main(["check", str(spec), "--shape", "input1=Bx3"])
    assert rc == 1
    assert "internal error" in err.getvalue() and "bug in graphc" in err.getvalue()
    assert "Traceback" not in err.getvalue()


def test_compiled_templates_are_cached_on_disk(tmp_path):
    """A second process compiles no jinja template (file templates, op snippets and CUDA
    rules come from the bytecode cache in GRAPHC_CACHE_DIR)."""
    code = ("import jinja2\n"
            "orig, n = jinja2.Environment.compile, [0]\n"
            "def counting(self, *a, **k):\n"
            "    n[0] += 1\n"
            "    return orig(self, *a, **k)\n"
            "jinja2.Environment.compile = counting\n"
            "import graphc.compiler as C\n"
            "C.compile_spec('samples/lstm.lua', C.Options())\n"
            "C.compile_spec('samples/lstm.lua', C.Options(target='cuda'))\n"
            "print(n[0])\n")
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path))
    counts = [int(subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True,
                                 capture_output=True, text=True).stdout) for _ in range(2)]
    assert counts[0] > 0 and counts[1] == 0, counts
