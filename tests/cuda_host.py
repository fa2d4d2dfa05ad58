"""Host emulation of the CUDA target (shared by tests/test_cuda*.py): the generated kernels
compiled by g++ with templates/cuda/host_shim.h and run one thread at a time (exact for
graphc's kernels: gathers with no shared memory, barriers or atomics), plus a numpy stand-in
for the few CuPy calls, so a whole CUDA-target Model runs on the CPU.

`compare_with_numpy_target(spec, shapes, ...)` compiles a spec for both targets and checks
forward, input gradients, parameter gradients and buffers agree."""
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import types
from pathlib import Path

import numpy as np

from graphc.paths import resource_dir
from graphc.compiler import Options, compile_spec, parse_shape

import graphc_runtime.cuda as rt

# ---- host emulation --------------------------------------------------------------------------

ARCHS = ("sm_90", "sm_75")  # CUDA 13 dropped sm_70 (Volta); sm_75 is the oldest it targets
SIGNATURE = re.compile(r'extern "C" __global__ void __launch_bounds__\((\d+)\) (\w+)\(([^)]*)\)')


class HostBackend(rt.Backend):
    """graphc_runtime.cuda's Backend on the CPU: numpy arrays and BLAS, and the generated
    kernels built by g++ into a shared library, launched one thread at a time through ctypes."""

    xp = np
    name = "host"

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.libs = {}
        self.launches = []

    def load(self, source, dtype, names=()):
        dtype = np.dtype(dtype)
        key = hashlib.sha256(f"{source}\0{dtype.str}".encode()).hexdigest()[:20]
        if key not in self.libs:
            self.libs[key] = self._build(key, source, dtype)
        kernels = self.libs[key]
        assert set(names) == set(kernels), (sorted(names), sorted(kernels))
        return kernels

    def _build(self, key, source, dtype):
        d = self.dir / key
        d.mkdir(parents=True, exist_ok=True)
        (d / "model.cu").write_text(source)
        wrappers, kinds = [], {}
        for block, name, params in SIGNATURE.findall(source):
            assert int(block) == rt.BLOCK
            decls = [p.strip() for p in params.split(",")]
            args = [p.split()[-1] for p in decls]
            kinds[name] = ["int" if p.startswith("int ") else "int*" if "int*" in p else "real*"
                           for p in decls]
            wrappers.append(f'extern "C" void host_{name}(unsigned grid, unsigned block, '
                            f'{", ".join(decls)}) {{\n  graphc_host_launch(grid, block, [&] {{ '
                            f'{name}({", ".join(args)}); }});\n}}\n')
        (d / "host.cpp").write_text('#include "model.cu"\n' + "".join(wrappers))
        real = "double" if dtype == np.float64 else "float"
        shim = resource_dir("templates") / "cuda" / "host_shim.h"
        r = subprocess.run(["g++", "-O1", "-std=c++17", "-shared", "-fPIC", "-Wall", "-Werror",
                            "-Wno-unused-function", "-include", str(shim), f"-DGRAPHC_REAL={real}",
                            "-x", "c++", str(d / "host.cpp"), "-o", str(d / "lib.so")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        lib = ctypes.CDLL(str(d / "lib.so"))
        kernels = {}
        for name, ks in kinds.items():
            fn = getattr(lib, "host_" + name)
            fn.argtypes = [ctypes.c_uint, ctypes.c_uint] + [ctypes.c_int if k == "int" else ctypes.c_void_p
                                                            for k in ks]
            fn.restype = None
            kernels[name] = (fn, ks, dtype)
        return kernels

    def call(self, kernels, name, grid, block, args):
        fn, kinds, dtype = kernels[name]
        assert len(args) == len(kinds), f"{name}: {len(args)} arguments for {kinds}"
        cargs = []
        for a, k in zip(args, kinds):
            if k == "int":
                assert type(a) is np.int32, f"{name}: scalars must be np.int32, got {type(a)}"
                cargs.append(int(a))
            else:
                assert isinstance(a, np.ndarray) and a.flags.c_contiguous, f"{name}: not contiguous"
                assert a.dtype == (np.int32 if k == "int*" else dtype), f"{name}: {a.dtype}"
                cargs.append(a.ctypes.data)
        self.launches.append(name)
        fn(grid[0], block[0], *cargs)


def load_text(text, shapes, target, dtype="float64", name="op", **opts):
    opts = Options(shapes={k: parse_shape(v) for k, v in shapes.items()}, dtype=dtype,
                   target=target, **opts)
    res = compile_spec(f"{name}.lua", opts, text=text)
    mod = types.ModuleType(f"graphc_{target}_{name}")
    exec(compile(res.source, f"<generated {name} {target}>", "exec"), mod.__dict__)
    return mod


def _tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _flat(x):
    if isinstance(x, (tuple, list)):
        return [a for e in x for a in _flat(e)]
    return [x]


def test_backend(workdir: Path) -> rt.Backend:
    """HostBackend; CuPy's on a GPU machine (tests/gpu/run.sh sets GRAPHC_GPU_TESTS=1), so
    the same op tests run on the device there."""
    if os.environ.get("GRAPHC_GPU_TESTS") == "1":
        return rt.CupyBackend()
    return HostBackend(workdir)


test_backend.__test__ = False  # a helper, not a test


def host_array(x):
    """A device (CuPy) array's host copy; anything else as numpy."""
    return x.get() if hasattr(x, "get") and not isinstance(x, np.ndarray) else np.asarray(x)


def assert_close(a, b, dtype, what):
    rtol, atol = (1e-10, 1e-12) if dtype == "float64" else (2e-5, 2e-6)
    if a is None or b is None:
        assert a is None and b is None, what
        return
    a, b = host_array(a), host_array(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg=what)


def compare_with_numpy_target(text, shapes, dtype="float64", batch=3, inputs=None, train=True,
                              steps=1, name="op"):
    """Compile `text` for the numpy target and for each kernel target (cuda in host
    emulation; cpu, built at -O0, where a C++ compiler is here), run forward+backward `steps`
    times on the same inputs (`inputs`: list of arrays, else standard normal), and assert
    every output, input gradient, parameter gradient and buffer agree. Returns (numpy model,
    cuda model)."""
    ref = load_text(text, shapes, "numpy", dtype, name).Model(dtype=dtype, seed=0)
    rng = np.random.default_rng(7)
    if inputs is None:
        inputs = [rng.standard_normal([batch if d == "B" else d for d in s]).astype(dtype)
                  for _, s, _ in ref.INPUTS]
    cuda = load_text(text, shapes, "cuda", dtype, name).Model(dtype=dtype, seed=0)
    _compare(ref, cuda, inputs, dtype, train, steps)
    from graphc_runtime.cpu import available
    if available()[0]:
        old = os.environ.get("GRAPHC_CPU_CXXFLAGS")
        os.environ["GRAPHC_CPU_CXXFLAGS"] = "-O0"
        try:
            cpu = load_text(text, shapes, "cpu", dtype, name).Model(dtype=dtype, seed=0)
        finally:
            if old is None:
                del os.environ["GRAPHC_CPU_CXXFLAGS"]
            else:
                os.environ["GRAPHC_CPU_CXXFLAGS"] = old
        ref = load_text(text, shapes, "numpy", dtype, name).Model(dtype=dtype, seed=0)
        _compare(ref, cpu, inputs, dtype, train, steps, "cpu target: ")
    return ref, cuda


def _compare(ref, other, inputs, dtype, train, steps, label=""):
    for m in (ref, other):
        m.training() if train else m.evaluate()
    rng = np.random.default_rng(8)
    for step in range(steps):
        out_r, out_c = ref.forward(*inputs), other.forward(*inputs)
        outs = _flat(out_r)
        for i, (a, b) in enumerate(zip(outs, _flat(out_c))):
            assert_close(a, b, dtype, f"{label}step {step}: output {i + 1}")
            assert host_array(b).dtype == np.dtype(dtype)
        gys = [rng.standard_normal(np.shape(o)).astype(dtype) for o in outs]
        g = _regroup(out_r, iter(gys))
        gin_r, gin_c = ref.backward(tuple(inputs), g), other.backward(tuple(inputs), g)
        for i, (a, b) in enumerate(zip(_flat(gin_r), _flat(gin_c))):
            assert_close(a, b, dtype, f"{label}step {step}: gradient of input {i + 1}")
        assert_close(ref.getParameters()[1], other.getParameters()[1], dtype,
                     f"{label}step {step}: parameter gradients")
        for i, (a, b) in enumerate(zip(ref._buffers, other._buffers)):
            assert_close(a, b, dtype, f"{label}step {step}: buffer {i + 1}")


def _regroup(like, it):
    if isinstance(like, (tuple, list)):
        out = [_regroup(e, it) for e in like]
        return tuple(out) if isinstance(like, tuple) else out
    return next(it)


# ---- nvcc ------------------------------------------------------------------------------------

def nvcc_report(source: str, real: str, workdir: Path) -> tuple[int, str]:
    f = workdir / f"{hashlib.sha256(source.encode()).hexdigest()[:16]}_{real}.cu"
    f.write_text(source)
    cmd = ["nvcc", "-fatbin", f"-DGRAPHC_REAL={real}", "-Xptxas", "-v", "-o", str(f.with_suffix(".fatbin"))]
    for arch in ARCHS:
        cmd += ["-gencode", f"arch=compute_{arch[3:]},code={arch}"]
    r = subprocess.run(cmd + [str(f)], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def check_nvcc_log(source: str, rc: int, log: str):
    """nvcc built every kernel of `source` for every arch with no warning and no spill."""
    assert rc == 0, log
    assert "warning" not in log.lower(), log
    kernels = {k for _, k, _ in SIGNATURE.findall(source)}
    entries = re.findall(r"Compiling entry function '(\w+)' for '(sm_\d+)'", log)
    assert {(k, a) for k in kernels for a in ARCHS} == set(entries)
    props = re.findall(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log)
    assert len(props) >= len(entries) and all(p == ("0", "0", "0") for p in props), log
    regs = [int(r) for r in re.findall(r"Used (\d+) registers", log)]
    assert len(regs) == len(entries) and max(regs, default=0) <= 64, regs


def check_nvcc(text, shapes, workdir: Path, dtype="float64"):
    """Compile spec `text` with --emit cu and nvcc it for ARCHS, float and double."""
    assert shutil.which("nvcc"), "nvcc is not installed (the CUDA toolkit is part of CI's image)"
    opts = Options(shapes={k: parse_shape(v) for k, v in shapes.items()}, dtype=dtype,
                   target="cuda", emit="cu")
    src = compile_spec("op.lua", opts, text=text).source
    for real in ("float", "double"):
        check_nvcc_log(src, *nvcc_report(src, real, workdir))
    return src


# Tools that no pip package provides: a test that needs one skips, saying how to get it.
TOOLS = {
    "g++": "the CUDA host emulation compiles the generated kernels with g++ "
           "(Debian/Ubuntu: apt-get install g++)",
    "nvcc": "nvcc comes with the CUDA toolkit (https://developer.nvidia.com/cuda-downloads; "
            "Debian/Ubuntu: apt-get install nvidia-cuda-toolkit)",
}


def require_cpu_target() -> None:
    """Skip (with what is missing) where the CPU target cannot build: no C++ compiler or no
    Python headers, which no pip package installs."""
    import pytest
    from graphc_runtime.cpu import available
    ok, why = available()
    if not ok:
        pytest.skip(f"the CPU target cannot build here: {why}")


def require_tool(name: str) -> None:
    import pytest
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed: {TOOLS[name]}")
