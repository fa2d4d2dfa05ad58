"""One op, one place: the CUDA backend and the passes know no op by name. Ops with kernels of
their own write them through CudaRule's emit hooks (emit_forward/emit_backward, the backend's
emit context `cx`), and `--unroll` asks OpDef.row_wise. A new kernel op therefore touches
graphc/ops/ (and tests) only, which the last test shows by adding one here."""
import math
import re
from pathlib import Path

import numpy as np
import pytest

from graphc.ops import REGISTRY
from graphc.ops.registry import CudaRule, OpDef

from cuda_host import compare_with_numpy_target

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", ["graphc/backends/cuda.py", "graphc/backends/fuse.py",
                                  "graphc/docs.py"])
def test_cuda_codegen_names_no_kernel_op(path):
    """The ops with kernels of their own (and their kernels) appear only in graphc/ops/."""
    # string literals, but not type annotations (`-> "Index"` is the backend's own class)
    words = set(re.findall(r"(?<!-> )[\"'](\w+)[\"']", (ROOT / path).read_text()))
    kernel_ops = {name for name, op in REGISTRY.items() if op.cuda and op.cuda.kind == "kernel"}
    kernels = {op.cuda.kernel for op in REGISTRY.values() if op.cuda and op.cuda.emit_forward}
    named = words & (kernel_ops | kernels)
    assert not named, f"{path} names {sorted(named)}: op facts belong in graphc/ops/"


def test_unroll_asks_the_op_what_is_row_wise():
    source = (ROOT / "graphc/passes/unroll.py").read_text()
    assert "is_row_wise" in source and ".cuda" not in source


def test_kernel_ops_have_emit_hooks_or_a_generic_rule():
    for name, op in REGISTRY.items():
        rule = op.cuda
        if rule is None or rule.kind != "kernel":
            continue
        hooks = (rule.emit_forward is not None, rule.emit_backward is not None)
        if rule.kernel in ("blas", "elem"):
            assert hooks == (False, False), name
        else:
            assert hooks == (True, True), f"{name}: kernel {rule.kernel!r} needs both emit hooks"
        assert rule.epilogue in ("", "bias", "nhwc"), name


def test_elementwise_cuda_ops_are_row_wise():
    for name, op in REGISTRY.items():
        if op.cuda is not None and op.cuda.kind == "pointwise":
            assert op.is_row_wise({}, []), f"{name} is elementwise but not row_wise"
    assert REGISTRY["Linear"].row_wise is True
    assert REGISTRY["Narrow"].is_row_wise({"dimension": 2, "offset": 1, "length": 1}, [("B", 3)])
    assert not REGISTRY["Narrow"].is_row_wise({"dimension": 1, "offset": 1, "length": 1}, [(4, 3)])
    assert not REGISTRY["SpatialConvolution"].is_row_wise({}, [])


# A new op with its own CUDA kernels, defined here only: y = 2x + 1 by a kernel that reads
# x through the fused prologue (`cx.loader`), and its gradient 2 gy by a second kernel.
_TWICE = (
    "{{ loader }}\n"
    "// {{ comment|ccomment }}\n"
    "extern \"C\" __global__ void __launch_bounds__({{ block }}) {{ name }}({{ params|join(', ') }}) {\n"
    "  const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);\n"
    "  if (i >= {{ n }}) return;\n"
    "  o_out[i] = (real)2 * {{ x('i') }}{{ ' + (real)1' if forward }};\n"
    "}\n")


def _twice_kernel(cx, node, v, out, what, forward):
    kb = cx.kernel_builder()
    name = cx.kernel_name(f"twice_{what}")
    loader, load = cx.loader(kb, v, f"twice_{what}_in")
    kb.array(out, write=True, cname="o_out")
    n = kb.count_expr(v.shape)
    cx.add_kernel(name, cx.render(_TWICE, loader=loader, comment=f"{node.name}: {what}",
                                  name=name, params=kb.declarations(), n=n, x=load,
                                  forward=forward), kb)
    return [f"{out} = rt.empty({cx.pyshape(v.shape)}, dt)",
            cx.launch(name, cx.pynumel(v.shape), kb)]


def _twice_forward(cx, node):
    return _twice_kernel(cx, node, node.inputs[0], cx.n(node.outputs[0]), "forward", True)


def _twice_backward(cx, gnode, fwd, targets):
    return _twice_kernel(cx, fwd, gnode.inputs[0], cx.n(targets[0]), "backward", False)


def test_a_new_kernel_op_needs_only_its_op_definition(monkeypatch, host):
    op = OpDef(name="TwicePlusOne", signature="", shape=lambda a, s: s[0], elementwise=True,
               forward="{{y}} = 2 * {{x}} + 1", backward={"x": "2 * {{gy}}"},
               cuda=CudaRule("kernel", kernel="twice", reads="prologue", grad_reads="prologue",
                             emit_forward=_twice_forward, emit_backward=_twice_backward))
    monkeypatch.setitem(REGISTRY, op.name, op)
    spec = ("require 'nngraph'\nlocal x = nn.Identity()()\n"
            "local y = nn.TwicePlusOne()(nn.Tanh()(x)):annotate{name = 'doubled'}\n"
            "return nn.gModule({x}, {nn.Sigmoid()(y)})\n")
    ref, cuda = compare_with_numpy_target(spec, {"input1": "Bx5"}, name="twice")
    assert {"twice_k0_twice_forward", "twice_k2_twice_backward"} <= set(cuda.KERNELS)
    assert "// doubled: forward" in cuda.CUDA_SOURCE
    y = ref.forward(np.zeros((1, 5)))  # sigmoid(2 tanh(0) + 1)
    assert np.allclose(y, 1 / (1 + math.exp(-1)))
