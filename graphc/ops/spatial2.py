"""SpatialAveragePooling, SpatialFullConvolution and TemporalConvolution (Torch7 argument
order: kW before kH). The numpy kernels are in graphc_runtime.kernels."""
import math

from .registry import CudaRule, ParamSpec, ShapeError, B, defop, uniform
from .spatial import _image, pool_out

_4D = "{% if rank == 3 %}[None]{% endif %}"  # kernels take NCHW; CHW gets a batch of one
_3D = "{% if rank == 3 %}[0]{% endif %}"


def _s(shape):
    return "x".join(map(str, shape))


def _positive(a, names):
    return min(a[n] for n in names) >= 1


# ---- SpatialAveragePooling ------------------------------------------------------------------


def _avg_check(a):
    a.setdefault("ceil_mode", False)
    a.setdefault("count_include_pad", True)
    if not _positive(a, ("kW", "kH", "dW", "dH")) or min(a["padW"], a["padH"]) < 0:
        return "kernel sizes and strides must be >= 1 and padding >= 0"
    if a["padW"] > a["kW"] // 2 or a["padH"] > a["kH"] // 2:
        return (f"pad should be smaller than half of kernel size (pad {a['padW']}x{a['padH']}, "
                f"kernel {a['kW']}x{a['kH']})")


def _avg_shape(a, shapes):
    x = shapes[0]
    _, h, w = _image(x, None, "SpatialAveragePooling")
    if h == B or w == B:
        raise ShapeError("the image height and width cannot be the batch dimension B")
    if h + 2 * a["padH"] < a["kH"] or w + 2 * a["padW"] < a["kW"]:
        raise ShapeError(f"input image {h}x{w} (padded {h + 2 * a['padH']}x{w + 2 * a['padW']}) "
                         f"is smaller than the {a['kH']}x{a['kW']} kernel")
    oh = pool_out(h, a["kH"], a["dH"], a["padH"], a["ceil_mode"])
    ow = pool_out(w, a["kW"], a["dW"], a["padW"], a["ceil_mode"])
    return x[:-3] + (x[-3], oh, ow)


def _setter(key, value):
    def method(a):
        a[key] = value
    return method

# CUDA: gathers. The divisor of the window starting at row h0 (< 0 in the padding): the
# window clipped to the padded input (count_include_pad), else to the input; likewise columns.
_AVG_SPAN = (
    "{% macro span(s0, k, size, pad) %}"
    "{% if a.count_include_pad %}({{s0}} + {{k}} < {{size + pad}} ? {{k}} : {{size + pad}} - {{s0}})"
    "{% else %}({{s0}} + {{k}} < {{size}} ? {{s0}} + {{k}} : {{size}}) - ({{s0}} > 0 ? {{s0}} : 0)"
    "{% endif %}{% endmacro %}"
    "{% set pre, H, W = o[:-3], shp.x[-2], shp.x[-1] %}\n")
_AVG_CUDA = CudaRule(
    "kernel", kernel="elem",
    # one thread per output element: the mean over its window's cells inside the input
    forward=_AVG_SPAN + (
        "const int h0 = {{o[-2]}} * {{a.dH}} - {{a.padH}}, w0 = {{o[-1]}} * {{a.dW}} - {{a.padW}};\n"
        "const int hs = h0 > 0 ? h0 : 0, ws = w0 > 0 ? w0 : 0;\n"
        "const int he = h0 + {{a.kH}} < {{H}} ? h0 + {{a.kH}} : {{H}}, "
        "we = w0 + {{a.kW}} < {{W}} ? w0 + {{a.kW}} : {{W}};\n"
        "real s = 0;\n"
        "for (int h = hs; h < he; ++h)\n"
        "  for (int w = ws; w < we; ++w) s += {{ ld(x, *(pre + [o[-3], 'h', 'w'])) }};\n"
        "return s / (real)(({{ span('h0', a.kH, H, a.padH) }}) * ({{ span('w0', a.kW, W, a.padW) }}));"),
    # one thread per input element: the windows oh * dH <= h + padH < oh * dH + kH (likewise w)
    backward={"x": _AVG_SPAN + (
        "{% set oH, oW = shp.y[-2], shp.y[-1] %}"
        "const int hp = {{o[-2]}} + {{a.padH}}, wp = {{o[-1]}} + {{a.padW}};\n"
        "const int th = hp - {{a.kH - 1}}, tw = wp - {{a.kW - 1}};\n"
        "const int oh0 = th > 0 ? (th + {{a.dH - 1}}) / {{a.dH}} : 0, "
        "ow0 = tw > 0 ? (tw + {{a.dW - 1}}) / {{a.dW}} : 0;\n"
        "const int oh1 = hp / {{a.dH}} < {{oH - 1}} ? hp / {{a.dH}} + 1 : {{oH}}, "
        "ow1 = wp / {{a.dW}} < {{oW - 1}} ? wp / {{a.dW}} + 1 : {{oW}};\n"
        "real s = 0;\n"
        "for (int oh = oh0; oh < oh1; ++oh) {\n"
        "  const int h0 = oh * {{a.dH}} - {{a.padH}};\n"
        "  const int dh = {{ span('h0', a.kH, H, a.padH) }};\n"
        "  for (int ow = ow0; ow < ow1; ++ow) {\n"
        "    const int w0 = ow * {{a.dW}} - {{a.padW}};\n"
        "    s += {{ ld(gy, *(pre + [o[-3], 'oh', 'ow'])) }} / (real)(dh * ({{ span('w0', a.kW, W, a.padW) }}));\n"
        "  }\n"
        "}\n"
        "return s;")},
)


_AVG = ("{{a.kH}}, {{a.kW}}, {{a.dH}}, {{a.dW}}, {{a.padH}}, {{a.padW}}, {{a.ceil_mode}}, "
        "{{a.count_include_pad}}")
defop(
    name="SpatialAveragePooling",
    signature="kW:int, kH:int, dW:int=1, dH:int=1, padW:int=0, padH:int=0",
    check=_avg_check, shape=_avg_shape,
    methods={"ceil": _setter("ceil_mode", True), "floor": _setter("ceil_mode", False),
             "setCountIncludePad": _setter("count_include_pad", True),
             "setCountExcludePad": _setter("count_include_pad", False)},
    flops=lambda a, ins, out: math.prod(out) * a["kH"] * a["kW"],
    forward="{{y}} = rt.avgpool2d_forward({{x}}" + _4D + ", " + _AVG + ")" + _3D,
    # the input's shape is static but for the batch: the backward does not keep the input
    backward={"x": "rt.avgpool2d_backward({{gy}}" + _4D + ", {% if rank == 3 %}(1, "
                   "{{in_shapes[0]|join(', ')}}){% else %}({{gy}}.shape[0], "
                   "{{in_shapes[0][1:]|join(', ')}}){% endif %}, " + _AVG + ")" + _3D},
    doc="Mean over kH x kW windows (dW, dH default to 1). Padding counts in the divisor "
        "(`:setCountExcludePad()` divides by the real cells only); a ceil-mode window that "
        "overhangs the padding divides by its part inside the padded input. `:ceil()` rounds "
        "the output size up.",
    torch_diff="In ceil mode a last window that would start past the input is dropped even "
               "with no padding (Torch7 drops it only when padding is set; that needs a "
               "stride larger than the kernel). The legacy `divide = false` field is not "
               "supported.",
    cuda=_AVG_CUDA,
)

# ---- SpatialFullConvolution -------------------------------------------------------------------


def _full_check(a):
    if not _positive(a, ("kW", "kH", "dW", "dH")) or min(a["padW"], a["padH"]) < 0:
        return "kernel sizes and strides must be >= 1 and padding >= 0"
    if min(a["adjW"], a["adjH"]) < 0 or a["adjW"] > a["dW"] - 1 or a["adjH"] > a["dH"] - 1:
        return (f"adjW and adjH must be smaller than dW and dH (at most dW - 1 = {a['dW'] - 1} "
                f"and dH - 1 = {a['dH'] - 1}), got adjW = {a['adjW']}, adjH = {a['adjH']}")


def _full_shape(a, shapes):
    x = shapes[0]
    _, h, w = _image(x, a["nInputPlane"], "SpatialFullConvolution")
    if h == B or w == B:
        raise ShapeError("the image height and width cannot be the batch dimension B")
    oh = (h - 1) * a["dH"] - 2 * a["padH"] + a["kH"] + a["adjH"]
    ow = (w - 1) * a["dW"] - 2 * a["padW"] + a["kW"] + a["adjW"]
    if oh < 1 or ow < 1:
        raise ShapeError(f"input {h}x{w} gives an empty output ({oh}x{ow}): the padding is "
                         "too large")
    return x[:-3] + (a["nOutputPlane"], oh, ow)


def _no_bias(a):
    a["bias"] = False


_conv_stdv = uniform(lambda a: 1 / math.sqrt(a["kW"] * a["kH"] * a["nInputPlane"]))
_FULL = "{{a.dH}}, {{a.dW}}, {{a.padH}}, {{a.padW}}, {{a.adjH}}, {{a.adjW}}"
defop(
    name="SpatialFullConvolution",
    signature="nInputPlane:int, nOutputPlane:int, kW:int, kH:int, dW:int=1, dH:int=1, "
              "padW:int=0, padH:int=0, adjW:int=0, adjH:int=0",
    params=(
        ParamSpec("weight", lambda a: (a["nInputPlane"], a["nOutputPlane"], a["kH"], a["kW"]),
                  _conv_stdv),
        ParamSpec("bias", lambda a: (a["nOutputPlane"],), _conv_stdv,
                  present=lambda a: a.get("bias", True)),
    ),
    methods={"noBias": _no_bias}, check=_full_check, shape=_full_shape,
    flops=lambda a, ins, out: 2 * math.prod(ins[0]) * a["nOutputPlane"] * a["kH"] * a["kW"],
    forward="{{y}} = rt.full_conv2d_forward({{x}}" + _4D + ", {{weight}}, {{bias}}, " + _FULL +
            ")" + _3D,
    backward_stmt=("{{g.x or '_'}}, {{g.weight or '_'}}, {{g.bias or '_'}} = "
                   "rt.full_conv2d_backward({{gy}}" + _4D + ", {{x}}" + _4D + ", {{weight}}, " +
                   _FULL + ", need_input={{ g.x is not none }})\n"
                   "{% if g.x and rank == 3 %}{{g.x}} = {{g.x}}[0]\n{% endif %}"),
    doc="Transposed convolution (\"deconvolution\"): weight nInputPlane x nOutputPlane x kH x kW; "
        "output (H - 1) dH - 2 padH + kH + adjH (likewise W), adj < stride. Input CxHxW or "
        "NxCxHxW. Init U(+-1/sqrt(kW kH nInputPlane)).",
    torch_diff="The table input {input, sizeTensor} (adj computed from a target size) is not "
               "supported.",
)

# ---- TemporalConvolution ------------------------------------------------------------------------


def _temporal_check(a):
    if not _positive(a, ("inputFrameSize", "outputFrameSize", "kW", "dW")):
        return "inputFrameSize, outputFrameSize, kW and dW must be >= 1"


def _temporal_shape(a, shapes):
    x = shapes[0]
    if len(x) not in (2, 3):
        raise ShapeError(f"expects a 2D (TxF) or 3D (BxTxF) input, got {_s(x)}")
    t, f = x[-2], x[-1]
    if f != a["inputFrameSize"]:
        raise ShapeError(f"expects frames of {a['inputFrameSize']} features, got {f} "
                         f"(input {_s(x)})")
    if t == B:
        if a["kW"] == 1 and a["dW"] == 1:
            return x[:-1] + (a["outputFrameSize"],)
        raise ShapeError("the time dimension cannot be the batch dimension B (give the input "
                         "as BxTxF)")
    if t < a["kW"]:
        raise ShapeError(f"input sequence ({t} frames) is smaller than the kernel size "
                         f"({a['kW']})")
    return x[:-2] + ((t - a["kW"]) // a["dW"] + 1, a["outputFrameSize"])


_T3 = "{% if rank == 2 %}[None]{% endif %}"
_T2 = "{% if rank == 2 %}[0]{% endif %}"
defop(
    name="TemporalConvolution",
    signature="inputFrameSize:int, outputFrameSize:int, kW:int, dW:int=1",
    params=(
        ParamSpec("weight", lambda a: (a["outputFrameSize"], a["kW"] * a["inputFrameSize"]),
                  uniform(lambda a: 1 / math.sqrt(a["kW"] * a["inputFrameSize"]))),
        ParamSpec("bias", lambda a: (a["outputFrameSize"],),
                  uniform(lambda a: 1 / math.sqrt(a["kW"] * a["inputFrameSize"]))),
    ),
    check=_temporal_check, shape=_temporal_shape, aux=("cols",),
    flops=lambda a, ins, out: 2 * math.prod(out) * a["kW"] * a["inputFrameSize"],
    forward=("{{y}}, {{aux.cols}} = rt.temporal_conv_forward({{x}}" + _T3 + ", {{weight}}, "
             "{{bias}}, {{a.kW}}, {{a.dW}})\n{% if rank == 2 %}{{y}} = {{y}}[0]\n{% endif %}"),
    backward_stmt=("{{g.x or '_'}}, {{g.weight or '_'}}, {{g.bias or '_'}} = "
                   "rt.temporal_conv_backward({{gy}}" + _T3 + ", {{x}}" + _T3 + ".shape, "
                   "{{aux.cols}}, {{weight}}, {{a.kW}}, {{a.dW}}, need_input={{ g.x is not none }})\n"
                   "{% if g.x and rank == 2 %}{{g.x}} = {{g.x}}[0]\n{% endif %}"),
    doc="1D convolution over time: input TxF or BxTxF (F = inputFrameSize); output frame t "
        "is weight (outputFrameSize x kW*F) times frames t*dW+1 .. t*dW+kW concatenated, plus "
        "bias. Init U(+-1/sqrt(kW inputFrameSize)).",
)
