"""The CUDA target without a GPU (runs in CI).

* Codegen: `--target cuda` / `--emit cu`, the fusion plan (one forward and one backward
  kernel for the LSTM cell), deterministic output, clear errors for unsupported ops.
* nvcc: every kernel of every sample compiles for sm_90 and for an older arch (sm_75: CUDA 13's
  nvcc no longer targets sm_70) with `-Xptxas -v`, float and double, with no spills and no
  warnings. NVRTC itself (what the runtime uses) when libnvrtc is installed.
* Host emulation: the generated kernels compiled by g++ with templates/cuda/host_shim.h
  (one thread at a time: graphc's kernels are gathers with no shared memory, barriers or
  atomics, so this is exact) and a numpy stand-in for the few CuPy calls (HostBackend), so the
  whole generated CUDA-target Model runs on the CPU and is compared with the numpy target:
  forward, input gradients and parameter gradients, float64 and float32, every sample.

The GPU half is tests/gpu/run.sh.
"""
import concurrent.futures
import ctypes
import ctypes.util
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from graphc.compiler import Options, compile_spec, parse_shape
from graphc.errors import SpecError
from graphc.backends import fuse

from cuda_host import SIGNATURE, HostBackend, check_nvcc_log, nvcc_report, require_tool

import graphc_runtime.cuda as rt

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = {
    "cadd": {"input1": "Bx3", "input2": "Bx3"},
    "parallel": {"input1": "10x2"},
    "rnn": {},
    "lstm": {},
    "lenet": {"input1": "Bx1x32x32"},
}
# (forward kernels, backward kernels) each sample compiles to
KERNELS = {"cadd": (1, 0), "parallel": (1, 1), "rnn": (1, 1), "lstm": (1, 1), "lenet": (7, 9)}

# More shapes of the covered ops than the samples have.
EXTRA = {
    # strided, padded conv; overlapping, padded, ceil-mode pooling; SoftMax over 4-D channels
    "conv_pool_softmax4d": ("""
        require 'nn'
        local net = nn.Sequential()
        net:add(nn.SpatialConvolution(2, 3, 3, 3, 2, 2, 1, 1))
        net:add(nn.Tanh())
        net:add(nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1):ceil())
        net:add(nn.SoftMax())
        return net
    """, {"input1": "Bx2x9x11"}),
    # a CxHxW image (no batch): conv without bias, 3-D SoftMax (over channels)
    "chw": ("""
        require 'nn'
        local net = nn.Sequential()
        net:add(nn.SpatialConvolution(2, 4, 3, 3):noBias())
        net:add(nn.ReLU())
        net:add(nn.SpatialMaxPooling(2, 2))
        net:add(nn.LogSoftMax())
        return net
    """, {"input1": "2x7x7"}),
    # a shared module (gradients sum), JoinTable along dim 2, Reshape, Select, Narrow on
    # dim 3, View, a 3-way CMulTable, Linear without bias, two outputs
    "tables": ("""
        require 'nngraph'
        local x = nn.Identity()()
        local y = nn.Identity()()
        local shared = nn.Linear(4, 6)
        local j = nn.JoinTable(2)({shared(x), nn.Tanh()(shared(y))})
        local r = nn.Reshape(3, 4)(j)
        local s1 = nn.Select(2, 1)(r)
        local v = nn.View(6)(nn.Narrow(3, 2, 2)(r))
        local m = nn.CMulTable()({nn.Sigmoid()(v), v, nn.Linear(4, 6, false)(s1)})
        return nn.gModule({x, y}, {nn.LogSoftMax()(m), nn.SoftMax()(s1)})
    """, {"input1": "Bx4", "input2": "Bx4"}),
    # 3-way joins along dim 1 and dim 2 of unbatched inputs (if/else-if chains)
    "join3": ("""
        require 'nngraph'
        local x = nn.Identity()()
        local y = nn.Identity()()
        return nn.gModule({x, y}, {nn.JoinTable(1)({x, y, nn.Exp()(x)}),
                                   nn.JoinTable(2)({y, nn.Tanh()(x), x})})
    """, {"input1": "3x2", "input2": "3x2"}),
    # the elementwise functions with CUDA rules, in one fused kernel each way
    "pointwise": ("""
        require 'nngraph'
        local x = nn.Identity()()
        local y = nn.Identity()()
        local pos = nn.AddConstant(3)(nn.Square()(x))
        local s = nn.CSubTable()({nn.Log()(pos), nn.Sqrt()(pos)})
        local q = nn.CDivTable()({nn.Power(1.5)(pos), pos})
        local parts = {s, q, nn.HardTanh(-0.5, 0.7)(x), nn.LeakyReLU(0.1)(y), nn.ELU(0.8)(y),
                       nn.SoftSign()(nn.MulConstant(2)(x)), nn.Threshold(0.1, -2)(y),
                       nn.Abs()(y), nn.Exp()(nn.Clamp(-2, 1)(y)), nn.Sigmoid()(nn.ReLU()(x))}
        return nn.gModule({x, y}, {nn.CAddTable()(parts)})
    """, {"input1": "Bx7", "input2": "Bx7"}),
    # an input passed straight out, a slice as an output and as a GEMM operand
    "views": ("""
        require 'nngraph'
        local x = nn.Identity()()
        local n = nn.Narrow(2, 2, 3)(x)
        return nn.gModule({x}, {x, nn.Linear(3, 2)(n), n, nn.Tanh()(x)})
    """, {"input1": "Bx5"}),
}


def compile_model(name, target, dtype="float64", emit="py", **opts):
    if name in SAMPLES:
        path, text, shapes = str(ROOT / "samples" / f"{name}.lua"), None, SAMPLES[name]
    else:
        text, shapes = EXTRA[name]
        path = f"{name}.lua"
    opts = Options(shapes={k: parse_shape(v) for k, v in shapes.items()}, dtype=dtype,
                   target=target, emit=emit, **opts)
    return compile_spec(path, opts, text=text)


def load_module(name, target, dtype="float64", **opts):
    res = compile_model(name, target, dtype, **opts)
    mod = types.ModuleType(f"graphc_{target}_{name}")
    exec(compile(res.source, f"<generated {name} {target}>", "exec"), mod.__dict__)
    return mod


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    require_tool("g++")
    b = HostBackend(tmp_path_factory.mktemp("cuda_host"))
    old = rt.use_backend(b)
    yield b
    rt.use_backend(old)


def random_inputs(model, batch, dtype, rng):
    return [rng.standard_normal([batch if d == "B" else d for d in s]).astype(dtype)
            for _, s, _ in model.INPUTS]


def as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def run_both(name, dtype, batch, host):
    ref = load_module(name, "numpy", dtype).Model(dtype=dtype, seed=0)
    cuda = load_module(name, "cuda", dtype).Model(dtype=dtype, seed=0)
    rng = np.random.default_rng(7)
    xs = random_inputs(ref, batch, dtype, rng)
    keep = [x.copy() for x in xs]
    out_ref, out_cuda = as_tuple(ref.forward(*xs)), as_tuple(cuda.forward(*xs))
    gys = [rng.standard_normal(np.shape(o)).astype(dtype) for o in out_ref]
    g = tuple(gys) if len(gys) > 1 else gys[0]
    gin_ref, gin_cuda = as_tuple(ref.backward(tuple(xs), g)), as_tuple(cuda.backward(tuple(xs), g))
    assert all(np.array_equal(x, k) for x, k in zip(xs, keep)), "inputs were modified"
    return ref, cuda, (out_ref, gin_ref), (out_cuda, gin_cuda)


def assert_close(a, b, dtype, what):
    rtol, atol = (1e-10, 1e-12) if dtype == "float64" else (2e-5, 2e-6)
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and b.dtype == np.dtype(dtype), (what, a.shape, b.shape, b.dtype)
    np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(SAMPLES) + list(EXTRA))
def test_host_emulation_matches_numpy_target(name, dtype, host):
    batch = 2 if name == "lenet" else 3
    ref, cuda, (out_r, gin_r), (out_c, gin_c) = run_both(name, dtype, batch, host)
    for i, (a, b) in enumerate(zip(out_r, out_c)):
        assert_close(a, b, dtype, f"output {i + 1}")
    for i, (a, b) in enumerate(zip(gin_r, gin_c)):
        assert_close(a, b, dtype, f"gradient of input {i + 1}")
    assert_close(ref.getParameters()[1], cuda.getParameters()[1], dtype, "parameter gradients")
    assert_close(ref.getParameters()[0], cuda.getParameters()[0], dtype, "initial weights")


@pytest.mark.parametrize("name", ["lstm", "tables"])
def test_host_emulation_of_unoptimized_backward(name, host):
    """-O0 keeps the zero-padded slice gradients (grad of Narrow + add) that the default
    pipeline joins (passes/simplify.py); both fuse into the same kernels."""
    ref = load_module(name, "numpy", optimize=False).Model(seed=0)
    m = load_module(name, "cuda", optimize=False).Model(seed=0)
    rng = np.random.default_rng(1)
    xs = random_inputs(ref, 4, "float64", rng)
    outs = as_tuple(ref.forward(*xs))
    as_tuple(m.forward(*xs))
    g = tuple(rng.standard_normal(o.shape) for o in outs)
    g = g if len(g) > 1 else g[0]
    for a, b in zip(as_tuple(ref.backward(tuple(xs), g)), as_tuple(m.backward(tuple(xs), g))):
        assert_close(a, b, "float64", "input gradient")
    assert_close(ref.getParameters()[1], m.getParameters()[1], "float64", "parameter gradients")


def test_model_api_on_the_cuda_target(host, tmp_path):
    ref = load_module("lstm", "numpy").Model(seed=3)
    m = load_module("lstm", "cuda").Model(seed=3)
    rng = np.random.default_rng(0)
    x, c, h = (rng.standard_normal(n) for n in (3, 2, 2))  # one sample, no batch dim
    for model in (ref, m):
        out = model.forward(x, c, h)
        assert [o.shape for o in out] == [(2,), (2,)]
        model.backward((x, c, h), (np.ones(2), np.ones(2)))
        model.backward((x, c, h), (np.ones(2), np.ones(2)))  # gradients accumulate
    np.testing.assert_allclose(m.getParameters()[1], ref.getParameters()[1], rtol=1e-12)
    m.zeroGradParameters()
    assert not m.getParameters()[1].any()
    flat_w, _ = m.getParameters()
    flat_w[:] = 0.5  # writes through to every weight view
    assert all((w == 0.5).all() for _, w in m.parameters())
    m.save(tmp_path / "w.npz")
    m.reset(1)
    assert not (flat_w == 0.5).all()
    m.load(tmp_path / "w.npz")
    assert (m.getParameters()[0] == 0.5).all()
    with pytest.raises(ValueError, match="input 'input1': expected shape Bx3, got 4x2"):
        m.forward(np.zeros((4, 2)), np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="expected dtype float64, got float32"):
        m.forward(*(np.zeros((4, n), np.float32) for n in (3, 2, 2)))


# ---- plan and codegen ------------------------------------------------------------------------

@pytest.mark.parametrize("name", SAMPLES)
def test_kernel_counts_per_sample(name):
    py = compile_model(name, "cuda").source
    forward, backward = py.split("def _backward")
    assert (forward.count("self._launch("), backward.count("self._launch(")) == KERNELS[name]
    cu = compile_model(name, "cuda", emit="cu").source
    assert len(SIGNATURE.findall(cu)) == sum(KERNELS[name])
    # a fused step may need no kernel at all (cadd's gradients are the output's gradient)
    p = fuse.plan(compile_model(name, "cuda", emit="ir").graph)
    assert p.kernels("forward") + p.kernels("backward") >= cu.count("// fused: ")


def test_lstm_cell_is_one_forward_and_one_backward_kernel():
    cu = compile_model("lstm", "cuda", emit="cu").source
    py = compile_model("lstm", "cuda").source
    kernels = [k for _, k, _ in SIGNATURE.findall(cu)]
    assert len(kernels) == 2 and "fwd" in kernels[0] and "bwd" in kernels[1]
    assert py.count("self._launch(") == 2
    # the gate math reads the two GEMM results and biases directly: no Narrow copies
    assert py.count("rt.matmul(") == 4 and "rt.addmm(" in py and "rt.add_colsum(" in py
    assert "w_i2h_weight.T)" in py  # x @ W.T: cuBLAS's transpose flag, no copy
    assert "g_sigmoid" in cu and "g_tanh" in cu


def test_generated_cuda_reads_like_the_spec():
    """Kernel locals take the spec's names, each kernel lists its source nodes with their
    locations, and the module body keeps the outputs' spec names (next_c, not output1)."""
    cu = compile_model("lstm", "cuda", emit="cu").source
    py = compile_model("lstm", "cuda").source
    assert "const real forget_gate = g_sigmoid(pre_sigmoid_chunk);" in cu
    assert "const real next_c = c_forget + c_input;" in cu
    assert re.search(r"const real v\d+ = ", cu) is None  # every value here has a spec name
    fwd = cu[cu.index("// fused:"):cu.index("extern")]
    assert "// source nodes:\n//   lstm.lua:17:7  nn.Linear [i2h]\n" in fwd
    assert "//   lstm.lua:30:15  nn.Narrow [forget_gate]\n" in fwd
    assert "return (next_c, next_h,)" in py and "grad_next_c, grad_next_h, = grad_outputs" in py
    assert "OUTPUTS = (\n    ('output1', ('B', 2)),\n    ('output2', ('B', 2)),\n)" in py
    lenet = compile_model("lenet", "cuda", emit="cu").source
    assert "// lenet.lua:7:9  nn.SpatialConvolution: 1->6, 5x5: im2col" in lenet


@pytest.mark.parametrize("name", SAMPLES)
def test_py_embeds_the_emitted_cu_and_output_is_deterministic(name):
    py = compile_model(name, "cuda").source
    cu = compile_model(name, "cuda", emit="cu").source
    assert "CUDA_SOURCE = '''\\\n" + cu in py  # laid out as the .cu reads
    assert compile_model(name, "cuda").source == py
    namespace = {}
    exec(compile(py, name, "exec"), namespace)  # generated code (no CuPy needed to import)
    assert namespace["CUDA_SOURCE"] == cu
    assert "cupy" not in compile_model(name, "numpy").source


def test_every_registry_op_has_a_cuda_rule():
    """(Identity and the structural table ops make no IR node, so they need none.)"""
    from graphc.ops import REGISTRY
    assert sorted(name for name, op in REGISTRY.items()
                  if op.cuda is None and not (op.passthrough or op.structural)) == []


def test_an_op_without_a_cuda_rule_fails_with_its_name(monkeypatch):
    from graphc.ops import REGISTRY
    monkeypatch.setattr(REGISTRY["Dropout"], "cuda", None)  # every op has one: pretend
    spec = "x = nn.Identity()()\nm = nn.gModule({x}, {nn.Dropout(0.5)(nn.Linear(3, 2)(x))})\n"
    with pytest.raises(SpecError, match=r"nn\.Dropout has no CUDA implementation yet.*--target numpy"):
        compile_spec("spec.lua", Options(target="cuda"), text=spec)
    compile_spec("spec.lua", Options(), text=spec)  # fine for numpy


def graphc(*args):
    return subprocess.run([sys.executable, "-m", "graphc", *args], capture_output=True, text=True)


def test_cli_target_cuda_and_emit_cu(tmp_path):
    lstm = str(ROOT / "samples" / "lstm.lua")
    r = graphc("compile", lstm, "--target", "cuda", "-o", str(tmp_path / "m.py"))
    assert r.returncode == 0, r.stderr
    r = graphc("compile", lstm, "--target", "cuda", "--emit", "cu", "-o", str(tmp_path / "m.cu"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.cu").read_text() in (tmp_path / "m.py").read_text()
    r = graphc("compile", lstm, "--emit", "cu")
    assert r.returncode == 2 and "--emit cu" in r.stderr and "--target cuda" in r.stderr
    spec = tmp_path / "d.lua"
    spec.write_text("x = nn.Identity()()\nm = nn.gModule({x}, {nn.Dropout(0.5)(x)})\n")
    r = graphc("compile", str(spec), "--target", "cuda", "--shape", "input1=Bx3", "-o", str(tmp_path / "d.py"))
    assert r.returncode == 0, r.stderr
    code = ("import sys; from graphc.ops import REGISTRY; REGISTRY['Dropout'].cuda = None\n"
            "from graphc.cli import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "compile", str(spec), "--target", "cuda",
                        "--shape", "input1=Bx3"], capture_output=True, text=True)
    assert r.returncode == 1 and "d.lua:2" in r.stderr and "nn.Dropout has no CUDA" in r.stderr


def test_numpy_target_and_runtime_import_never_import_cupy(tmp_path):
    code = ("import sys, numpy as np\n"
            "import graphc_runtime, graphc_runtime.cuda\n"
            "from graphc import compile_file\n"
            f"m = compile_file({str(ROOT / 'samples' / 'rnn.lua')!r}).Model()\n"
            "m.forward(np.zeros((2, 3), np.float32), np.zeros((2, 2), np.float32))\n"
            "assert 'cupy' not in sys.modules, 'cupy imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_cuda_model_without_cupy_says_how_to_get_it(monkeypatch):
    mod = load_module("rnn", "cuda")
    monkeypatch.setitem(sys.modules, "cupy", None)  # as if CuPy were not installed
    old = rt.use_backend(None)
    try:
        with pytest.raises(ImportError, match="needs CuPy.*--target numpy"):
            mod.Model()
    finally:
        rt.use_backend(old)


# ---- the runtime's NVRTC disk cache, with stand-ins for CuPy and NVRTC ------------------------

def test_kernel_cache_second_process_compiles_nothing(tmp_path, monkeypatch):
    """CupyBackend._compile against fake cupy/nvrtc modules: the first load compiles and
    writes <sha256>.cubin atomically; a new backend (a new process) only loads the file; a
    damaged file is compiled again; float64 and another source are other entries."""
    compiled = []

    class NVRTCError(Exception):
        pass

    nvrtc = types.SimpleNamespace(
        NVRTCError=NVRTCError, getSupportedArchs=lambda: (75, 80, 90), getVersion=lambda: (13, 0),
        createProgram=lambda src, name, h, i: (src, name), destroyProgram=lambda p: None,
        compileProgram=lambda p, opts: compiled.append(tuple(opts)),
        getCUBIN=lambda p: b"CUBIN:" + p[0].encode(), getPTX=lambda p: b"PTX:" + p[0].encode(),
        getProgramLog=lambda p: "")

    class RawModule:
        def __init__(self, path=None, code=None, options=()):
            data = Path(path).read_bytes()
            if not data.startswith((b"CUBIN:", b"PTX:")):
                raise RuntimeError("CUDA_ERROR_INVALID_IMAGE")
            self.path = path

        def get_function(self, name):
            return name

    device = types.SimpleNamespace(id=0, compute_capability="90")
    fake_cupy = types.SimpleNamespace(RawModule=RawModule, cuda=types.SimpleNamespace(Device=lambda: device))
    libs = types.ModuleType("cupy_backends.cuda.libs")
    libs.nvrtc = nvrtc
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setitem(sys.modules, "cupy_backends", types.ModuleType("cupy_backends"))
    monkeypatch.setitem(sys.modules, "cupy_backends.cuda", types.ModuleType("cupy_backends.cuda"))
    monkeypatch.setitem(sys.modules, "cupy_backends.cuda.libs", libs)
    monkeypatch.setitem(sys.modules, "cupy_backends.cuda.libs.nvrtc", nvrtc)
    monkeypatch.setenv("GRAPHC_CUDA_CACHE_DIR", str(tmp_path / "cache"))
    src = compile_model("lstm", "cuda", emit="cu").source
    names = [k for _, k, _ in SIGNATURE.findall(src)]

    k = rt.CupyBackend().load(src, "float32", names)
    assert sorted(k) == sorted(names + ["__module__"]) and compiled == [("-arch=sm_90",)]
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and re.fullmatch(r"[0-9a-f]{64}\.cubin", files[0].name)
    rt.CupyBackend().load(src, "float32", names)  # "a second process"
    assert len(compiled) == 1
    rt.CupyBackend().load(src, "float64", names)
    assert compiled[-1] == ("-DGRAPHC_REAL=double", "-arch=sm_90")
    files[0].write_bytes(b"garbage")  # damaged: deleted and compiled again
    rt.CupyBackend().load(src, "float32", names)
    assert len(compiled) == 3 and files[0].read_bytes().startswith(b"CUBIN:")
    device.compute_capability = "120"  # newer than this NVRTC: PTX for sm_90, JIT by the driver
    rt.CupyBackend().load(src, "float32", names)
    assert compiled[-1] == ("-arch=compute_90",)
    assert len(list((tmp_path / "cache").glob(".*"))) == 0  # no temp files left behind


# ---- nvcc and NVRTC --------------------------------------------------------------------------



@pytest.fixture(scope="module", autouse=True)
def nvcc_results(tmp_path_factory):
    """nvcc runs in the background from the first test of this file on (it is the slow part),
    so it overlaps the emulation tests; the nvcc tests at the end collect the results."""
    if shutil.which("nvcc") is None:
        yield None
        return
    work = tmp_path_factory.mktemp("nvcc")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
    jobs = {}
    for name in SAMPLES:
        src = compile_model(name, "cuda", emit="cu").source
        for real in ("float", "double"):
            jobs[name, real] = (src, pool.submit(nvcc_report, src, real, work))
    yield jobs
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("real", ["float", "double"])
@pytest.mark.parametrize("name", SAMPLES)
def test_nvcc_compiles_every_kernel_without_spills(name, real, nvcc_results):
    if nvcc_results is None:
        require_tool("nvcc")
    src, job = nvcc_results[name, real]
    check_nvcc_log(src, *job.result())


# where pyproject's test extra installs the nvidia-cuda-nvrtc wheel (see its marker)
NVRTC_WHEEL = sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64")


def _nvrtc():
    """libnvrtc through ctypes (the nvidia-cuda-nvrtc wheel, or a CUDA install), or None."""
    candidates = []
    try:
        import nvidia
        for base in nvidia.__path__:
            candidates += sorted(glob.glob(os.path.join(base, "*", "lib", "libnvrtc.so*")))
    except ImportError:
        pass
    found = ctypes.util.find_library("nvrtc")
    candidates += [found] if found else []
    for path in candidates:
        if "builtins" in path or "alt" in os.path.basename(path):
            continue
        try:
            for b in glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so*")):
                if "alt" not in os.path.basename(b):
                    ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def nvrtc_compile(lib, source, options):
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"graphc_model.cu", 0, None, None) == 0
    opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    rc = lib.nvrtcCompileProgram(prog, len(options), opts)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return rc, log.value.decode(errors="replace")


@pytest.mark.parametrize("name", list(SAMPLES) + list(EXTRA))
def test_nvrtc_compiles_the_source_as_is(name):
    lib = _nvrtc()
    if lib is None and not NVRTC_WHEEL:
        pytest.skip(f"libnvrtc is not installed, and no nvidia-cuda-nvrtc wheel exists for "
                    f"{sys.platform}/{platform.machine()}: install the CUDA toolkit for NVRTC")
    assert lib is not None, ("libnvrtc not found, though the test extra installs it here: "
                             "pip install -e '.[test]' (the nvidia-cuda-nvrtc wheel)")
    src = compile_model(name, "cuda", emit="cu").source
    for extra in ([], ["-DGRAPHC_REAL=double"]):
        rc, log = nvrtc_compile(lib, src, extra + ["-arch=sm_90", "--ptxas-options=-v"])
        assert rc == 0, log
        spills = re.findall(r"(\d+) bytes spill stores", log)
        assert spills and set(spills) == {"0"}, log


def test_hostile_command_text_in_the_cu_header():
    """The header comment names the compile command; spec text in it (an --entry string with
    a backslash and a quote run) can neither splice lines nor end the Python string that
    embeds the source."""
    text = "function f(s)\n  local x = nn.Identity()()\n  return nn.gModule({x}, {nn.Tanh()(x)})\nend\n"
    opts = dict(entry="f(\"a'''b\\\\\")", shapes={"input1": parse_shape("Bx2")}, target="cuda")
    cu = compile_spec("q.lua", Options(emit="cu", **opts), text=text).source
    py = compile_spec("q.lua", Options(**opts), text=text).source
    header = cu.split("\n#ifndef")[0]
    assert "\\" not in cu and "graphc compile q.lua --entry" in header
    ns = {}
    exec(compile(py, "q", "exec"), ns)
    assert ns["CUDA_SOURCE"] == cu
