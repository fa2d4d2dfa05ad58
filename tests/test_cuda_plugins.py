"""A plugin module with a CUDA elementwise body (cuda_forward/cuda_backward) on the CUDA
target, against the numpy target (the plugin's numpy code) in host emulation."""
import textwrap

import pytest

from cuda_host import compare_with_numpy_target
from graphc.plugin import registered

SWISH = textwrap.dedent('''
    import numpy as np
    from graphc.plugin import Module

    class Swish(Module):
        """x * sigmoid(beta * x)"""
        signature = "beta:num=1"
        cuda_forward = "{{x}} * g_sigmoid((real){{a.beta}} * {{x}})"
        cuda_backward = {"x": "{{gy}} * (g_sigmoid((real){{a.beta}} * {{x}}) * ((real)1 + "
                              "(real){{a.beta}} * {{x}} * ((real)1 - g_sigmoid((real){{a.beta}} * {{x}}))))"}

        def forward(attrs, inputs, params):
            (x,) = inputs
            return x / (1 + np.exp(-attrs["beta"] * x))

        def backward(attrs, inputs, params, output, grad_output):
            (x,) = inputs
            s = 1 / (1 + np.exp(-attrs["beta"] * x))
            return [grad_output * s * (1 + attrs["beta"] * x * (1 - s))]
''')

SPEC = ("require 'nngraph'\nlocal x = nn.Identity()()\n"
        "local y = nn.Linear(4, 5)(nn.Swish(0.5)(nn.Tanh()(x)))\n"
        "return nn.gModule({x}, {nn.Swish()(y)})\n")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_plugin_cuda_body_matches_its_numpy_code(dtype, tmp_path, host):
    plugin = tmp_path / "swish_mods.py"
    plugin.write_text(SWISH)
    with registered([str(plugin)]):
        compare_with_numpy_target(SPEC, {"input1": "Bx4"}, dtype=dtype, name=f"swish_{dtype}")


def test_the_cuda_body_is_in_the_kernels_and_a_plugin_without_one_is_refused(tmp_path):
    from graphc.compiler import Options, compile_spec, parse_shape
    from graphc.errors import SpecError
    plugin = tmp_path / "swish_mods.py"
    plugin.write_text(SWISH)
    opts = Options(shapes={"input1": parse_shape("Bx4")}, target="cuda", emit="cu",
                   plugins=[str(plugin)])
    cu = compile_spec("swish.lua", opts, text=SPEC).source
    assert "g_sigmoid((real)0.5 *" in cu and "g_sigmoid((real)1 *" in cu
    plain = tmp_path / "plain_mods.py"
    plain.write_text(SWISH.replace("cuda_forward", "no_cuda_forward").replace("cuda_backward", "no_cuda_backward"))
    opts.plugins = [str(plain)]
    with pytest.raises(SpecError, match="Swish"):
        compile_spec("swish.lua", opts, text=SPEC)
