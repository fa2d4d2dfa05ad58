"""Hostile and broken input: injection, limits, nothing lost, bad arrays."""
import ast
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import build, compile_error
from graphc.compiler import Options, compile_spec, parse_shape

ROOT = Path(__file__).resolve().parent.parent
EVIL = "x'); import os; os.system('echo pwned') #\n\"\"\"\\N{oops} \u2028 é"

SAMPLES = {  # spec -> shapes it needs
    "cadd.lua": {"input1": "Bx3", "input2": "Bx3"},
    "parallel.lua": {"input1": "10x2"},
    "rnn.lua": {},
    "lstm.lua": {},
    "lenet.lua": {"input1": "Bx1x32x32"},
}


def _assert_harmless(src: str, modules=("numpy", "graphc_runtime")):
    tree = ast.parse(src)  # valid Python
    imported = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            imported |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            imported.add(n.module)
    assert imported == set(modules), imported
    called = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert "system" not in called
    # the evil text appears only inside string literals and comments
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    code_lines = [l for l in src.splitlines() if not l.strip().startswith("#")]
    for line in code_lines:
        if "os.system" in line:
            assert any("os.system" in s for s in strings), line


@pytest.mark.parametrize("target", ["numpy", "cuda"])
def test_names_and_strings_from_the_spec_never_reach_code_unescaped(tmp_path, target):
    spec = f"""label = 'plain'
local evil = [==[{EVIL}]==]
x = nn.Identity()():annotate{{name = evil, description = evil, graphAttributes = {{color = evil}}}}
t = {{[evil] = 3}}
for k, v in pairs(t) do n = v end
h = nn.Linear(n, 4)(x):annotate{{name = evil .. '2'}}
y = nn.Tanh()(h):annotate{{name = label}}
m = nn.gModule({{x}}, {{y}})
"""
    weird = tmp_path / 'we"ird\'""" name.lua'
    weird.write_text(spec)
    res = compile_spec(str(weird), Options(defines={"label": EVIL}, shapes={EVIL: ("B", 3)},
                                           target=target))
    _assert_harmless(res.source, ("numpy", "graphc_runtime") if target == "numpy" else
                     ("numpy", "graphc_runtime.cuda"))
    ns = {}
    exec(compile(res.source, "gen", "exec"), ns)  # and it imports (and, on numpy, runs) fine
    if target == "numpy":
        out = ns["Model"](dtype="float64").forward(np.ones((2, 3)))
        assert out.shape == (2, 4)
    assert ns["INPUTS"][0][0] == EVIL and ns["OUTPUTS"][0][0] == EVIL  # kept, as repr'd strings
    from graphc.backends.dot import to_dot
    dot = to_dot(res.graph, True)
    assert 'import os' in dot and '\n"""' not in dot


# Names that must stay inert text in any emitted file (--target cuda once ran the first on
# import, and crashed on the second): a newline and a Python statement; a quote run and a
# backslash; both, with line breaks Python and C see differently.
INJECTS = {"newline": "n\nPWNED = 1 #", "quotes": "q'''\\ \"\"\" PWNED = 1 \\",
           "both": "n\nPWNED = 1 # '''\\ \"\"\" x\r\u2028"}
EMITS = [("numpy", "py", None), ("numpy", "py", "T"), ("numpy", "ir", None), ("numpy", "dot", None),
         ("cuda", "py", None), ("cuda", "py", "T"), ("cuda", "cu", None), ("cuda", "ir", None),
         ("cuda", "dot", None)]


def _compile_injected(payload, target, emit, unroll):
    spec = f"""local evil = [==[{payload}]==]
x = nn.Identity()()
prev = nn.Identity()()
h = nn.Linear(3, 4)(x):annotate{{name = evil}}
hn = nn.Tanh()(nn.CAddTable()({{h, nn.Linear(4, 4)(prev)}}))
y = nn.Sigmoid()(hn):annotate{{name = "q'''" .. evil}}
m = nn.gModule({{x, prev}}, {{hn, y}})
"""
    opts = Options(target=target, emit=emit, shapes={"input1": ("B", 3)},
                   unroll=unroll, state=[("output1", "input2")] if unroll else [])
    return compile_spec("inj.lua", opts, text=spec).source


def _code_outside_c_comments(cu: str) -> str:
    assert "/*" not in cu  # graphc writes // comments only
    for line in cu.splitlines():
        if "//" in line:
            assert not line.endswith("\\"), line  # a backslash would splice the next line in
    return "\n".join(line.split("//")[0] for line in cu.splitlines())


@pytest.mark.parametrize("target,emit,unroll", EMITS)
@pytest.mark.parametrize("payload", sorted(INJECTS))
def test_an_injected_name_is_inert_in_every_target_and_emit_kind(payload, target, emit, unroll,
                                                                 tmp_path):
    src = _compile_injected(INJECTS[payload], target, emit, unroll)
    assert "PWNED" in src  # the name is shown (escaped), not dropped
    if emit == "py":
        tree = ast.parse(src)
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "PWNED"]
        ns = {}
        exec(compile(src, "gen", "exec"), ns)  # imports without CuPy, runs no spec text
        assert "PWNED" not in ns
        if target == "cuda":
            assert ns["CUDA_SOURCE"] == _compile_injected(INJECTS[payload], "cuda", "cu", unroll)
    elif emit == "cu":
        assert "PWNED = 1" not in _code_outside_c_comments(src)  # mangled names may hold PWNED
        from cuda_host import SIGNATURE, HostBackend, require_tool
        require_tool("g++")  # the .cu syntax check
        names = [name for _, name, _ in SIGNATURE.findall(src)]
        assert sorted(HostBackend(tmp_path).load(src, "float64", names)) == sorted(names)
    else:  # the IR dump and dot: one line per item, so no spec text starts a line of its own
        assert not [line for line in src.splitlines() if line.startswith("PWNED")]
        if emit == "ir":
            assert "\u2028" not in src and "\r" not in src


def test_absurd_sizes_are_refused_before_allocation():
    err, text = compile_error("x = nn.Identity()()\nm = nn.gModule({x}, {nn.Linear(1e9, 1e9)(x)})\n")
    assert err.loc.line == 2 and "would need 3.469 EiB" in err.message
    err, _ = compile_error("x = nn.Identity()()\nm = nn.gModule({x}, {nn.Tanh()(x)})\n",
                           shapes={"input1": (100000, 100000, 1000)})
    assert "would need" in err.message and "36.38 TiB" in err.message


def test_failed_compile_leaves_the_old_output_byte_identical(tmp_path):
    good = tmp_path / "m.lua"
    good.write_text("x = nn.Identity()()\nm = nn.gModule({x}, {nn.Tanh()(nn.Linear(3, 2)(x))})\n")
    out = tmp_path / "m.py"
    run = lambda: subprocess.run([sys.executable, "-m", "graphc", "compile", str(good), "-o", str(out)],
                                 capture_output=True, text=True)
    assert run().returncode == 0
    before = out.read_bytes()
    good.write_text("x = nn.Identity()()\nm = nn.gModule({x}, {nn.Tanh()(nn.Linear(3, 2)(x)})\n")
    r = run()
    assert r.returncode == 1 and out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_kill_during_compile_never_leaves_a_partial_file(tmp_path):
    spec = ROOT / "samples" / "lenet.lua"
    out = tmp_path / "lenet.py"
    for delay in (0.05, 0.2, 0.35, 0.5, 0.65):
        p = subprocess.Popen([sys.executable, "-m", "graphc", "compile", str(spec), "--shape",
                              "input1=Bx1x32x32", "-o", str(out)], stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if out.exists():
            compile(out.read_text(), str(out), "exec")  # complete, or not there at all
    leftovers = [x for x in tmp_path.iterdir() if x.name != "lenet.py"]
    assert all(x.name.startswith(".lenet.py.") for x in leftovers)  # only temp files of killed writers


def test_concurrent_compiles_to_one_output_end_with_a_valid_file(tmp_path):
    spec = tmp_path / "m.lua"
    spec.write_text("n = 2\nx = nn.Identity()()\nm = nn.gModule({x}, {nn.Linear(3, n)(x)})\n")
    out = tmp_path / "m.py"
    procs = [subprocess.Popen([sys.executable, "-m", "graphc", "compile", str(spec), "-D", f"n={k}",
                               "-o", str(out)]) for k in range(2, 8)]
    assert all(p.wait() == 0 for p in procs)
    ns = {}
    exec(compile(out.read_text(), "m", "exec"), ns)
    assert ns["PARAMETERS"][0][1][0] in range(2, 8)


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_bad_arrays_raise_valueerror_and_inputs_are_never_modified(sample, rng):
    shapes = {k: parse_shape(v) for k, v in SAMPLES[sample].items()}
    res = compile_spec(str(ROOT / "samples" / sample), Options(shapes=shapes))
    ns = {}
    exec(compile(res.source, sample, "exec"), ns)
    m = ns["Model"]()
    xs = [rng.standard_normal([3 if d == "B" else d for d in s]).astype("float32") for _, s, _ in ns["INPUTS"]]
    for x in xs:
        x.flags.writeable = False  # read-only inputs work (and prove they are not written)
    copies = [x.copy() for x in xs]
    out = m.forward(*xs)
    outs = out if isinstance(out, tuple) else (out,)
    gys = [np.ones_like(o) for o in outs]
    m.backward(tuple(xs), tuple(gys))
    assert all(np.array_equal(a, b) for a, b in zip(xs, copies))
    # non-contiguous views are accepted and give the same result
    nc = [np.asfortranarray(x) for x in xs]
    o2 = m.forward(*nc)
    for a, b in zip(outs, o2 if isinstance(o2, tuple) else (o2,)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    with pytest.raises(ValueError, match="expected .* inputs"):
        m.forward(*xs, xs[0])
    with pytest.raises(ValueError, match="expected dtype float32, got int64"):
        m.forward(*[x.astype(np.int64) for x in xs])
    with pytest.raises(ValueError, match="expected shape"):
        m.forward(*[x[..., None] for x in xs])


def test_load_refuses_truncated_foreign_and_other_models_files(tmp_path, rng):
    mod = build("return nn.Sequential():add(nn.Linear(3, 2))", tmp_path)
    m = mod.Model()
    m.save(tmp_path / "w.npz")
    data = (tmp_path / "w.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    np.savez(tmp_path / "foreign.npz", weights=np.ones(8))
    other = build("return nn.Sequential():add(nn.Linear(2, 3))", tmp_path).Model()
    other.save(tmp_path / "other.npz")
    before = m.getParameters()[0].copy()
    for name, msg in (("trunc.npz", "cannot read"), ("foreign.npz", "not a graphc parameter file"),
                      ("other.npz", "do not match")):
        with pytest.raises(ValueError, match=msg):
            m.load(tmp_path / name)
        assert np.array_equal(m.getParameters()[0], before)


def test_output_to_a_device_is_written_not_replaced(tmp_path):
    """`-o /dev/null` must not replace the device with a regular file (a rename would)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    import threading
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    spec = ROOT / "samples" / "rnn.lua"
    r = subprocess.run([sys.executable, "-m", "graphc", "compile", str(spec), "-o", str(fifo)],
                       capture_output=True, text=True, timeout=60)
    reader.join(timeout=60)
    assert r.returncode == 0, r.stderr
    assert fifo.is_fifo() and got and got[0].startswith(b"# Generated by graphc")
    r = subprocess.run([sys.executable, "-m", "graphc", "compile", str(spec), "-o", os.devnull],
                       capture_output=True, text=True)
    assert r.returncode == 0 and not os.path.isfile(os.devnull)


def test_outputs_get_normal_permissions_and_keep_existing_ones(tmp_path):
    out = tmp_path / "m.py"
    spec = str(ROOT / "samples" / "rnn.lua")
    old = os.umask(0o022)
    try:
        r = subprocess.run([sys.executable, "-m", "graphc", "compile", spec, "-o", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 0 and (out.stat().st_mode & 0o777) == 0o644
        out.chmod(0o664)
        out.write_text("stale")
        r = subprocess.run([sys.executable, "-m", "graphc", "compile", spec, "-o", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 0 and (out.stat().st_mode & 0o777) == 0o664
    finally:
        os.umask(old)


def test_out_of_range_indices_and_targets_name_the_input(tmp_path):
    spec = """
    i = nn.Identity()()
    t = nn.Identity()()
    logp = nn.LogSoftMax()(nn.Linear(3, 4)(nn.LookupTable(5, 3)(i)))
    return nn.gModule({i, t}, {nn.ClassNLLCriterion()({logp, t})})
    """
    m = build(spec, tmp_path, shapes={"input1": ("B",), "input2": ("B",)}).Model(dtype="float64")
    ok_i, ok_t = np.array([1, 5]), np.array([1, 4])
    assert m.forward(ok_i, ok_t).shape == (1,)
    with pytest.raises(ValueError, match=r"nn.LookupTable \(input input1\): index 6 is out of range 1..5"):
        m.forward(np.array([1, 6]), ok_t)
    with pytest.raises(ValueError, match=r"nn.ClassNLLCriterion \(targets input2\): target 0 is out of range 1..4"):
        m.forward(ok_i, np.array([0, 1]))
    with pytest.raises(ValueError, match="input 'input2': expected an integer array"):
        m.forward(ok_i, np.array(["1", "2"]))


def test_escaping_functions_per_output_language():
    """backends/escape.py: a text block reads back exactly; comments stay one line."""
    from graphc.backends import escape
    rng = np.random.default_rng(3)
    alphabet = list("'\"\\\n\r\t\x00 ab#/*") + ["\u2028", "é", "\U0001f600", "'''", '"""']
    for _ in range(500):
        text = "".join(rng.choice(alphabet, size=rng.integers(0, 30)))
        assert ast.literal_eval(escape.python_text_block(text)) == text
        for comment in (escape.python_comment(text), escape.c_comment(text)):
            assert len(comment.splitlines()) <= 1 and "\r" not in comment
        assert "\\" not in escape.c_comment(text) and '"""' not in escape.python_docstring(text)
        assert re.fullmatch(r"[0-9A-Za-z_]+", escape.c_identifier(text))


def test_a_required_file_name_with_a_line_break_never_reaches_the_depfile(tmp_path):
    """A make rule is one line: a file name holding a newline would start a recipe."""
    from graphc import cli
    (tmp_path / "a\n\ttouch pwned.lua").write_text("return 3\n")
    spec = tmp_path / "m.lua"
    spec.write_text("local n = require 'a\\n\\ttouch pwned'\nx = nn.Identity()()\n"
                    "return nn.gModule({x}, {nn.Linear(2, n)(x)})\n")
    dep = tmp_path / "m.d"
    assert cli.main(["compile", str(spec), "-o", str(tmp_path / "m.py"), "--depfile", str(dep)]) == 2
    assert not dep.exists()
