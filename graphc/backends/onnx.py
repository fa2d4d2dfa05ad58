"""The ONNX target (`--emit onnx`): the forward graph as an ONNX model (opset 17), the batch
dimension B symbolic, the Model's weights as initializers. Training-only behaviour exports
in evaluation form: Dropout is the identity (v1: scaled by 1 - p), BatchNormalization uses
its running statistics. An op without a rule here is a located error naming it.

Each rule maps one IR node to ONNX nodes through `Emit`; the rules use the op's own
`derive` (graphc/ops) for axes and slices, so Torch's dimension rules live in one place.
Needs the `onnx` package (`pip install "graphc[onnx]"`).
"""
from __future__ import annotations

import numpy as np

from ..errors import SpecError
from ..ir.graph import Graph, Node, dim_text, is_symbolic
from ..ops import REGISTRY

OPSET = 17


class Emit:
    """Builds the node list: `op(...)` adds one ONNX node and returns its output name(s)."""

    def __init__(self, helper, dtype):
        self.h, self.dtype = helper, np.dtype(dtype)
        self.nodes, self.inits = [], []
        self.count = 0

    def fresh(self, hint="t"):
        self.count += 1
        return f"/{hint}_{self.count}"

    def op(self, kind, inputs, n_out=1, name_hint=None, **attrs):
        outs = [self.fresh(name_hint or kind.lower()) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(kind, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, value, dtype=None, hint="c"):
        from onnx import numpy_helper
        name = self.fresh(hint)
        arr = np.asarray(value, dtype=dtype or self.dtype)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def ints(self, values, hint="shape"):
        return self.const(np.asarray(values, np.int64), np.int64, hint)


def _reshape(e: Emit, x: str, shape) -> str:
    """Reshape to an IR shape (its batch dim, B or B*k, -> -1)."""
    return e.op("Reshape", [x, e.ints([-1 if is_symbolic(d) else d for d in shape])])


def _derive(node: Node, in_shapes):
    op = REGISTRY[node.op]
    return op.derive(node.attrs, in_shapes) if op.derive else {}


# ---- the rules: (emit, node, input names, input shapes, output shapes) -> output name(s) ----

def _unary(kind, **attrs):
    return lambda e, n, xs, s, o: e.op(kind, xs[:1], **attrs)


def _linear(e, n, xs, s, o):
    x, w = xs[0], xs[1]
    bias = xs[2] if len(xs) > 2 else None
    if len(s[0]) == 2:
        return e.op("Gemm", [x, w] + ([bias] if bias else []), transB=1)
    y = e.op("MatMul", [x, e.op("Transpose", [w], perm=[1, 0])])
    return e.op("Add", [y, bias]) if bias else y


def _table_op(kind):
    def rule(e, n, xs, s, o):
        first = s[0]
        ins = [x if tuple(si) == tuple(first) else _reshape(e, x, first) for x, si in zip(xs, s)]
        y = ins[0]
        for x in ins[1:]:
            y = e.op(kind, [y, x])
        return y
    return rule


def _constant_op(kind, attr):
    return lambda e, n, xs, s, o: e.op(kind, [xs[0], e.const(n.attrs[attr])])


def _reshape_rule(e, n, xs, s, o):
    return _reshape(e, xs[0], o[0])


def _split_table(e, n, xs, s, o):
    axis = _derive(n, s)["axis"]
    parts = e.op("Split", [xs[0]], n_out=len(o), axis=axis)
    parts = parts if isinstance(parts, list) else [parts]
    return [e.op("Squeeze", [p, e.ints([axis])]) for p in parts]


def _join_table(e, n, xs, s, o):
    return e.op("Concat", xs, axis=_derive(n, s)["axis"])


def _narrow(e, n, xs, s, o):
    d = _derive(n, s)
    return e.op("Slice", [xs[0], e.ints([d["start"]]), e.ints([d["stop"]]), e.ints([d["axis"]])])


def _select(e, n, xs, s, o):
    d = _derive(n, s)
    return e.op("Gather", [xs[0], e.const(np.int64(d["index"]), np.int64)], axis=d["axis"])


def _softmax(kind):
    return lambda e, n, xs, s, o: e.op(kind, xs[:1], axis=_derive(n, s)["axis"])


def _one_based(e, x):
    return e.op("Sub", [x, e.const(np.int64(1), np.int64)])


def _onehot(e, n, xs, s, o):
    return e.op("OneHot", [_one_based(e, xs[0]), e.const(np.int64(n.attrs["outputSize"]), np.int64),
                           e.const([0, 1])], axis=-1)


def _lookup(e, n, xs, s, o):
    if n.attrs.get("maxNorm") is not None:
        raise _unexportable(n, "maxNorm renormalizes the weight during forward")
    return e.op("Gather", [xs[1], _one_based(e, xs[0])], axis=0)


def _dropout(e, n, xs, s, o):
    a = n.attrs
    if a.get("stochasticInference"):
        raise _unexportable(n, "stochasticInference keeps it random in evaluation")
    if a.get("v1") and a.get("p"):
        return e.op("Mul", [xs[0], e.const(1 - a["p"])])
    return e.op("Identity", xs[:1])


def _batchnorm(e, n, xs, s, o):
    a = n.attrs
    x, rest = xs[0], xs[1:]
    if a.get("affine", True):
        weight, bias, mean, var = rest
    else:
        mean, var = rest
        c = o[0][1] if len(o[0]) > 1 else o[0][0]
        weight, bias = e.const(np.ones(c)), e.const(np.zeros(c))
    rank = len(s[0])
    if rank == 1 or (n.op == "SpatialBatchNormalization" and rank == 3):  # no batch dim
        x = e.op("Unsqueeze", [x, e.ints([0])])
    y = e.op("BatchNormalization", [x, weight, bias, mean, var], epsilon=float(a["eps"]))
    if rank == 1 or (n.op == "SpatialBatchNormalization" and rank == 3):
        y = e.op("Squeeze", [y, e.ints([0])])
    return y


def _batched_4d(rule):
    """Conv/pool rules work on NxCxHxW; a CxHxW input gets a batch of one."""
    def wrapped(e, n, xs, s, o):
        if len(s[0]) == 3:
            xs = [e.op("Unsqueeze", [xs[0], e.ints([0])])] + list(xs[1:])
            return e.op("Squeeze", [rule(e, n, xs, s, o), e.ints([0])])
        return rule(e, n, xs, s, o)
    return wrapped


def _conv(e, n, xs, s, o):
    a = n.attrs
    return e.op("Conv", xs, kernel_shape=[a["kH"], a["kW"]], strides=[a["dH"], a["dW"]],
                pads=[a["padH"], a["padW"], a["padH"], a["padW"]])


def _full_conv(e, n, xs, s, o):
    a = n.attrs
    return e.op("ConvTranspose", xs, kernel_shape=[a["kH"], a["kW"]], strides=[a["dH"], a["dW"]],
                pads=[a["padH"], a["padW"], a["padH"], a["padW"]],
                output_padding=[a["adjH"], a["adjW"]])


def _pool(kind):
    def rule(e, n, xs, s, o):
        a = n.attrs
        ceil = bool(a.get("ceil_mode"))
        for size, k, d, p, out in ((s[0][-2], a["kH"], a["dH"], a["padH"], o[0][-2]),
                                   (s[0][-1], a["kW"], a["dW"], a["padW"], o[0][-1])):
            span = size + 2 * p - k
            onnx_out = (-(-span // d) if ceil else span // d) + 1
            if onnx_out != out:
                raise _unexportable(n, f"ONNX's {'ceil' if ceil else 'floor'} rule gives "
                                       f"{onnx_out} outputs where Torch's gives {out}")
        attrs = dict(kernel_shape=[a["kH"], a["kW"]], strides=[a["dH"], a["dW"]],
                     pads=[a["padH"], a["padW"], a["padH"], a["padW"]], ceil_mode=int(ceil))
        if kind == "AveragePool":
            attrs["count_include_pad"] = int(a.get("count_include_pad", True))
        return e.op(kind, xs[:1], **attrs)
    return rule


def _prelu(e, n, xs, s, o):
    d = _derive(n, s)
    w = xs[1]
    if d.get("wview"):
        w = e.op("Reshape", [w, e.ints(list(d["wview"]))])
    return e.op("PRelu", [xs[0], w])


def _mv(e, n, xs, s, o):
    m, v = xs
    if n.attrs.get("trans"):
        rank = len(s[0])
        m = e.op("Transpose", [m], perm=list(range(rank - 2)) + [rank - 1, rank - 2])
    y = e.op("MatMul", [m, e.op("Unsqueeze", [v, e.ints([-1])])])
    return e.op("Squeeze", [y, e.ints([-1])])


def _mm(e, n, xs, s, o):
    a, b = xs
    for k, flag in enumerate(("transA", "transB")):
        if n.attrs.get(flag):
            rank = len(s[k])
            t = e.op("Transpose", [xs[k]], perm=list(range(rank - 2)) + [rank - 1, rank - 2])
            a, b = (t, b) if k == 0 else (a, t)
    return e.op("MatMul", [a, b])


def _softplus(e, n, xs, s, o):
    """log(1 + exp(beta x)) / beta, and x where beta x > threshold (Torch's rule)."""
    x, beta = xs[0], float(n.attrs["beta"])
    z = e.op("Mul", [x, e.const(beta)]) if beta != 1 else x
    soft = e.op("Softplus", [z])
    if beta != 1:
        soft = e.op("Div", [soft, e.const(beta)])
    above = e.op("Greater", [z, e.const(float(n.attrs.get("threshold", 20)))])
    return e.op("Where", [above, x, soft])


def _reduce(kind):
    """Sum/Mean (ReduceSum takes its axes as an input at opset 13+) and Max/Min."""
    def rule(e, n, xs, s, o):
        d = _derive(n, s)
        keep = int(not d["squeeze"])
        if kind == "Sum":
            op = "ReduceMean" if d["mean"] else "ReduceSum"
        else:
            op = "Reduce" + kind
        if op == "ReduceSum":
            return e.op(op, [xs[0], e.ints([d["axis"]])], keepdims=keep)
        return e.op(op, xs[:1], axes=[d["axis"]], keepdims=keep)
    return rule


def _to_out_shape(e, n, xs, s, o):
    """A view whose output shape says it all (Squeeze, Unsqueeze)."""
    if sum(is_symbolic(d) for d in o[0]) > 1:
        raise _unexportable(n, "more than one batch dimension")
    return _reshape(e, xs[0], o[0])


def _threshold(e, n, xs, s, o):
    a = n.attrs
    return e.op("Where", [e.op("Greater", [xs[0], e.const(a["th"])]), xs[0], e.const(a["v"])])


def _clamp(e, n, xs, s, o):
    return e.op("Clip", [xs[0], e.const(n.attrs["min_value"]), e.const(n.attrs["max_value"])])


RULES = {
    "Linear": _linear,
    "CAddTable": _table_op("Add"), "CMulTable": _table_op("Mul"),
    "CSubTable": _table_op("Sub"), "CDivTable": _table_op("Div"),
    "Sigmoid": _unary("Sigmoid"), "Tanh": _unary("Tanh"), "ReLU": _unary("Relu"),
    "Exp": _unary("Exp"), "Abs": _unary("Abs"), "Log": _unary("Log"),
    "SoftSign": _unary("Softsign"), "Contiguous": _unary("Identity"), "SoftPlus": _softplus,
    "LeakyReLU": lambda e, n, xs, s, o: e.op("LeakyRelu", xs[:1], alpha=float(n.attrs["negval"])),
    "ELU": lambda e, n, xs, s, o: e.op("Elu", xs[:1], alpha=float(n.attrs["alpha"])),
    "HardTanh": _clamp, "Clamp": _clamp,
    "Square": lambda e, n, xs, s, o: e.op("Mul", [xs[0], xs[0]]),
    "AddConstant": _constant_op("Add", "constant_scalar"),
    "MulConstant": _constant_op("Mul", "constant_scalar"),
    "Reshape": _reshape_rule, "View": _reshape_rule,
    "SplitTable": _split_table, "JoinTable": _join_table,
    "Narrow": _narrow, "Select": _select,
    "SoftMax": _softmax("Softmax"), "LogSoftMax": _softmax("LogSoftmax"),
    "OneHot": _onehot, "LookupTable": _lookup,
    "Dropout": _dropout,
    "BatchNormalization": _batchnorm, "SpatialBatchNormalization": _batchnorm,
    "SpatialConvolution": _batched_4d(_conv),
    "SpatialFullConvolution": _batched_4d(_full_conv),
    "SpatialMaxPooling": _batched_4d(_pool("MaxPool")),
    "SpatialAveragePooling": _batched_4d(_pool("AveragePool")),
    "PReLU": _prelu, "MV": _mv, "MM": _mm,
    "Sum": _reduce("Sum"), "Mean": _reduce("Sum"), "Max": _reduce("Max"), "Min": _reduce("Min"),
    "Transpose": lambda e, n, xs, s, o: e.op("Transpose", xs[:1], perm=list(_derive(n, s)["perm"])),
    "Squeeze": _to_out_shape, "Unsqueeze": _to_out_shape,
    "Power": lambda e, n, xs, s, o: e.op("Pow", [xs[0], e.const(n.attrs["p"])]),
    "Sqrt": _unary("Sqrt"), "Threshold": _threshold,
    "Mul": lambda e, n, xs, s, o: e.op("Mul", xs[:2]),
}


def _unexportable(node: Node, why: str = "") -> SpecError:
    return SpecError(f"nn.{node.op} has no ONNX form in graphc's exporter (--emit onnx)"
                     + (f": {why}" if why else "") + f"; exportable modules: "
                     f"{', '.join(sorted(RULES))}", node.loc)


def check_exportable(graph: Graph):
    """Raise the located error for the first node without an ONNX rule."""
    for node in graph.nodes:
        if node.op not in RULES:
            raise _unexportable(node)


def generate(graph: Graph, weights: dict, dtype: str, name: str) -> bytes:
    """The serialized ONNX model. `weights`: Param name -> array (parameters and buffers)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise SpecError("--emit onnx needs the onnx package: pip install \"graphc[onnx]\"") from None
    check_exportable(graph)
    e = Emit(helper, dtype)
    elem = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}[dtype]
    names: dict = {}

    def info(v, label):
        shape = [dim_text(d) if is_symbolic(d) else d for d in v.shape]  # 'B', 'B*5'
        return helper.make_tensor_value_info(label, TensorProto.INT64 if v.dtype == "index"
                                             else elem, shape)

    inputs = []
    for v in graph.inputs:
        names[v] = v.name
        inputs.append(info(v, v.name))
    for p in graph.params + graph.buffers:
        names[p.value] = p.name
        e.inits.append(numpy_helper.from_array(np.asarray(weights[p.name], dtype), p.name))
    for node in graph.nodes:
        op = REGISTRY[node.op]
        xs = [names[v] for v in node.inputs]
        s = [v.shape for v in node.inputs]
        data_shapes = s[: len(s) - len(op.active_params(node.attrs))]
        outs = [v for v in node.outputs if v.dtype != "aux"]
        try:
            got = RULES[node.op](e, node, xs, data_shapes, [v.shape for v in outs])
        except SpecError:
            raise
        except Exception as ex:  # a shape this rule does not handle
            raise _unexportable(node, f"{type(ex).__name__}: {ex}") from None
        got = got if isinstance(got, list) else [got]
        for v, g in zip(outs, got):
            names[v] = g
    outputs = []
    for v, label in zip(graph.outputs, graph.output_names):
        e.nodes.append(helper.make_node("Identity", [names[v]], [label]))
        outputs.append(info(v, label))
    g = helper.make_graph(e.nodes, name, inputs, outputs, e.inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="graphc")
    model.ir_version = min(model.ir_version, 8)  # readable by onnxruntime >= 1.14
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_weights(graph: Graph, dtype: str, weights_file: str | None, t7=None) -> dict:
    """Param name -> array: what the generated Model would hold: Model.load(weights_file) if
    given, else a .t7's own weights (t7 = (path, entry)), else its seed-0 initialisation."""
    from graphc_runtime import Module
    cls = type("ExportedModel", (Module,), {
        "PARAMETERS": tuple((p.name, p.value.shape, p.init) for p in graph.params),
        "BUFFERS": tuple((p.name, p.value.shape, p.init) for p in graph.buffers),
        "T7_MODULES": graph.t7_modules})
    m = cls(dtype=dtype, seed=0)
    try:
        if weights_file:
            m.load(weights_file)
        elif t7 is not None:
            m.load_t7(t7[0], t7[1])
    except (OSError, ValueError) as e:
        raise SpecError(f"--weights {weights_file}: {e}" if weights_file else str(e)) from None
    arrays = m._weights + m._buffers
    return {p.name: a for p, a in zip(graph.params + graph.buffers, arrays)}
