"""Elementwise activations and the softmax family."""
from ..ir.graph import shape_str as _s
from .registry import CudaRule, ShapeError, batched, c_dim, defop, is_symbolic


def _same(a, shapes):
    return shapes[0]


def _softmax_axis(a, shapes):
    # Torch's THNN rule: 1D -> all, 2D (N,C) -> dim 2, 3D (C,H,W) -> dim 1, 4D -> dim 2.
    rank = len(shapes[0])
    if rank not in (1, 2, 3, 4):
        raise ShapeError(f"expects a 1D, 2D, 3D or 4D input, got {rank}D")
    return {"axis": {1: 0, 2: 1, 3: 0, 4: 1}[rank]}


def _softmax_shape(a, shapes):
    _softmax_axis(a, shapes)
    return shapes[0]



# ---- CUDA (kind 'kernel'): one thread per softmax row, reading the input through the fused
# prologue (`cx.loader`), in backends/cuda.py's emit context `cx`

def _softmax_geometry(node, shape):
    """(C, inner, rows): the softmax runs over C elements inner apart, once per row."""
    axis = _softmax_axis(node.attrs, [shape])["axis"]
    inner = 1
    for dim in shape[axis + 1:]:
        inner *= dim
    rows = tuple(shape[:axis]) + ((inner,) if inner > 1 else ())
    return shape[axis], inner, rows


def _row_stride(C, inner):
    """C * inner, as C text when C is the batch dim (B, or B*k)."""
    if not is_symbolic(C):
        return C * inner
    return c_dim(C) if inner == 1 else f"{c_dim(C)} * {inner}"


_SOFTMAX_FWD = (
    '{{ loader }}\n'
    "// {{ comment|ccomment }}: forward, one thread per row of {{ C }} ({{ 'log(' if log }}exp(x - max) / sum{{ ')' if log }}, stable)\n"
    'extern "C" __global__ void __launch_bounds__({{ block }}) {{ name }}_fwd({{ fwd_params|join(\', \') }}) {\n'
    '  {{ threads("r", rows) }}\n'
    '  const int base = {% if inner == 1 %}r * {{ C }}{% else %}(r / {{ inner }}) * {{ row_stride }} + r % {{ inner }}{% endif %};\n'
    '  real m = {{ x("base") }};\n'
    '  for (int c = 1; c < {{ C }}; ++c) m = g_fmax(m, {{ x("base + c * " ~ inner) }});\n'
    '  real s = 0;\n'
    '  for (int c = 0; c < {{ C }}; ++c) s += g_exp({{ x("base + c * " ~ inner) }} - m);\n'
    '{% if log %}\n'
    '  const real lse = m + g_log(s);\n'
    '  for (int c = 0; c < {{ C }}; ++c) o_y[base + c * {{ inner }}] = {{ x("base + c * " ~ inner) }} - lse;\n'
    '{% else %}\n'
    '  const real inv = (real)1 / s;\n'
    '  for (int c = 0; c < {{ C }}; ++c) o_y[base + c * {{ inner }}] = g_exp({{ x("base + c * " ~ inner) }} - m) * inv;\n'
    '{% endif %}\n'
    '{{ end_threads }}'
    '}\n')
_SOFTMAX_BWD = (
    '{{ loader }}\n'
    '// {{ comment|ccomment }}: backward, one thread per row of {{ C }}\n'
    'extern "C" __global__ void __launch_bounds__({{ block }}) {{ name }}_bwd({{ bwd_params|join(\', \') }}) {\n'
    '  {{ threads("r", rows) }}\n'
    '  const int base = {% if inner == 1 %}r * {{ C }}{% else %}(r / {{ inner }}) * {{ row_stride }} + r % {{ inner }}{% endif %};\n'
    '  real s = 0;\n'
    '{% if log %}\n'
    '  for (int c = 0; c < {{ C }}; ++c) s += {{ gy("base + c * " ~ inner) }};\n'
    '  for (int c = 0; c < {{ C }}; ++c) {\n'
    '    const int k = base + c * {{ inner }};\n'
    '    o_gx[k] = {{ gy("k") }} - g_exp(i_y[k]) * s;\n'
    '  }\n'
    '{% else %}\n'
    '  for (int c = 0; c < {{ C }}; ++c) s += {{ gy("base + c * " ~ inner) }} * i_y[base + c * {{ inner }}];\n'
    '  for (int c = 0; c < {{ C }}; ++c) {\n'
    '    const int k = base + c * {{ inner }};\n'
    '    o_gx[k] = i_y[k] * ({{ gy("k") }} - s);\n'
    '  }\n'
    '{% endif %}\n'
    '{{ end_threads }}'
    '}\n')


def _softmax_cuda_forward(cx, node):
    x, y = node.inputs[0], node.outputs[0]
    C, inner, rows = _softmax_geometry(node, x.shape)
    kb = cx.kernel_builder()
    kb.uses_B = is_symbolic(C)  # a 3-D batched input is CxHxW to Torch: the softmax runs over B
    name = cx.kernel_name(node.op)
    loader_src, load = cx.loader(kb, x, f"{node.op.lower()}_x")
    kb.array(cx.n(y), write=True, cname="o_y")
    n_rows = kb.count_expr(rows) if rows else "1"
    src = cx.render(_SOFTMAX_FWD, loader=loader_src, comment=cx.describe(node), name=name,
                    fwd_params=kb.declarations(), rows=n_rows, x=load, C=C, inner=inner,
                    log=node.op == "LogSoftMax", row_stride=_row_stride(C, inner))
    cx.add_kernel(name + "_fwd", src, kb)
    return [f"{cx.n(y)} = rt.empty({cx.pyshape(y.shape)}, dt)",
            cx.launch(name + "_fwd", cx.pynumel(rows) if rows else "1", kb)]


def _softmax_cuda_backward(cx, gnode, fwd, targets):
    x, y = fwd.inputs[0], fwd.outputs[0]
    C, inner, rows = _softmax_geometry(fwd, x.shape)
    gx = cx.n(targets[0])
    kb = cx.kernel_builder()
    kb.uses_B = is_symbolic(C)
    name = cx.kernel_name(fwd.op)
    loader_src, load = cx.loader(kb, gnode.inputs[0], f"{fwd.op.lower()}_gy")
    kb.array(cx.n(y), cname="i_y")
    kb.array(gx, write=True, cname="o_gx")
    n_rows = kb.count_expr(rows) if rows else "1"
    src = cx.render(_SOFTMAX_BWD, loader=loader_src, comment=cx.describe(gnode), name=name,
                    bwd_params=kb.declarations(), rows=n_rows, gy=load, C=C, inner=inner,
                    row_stride=_row_stride(C, inner), log=fwd.op == "LogSoftMax")
    cx.add_kernel(name + "_bwd", src, kb)
    return [f"{gx} = rt.empty({cx.pyshape(x.shape)}, dt)",
            cx.launch(name + "_bwd", cx.pynumel(rows) if rows else "1", kb)]


_SOFTMAX_CUDA = CudaRule("kernel", kernel="softmax", reads="prologue", grad_reads="prologue",
                         emit_forward=_softmax_cuda_forward, emit_backward=_softmax_cuda_backward)


_OVER_B = ("Torch7's rank rule is kept for the compiled shape: a batched 3-D input (Bx...x...) "
           "is reduced over dim 1, the batch dimension B, with a compile-time warning; a model "
           "called without B (a batch of one) keeps that rule.")


def softmax_over_batch(constant):
    """The `warn` rule of SoftMax, LogSoftMax and SoftMin: Torch's rank rule reduces a 3-D
    (or 1-D) input over dim 1, which is B for a batched input: each result then mixes the
    samples of a batch, and a batch of one gives `constant`. Legal Torch, but almost always a
    porting bug (a model meant for 2-D rows met a 3-D batch)."""
    def rule(a, shapes):
        x = shapes[0]
        if _softmax_axis(a, shapes)["axis"] != 0 or not batched(x):
            return None
        text = (f"reduces over dimension 1 of its {_s(x)} input, the batch dimension B (Torch7 "
                f"reduces a {len(x)}-D input over dim 1): it mixes the samples of a batch, and "
                f"called without B (a batch of one) it gives all {constant}. Usually a porting bug")
        if len(x) == 1:
            return text + "; give each sample the values to normalize (a BxN input)"
        h, w = x[1:]
        return (text + f"; to normalize within each sample, View to 2-D first: nn.View({h * w}) "
                f"(over all {h * w} values), or to 4-D: nn.View({h}, {w}, 1) (over the {h} of "
                f"each column), nn.Transpose({{2, 3}}) then nn.View({w}, {h}, 1) (over the {w} "
                f"of each row)")
    return rule


defop(
    name="Tanh", signature="", shape=_same, elementwise=True, row_wise=True,
    forward="{{y}} = {{ ufunc('tanh', x) }}", doc="Elementwise tanh.", out=("y", "x"),
    # in place: one new array instead of three temporaries
    backward_stmt="{{g.x}} = {{ binop('multiply', y, y) }}\nnp.subtract(1, {{g.x}}, out={{g.x}})\n{{g.x}} *= {{gy}}",
    cuda=CudaRule("pointwise", forward="g_tanh({{x}})", backward={"x": "{{gy}} * (1 - {{y}} * {{y}})"}),
)

defop(
    name="Sigmoid", signature="", shape=_same, elementwise=True, row_wise=True,
    # In place in one new array. 1 / (1 + exp(-x)) is a third faster than 0.5(1 + tanh(x/2))
    # on large arrays (numpy's float32 exp is twice as fast as its tanh; exp(-x) = inf
    # below about -88 gives exactly 0, so that overflow warning is silenced), but np.errstate
    # costs more than it saves on small ones (the tutorial's cell ran 7% slower).
    forward=("{% if elements < 256 %}{{y}} = {{ ufunc('multiply', x, 0.5) }}\nnp.tanh({{y}}, out={{y}})\n"
             "{{y}} += 1\n{{y}} *= 0.5{% else %}with np.errstate(over='ignore'):\n"
             "    {{y}} = {{ ufunc('negative', x) }}\n    np.exp({{y}}, out={{y}})\n{{y}} += 1\n"
             "np.reciprocal({{y}}, out={{y}}){% endif %}"),
    backward_stmt="{{g.x}} = {{ binop('subtract', 1, y) }}\n{{g.x}} *= {{y}}\n{{g.x}} *= {{gy}}",
    doc="Elementwise logistic sigmoid.", out=("y", "x"),
    cuda=CudaRule("pointwise", forward="g_sigmoid({{x}})", backward={"x": "{{gy}} * {{y}} * (1 - {{y}})"}),
)

defop(
    name="ReLU", signature="inplace:bool=false", shape=_same, elementwise=True, row_wise=True,
    forward="{{y}} = {{ ufunc('maximum', x, 0) }}", out=("y",),
    backward={"x": "{{gy}} * ({{y}} > 0)"}, doc="max(x, 0); the gradient is 0 at x = 0.",
    torch_diff="`inplace` is accepted and ignored: graphc never aliases activations.",
    # `x <= 0 ? 0 : x` keeps NaN, as np.maximum does
    cuda=CudaRule("pointwise", forward="({{x}} <= 0 ? (real)0 : {{x}})",
                  backward={"x": "({{y}} > 0 ? {{gy}} : (real)0)"}),
)

defop(
    name="SoftMax", signature="", shape=_softmax_shape, derive=_softmax_axis,
    warn=softmax_over_batch("ones"), torch_diff=_OVER_B,
    forward=("{{y}} = np.exp({{x}} - {{x}}.max({{d.axis}}, keepdims=True))\n"
             "{{y}} /= {{y}}.sum({{d.axis}}, keepdims=True)"),
    backward={"x": "{{y}} * ({{gy}} - ({{gy}} * {{y}}).sum({{d.axis}}, keepdims=True))"},
    doc="Over the last dim for 1D/2D input, over channels for 3D (CxHxW) and 4D (NxCxHxW).",
    cuda=_SOFTMAX_CUDA,
)

defop(
    name="LogSoftMax", signature="", shape=_softmax_shape, derive=_softmax_axis,
    warn=softmax_over_batch("zeros"), torch_diff=_OVER_B,
    forward=("{{y}} = {{x}} - {{x}}.max({{d.axis}}, keepdims=True)\n"
             "{{y}} -= np.log(np.exp({{y}}).sum({{d.axis}}, keepdims=True))"),
    backward={"x": "{{gy}} - np.exp({{y}}) * {{gy}}.sum({{d.axis}}, keepdims=True)"},
    doc="Same dimension rule as SoftMax.",
    cuda=_SOFTMAX_CUDA,
)

defop(
    name="ReLU6", signature="inplace:bool=false", shape=_same, elementwise=True, row_wise=True,
    forward="{{y}} = np.clip({{x}}, 0, 6)",
    # Torch7's ReLU6 runs THNN's HardTanh(0, 6): the gradient passes for 0 <= x <= 6
    backward={"x": "{{gy}} * (({{x}} >= 0) & ({{x}} <= 6))"},
    doc="min(max(x, 0), 6), Torch's HardTanh(0, 6); the gradient passes for 0 <= x <= 6.",
    torch_diff="At x = 0 and x = 6 the gradient passes, as Torch's out-of-place kernel does "
               "(its in-place kernel gives 0 there). `inplace` is accepted and ignored.",
    cuda=CudaRule("pointwise", forward="({{x}} < 0 ? (real)0 : {{x}} > 6 ? (real)6 : {{x}})",
                  backward={"x": "({{x}} >= 0 && {{x}} <= 6 ? {{gy}} : (real)0)"}),
)
