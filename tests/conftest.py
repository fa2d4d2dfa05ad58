"""Shared test helpers: compile a spec string to an imported module."""
import itertools
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graphc.compiler import Options, compile_spec  # noqa: E402

_count = itertools.count()

# tests/gpu needs a GPU and CuPy: tests/gpu/run.sh runs it (with GRAPHC_GPU_TESTS=1) on a
# machine that has one; the normal suite does not collect it.
collect_ignore = [] if os.environ.get("GRAPHC_GPU_TESTS") else ["gpu"]

# ---- the quick loop: pytest -m "not slow" ---------------------------------------------------
# Whole files that compile C++/CUDA (host emulation, nvcc), run training scripts or make,
# build a wheel, fuzz, or repeat the op cases under another setting: each takes from ten
# seconds to minutes. The README's test command runs them all.
SLOW_FILES = {"test_fuzz.py", "test_train_samples.py", "test_makefile.py", "test_packaging.py",
              "test_memory_plan.py", "test_kernels_speed.py", "test_samples.py", "test_corpus.py",
              "test_distributed_samples.py", "test_t7_roundtrip.py", "test_onnx.py",
              "test_distributed.py", "test_tooling.py"}
# Single tests of over two seconds in otherwise quick files (processes, races, big inputs).
SLOW_TESTS = {"test_bptt_memory_grows_only_with_the_activations_bptt_needs",
              "test_every_side_agrees_with_pytorch_eager_and_a_wrong_side_is_caught",
              "test_concurrent_compiles_to_one_output_end_with_a_valid_file",
              "test_deep_nesting_needs_no_recursion", "test_failed_compile_leaves_the_old_output_byte_identical",
              "test_output_to_a_device_is_written_not_replaced",
              "test_outputs_get_normal_permissions_and_keep_existing_ones",
              "test_output_is_byte_identical_across_hash_seeds_and_directories",
              "test_lbfgs_quadratic_converges_like_torch", "test_msr_init",
              "test_a_generated_file_imports_its_plugin_and_refuses_a_changed_one",
              "test_kill_during_compile_never_leaves_a_partial_file",
              "test_import_graphc_and_compile_from_a_fresh_process"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.name
        on_cpu = getattr(item, "callspec", None) is not None and item.callspec.params.get("target") == "cpu"
        if name in SLOW_FILES or name.startswith(("test_cuda", "test_cpu")) or \
                item.originalname in SLOW_TESTS or on_cpu:
            item.add_marker(pytest.mark.slow)


# ---- tests never write into the source tree: everything goes under tmp_path ---------------
# Python's and pytest's own caches and the editable install's metadata are not the tests'.
_NOT_OURS = ("__pycache__", ".pytest_cache", ".git", ".hypothesis")


def _tree_files() -> dict:
    found = {}
    for base, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in _NOT_OURS and not d.endswith(".egg-info")]
        for f in files:
            p = os.path.join(base, f)
            try:
                st = os.stat(p)
            except OSError:
                continue
            found[p] = (st.st_size, st.st_mtime_ns)
    return found


def pytest_sessionstart(session):
    session.config._graphc_tree = _tree_files()
    # the CPU target's built kernels go to a folder of this run, not the user's cache
    if "GRAPHC_CPU_CACHE_DIR" not in os.environ:
        import tempfile
        session.config._graphc_cpu_cache = tempfile.TemporaryDirectory(prefix="graphc-cpu-tests-")
        os.environ["GRAPHC_CPU_CACHE_DIR"] = session.config._graphc_cpu_cache.name


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_graphc_tree", None)
    if before is None or hasattr(session.config, "workerinput"):
        return
    after = _tree_files()
    written = sorted(p for p in after if before.get(p) != after[p])
    if written:
        names = "\n  ".join(os.path.relpath(p, ROOT) for p in written[:20])
        sys.stderr.write(f"\nERROR: the tests wrote into the source tree (write under tmp_path "
                         f"instead):\n  {names}\n")
        session.exitstatus = 1


def build(spec: str, tmp_path=None, dtype="float64", **options):
    """Compile Lua text; return the generated module (imported from memory)."""
    import types

    path = str((tmp_path or Path("/tmp")) / f"spec{next(_count)}.lua")
    res = compile_spec(path, Options(dtype=dtype, **options), text=spec)
    mod = types.ModuleType(f"graphc_test_{next(_count)}")
    exec(compile(res.source, f"<generated {path}>", "exec"), mod.__dict__)
    mod.RESULT = res
    return mod


def cli_options(args, **overrides):
    """The Options the CLI reads from `graphc compile SPEC ARGS` (graphc's own reading of its
    flags; --prelude and --plugin paths relative to the repository root), then `overrides`."""
    from graphc import cli
    rooted, it = [], iter(args)
    for a in it:
        rooted += [a, str(ROOT / next(it))] if a in ("--prelude", "--plugin") else [a]
    opts = cli._options(cli._parser().parse_args(["compile", "spec.lua", *rooted]))
    for name, value in overrides.items():
        setattr(opts, name, value)
    return opts


def compile_error(spec: str, **options):
    """The SpecError raised compiling `spec` (fails the test if none)."""
    from graphc.errors import SpecError

    path = "spec.lua"
    with pytest.raises(SpecError) as info:
        compile_spec(path, Options(**options), text=spec)
    return info.value, info.value.format({path: spec})


def central_differences(f, x, eps=1e-6):
    """d f() / d x by central differences, changing x in place (and restoring it)."""
    num = np.zeros_like(x)
    for i in range(x.size):
        old = x.flat[i]
        x.flat[i] = old + eps
        up = f()
        x.flat[i] = old - eps
        down = f()
        x.flat[i] = old
        num.flat[i] = (up - down) / (2 * eps)
    return num


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def target(request, monkeypatch):
    """The code target a test runs on (an indirect `target` parameter): on 'cpu', skipped
    with the reason when no C++ compiler is here, and built at -O2 (vectorized, with the
    vector math library, as at the default -O3; quicker to build)."""
    if request.param == "cpu":
        from cuda_host import require_cpu_target
        require_cpu_target()
        monkeypatch.setenv("GRAPHC_CPU_CXXFLAGS", "-O2")
    return request.param


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """The CUDA target's backend for tests/test_cuda_*.py: host emulation (g++), or CuPy on a
    GPU machine (GRAPHC_GPU_TESTS=1, tests/gpu/run.sh). Made current for the module."""
    import graphc_runtime.cuda as rt
    from cuda_host import HostBackend, require_tool, test_backend
    backend = test_backend(tmp_path_factory.mktemp("cuda"))
    if isinstance(backend, HostBackend):
        require_tool("g++")
    old = rt.use_backend(backend)
    yield backend
    rt.use_backend(old)


def torch7_max_pool2d(x, kernel, stride, padding=(0, 0), ceil_mode=False):
    """F.max_pool2d(..., return_indices=True) with Torch7's ceil rule (THNN
    SpatialDilatedMaxPooling.c): a ceil-mode last window that starts past the input is dropped
    only when some padding is set; with none it is kept, -inf with index -1 (PyTorch always
    drops it). x: an NxCxHxW tensor; kernel, stride, padding: (h, w) pairs. The indices are
    flat in each unpadded HxW plane, as PyTorch's."""
    import torch
    import torch.nn.functional as F

    (kH, kW), (dH, dW), (pH, pW) = kernel, stride, padding
    H, W = x.shape[-2:]

    def size(n, k, d, p):
        span = n + 2 * p - k
        out = (-(-span // d) if ceil_mode else span // d) + 1
        if ceil_mode and (pH or pW) and (out - 1) * d >= n + p:
            out -= 1
        return out

    oH, oW = size(H, kH, dH, pH), size(W, kW, dW, pW)
    # -inf rows and columns for the windows past the input; floor mode then has them all
    eH, eW = max((oH - 1) * dH + kH - H - 2 * pH, 0), max((oW - 1) * dW + kW - W - 2 * pW, 0)
    xp = F.pad(x, (0, eW, 0, eH), value=-float("inf"))
    y, idx = F.max_pool2d(xp, (kH, kW), (dH, dW), (pH, pW), return_indices=True)
    y, idx = y[..., :oH, :oW], idx[..., :oH, :oW]
    h, w = idx // (W + eW), idx % (W + eW)
    return y, torch.where((h < H) & (w < W), h * W + w, torch.full_like(idx, -1))
