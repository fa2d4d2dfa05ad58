"""The CPU target's runtime: what `graphc compile --target cpu` modules import.

A CPU-target module is the CUDA target's program run on the host: the same fused kernels
(one thread per output element, each a gather; im2col, col2im and max-pooling's backward have
CPU forms of their own, and small Linears are dot products inside the kernels) and the same
host lines, on numpy arrays with numpy's BLAS for the GEMMs. Its CPU_SOURCE is the kernels plus one C++ entry point per kernel
that runs the kernel's threads as a loop, in parallel with OpenMP when there are at least
PARALLEL_MIN of them. This module prepends PRELUDE (Python.h, the CUDA names a kernel uses,
argument checking) and builds the whole as a Python extension module with a C++ compiler:

    $CXX (default g++) -O3 -march=native -fopenmp -shared -fPIC ... $GRAPHC_CPU_CXXFLAGS

once per (source, dtype, compiler (its path, size and date), flags, CPU, Python ABI), cached
on disk:

    $GRAPHC_CPU_CACHE_DIR, else $XDG_CACHE_HOME/graphc/cpu, else ~/.cache/graphc/cpu
    <sha256 of all that>.so

written atomically (built into a temporary file, then os.replace), so concurrent processes and
crashes never leave a partial library. A second process loads the library and compiles
nothing. Build ahead of time (a Makefile step) with `python -m graphc_runtime.cpu model.py`.

Without a working compiler a model cannot be built: CpuCompileError says what is missing
(`available()` answers without raising); the numpy target needs none.

Threads: OpenMP's (OMP_NUM_THREADS, default all cores) for the kernels, numpy's BLAS's own
(OPENBLAS_NUM_THREADS) for the GEMMs.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

import numpy as np

from .cuda import INT_LIMIT, Backend, CudaModule, _check_size, user_cache_dir

CACHE_FORMAT = "graphc-cpu-cache-1"
# Threads of a launch below this count run in the calling thread: waking OpenMP's sleeping
# team (OMP_WAIT_POLICY=PASSIVE, as beside BLAS's own threads) cost ~50 us a kernel on 2 cores,
# more than a kernel of 128K elements (~30 us alone) saves by splitting (the MLP's ReLUs of
# 128 x 512 took 75 us on 2 threads, 25 us on one).
PARALLEL_MIN = 131072
CXXFLAGS = ("-O3", "-march=native", "-std=c++17", "-fopenmp", "-shared", "-fPIC",
            "-fvisibility=hidden", "-fno-math-errno", "-fno-trapping-math", "-Wall",
            "-Wno-unused-function", "-Wno-unused-variable")

PRELUDE = r"""// graphc_runtime.cpu's prelude: what the generated kernels and entry points need on a CPU.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#include <omp.h>

#ifndef GRAPHC_REAL
#define GRAPHC_REAL float
#endif

// CUDA's names, as the kernels use them: the thread index t = blockIdx.x * blockDim.x +
// threadIdx.x is the loop counter graphc_run stores in threadIdx.x (block 0 of size 0).
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
struct graphc_zero { static constexpr unsigned x = 0; };
struct graphc_thread { unsigned x; };
static constexpr graphc_zero blockIdx{}, blockDim{};
static thread_local graphc_thread threadIdx __attribute__((tls_model("initial-exec")));

static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, sizeof f); return f; }
static inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, sizeof d); return d; }
using std::exp; using std::log; using std::tanh; using std::fmax; using std::fmin; using std::fabs;
using std::log1p; using std::expm1; using std::sqrt; using std::pow;

#ifdef GRAPHC_LIBMVEC
// glibc's vector math library (libmvec, within 4 ulp) has these on x86-64: declaring their
// vector versions lets a loop kernel's segment vectorize (glibc's headers declare them only
// under -ffast-math, which would also change how NaN and infinity behave).
#define GRAPHC_SIMD __attribute__((simd("notinbranch")))
extern "C" {
float expf(float) GRAPHC_SIMD; double exp(double) GRAPHC_SIMD;
float expm1f(float) GRAPHC_SIMD; double expm1(double) GRAPHC_SIMD;
float logf(float) GRAPHC_SIMD; double log(double) GRAPHC_SIMD;
float log1pf(float) GRAPHC_SIMD; double log1p(double) GRAPHC_SIMD;
float tanhf(float) GRAPHC_SIMD; double tanh(double) GRAPHC_SIMD;
float powf(float, float) GRAPHC_SIMD; double pow(double, double) GRAPHC_SIMD;
}
#endif

// Run body() for t = 0 .. n-1 (as CUDA threads): in this thread when short, else split
// between OpenMP's threads with the GIL released. Kernels are gathers (a thread writes only
// its own elements and reads only inputs), so the order does not matter.
template <class Body>
static inline void graphc_run(long n, Body body) {
  if (n < GRAPHC_PARALLEL_MIN || omp_get_max_threads() < 2) {
    for (long t = 0; t < n; ++t) { threadIdx.x = (unsigned)t; body(); }
    return;
  }
  Py_BEGIN_ALLOW_THREADS
  #pragma omp parallel for schedule(static)
  for (long t = 0; t < n; ++t) { threadIdx.x = (unsigned)t; body(); }
  Py_END_ALLOW_THREADS
}

// A loop kernel's segment: body(i) for i = 0 .. n-1, vectorized (the element functions
// below have vector versions), split between OpenMP's threads when long.
template <class Body>
static inline void graphc_loop(long n, Body body) {
  if (n >= GRAPHC_PARALLEL_MIN && omp_in_parallel() == 0 && omp_get_max_threads() > 1) {
    #pragma omp parallel
    {
      // one contiguous range per thread, run by the same vectorized loop as below (the
      // vectorizer gives up on `parallel for simd` over a lambda)
      const long nt = omp_get_num_threads(), k = omp_get_thread_num();
      const long lo = n * k / nt, hi = n * (k + 1) / nt;
      Body own = body;
      #pragma omp simd
      for (long i = lo; i < hi; ++i) own((int)i);
    }
  } else {
    #pragma omp simd
    for (long i = 0; i < n; ++i) body((int)i);
  }
}

// body(p) for p = 0 .. n-1, each a piece of `work` elements (an image, an image plane, a
// row of im2col's columns) that writes only its own output: split between OpenMP's threads
// when the whole is long.
template <class Body>
static inline void graphc_each(long n, long work, Body body) {
  if (n * work >= GRAPHC_PARALLEL_MIN && n > 1 && omp_in_parallel() == 0 &&
      omp_get_max_threads() > 1) {
    #pragma omp parallel for schedule(static)
    for (long p = 0; p < n; ++p) body((int)p);
  } else {
    for (long p = 0; p < n; ++p) body((int)p);
  }
}

// The same over rows x cols elements: body(r, c), the inner loop over c vectorized. The
// columns come as compile-time bounds 0, ..., cols: more than two cut them into pieces (the
// slices of a Narrow or JoinTable that the body's conditions on c test), each with a loop
// of its own, in which those conditions are known and fold away instead of every branch
// being computed under a mask.
template <int Lo, int Hi, int... More, class Body>
static inline void graphc_pieces(int r, Body& body) {
  #pragma omp simd
  for (int c = Lo; c < Hi; ++c) body(r, c);
  if constexpr (sizeof...(More) > 0) graphc_pieces<Hi, More...>(r, body);
}
template <int... Cuts, class Body>
static inline void graphc_loop2(long rows, Body body) {
  constexpr int bounds[] = {Cuts...};
  constexpr int cols = bounds[sizeof...(Cuts) - 1];
  if (rows * cols >= GRAPHC_PARALLEL_MIN && rows > 1 && omp_in_parallel() == 0 &&
      omp_get_max_threads() > 1) {
    #pragma omp parallel
    {
      const long nt = omp_get_num_threads(), k = omp_get_thread_num();
      const long lo = rows * k / nt, hi = rows * (k + 1) / nt;
      Body own = body;
      for (long r = lo; r < hi; ++r) graphc_pieces<Cuts...>((int)r, own);
    }
  } else {
    for (long r = 0; r < rows; ++r) graphc_pieces<Cuts...>((int)r, body);
  }
}

// A loop kernel's call, with the GIL released when it runs on several threads.
template <class Call>
static inline void graphc_call(long n, Call call) {
  if (n >= GRAPHC_PARALLEL_MIN && omp_get_max_threads() > 1) {
    Py_BEGIN_ALLOW_THREADS
    call();
    Py_END_ALLOW_THREADS
  } else {
    call();
  }
}

// An entry point's arguments: (n, arrays and ints in the kernel's order). Arrays are taken
// through the buffer protocol: C-contiguous, of the kernel's element type, writable where the
// kernel writes. The first problem sets a Python exception; the views are released at exit.
struct graphc_args {
  const char* kernel;
  PyObject* const* args;
  bool bad = false;
  int held = 0;
  std::vector<Py_buffer> views;  // one per array argument (an unrolled model's kernels take many)

  graphc_args(const char* k, PyObject* const* a, Py_ssize_t n, Py_ssize_t want)
      : kernel(k), args(a), views(want) {
    if (n != want) fail(PyExc_TypeError, "%s takes %zd arguments (%zd given)", k, want, n);
  }
  ~graphc_args() { for (int k = 0; k < held; ++k) PyBuffer_Release(&views[k]); }
  template <class... A> void fail(PyObject* type, const char* fmt, A... a) {
    if (!bad) PyErr_Format(type, fmt, a...);
    bad = true;
  }
  bool failed() const { return bad; }
  long count(int k) {
    if (bad) return 0;
    long v = PyLong_AsLong(args[k]);
    if (v == -1 && PyErr_Occurred()) { bad = true; return 0; }
    if (v < 0 || v > 2147483647L) fail(PyExc_ValueError, "%s: %ld threads is out of range", kernel, v);
    return v;
  }
  int integer(int k) { return (int)count(k); }
  void* array(int k, char kind, Py_ssize_t itemsize, bool write) {
    if (bad) return nullptr;
    Py_buffer* v = &views[held];  // held < want: each argument is taken once
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (write ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(args[k], v, flags) < 0) { bad = true; return nullptr; }
    ++held;
    const char* f = v->format ? v->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') ++f;
    bool ok = v->itemsize == itemsize && (kind == 'f' ? (*f == 'f' || *f == 'd') : (*f == 'i' || *f == 'l'));
    if (!ok) fail(PyExc_TypeError, "%s: argument %d has elements of type '%s', expected %zd-byte %s",
                  kernel, k, v->format ? v->format : "B", itemsize, kind == 'f' ? "floats" : "ints");
    return v->buf;
  }
  const GRAPHC_REAL* reals_in(int k) { return (const GRAPHC_REAL*)array(k, 'f', sizeof(GRAPHC_REAL), false); }
  GRAPHC_REAL* reals_out(int k) { return (GRAPHC_REAL*)array(k, 'f', sizeof(GRAPHC_REAL), true); }
  const int* ints_in(int k) { return (const int*)array(k, 'i', sizeof(int), false); }
  int* ints_out(int k) { return (int*)array(k, 'i', sizeof(int), true); }
};

#define GRAPHC_CAT2(a, b) a##b
#define GRAPHC_CAT(a, b) GRAPHC_CAT2(a, b)
#define GRAPHC_STR2(a) #a
#define GRAPHC_STR(a) GRAPHC_STR2(a)
#define GRAPHC_MODULE_INIT(methods)                                                          \
  static struct PyModuleDef graphc_module = {PyModuleDef_HEAD_INIT, GRAPHC_STR(GRAPHC_MODULE), \
                                             nullptr, -1, methods};                           \
  PyMODINIT_FUNC GRAPHC_CAT(PyInit_, GRAPHC_MODULE)(void) { return PyModule_Create(&graphc_module); }
"""


class CpuCompileError(RuntimeError):
    """The kernels could not be built: no compiler, no Python headers, or a compiler error."""


def cache_dir() -> Path:
    return user_cache_dir("GRAPHC_CPU_CACHE_DIR", "cpu")


def compiler() -> list[str]:
    """The C++ compiler command: $CXX (may hold arguments), else g++, else c++."""
    env = os.environ.get("CXX")
    if env:
        return shlex.split(env)
    for name in ("g++", "c++"):
        if shutil.which(name):
            return [name]
    return ["g++"]


def _libmvec() -> bool:
    """glibc >= 2.35 on x86-64 (Linux): its libmvec has the vector math the prelude declares."""
    import platform
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    lib, version = platform.libc_ver()
    try:
        return lib == "glibc" and tuple(int(p) for p in version.split(".")[:2]) >= (2, 35)
    except ValueError:
        return False


def flags() -> list[str]:
    vector_math = ["-DGRAPHC_LIBMVEC"] if _libmvec() else []
    return list(CXXFLAGS) + vector_math + shlex.split(os.environ.get("GRAPHC_CPU_CXXFLAGS", ""))


def python_include() -> Path:
    return Path(sysconfig.get_paths()["include"])


def available() -> tuple[bool, str]:
    """(True, "") when models can be built here, else (False, what is missing)."""
    cxx = compiler()
    if shutil.which(cxx[0]) is None:
        return False, (f"no C++ compiler: {cxx[0]!r} was not found (install g++, e.g. "
                       "`apt install g++`, or set CXX); the numpy target needs none")
    if not (python_include() / "Python.h").exists():
        return False, (f"no Python headers: {python_include() / 'Python.h'} is missing (install "
                       "the python3-dev package of this Python)")
    return True, ""


_TOOL_IDS: dict = {}


def _tool_id(cxx: list[str]) -> str:
    """The compiler's identity (its resolved path, size and modification time: an upgrade
    changes them, and no process is started to ask its version) and this CPU's flags (for
    -march=native): the cache key changes when either does."""
    key = tuple(cxx)
    if key not in _TOOL_IDS:
        found = shutil.which(cxx[0])
        compiler_id = cxx[0]
        if found:
            real = os.path.realpath(found)
            st = os.stat(real)
            compiler_id = f"{real}:{st.st_size}:{st.st_mtime_ns}"
        cpu = ""
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith(("flags", "Features", "model name")):
                    cpu = cpu + line if line not in cpu else cpu
        except OSError:
            import platform
            cpu = platform.processor() or platform.machine()
        _TOOL_IDS[key] = f"{compiler_id}\0{hashlib.sha256(cpu.encode()).hexdigest()}"
    return _TOOL_IDS[key]


class CpuBackend(Backend):
    """Backend of the CPU target: numpy arrays and BLAS; kernels built into an extension."""

    xp = np
    name = "cpu"

    def __init__(self):
        self.stats = {"compiles": 0, "cache_hits": 0}
        self._loaded: dict = {}  # cache key -> extension module
        self._ones: dict = {}  # (rows, dtype) -> a vector of ones (add_colsum)
        self._scratch = threading.local()  # .arrays: (shape, dtype) -> addmm's product

    def load(self, source: str, dtype, names=()):
        dtype = np.dtype(dtype)
        real = "double" if dtype == np.float64 else "float"
        cxx, fl = compiler(), flags()
        fl = fl + [f"-DGRAPHC_REAL={real}", f"-DGRAPHC_PARALLEL_MIN={PARALLEL_MIN}"]
        ident = "\0".join([CACHE_FORMAT, source, " ".join(cxx), _tool_id(cxx), " ".join(fl),
                           sysconfig.get_config_var("EXT_SUFFIX") or "", sys.version])
        key = hashlib.sha256(ident.encode()).hexdigest()[:32]
        mod = self._loaded.get(key)
        if mod is None:
            mod = self._build(key, source, cxx, fl)
            self._loaded[key] = mod
        missing = [n for n in names if not hasattr(mod, n)]
        if missing:
            raise CpuCompileError(f"built kernels lack {', '.join(missing)}")
        return mod

    def _build(self, key: str, source: str, cxx: list, fl: list):
        name = f"graphc_cpu_{key}"
        d = cache_dir()
        lib = d / (name + ".so")
        if lib.exists():
            try:
                mod = _import(name, lib)
                self.stats["cache_hits"] += 1
                return mod
            except ImportError:
                lib.unlink(missing_ok=True)  # a file the loader refuses: build it again
        ok, why = available()
        if not ok:
            raise CpuCompileError(f"cannot build the CPU target's kernels: {why}")
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CpuCompileError(f"cannot build the CPU target's kernels: the cache directory "
                                  f"{d} cannot be made ({e.strerror}); set GRAPHC_CPU_CACHE_DIR") from None
        prelude = self._prelude(d, cxx, fl)
        with tempfile.TemporaryDirectory(dir=d, prefix=".build-") as tmp:
            src = Path(tmp) / "model.cpp"
            # the module's name after the prelude, so one precompiled prelude serves all
            src.write_text(f'#include "{prelude.name}"\n#define GRAPHC_MODULE {name}\n'
                           f'#line 1 "model.cpp"\n{source}')
            out = Path(tmp) / (name + ".so")
            libs = ["-lmvec"] if "-DGRAPHC_LIBMVEC" in fl else []
            _run(cxx + fl + [f"-I{d}", f"-I{python_include()}", "-x", "c++", str(src), "-o", str(out)] + libs)
            os.replace(out, lib)
        self.stats["compiles"] += 1
        return _import(name, lib)

    @staticmethod
    def _prelude(d: Path, cxx: list, fl: list) -> Path:
        """PRELUDE as a header in the cache directory; from the second build on with these
        flags, with its precompiled form beside it (the compiler uses the .gch only when its
        flags match, else reads the header). Precompiling costs about 1 s once and saves
        0.1-0.5 s per later build, so the first build of a cold cache (the cold start of a
        model) reads the header and leaves the .gch to the next one."""
        key = hashlib.sha256("\0".join([PRELUDE, " ".join(cxx), _tool_id(cxx), " ".join(fl),
                                         sys.version]).encode()).hexdigest()[:16]
        header = d / f"graphc_prelude_{key}.h"
        if (d / (header.name + ".gch")).exists():
            return header
        with tempfile.TemporaryDirectory(dir=d, prefix=".build-") as tmp:
            h = Path(tmp) / header.name
            h.write_text(PRELUDE)
            if header.exists():  # a build with these flags came before: precompile now
                _run(cxx + [f for f in fl if f != "-shared"] +
                     [f"-I{python_include()}", "-x", "c++-header", str(h), "-o", str(h) + ".gch"])
                os.replace(str(h) + ".gch", str(header) + ".gch")
            else:
                os.replace(h, header)
        return header

    def empty(self, shape, dtype):
        a = np.empty(shape, dtype)  # only reserved until written: then the size check
        if a.size > INT_LIMIT:
            _check_size(a.size, "an array", "CPU")
        return a

    def addmm(self, out, a, b, beta: float = 1.0):
        """As Backend's; the product to add goes through a scratch array of this thread (one
        per shape), not a new one per call: an unrolled sequence adds a weight gradient once
        per step, and fresh 256 KB arrays cost page faults each time. A product over one row
        (batch size 1) is a broadcast multiply: OpenBLAS took 69 us for LeNet's 120x1 @ 1x400."""
        product = np.multiply if a.shape[1] == 1 else np.matmul
        if beta == 0:
            product(a, b, out=out)
            return
        shape = (a.shape[0], b.shape[1])
        scratch = self._scratch.__dict__.setdefault("arrays", {})
        tmp = scratch.get((shape, out.dtype))
        if tmp is None:
            tmp = scratch[(shape, out.dtype)] = np.empty(shape, out.dtype)
        product(a, b, out=tmp)
        out += tmp

    def add_colsum(self, out, a, beta: float = 1.0):
        """As Backend's, by BLAS: ones @ a (a bias gradient of N*H*W rows of a few channels:
        numpy's a.sum(0) of 50176 x 6 takes ten times as long); one row is copied or added."""
        if a.shape[0] == 1:  # batch size 1: the sum is the row (a BLAS call costs ~2 us)
            if beta == 0:
                out[...] = a[0]
            else:
                out += a[0]
            return
        ones = self._ones.get((a.shape[0], a.dtype))
        if ones is None:
            ones = self._ones[(a.shape[0], a.dtype)] = np.ones(a.shape[0], a.dtype)
        if beta == 0:
            np.matmul(ones, a, out=out)
        else:
            out += ones @ a

    def launch(self, kernels, name: str, n: int, args):
        if n > 0:
            getattr(kernels, name)(n, *args)

    def call(self, kernels, name, grid, block, args):  # launch() runs entry points directly
        raise NotImplementedError("the CPU backend launches kernels by their thread count")


def _run(cmd: list) -> None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise CpuCompileError(f"cannot run the C++ compiler {cmd[0]!r}: {e.strerror}") from None
    if r.returncode != 0:
        tail = "\n".join((r.stderr or r.stdout).splitlines()[-30:])
        raise CpuCompileError(f"the C++ compiler failed on the CPU target's kernels "
                              f"({cmd[0]}, exit {r.returncode}):\n{tail}")


def _import(name: str, path: Path):
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


_backend: CpuBackend | None = None


def backend() -> CpuBackend:
    global _backend
    if _backend is None:
        _backend = CpuBackend()
    return _backend


class CpuModule(CudaModule):
    """CudaModule on the host: numpy arrays throughout, the kernels built by CpuBackend."""

    _FAST = True  # arguments are numpy arrays already: Module's few-comparison path applies
    CPU_SOURCE = ""

    @classmethod
    def _backend(cls):
        return backend()

    def _kernel_source(self) -> str:
        return self.CPU_SOURCE

    def step(self, inputs, grad_outputs, graph: bool = False):
        if graph:
            raise ValueError("graph=True replays a CUDA graph: the CPU target has none "
                             "(its kernel launches cost no device round trip)")
        return super().step(inputs, grad_outputs)


def main(argv=None) -> int:
    """python -m graphc_runtime.cpu MODEL.py...: build (or find in the cache) the kernels of
    CPU-target modules for their default dtype, e.g. as a Makefile step."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m graphc_runtime.cpu", description=main.__doc__)
    ap.add_argument("modules", nargs="+", metavar="MODEL.py")
    ap.add_argument("--dtype", choices=("float32", "float64"), help="default: each module's own")
    args = ap.parse_args(argv)
    # under `python -m` this file runs as __main__: the modules import graphc_runtime.cpu itself
    from graphc_runtime import cpu
    for path in args.modules:
        spec = importlib.util.spec_from_file_location(Path(path).stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        model = getattr(mod, "Model", None)
        if model is None or not issubclass(model, cpu.CpuModule):
            print(f"{path}: not a CPU-target module (graphc compile --target cpu)", file=sys.stderr)
            return 2
        b = cpu.backend()
        before = b.stats["compiles"]
        b.load(model.CPU_SOURCE, args.dtype or model.DEFAULT_DTYPE, model.KERNELS)
        print(f"{path}: {'built' if b.stats['compiles'] > before else 'cached'} in {cpu.cache_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
