"""Model.load_t7 on the CUDA target, through the stand-in for CuPy of test_cuda_fake_cupy
(no GPU here): the weights a .t7 holds reach the device arrays."""
import numpy as np

from cuda_host import require_tool
from graphc.compiler import Options, compile_spec
from t7_models import save_like_torch, spec_model
from t7_writer import save
from test_cuda_fake_cupy import cupy_backend  # noqa: F401 (the fixture)
from test_t7_roundtrip import ROOT, load_module


def test_cuda_model_loads_t7(cupy_backend, tmp_path):  # noqa: F811
    require_tool("g++")  # the stand-in runs the kernels through the host emulation
    spec = str(ROOT / "samples" / "lstm.lua")
    opts = Options(dtype="float64")
    src = load_module(compile_spec(spec, opts).source, "t7cuda_src").Model(dtype="float64", seed=5)
    path = tmp_path / "lstm.t7"
    save(path, save_like_torch(spec_model(spec, opts), src, train=False))
    cuda = load_module(compile_spec(str(path), Options(dtype="float64", target="cuda")).source,
                       "t7cuda").Model(dtype="float64", seed=1).load_t7(path)
    assert cuda.train is False
    np.testing.assert_array_equal(np.asarray(cuda.getParameters()[0]), src.getParameters()[0])
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((3, s[1])) for _, s, _ in src.INPUTS]
    for a, b in zip(src.forward(*xs), cuda.forward(*xs)):
        np.testing.assert_allclose(np.asarray(b), a, rtol=1e-12, atol=1e-12)
