"""The CPU target (--target cpu): building, caching, errors and the entry points' checks.
Its numerics are checked elsewhere, op by op (the op harness, float64 finite differences
included), on the samples and corpus specs, and against the numpy target (cuda_host)."""
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from cuda_host import require_cpu_target
from graphc.compiler import Options, compile_spec

ROOT = Path(__file__).resolve().parent.parent
LSTM = ROOT / "samples" / "lstm.lua"

pytestmark = pytest.mark.usefixtures("cpu_ready")


@pytest.fixture
def cpu_ready():
    require_cpu_target()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh, empty kernel cache, and a backend that has loaded nothing yet."""
    import graphc_runtime.cpu as cpu
    d = tmp_path / "cache"
    monkeypatch.setenv("GRAPHC_CPU_CACHE_DIR", str(d))
    monkeypatch.setattr(cpu, "_backend", None)
    return d


def load(spec=LSTM, dtype="float32", **opts):
    res = compile_spec(str(spec), Options(target="cpu", dtype=dtype, **opts))
    mod = types.ModuleType("cpu_model")
    exec(compile(res.source, "<generated cpu>", "exec"), mod.__dict__)
    return mod


def lstm_inputs(batch=4, dtype="float32"):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((batch, n)).astype(dtype) for n in (3, 2, 2)]


def test_kernels_are_built_once_then_loaded_from_the_cache(cache, monkeypatch):
    import graphc_runtime.cpu as cpu
    mod = load()
    out = mod.Model().forward(*lstm_inputs())
    assert cpu.backend().stats == {"compiles": 1, "cache_hits": 0}
    assert len(list(cache.glob("graphc_cpu_*.so"))) == 1
    mod.Model()  # the same process: the loaded library
    assert cpu.backend().stats["compiles"] == 1
    monkeypatch.setattr(cpu, "_backend", None)  # as a new process: from the disk
    again = mod.Model().forward(*lstm_inputs())
    assert cpu.backend().stats == {"compiles": 0, "cache_hits": 1}
    for a, b in zip(out, again):
        np.testing.assert_array_equal(a, b)
    mod.Model(dtype="float64")  # another dtype: other code
    monkeypatch.setenv("GRAPHC_CPU_CXXFLAGS", "-O1")  # other flags: other code
    mod.Model()
    assert cpu.backend().stats["compiles"] == 2
    assert len(list(cache.glob("graphc_cpu_*.so"))) == 3
    assert not list(cache.glob(".build-*"))  # nothing half-built left behind


def test_a_library_the_loader_refuses_is_built_again(tmp_path, cache):
    import graphc_runtime.cpu as cpu
    out = tmp_path / "lstm_cpu.py"
    subprocess.run([sys.executable, "-m", "graphc", "compile", str(LSTM), "--target", "cpu",
                    "-o", str(out)], check=True)
    # built by another process (a library this one has loaded must never be overwritten)
    subprocess.run([sys.executable, "-m", "graphc_runtime.cpu", str(out)], check=True,
                   env=dict(os.environ, GRAPHC_CPU_CACHE_DIR=str(cache)), capture_output=True)
    [lib] = cache.glob("graphc_cpu_*.so")
    lib.write_bytes(b"not a shared library")
    m = load().Model()
    assert cpu.backend().stats == {"compiles": 1, "cache_hits": 0}
    m.forward(*lstm_inputs())


def test_no_compiler_is_a_clear_error_and_the_numpy_target_still_works(cache, monkeypatch):
    import graphc_runtime.cpu as cpu
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    ok, why = cpu.available()
    assert not ok and "no C++ compiler" in why and "/nonexistent/g++" in why
    mod = load()
    with pytest.raises(cpu.CpuCompileError, match="no C\\+\\+ compiler.*numpy target needs none"):
        mod.Model()
    res = compile_spec(str(LSTM), Options())
    numpy_mod = types.ModuleType("numpy_model")
    exec(compile(res.source, "<generated numpy>", "exec"), numpy_mod.__dict__)
    numpy_mod.Model().forward(*lstm_inputs())


def test_a_failing_compiler_reports_its_output(cache, monkeypatch):
    import graphc_runtime.cpu as cpu
    monkeypatch.setenv("GRAPHC_CPU_CXXFLAGS", "-fno-such-option")
    with pytest.raises(cpu.CpuCompileError, match="(?s)C\\+\\+ compiler failed.*exit 1.*no-such-option"):
        load().Model()
    assert not list(cache.glob("graphc_cpu_*.so"))


def test_an_unusable_cache_directory_is_named(tmp_path, monkeypatch):
    import graphc_runtime.cpu as cpu
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("GRAPHC_CPU_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(cpu, "_backend", None)
    with pytest.raises(cpu.CpuCompileError, match="cache directory .* cannot be made.*GRAPHC_CPU_CACHE_DIR"):
        load().Model()


def test_entry_points_check_their_arguments(cache):
    mod = load(dtype="float64")
    m = mod.Model(dtype="float64")
    kernels = m._kernels
    name = mod.KERNELS[-1]
    with pytest.raises(TypeError, match=f"{name} takes \\d+ arguments \\(1 given\\)"):
        getattr(kernels, name)(1)
    fwd = next(k for k in mod.KERNELS if "fwd" in k)
    x = np.zeros((4, 8))
    args = [np.zeros((4, 8)) for _ in range(20)]
    n_args = int(str(pytest.raises(TypeError, getattr(kernels, fwd), 1).value).split(" takes ")[1].split()[0])
    good = [x] * (n_args - 2) + [np.int32(4)]
    bad_dtype = [x.astype("float32")] + good[1:]
    with pytest.raises(TypeError, match=f"{fwd}: argument 1 has elements of type 'f', expected 8-byte floats"):
        getattr(kernels, fwd)(4, *bad_dtype)
    with pytest.raises(ValueError, match="not C-contiguous"):
        getattr(kernels, fwd)(4, args[0][:, ::2], *good[1:])
    read_only = x.copy()
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        getattr(kernels, fwd)(4, *good[:-2], read_only, good[-1])  # an output it writes
    with pytest.raises(ValueError, match="out of range"):
        getattr(kernels, fwd)(-1, *good)


def test_cli_writes_a_cpu_module_and_its_kernels(tmp_path, cache):
    out = tmp_path / "lstm_cpu.py"
    r = subprocess.run([sys.executable, "-m", "graphc", "compile", str(LSTM), "--target", "cpu",
                        "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert text.startswith("# Generated by graphc") and ", CPU target." in text.splitlines()[0]
    assert "recompile with `graphc compile lstm.lua --target cpu`" in text
    assert "from graphc_runtime.cpu import CpuModule" in text and "class Model(CpuModule)" in text
    r = subprocess.run([sys.executable, "-m", "graphc", "compile", str(LSTM), "--target", "cpu",
                        "--emit", "cu"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "GRAPHC_MODULE_INIT(graphc_entries)" in r.stdout and "METH_FASTCALL" in r.stdout
    again = subprocess.run([sys.executable, "-m", "graphc", "compile", str(LSTM), "--target", "cpu"],
                           capture_output=True, text=True).stdout
    assert again == text  # deterministic
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import lstm_cpu, numpy as np; "
            "m = lstm_cpu.Model(); print(m.forward(*(np.ones((2, n), 'float32') for n in (3, 2, 2)))[1].shape)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "(2, 2)", r.stderr


def test_threads_agree_with_one_thread(tmp_path, cache):
    """A launch long enough to run on OpenMP's threads gives what one thread gives."""
    import graphc_runtime.cpu as cpu
    code = ("import sys, numpy as np, types; from graphc.compiler import Options, compile_spec; "
            f"res = compile_spec({str(LSTM)!r}, Options(target='cpu', dtype='float64', "
            "defines={'input_size': 64, 'rnn_size': 128})); "
            "mod = types.ModuleType('m'); exec(compile(res.source, 'g', 'exec'), mod.__dict__); "
            "m = mod.Model(dtype='float64'); rng = np.random.default_rng(1); "
            "xs = [rng.standard_normal((300, n)) for n in (64, 128, 128)]; "
            "out = m.forward(*xs); g = m.backward(xs, out); "
            "np.save(sys.argv[1], np.concatenate([o.ravel() for o in out + g] + [m.getParameters()[1]]))")
    results = []
    for threads in (1, 2):
        f = tmp_path / f"t{threads}.npy"
        r = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True,
                           env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
        assert r.returncode == 0, r.stderr
        results.append(np.load(f))
    assert 300 * 128 * 4 >= cpu.PARALLEL_MIN  # the backward's gate gradients ran in parallel
    np.testing.assert_allclose(results[0], results[1], rtol=1e-13, atol=1e-13)


def test_step_has_no_graph_mode(cache):
    m = load().Model()
    xs = lstm_inputs()
    out, grads = m.step(xs, tuple(np.ones_like(o) for o in m.forward(*xs)))
    assert len(grads) == 3
    with pytest.raises(ValueError, match="CUDA graph"):
        m.step(xs, tuple(np.ones_like(o) for o in out), graph=True)


def test_module_runner_builds_ahead_of_time_and_refuses_other_modules(tmp_path, cache):
    out = tmp_path / "lstm_cpu.py"
    subprocess.run([sys.executable, "-m", "graphc", "compile", str(LSTM), "--target", "cpu",
                    "-o", str(out)], check=True)
    env = dict(os.environ, GRAPHC_CPU_CACHE_DIR=str(cache))
    r = subprocess.run([sys.executable, "-m", "graphc_runtime.cpu", str(out)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "built in" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-m", "graphc_runtime.cpu", str(out)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "cached in" in r.stdout, r.stderr
    numpy_out = tmp_path / "lstm_numpy.py"
    subprocess.run([sys.executable, "-m", "graphc", "compile", str(LSTM), "-o", str(numpy_out)], check=True)
    r = subprocess.run([sys.executable, "-m", "graphc_runtime.cpu", str(numpy_out)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "not a CPU-target module" in r.stderr


def test_no_grad_inputs_get_none_as_on_the_numpy_target(cache):
    m = load(no_grad=("input1", "prev_c")).Model()
    xs = lstm_inputs()
    out = m.forward(*xs)
    g1, g2, g3 = m.backward(xs, tuple(np.ones_like(o) for o in out))
    assert g1 is None and g2 is None and g3.shape == xs[2].shape


def test_spec_names_never_clash_with_the_loops_names(cache):
    """Lua locals named like the CPU loops' counters (r, c) or the kernels' index (i, t)."""
    spec = ("local x = nn.Identity()()\n"
            "local r = nn.Tanh()(x)\nlocal c = nn.Sigmoid()(r)\nlocal i = nn.CMulTable()({r, c})\n"
            "local t = nn.JoinTable(2)({i, c})\nreturn nn.gModule({x}, {t})\n")
    res = compile_spec("names.lua", Options(target="cpu", dtype="float64", shapes={"input1": ("B", 4)}),
                       text=spec)
    mod = types.ModuleType("names")
    exec(compile(res.source, "<generated names>", "exec"), mod.__dict__)
    x = np.random.default_rng(0).standard_normal((3, 4))
    y = mod.Model(dtype="float64").forward(x)
    r = np.tanh(x)
    c = 1 / (1 + np.exp(-r))
    np.testing.assert_allclose(y, np.concatenate([r * c, c], 1), rtol=1e-12)


def test_a_kernel_with_a_hundred_arrays(cache):
    """An unrolled model's fused kernels read many arrays: entry points take any number."""
    n = 100
    names = [f"x{k}" for k in range(n)]
    spec = "".join(f"local {x} = nn.Identity()()\n" for x in names) + \
        f"local s = nn.Tanh()(nn.CAddTable()({{{', '.join(names)}}}))\n" + \
        f"return nn.gModule({{{', '.join(names)}}}, {{s}})\n"
    res = compile_spec("wide.lua", Options(target="cpu", dtype="float64",
                                           shapes={f"input{k + 1}": ("B", 3) for k in range(n)}),
                       text=spec)
    mod = types.ModuleType("wide")
    exec(compile(res.source, "<generated wide>", "exec"), mod.__dict__)
    xs = [np.full((2, 3), 0.001 * k) for k in range(n)]
    y = mod.Model(dtype="float64").forward(*xs)
    np.testing.assert_allclose(y, np.tanh(sum(xs)), rtol=1e-12)


def test_an_array_too_large_for_32_bit_indices_is_refused():
    import graphc_runtime.cpu as cpu
    with pytest.raises(ValueError, match="2147483648 elements is too large for the CPU target's 32-bit"):
        cpu.backend().empty((2 ** 31,), "float32")


def _module(source, name):
    mod = types.ModuleType(name)
    exec(compile(source, f"<generated {name}>", "exec"), mod.__dict__)
    return mod


def _agree_with_numpy(spec, inputs, **opts):
    """The CPU target's forward, input and parameter gradients (two backwards: the second
    accumulates) against the numpy target's, in float64; returns the CPU module's source."""
    cpu_res = compile_spec(str(spec), Options(target="cpu", dtype="float64", **opts))
    np_res = compile_spec(str(spec), Options(dtype="float64", **opts))
    a = _module(np_res.source, "numpy_twin").Model(dtype="float64", seed=0)
    b = _module(cpu_res.source, "cpu_model").Model(dtype="float64", seed=0)
    b.getParameters()[0][:] = a.getParameters()[0]
    ya, yb = a.forward(*inputs), b.forward(*inputs)
    ya, yb = (ya if isinstance(ya, tuple) else (ya,)), (yb if isinstance(yb, tuple) else (yb,))
    rng = np.random.default_rng(3)
    gys = tuple(rng.standard_normal(y.shape) for y in ya)
    for _ in range(2):
        ga, gb = a.backward(inputs, gys), b.backward(inputs, gys)
    for p, q in zip(ya, yb):
        np.testing.assert_allclose(q, p, rtol=1e-12, atol=1e-12)
    for p, q in zip(ga if isinstance(ga, tuple) else (ga,), gb if isinstance(gb, tuple) else (gb,)):
        assert (p is None) == (q is None)
        if p is not None:
            np.testing.assert_allclose(q, p, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.getParameters()[1], a.getParameters()[1], rtol=1e-12, atol=1e-12)
    return cpu_res.source


@pytest.mark.parametrize("batch", [1, 300])  # 300: the kernels split across threads
def test_small_linears_are_dot_products_inside_the_kernels(cache, tmp_path, batch):
    rng = np.random.default_rng(0)
    src = _agree_with_numpy(LSTM, [rng.standard_normal((batch, n)) for n in (3, 2, 2)])
    forward = src.split("def _forward")[1].split("def _backward")[0]
    assert "rt.matmul" not in forward and "a_w_i2h_weight[" in src  # 3 and 2 inputs: inline
    spec = tmp_path / "wide.lua"  # 9 inputs: past INLINE_GEMM_INPUTS, a BLAS call
    spec.write_text("local x = nn.Identity()()\n"
                    "return nn.gModule({x}, {nn.Tanh()(nn.Linear(9, 4)(x))})\n")
    src = _agree_with_numpy(spec, [rng.standard_normal((batch, 9))])
    assert "rt.matmul(input1, w_linear1_weight.T)" in src


def test_unrolled_sequence_gradient_slices_are_written_in_place(cache):
    rng = np.random.default_rng(0)
    opts = dict(unroll=4, state=[("output1", "input2"), ("output2", "input3")],
                entry="nn.gModule(inputs, {next_c, next_h, nn.Identity()(next_h)})",
                defines={"input_size": 9, "rnn_size": 5})  # 9 inputs: the hoisted projection is BLAS
    src = _agree_with_numpy(LSTM, [rng.standard_normal((4, 3, 9)), rng.standard_normal((3, 5)),
                                   rng.standard_normal((3, 5))], **opts)
    assert "//   join grad_i2h_all_steps_total" in src  # the plan: no kernel sums the steps
    assert "grad_i2h_all_steps_total = rt.empty((4, B, 20), dt)  # its slices are written in place" in src
    assert [f"grad_i2h_all_steps_total[{k}]" in src for k in range(4)] == [True] * 4
    assert src.count("rt.matmul(input1_seq.reshape(-1, 9), w_i2h_weight.T)") == 1  # one GEMM, all steps


def test_a_long_chain_is_stored_in_links_not_one_deep_expression(cache, tmp_path):
    """1,000 Tanh in a row used to overflow Python's recursion in code generation (on both
    kernel targets): the plan stores every MAX_FUSED_DEPTH-th link instead."""
    from graphc.backends.fuse import MAX_FUSED_DEPTH
    spec = tmp_path / "chain.lua"
    spec.write_text("N = 2\nlocal x = nn.Identity()()\nlocal h = x\nfor i = 1, N do\n  h = nn.Tanh()(h)\nend\n"
                    "return nn.gModule({x}, {h})\n")
    for target in ("cpu", "cuda"):  # the generated module and kernels; no build
        res = compile_spec(str(spec), Options(target=target, defines={"N": 1000}, shapes={"input1": ("B", 16)}))
        assert res.source.count("fused kernel") >= 1000 // MAX_FUSED_DEPTH, target
    rng = np.random.default_rng(0)
    src = _agree_with_numpy(spec, [rng.standard_normal((4, 16)) * 0.5],
                            defines={"N": 100}, shapes={"input1": ("B", 16)})
    assert src.count("fused kernel") >= 100 // MAX_FUSED_DEPTH
