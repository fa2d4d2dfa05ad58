"""SpatialAveragePooling, SpatialFullConvolution and TemporalConvolution (Torch7 argument
order: kW before kH). The numpy kernels are in graphc_runtime.kernels."""
import math

from .registry import CudaRule, ParamSpec, ShapeError, defop, is_symbolic, shape_text, uniform
from .spatial import _image, pool_out

_4D = "{% if rank == 3 %}[None]{% endif %}"  # kernels take NCHW; CHW gets a batch of one
_3D = "{% if rank == 3 %}[0]{% endif %}"

# CUDA: the 'elem' rules below are gathers, one thread per element. Jinja macros for their C:
# div(e, d) = e / d, ceil(e, d) = ceil(e / d) for e >= 0, plain when d is 1.
_DIV = ("{% macro div(e, d) %}{% if d == 1 %}{{e}}{% else %}{{e}} / {{d}}{% endif %}{% endmacro %}"
        "{% macro ceil(e, d) %}{% if d == 1 %}{{e}}{% else %}({{e}} + {{d - 1}}) / {{d}}"
        "{% endif %}{% endmacro %}")


def _loop(v, lo, hi, most, indent=""):
    """C opening a loop over int `v` in [lo, hi), a range of at most `most` values (C / jinja
    text). The constant trip count lets nvcc unroll it: with only the runtime bounds ptxas
    spilled registers in double on sm_80+."""
    return (f"{indent}for (int {v}_i = 0; {v}_i < {most}; ++{v}_i) {{\n"
            f"{indent}  const int {v} = {lo} + {v}_i;\n"
            f"{indent}  if ({v} >= {hi}) break;\n")


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
    if is_symbolic(h) or is_symbolic(w):
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


# Aux `inv` holds 1 / divisor per output position (a division in the gradient's loop would
# be a slow-path call per term). The divisor of the window starting at row h0 (< 0: in the
# padding) is the window clipped to the padded input (count_include_pad), else to the input;
# likewise columns.
_AVG_SPAN = (
    "{% macro span(s0, k, size, pad) %}"
    "{% if a.count_include_pad %}({{s0}} + {{k}} < {{size + pad}} ? {{k}} : {{size + pad}} - {{s0}})"
    "{% else %}(({{s0}} + {{k}} < {{size}} ? {{s0}} + {{k}} : {{size}}) - ({{s0}} > 0 ? {{s0}} : 0))"
    "{% endif %}{% endmacro %}")
_AVG_CUDA = CudaRule(
    "kernel", kernel="elem",
    aux={"inv": ("real", lambda a, ins, out: out[-2:], _AVG_SPAN + (
        "{% set H, W = shp.x[-2], shp.x[-1] %}\n"
        "const int h0 = {{o[0]}} * {{a.dH}} - {{a.padH}}, w0 = {{o[1]}} * {{a.dW}} - {{a.padW}};\n"
        "return (real)1 / (real)({{ span('h0', a.kH, H, a.padH) }} * "
        "{{ span('w0', a.kW, W, a.padW) }});"))},
    # one thread per output element: its window's cells inside the input
    forward=(
        "{% set pre, H, W = o[:-3], shp.x[-2], shp.x[-1] %}"
        "const int h0 = {{o[-2]}} * {{a.dH}} - {{a.padH}}, w0 = {{o[-1]}} * {{a.dW}} - {{a.padW}};\n"
        "const int hs = h0 > 0 ? h0 : 0, ws = w0 > 0 ? w0 : 0;\n"
        "const int he = h0 + {{a.kH}} < {{H}} ? h0 + {{a.kH}} : {{H}}, "
        "we = w0 + {{a.kW}} < {{W}} ? w0 + {{a.kW}} : {{W}};\n"
        "real s = 0;\n" +
        _loop("h", "hs", "he", "{{a.kH}}") + _loop("w", "ws", "we", "{{a.kW}}", "  ") +
        "    s += {{ ld(x, *(pre + [o[-3], 'h', 'w'])) }};\n"
        "  }\n"
        "}\n"
        "return s * {{ ld(inv, o[-2], o[-1]) }};"),
    # one thread per input element: the windows oh * dH <= h + padH < oh * dH + kH (likewise
    # w), at most ceil(kH / dH) of them
    backward={"x": _DIV + (
        "{% set pre, oH, oW = o[:-3], shp.y[-2], shp.y[-1] %}"
        "const int hp = {{o[-2]}} + {{a.padH}}, wp = {{o[-1]}} + {{a.padW}};\n"
        "const int th = hp - {{a.kH - 1}}, tw = wp - {{a.kW - 1}};\n"
        "const int oh0 = th > 0 ? {{ ceil('th', a.dH) }} : 0, "
        "ow0 = tw > 0 ? {{ ceil('tw', a.dW) }} : 0;\n"
        "const int oh1 = {{ div('hp', a.dH) }} < {{oH - 1}} ? {{ div('hp', a.dH) }} + 1 : {{oH}}, "
        "ow1 = {{ div('wp', a.dW) }} < {{oW - 1}} ? {{ div('wp', a.dW) }} + 1 : {{oW}};\n"
        "real s = 0;\n" +
        _loop("oh", "oh0", "oh1", "{{ -(-a.kH // a.dH) }}") +
        _loop("ow", "ow0", "ow1", "{{ -(-a.kW // a.dW) }}", "  ") +
        "    s += {{ ld(gy, *(pre + [o[-3], 'oh', 'ow'])) }} * {{ ld(inv, 'oh', 'ow') }};\n"
        "  }\n"
        "}\n"
        "return s;")},
)


_AVG = ("kH={{a.kH}}, kW={{a.kW}}, dH={{a.dH}}, dW={{a.dW}}, padH={{a.padH}}, padW={{a.padW}}, "
        "ceil_mode={{a.ceil_mode}}, count_include_pad={{a.count_include_pad}}")
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
    if is_symbolic(h) or is_symbolic(w):
        raise ShapeError("the image height and width cannot be the batch dimension B")
    oh = (h - 1) * a["dH"] - 2 * a["padH"] + a["kH"] + a["adjH"]
    ow = (w - 1) * a["dW"] - 2 * a["padW"] + a["kW"] + a["adjW"]
    if oh < 1 or ow < 1:
        raise ShapeError(f"input {h}x{w} gives an empty output ({oh}x{ow}): the padding is "
                         "too large")
    return x[:-3] + (a["nOutputPlane"], oh, ow)


def _no_bias(a):
    a["bias"] = False


# CUDA: gathers. Input pixel (h, w) adds weight[c][co] into the output patch whose corner is
# (h * dH - padH, w * dW - padW) (before the crop by the padding).
_FULL_BATCH = ("{% set batched = shp.x|length == 4 %}"
               "{% set C, H, W = shp.x[-3], shp.x[-2], shp.x[-1] %}\n")
# Parameter gradients sum over the batch, if any: `nfor` / `nend` open / close that loop
# (the loops inside are indented for it either way).
_NLOOP = ("{% set nfor = ('for (int n = 0; n < ' ~ shp.x[0] ~ '; ++n) {\\n') if batched else '' %}"
          "{% set nend = '}\\n' if batched else '' %}"
          "{% set pre = ['n'] if batched else [] %}")
_FULL_CUDA = CudaRule(
    "kernel", kernel="elem",
    # one thread per output element: the input pixels whose patch covers it, at most
    # ceil(kH / dH) rows (likewise columns)
    forward=_FULL_BATCH + _DIV + (
        "{% set pre = o[:-3] %}"
        "const int hp = {{o[-2]}} + {{a.padH}}, wp = {{o[-1]}} + {{a.padW}};  // uncropped\n"
        "const int th = hp - {{a.kH - 1}}, tw = wp - {{a.kW - 1}};\n"
        "const int h0 = th > 0 ? {{ ceil('th', a.dH) }} : 0, w0 = tw > 0 ? {{ ceil('tw', a.dW) }} : 0;\n"
        "const int h1 = {{ div('hp', a.dH) }} < {{H - 1}} ? {{ div('hp', a.dH) }} + 1 : {{H}}, "
        "w1 = {{ div('wp', a.dW) }} < {{W - 1}} ? {{ div('wp', a.dW) }} + 1 : {{W}};\n"
        "real s = 0;\n" +
        _loop("h", "h0", "h1", "{{ -(-a.kH // a.dH) }}") +
        _loop("w", "w0", "w1", "{{ -(-a.kW // a.dW) }}", "  ") +
        "    const int kh = hp - h * {{a.dH}}, kw = wp - w * {{a.dW}};\n"
        "    for (int c = 0; c < {{C}}; ++c)\n"
        "      s += {{ ld(x, *(pre + ['c', 'h', 'w'])) }} * {{ ld(weight, 'c', o[-3], 'kh', 'kw') }};\n"
        "  }\n"
        "}\n"
        "return s{% if bias is defined %} + {{ ld(bias, o[-3]) }}{% endif %};"),
    backward={
        # one thread per input element: its patch's output cells inside the crop
        "x": _FULL_BATCH + (
            "{% set pre, oH, oW = o[:-3], shp.y[-2], shp.y[-1] %}"
            "const int bh = {{o[-2]}} * {{a.dH}} - {{a.padH}}, bw = {{o[-1]}} * {{a.dW}} - {{a.padW}};\n"
            "const int kh0 = bh < 0 ? -bh : 0, kw0 = bw < 0 ? -bw : 0;\n"
            "const int kh1 = {{oH}} - bh < {{a.kH}} ? {{oH}} - bh : {{a.kH}}, "
            "kw1 = {{oW}} - bw < {{a.kW}} ? {{oW}} - bw : {{a.kW}};\n"
            "real s = 0;\n"
            "for (int co = 0; co < {{a.nOutputPlane}}; ++co) {\n" +
            _loop("kh", "kh0", "kh1", "{{a.kH}}", "  ") + _loop("kw", "kw0", "kw1", "{{a.kW}}", "    ") +
            "      s += {{ ld(weight, o[-3], 'co', 'kh', 'kw') }} * "
            "{{ ld(gy, *(pre + ['co', 'bh + kh', 'bw + kw'])) }};\n"
            "    }\n"
            "  }\n"
            "}\n"
            "return s;"),
        # one thread per weight element: the input pixels whose output cell (h * dH - mh,
        # w * dW - mw) is inside the crop, over the batch. The bounds are ceil divisions: a
        # negative numerator only ever gives an empty or clamped range.
        "weight": _FULL_BATCH + _NLOOP + _DIV + (
            "{% set oH, oW = shp.y[-2], shp.y[-1] %}"
            "const int mh = {{a.padH}} - {{o[2]}}, mw = {{a.padW}} - {{o[3]}};\n"
            "const int h0 = mh > 0 ? {{ ceil('mh', a.dH) }} : 0, w0 = mw > 0 ? {{ ceil('mw', a.dW) }} : 0;\n"
            "const int eh = {{ ceil(oH ~ ' + mh', a.dH) }}, ew = {{ ceil(oW ~ ' + mw', a.dW) }};\n"
            "const int h1 = eh < {{H}} ? eh : {{H}}, w1 = ew < {{W}} ? ew : {{W}};\n"
            "real s = 0;\n"
            "{{nfor}}" + _loop("h", "h0", "h1", "{{H}}", "  ") + _loop("w", "w0", "w1", "{{W}}", "    ") +
            "      s += {{ ld(x, *(pre + [o[0], 'h', 'w'])) }} * "
            "{{ ld(gy, *(pre + [o[1], 'h * ' ~ a.dH ~ ' - mh', 'w * ' ~ a.dW ~ ' - mw'])) }};\n"
            "    }\n"
            "  }\n"
            "{{nend}}return s;"),
        "bias": _FULL_BATCH + _NLOOP + (
            "real s = 0;\n"
            "{{nfor}}  for (int oh = 0; oh < {{shp.y[-2]}}; ++oh)\n"
            "    for (int ow = 0; ow < {{shp.y[-1]}}; ++ow) s += {{ ld(gy, *(pre + [o[0], 'oh', 'ow'])) }};\n"
            "{{nend}}return s;"),
    },
)


_conv_stdv = uniform(lambda a: 1 / math.sqrt(a["kW"] * a["kH"] * a["nInputPlane"]))
_FULL = "dH={{a.dH}}, dW={{a.dW}}, padH={{a.padH}}, padW={{a.padW}}, adjH={{a.adjH}}, adjW={{a.adjW}}"
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
    cuda=_FULL_CUDA,
)

# ---- TemporalConvolution ------------------------------------------------------------------------


def _temporal_check(a):
    if not _positive(a, ("inputFrameSize", "outputFrameSize", "kW", "dW")):
        return "inputFrameSize, outputFrameSize, kW and dW must be >= 1"


def _temporal_shape(a, shapes):
    x = shapes[0]
    if len(x) not in (2, 3):
        raise ShapeError(f"expects a 2D (TxF) or 3D (BxTxF) input, got {shape_text(x)}")
    t, f = x[-2], x[-1]
    if f != a["inputFrameSize"]:
        raise ShapeError(f"expects frames of {a['inputFrameSize']} features, got {f} "
                         f"(input {shape_text(x)})")
    if is_symbolic(t):
        if a["kW"] == 1 and a["dW"] == 1:
            return x[:-1] + (a["outputFrameSize"],)
        raise ShapeError("the time dimension cannot be the batch dimension B (give the input "
                         "as BxTxF)")
    if t < a["kW"]:
        raise ShapeError(f"input sequence ({t} frames) is smaller than the kernel size "
                         f"({a['kW']})")
    return x[:-2] + ((t - a["kW"]) // a["dW"] + 1, a["outputFrameSize"])


# CUDA: gathers. Output frame t reads input frames t * dW .. t * dW + kW - 1; weight column
# k * F + f multiplies feature f of the window's frame k.
_TEMP_BATCH = "{% set batched = shp.x|length == 3 %}" + _NLOOP
_TEMP_CUDA = CudaRule(
    "kernel", kernel="elem",
    forward=(
        "{% set pre, F = o[:-2], a.inputFrameSize %}"
        "const int u0 = {{o[-2]}} * {{a.dW}};  // the window's first input frame\n"
        "real s = 0;\n"
        "for (int k = 0; k < {{a.kW}}; ++k)\n"
        "  for (int f = 0; f < {{F}}; ++f)\n"
        "    s += {{ ld(weight, o[-1], 'k * ' ~ F ~ ' + f') }} * {{ ld(x, *(pre + ['u0 + k', 'f'])) }};\n"
        "return s + {{ ld(bias, o[-1]) }};"),
    backward={
        # one thread per input element: the output frames t with t * dW <= u < t * dW + kW,
        # at most ceil(kW / dW) of them
        "x": _DIV + (
            "{% set pre, F, oT = o[:-2], a.inputFrameSize, shp.y[-2] %}"
            "const int u = {{o[-2]}}, tu = u - {{a.kW - 1}};\n"
            "const int t0 = tu > 0 ? {{ ceil('tu', a.dW) }} : 0;\n"
            "const int t1 = {{ div('u', a.dW) }} + 1 < {{oT}} ? {{ div('u', a.dW) }} + 1 : {{oT}};\n"
            "real s = 0;\n" +
            _loop("t", "t0", "t1", "{{ -(-a.kW // a.dW) }}") +
            "  const int k = u - t * {{a.dW}};\n"
            "  for (int oc = 0; oc < {{a.outputFrameSize}}; ++oc)\n"
            "    s += {{ ld(gy, *(pre + ['t', 'oc'])) }} * {{ ld(weight, 'oc', 'k * ' ~ F ~ ' + ' ~ o[-1]) }};\n"
            "}\n"
            "return s;"),
        # one thread per weight element (oc, k * F + f): over the batch and output frames
        "weight": _TEMP_BATCH + (
            "{% set F = a.inputFrameSize %}"
            "const int k = {{o[1]}} / {{F}}, f = {{o[1]}} % {{F}};\n"
            "real s = 0;\n"
            "{{nfor}}  for (int t = 0; t < {{shp.y[-2]}}; ++t)\n"
            "    s += {{ ld(gy, *(pre + ['t', o[0]])) }} * {{ ld(x, *(pre + ['t * ' ~ a.dW ~ ' + k', 'f'])) }};\n"
            "{{nend}}return s;"),
        "bias": _TEMP_BATCH + (
            "real s = 0;\n"
            "{{nfor}}  for (int t = 0; t < {{shp.y[-2]}}; ++t) s += {{ ld(gy, *(pre + ['t', o[0]])) }};\n"
            "{{nend}}return s;"),
    },
)


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
             "{{bias}}, kW={{a.kW}}, dW={{a.dW}})\n{% if rank == 2 %}{{y}} = {{y}}[0]\n{% endif %}"),
    backward_stmt=("{{g.x or '_'}}, {{g.weight or '_'}}, {{g.bias or '_'}} = "
                   "rt.temporal_conv_backward({{gy}}" + _T3 + ", {{xshape(0, rank == 2)}}, "
                   "{{aux.cols}}, {{weight}}, kW={{a.kW}}, dW={{a.dW}}, need_input={{ g.x is not none }})\n"
                   "{% if g.x and rank == 2 %}{{g.x}} = {{g.x}}[0]\n{% endif %}"),
    doc="1D convolution over time: input TxF or BxTxF (F = inputFrameSize); output frame t "
        "is weight (outputFrameSize x kW*F) times frames t*dW+1 .. t*dW+kW concatenated, plus "
        "bias. Init U(+-1/sqrt(kW inputFrameSize)).",
    cuda=_TEMP_CUDA,
)
