"""Identity and Linear."""
import math

from .registry import B, CudaRule, ParamSpec, ShapeError, defop, shape_text, uniform


def _no_bias(a):
    a["bias"] = False


def _linear_shape(a, shapes):
    (x,) = shapes
    # rank 3 only from passes/simplify.py: a T x B x N sequence projected in one GEMM
    ranks = (1, 2, 3) if a.get("sequence") else (1, 2)
    if len(x) not in ranks or x[-1] != a["inputSize"]:
        raise ShapeError(f"Linear({a['inputSize']} -> {a['outputSize']}) expects input of shape "
                         f"{a['inputSize']} or Nx{a['inputSize']}, got {shape_text(x)}")
    return x[:-1] + (a["outputSize"],)


def _cuda_forward(cx, node):
    """y = x @ W.T by cuBLAS (into the raw GEMM result when a bias epilogue follows)."""
    x, w = node.inputs[0], node.inputs[1]
    out = cx.gemm(node) or node.outputs[0]
    if len(x.shape) == 3:  # a hoisted sequence: one GEMM over its rows (not one per step)
        a = node.attrs
        return [f"{cx.n(out)} = rt.matmul({cx.n(x)}.reshape(-1, {a['inputSize']}), {cx.n(w)}.T)"
                f".reshape({cx.pyshape(out.shape)})"]
    return [f"{cx.n(out)} = rt.matmul({cx.n(x)}, {cx.n(w)}.T)"]


def _cuda_backward(cx, gnode, fwd, targets):
    x, w = fwd.inputs[0], fwd.inputs[1]
    gy = cx.n(gnode.inputs[0])
    rows = {1: "1, -1", 3: "-1, {}"}.get(len(x.shape))  # rank 3: a hoisted sequence, as rows
    gy2 = f"{gy}.reshape({rows.format(fwd.attrs['outputSize'])})" if rows else gy
    x2 = f"{cx.n(x)}.reshape({rows.format(fwd.attrs['inputSize'])})" if rows else cx.n(x)
    lines = []
    if 0 in targets:  # a sequence's rows back to T x B x N; a row vector's gradient stays rank 1
        dx = (f"rt.matmul({gy2}, {cx.n(w)}).reshape({cx.pyshape(x.shape)})" if len(x.shape) == 3
              else f"rt.matmul({gy}, {cx.n(w)})")
        lines.append(f"{cx.n(targets[0])} = {dx}")
    if 1 in targets:
        lines.append(f"rt.addmm({cx.grad_buffer(targets[1])}, {gy2}.T, {x2}{cx.beta_of(targets[1])})")
    if 2 in targets:
        lines.append(f"rt.add_colsum({cx.grad_buffer(targets[2])}, {gy2}{cx.beta_of(targets[2])})")
    return lines


defop(
    name="Identity", signature="", inputs=("x",), passthrough=True, shape=lambda a, s: s[0],
    forward="", doc="Passes its input (a tensor or a table) through unchanged.",
)

defop(
    name="Linear", signature="inputSize:int, outputSize:int, bias:bool=true",
    params=(
        ParamSpec("weight", lambda a: (a["outputSize"], a["inputSize"]),
                  uniform(lambda a: 1 / math.sqrt(a["inputSize"]))),
        ParamSpec("bias", lambda a: (a["outputSize"],),
                  uniform(lambda a: 1 / math.sqrt(a["inputSize"])), present=lambda a: a["bias"]),
    ),
    methods={"noBias": _no_bias},
    shape=_linear_shape, row_wise=True,
    input_hint=lambda a, slot, shapes: (B, a["inputSize"]),
    # A rank-3 (sequence) input is flattened to rows so that it is one GEMM, not T.
    forward=("{% set x2 = x ~ '.reshape(-1, ' ~ a.inputSize ~ ')' if rank == 3 else x %}"
             "{{y}} = {{ binop('matmul', x2, weight ~ '.T') }}{% if bias %}\n{{y}} += {{bias}}{% endif %}"
             "{% if rank == 3 %}\n{{y}} = {{y}}.reshape({{x}}.shape[:2] + ({{a.outputSize}},)){% endif %}"),
    backward={
        "x": "{{ binop('matmul', gy, weight) }}",
        # rt.matmul_into: a product over one row (batch size 1) as a broadcast multiply
        "weight": "{% if rank == 1 %}np.outer({{gy}}, {{x}}){% elif rank == 3 %}{{gy}}.reshape(-1, {{a.outputSize}}).T"
                  " @ {{x}}.reshape(-1, {{a.inputSize}}){% elif out %}rt.matmul_into({{gy}}.T, {{x}}, {{out}})"
                  "{% else %}{{gy}}.T @ {{x}}{% endif %}",
        "bias": "{% if rank == 1 %}{{gy}}{% elif rank == 3 %}{{gy}}.sum((0, 1)){% else %}{{gy}}.sum(0){% endif %}",
    },
    flops=lambda a, ins, out: 2 * math.prod(ins[0]) * a["outputSize"],
    out=lambda a, ins: {1: ("y", "x"), 2: ("y", "x", "weight")}.get(len(ins[0]), ("x",)),
    doc="y = x W^T + b. Input N or BxN.",
    # cuBLAS GEMM (x @ W.T); the bias joins the consumers' fused kernel as an epilogue
    cuda=CudaRule("kernel", kernel="linear", reads="plain", grad_reads="plain", epilogue="bias",
                  gemm_inner=lambda a: a["inputSize"],
                  doc="cuBLAS GEMM, fused bias",
                  emit_forward=_cuda_forward, emit_backward=_cuda_backward),
)

