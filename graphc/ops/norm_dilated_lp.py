"""SpatialCrossMapLRN, SpatialSubtractiveNormalization, SpatialDilatedConvolution,
SpatialLPPooling (CxHxW or NxCxHxW input) and TemporalMaxPooling (TxF or BxTxF), with Torch7's
argument order and semantics; the numpy kernels are in graphc_runtime.pad_norm_pool."""
import math

from .avgpool_fullconv_temporal import _DIV, _NLOOP, _loop
from .registry import B, CudaRule, ParamSpec, ShapeError, defop, uniform
from .spatial import _image, conv_out


def _hw(x, channels, what):
    _, h, w = _image(x, channels, what)
    if h == B or w == B:
        raise ShapeError("the image height and width cannot be the batch dimension B")
    return h, w


def _image_shape(what):
    def rule(a, shapes):
        _hw(shapes[0], None, what)
        return shapes[0]
    return rule


_BATCHED = "{% set batched = shp.x|length == 4 %}"

# ---- SpatialCrossMapLRN -----------------------------------------------------------------------


def _lrn_check(a):
    if a["size"] < 1 or a["size"] % 2 == 0:
        # Torch7's window is c - (size-1)/2 .. c + (size-1)/2; for an even size its CPU code
        # indexes channel 0 and its CUDA kernel and PyTorch centre the window differently
        return f"size must be odd and >= 1 (a window centred on each channel), got {a['size']}"


# CUDA: aux `scale` = k + alpha / size * (sum of x^2 over channels c - size/2 .. c + (size-1)/2),
# one thread per element; the gradient sums gy y / scale over the channels whose window holds c.
_LRN_WINDOW = ("{% set pre, C = o[:-3], shp.x[-3] %}"
               "{% macro channels(lo, hi) %}"
               "const int c0 = {{o[-3]}} - {{lo}} > 0 ? {{o[-3]}} - {{lo}} : 0;\n"
               "const int c1 = {{o[-3]}} + {{hi}} < {{C - 1}} ? {{o[-3]}} + {{hi}} : {{C - 1}};\n"
               "{% endmacro %}")
_LRN_CUDA = CudaRule(
    "kernel", kernel="elem",
    aux={"scale": ("real", lambda a, ins, out: out, _LRN_WINDOW + (
        "{{ channels(a.size // 2, (a.size - 1) // 2) }}"
        "real s = 0;\n"
        "for (int c = c0; c <= c1; ++c) {\n"
        "  const real v = {{ ld(x, *(pre + ['c', o[-2], o[-1]])) }};\n"
        "  s += v * v;\n"
        "}\n"
        "return {{ c(a.k) }} + {{ c(a.alpha / a.size) }} * s;"))},
    forward="return {{x}}[{{i}}] * pow({{scale}}[{{i}}], -{{ c(a.beta) }});",
    backward={"x": _LRN_WINDOW + (
        "{{ channels((a.size - 1) // 2, a.size // 2) }}"
        "real r = 0;\n"
        "for (int c = c0; c <= c1; ++c)\n"
        "  r += {{ ld(gy, *(pre + ['c', o[-2], o[-1]])) }} * {{ ld(y, *(pre + ['c', o[-2], o[-1]])) }}"
        " / {{ ld(scale, *(pre + ['c', o[-2], o[-1]])) }};\n"
        "return {{gy}}[{{i}}] * pow({{scale}}[{{i}}], -{{ c(a.beta) }}) - "
        "{{ c(2 * a.alpha * a.beta / a.size) }} * {{x}}[{{i}}] * r;")},
)

defop(
    name="SpatialCrossMapLRN", signature="size:int=5, alpha:num=0.0001, beta:num=0.75, k:num=1",
    check=_lrn_check, shape=_image_shape("SpatialCrossMapLRN"), aux=("scale",),
    forward=("{{y}}, {{aux.scale}} = rt.cross_map_lrn_forward({{x}}, {{a.size}}, {{a.alpha}}, "
             "{{a.beta}}, {{a.k}})"),
    backward={"x": ("rt.cross_map_lrn_backward({{gy}}, {{x}}, {{y}}, {{aux.scale}}, {{a.size}}, "
                    "{{a.alpha}}, {{a.beta}})")},
    doc="Local response normalization across channels: x / (k + alpha / size * sum x^2)^beta, "
        "the sum over the `size` (odd) channels c - (size-1)/2 .. c + (size-1)/2 (clipped to "
        "the channels).",
    torch_diff="An even size is refused (Torch7's CPU code fails on it; its CUDA kernel and "
               "PyTorch centre an even window differently).",
    cuda=_LRN_CUDA,
)

# ---- SpatialSubtractiveNormalization ----------------------------------------------------------


def _kernel2d(a):
    """The 2-D averaging kernel (a tuple of rows): Torch's default 9x9 ones; a 1-D kernel k
    acts as its outer product k k^T (Torch applies it along rows, then along columns)."""
    k = a["kernel"]
    if k is None:
        return ((1.0,) * 9,) * 9
    if all(isinstance(v, tuple) for v in k):
        return tuple(tuple(float(v) for v in row) for row in k)
    return tuple(tuple(float(u) * float(v) for v in k) for u in k)


def _subnorm_check(a):
    k = a["kernel"]
    if k is None:
        return None
    rows = [v for v in k if isinstance(v, tuple)]
    if not k or (rows and (len(rows) != len(k) or len({len(r) for r in rows}) != 1)):
        return "the averaging kernel must be a 1D or 2D tensor (a table of numbers or of equal rows)"
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) for r in (rows or [k]) for v in r):
        return "the averaging kernel must hold numbers"
    if len(k) % 2 == 0 or (rows and len(rows[0]) % 2 == 0):
        return f"the averaging kernel must have odd sizes, got {len(k)}x{len(rows[0]) if rows else ''}".rstrip("x")


def _subnorm_shape(a, shapes):
    _hw(shapes[0], a["nInputPlane"], "SpatialSubtractiveNormalization")
    return shapes[0]


def _subnorm_derive(a, shapes):
    k = _kernel2d(a)
    return {"kernel": k, "kh": len(k), "kw": len(k[0])}


# CUDA: aux `coef` (H x W): the kernel's weight inside the image times the channels; aux
# `chsum` (one plane per sample): the sum over channels; `mean`: its kernel-weighted window
# sum / coef. The gradient: gy minus the flipped-kernel window sum of the per-sample channel
# sum of gy / coef.
_KERNEL_C = ("{% set K = d.kernel %}{% set ph, pw = d.kh // 2, d.kw // 2 %}"
             "{% set H, W = shp.x[-2], shp.x[-1] %}"
             "const real K[{{d.kh * d.kw}}] = { "
             "{% for row in K %}{% for v in row %}{{ c(v) }}{{ ', ' if not loop.last }}{% endfor %}"
             "{{ ', ' if not loop.last }}{% endfor %}};\n")


def _window_sum(term, flip=False):
    """C summing `term` (reading h, w) over the kernel window of cell (o[-2], o[-1])
    (`flip`: the window mirrored, for the adjoint). A body this plain lets nvcc unroll the
    loops and fold K (with a channel loop inside, K went to the stack)."""
    sign = "-" if flip else "+"
    return (
        "real s = 0;\n"
        "for (int i = 0; i < {{d.kh}}; ++i) {\n"
        "  const int h = {{o[-2]}} " + sign + " (i - {{ph}});\n"
        "  if (h < 0 || h >= {{H}}) continue;\n"
        "  for (int j = 0; j < {{d.kw}}; ++j) {\n"
        "    const int w = {{o[-1]}} " + sign + " (j - {{pw}});\n"
        "    if (w < 0 || w >= {{W}}) continue;\n"
        "    s += K[i * {{d.kw}} + j] * " + term + ";\n"
        "  }\n"
        "}\n")


_SUBNORM_CUDA = CudaRule(
    "kernel", kernel="elem",
    aux={
        "coef": ("real", lambda a, ins, out: ins[0][-2:],
                 _KERNEL_C + _window_sum("1") + "return s * {{shp.x[-3]}};"),
        "chsum": ("real", lambda a, ins, out: ins[0][:-3] + ins[0][-2:], (
            "{% set pre = o[:-2] %}real s = 0;\n"
            "for (int c = 0; c < {{shp.x[-3]}}; ++c) s += {{ ld(x, *(pre + ['c', o[-2], o[-1]])) }};\n"
            "return s;")),
        "mean": ("real", lambda a, ins, out: ins[0][:-3] + ins[0][-2:],
                 _KERNEL_C + "{% set pre = o[:-2] %}" +
                 _window_sum("{{ ld(chsum, *(pre + ['h', 'w'])) }}") +
                 "return s / {{ ld(coef, o[-2], o[-1]) }};"),
    },
    forward="return {{x}}[{{i}}] - {{ ld(mean, *(o[:-3] + [o[-2], o[-1]])) }};",
    backward_aux={"gsum": ("real", lambda a, ins, out: ins[0][:-3] + ins[0][-2:], (
        "{% set pre = o[:-2] %}real s = 0;\n"
        "for (int c = 0; c < {{shp.x[-3]}}; ++c) s += {{ ld(gy, *(pre + ['c', o[-2], o[-1]])) }};\n"
        "return s / {{ ld(coef, o[-2], o[-1]) }};"))},
    backward={"x": _KERNEL_C + "{% set pre = o[:-3] %}" +
              _window_sum("{{ ld(gsum, *(pre + ['h', 'w'])) }}", flip=True) +
              "return {{gy}}[{{i}}] - s;"},
)

defop(
    name="SpatialSubtractiveNormalization", signature="nInputPlane:int=1, kernel:table=nil",
    check=_subnorm_check, shape=_subnorm_shape, derive=_subnorm_derive,
    forward="{{y}} = rt.local_mean_forward({{x}}, {{d.kernel}})",
    backward={"x": "rt.local_mean_backward({{gy}}, {{d.kernel}})"},
    doc="x minus its local mean over all nInputPlane channels, weighted by `kernel` (odd "
        "sizes; default 9x9 ones; a 1D kernel k means k k^T), each mean divided by the "
        "kernel's weight inside the image, as Torch7. No parameters.",
    torch_diff="The kernel is given as a table of numbers (`torch.Tensor{...}` or "
               "`image.gaussian1D(n)`).",
    cuda=_SUBNORM_CUDA,
)

# ---- SpatialDilatedConvolution ---------------------------------------------------------------


def _dil_check(a):
    if a["padH"] is None:
        a["padH"] = a["padW"]
    if min(a["kW"], a["kH"], a["dW"], a["dH"], a["dilationW"], a["dilationH"]) < 1 or \
            min(a["padW"], a["padH"]) < 0:
        return "kernel sizes, strides and dilations must be >= 1 and padding >= 0"


def _dil_shape(a, shapes):
    x = shapes[0]
    h, w = _hw(x, a["nInputPlane"], "SpatialDilatedConvolution")
    eh, ew = a["dilationH"] * (a["kH"] - 1) + 1, a["dilationW"] * (a["kW"] - 1) + 1
    oh, ow = conv_out(h, eh, a["dH"], a["padH"]), conv_out(w, ew, a["dW"], a["padW"])
    if oh < 1 or ow < 1:
        raise ShapeError(f"input {h}x{w} is too small for a {a['kH']}x{a['kW']} kernel dilated to "
                         f"{eh}x{ew} (output would be {oh}x{ow})")
    return x[:-3] + (a["nOutputPlane"], oh, ow)


# CUDA: gathers. Output (co, oh, ow) reads input rows oh * dH - padH + kh * dilationH (likewise
# columns); the input gradient finds, for each kernel tap, the output cell that read it.
_DIL_CUDA = CudaRule(
    "kernel", kernel="elem",
    forward=(
        "{% set pre, C, H, W = o[:-3], shp.x[-3], shp.x[-2], shp.x[-1] %}"
        "real s = {% if bias is defined %}{{ ld(bias, o[-3]) }}{% else %}0{% endif %};\n"
        "for (int kh = 0; kh < {{a.kH}}; ++kh) {\n"
        "  const int h = {{o[-2]}} * {{a.dH}} - {{a.padH}} + kh * {{a.dilationH}};\n"
        "  if (h < 0 || h >= {{H}}) continue;\n"
        "  for (int kw = 0; kw < {{a.kW}}; ++kw) {\n"
        "    const int w = {{o[-1]}} * {{a.dW}} - {{a.padW}} + kw * {{a.dilationW}};\n"
        "    if (w < 0 || w >= {{W}}) continue;\n"
        "    for (int c = 0; c < {{C}}; ++c)\n"
        "      s += {{ ld(weight, o[-3], 'c', 'kh', 'kw') }} * {{ ld(x, *(pre + ['c', 'h', 'w'])) }};\n"
        "  }\n"
        "}\n"
        "return s;"),
    backward={
        "x": (
            "{% set pre, oH, oW = o[:-3], shp.y[-2], shp.y[-1] %}"
            "real s = 0;\n"
            "for (int kh = 0; kh < {{a.kH}}; ++kh) {\n"
            "  const int th = {{o[-2]}} + {{a.padH}} - kh * {{a.dilationH}};\n"
            "  if (th < 0 || th % {{a.dH}} != 0 || th / {{a.dH}} >= {{oH}}) continue;\n"
            "  for (int kw = 0; kw < {{a.kW}}; ++kw) {\n"
            "    const int tw = {{o[-1]}} + {{a.padW}} - kw * {{a.dilationW}};\n"
            "    if (tw < 0 || tw % {{a.dW}} != 0 || tw / {{a.dW}} >= {{oW}}) continue;\n"
            "    for (int co = 0; co < {{a.nOutputPlane}}; ++co)\n"
            "      s += {{ ld(weight, 'co', o[-3], 'kh', 'kw') }} * "
            "{{ ld(gy, *(pre + ['co', 'th / ' ~ a.dH, 'tw / ' ~ a.dW])) }};\n"
            "  }\n"
            "}\n"
            "return s;"),
        # one thread per weight element (co, c, kh, kw): over the batch and the output cells
        "weight": _BATCHED + _NLOOP + (
            "{% set H, W = shp.x[-2], shp.x[-1] %}"
            "real s = 0;\n"
            "{{nfor}}  for (int oh = 0; oh < {{shp.y[-2]}}; ++oh) {\n"
            "    const int h = oh * {{a.dH}} - {{a.padH}} + {{o[2]}} * {{a.dilationH}};\n"
            "    if (h < 0 || h >= {{H}}) continue;\n"
            "    for (int ow = 0; ow < {{shp.y[-1]}}; ++ow) {\n"
            "      const int w = ow * {{a.dW}} - {{a.padW}} + {{o[3]}} * {{a.dilationW}};\n"
            "      if (w < 0 || w >= {{W}}) continue;\n"
            "      s += {{ ld(gy, *(pre + [o[0], 'oh', 'ow'])) }} * {{ ld(x, *(pre + [o[1], 'h', 'w'])) }};\n"
            "    }\n"
            "  }\n"
            "{{nend}}return s;"),
        "bias": _BATCHED + _NLOOP + (
            "real s = 0;\n"
            "{{nfor}}  for (int oh = 0; oh < {{shp.y[-2]}}; ++oh)\n"
            "    for (int ow = 0; ow < {{shp.y[-1]}}; ++ow) s += {{ ld(gy, *(pre + [o[0], 'oh', 'ow'])) }};\n"
            "{{nend}}return s;"),
    },
)


def _no_bias(a):
    a["bias"] = False


_conv_stdv = uniform(lambda a: 1 / math.sqrt(a["kW"] * a["kH"] * a["nInputPlane"]))
_DIL = "{{a.dH}}, {{a.dW}}, {{a.padH}}, {{a.padW}}, {{a.dilationH}}, {{a.dilationW}}"
defop(
    name="SpatialDilatedConvolution",
    signature="nInputPlane:int, nOutputPlane:int, kW:int, kH:int, dW:int=1, dH:int=1, "
              "padW:int=0, padH:int=nil, dilationW:int=1, dilationH:int=1",
    params=(
        ParamSpec("weight", lambda a: (a["nOutputPlane"], a["nInputPlane"], a["kH"], a["kW"]),
                  _conv_stdv),
        ParamSpec("bias", lambda a: (a["nOutputPlane"],), _conv_stdv,
                  present=lambda a: a.get("bias", True)),
    ),
    methods={"noBias": _no_bias}, check=_dil_check, shape=_dil_shape,
    flops=lambda a, ins, out: 2 * math.prod(out) * a["nInputPlane"] * a["kH"] * a["kW"],
    forward="{{y}} = rt.dilated_conv2d_forward({{x}}, {{weight}}, {{bias}}, " + _DIL + ")",
    backward_stmt=("{{g.x or '_'}}, {{g.weight or '_'}}, {{g.bias or '_'}} = "
                   "rt.dilated_conv2d_backward({{gy}}, {{x}}, {{weight}}, " + _DIL +
                   ", need_input={{ g.x is not none }})"),
    doc="SpatialConvolution whose kernel taps are dilationW / dilationH apart (a kH x kW kernel "
        "spans dilationH (kH - 1) + 1 rows); padH defaults to padW. Init as SpatialConvolution.",
    cuda=_DIL_CUDA,
)

# ---- SpatialLPPooling -------------------------------------------------------------------------


def _lp_check(a):
    a["dW"] = a["kW"] if a["dW"] is None else a["dW"]
    a["dH"] = a["kH"] if a["dH"] is None else a["dH"]
    if min(a["kW"], a["kH"], a["dW"], a["dH"]) < 1:
        return "kernel sizes and strides must be >= 1"
    if not a["pnorm"] > 0:
        return f"pnorm must be > 0, got {a['pnorm']}"


def _lp_shape(a, shapes):
    x = shapes[0]
    h, w = _hw(x, None, "SpatialLPPooling")
    if h < a["kH"] or w < a["kW"]:
        raise ShapeError(f"input image {h}x{w} is smaller than the {a['kH']}x{a['kW']} window")
    return x[:-3] + (x[-3], (h - a["kH"]) // a["dH"] + 1, (w - a["kW"]) // a["dW"] + 1)


# CUDA: aux `sums` = the window sums of x^p (one thread per output element); y = sums^(1/p);
# the input gradient sums gy y / sums over the windows holding the cell, times x^(p-1).
_LP_CUDA = CudaRule(
    "kernel", kernel="elem",
    aux={"sums": ("real", lambda a, ins, out: out, (
        "{% set pre = o[:-3] %}real s = 0;\n"
        "for (int kh = 0; kh < {{a.kH}}; ++kh)\n"
        "  for (int kw = 0; kw < {{a.kW}}; ++kw)\n"
        "    s += pow({{ ld(x, *(pre + [o[-3], o[-2] ~ ' * ' ~ a.dH ~ ' + kh', o[-1] ~ ' * ' ~ a.dW ~ ' + kw'])) }}, "
        "{{ c(a.pnorm) }});\n"
        "return s;"))},
    forward="return pow({{sums}}[{{i}}], {{ c(1 / a.pnorm) }});",
    backward={"x": _DIV + (
        "{% set pre, oH, oW = o[:-3], shp.y[-2], shp.y[-1] %}"
        "const int h = {{o[-2]}}, w = {{o[-1]}};\n"
        "const int th = h - {{a.kH - 1}}, tw = w - {{a.kW - 1}};\n"
        "const int oh0 = th > 0 ? {{ ceil('th', a.dH) }} : 0, ow0 = tw > 0 ? {{ ceil('tw', a.dW) }} : 0;\n"
        "const int oh1 = {{ div('h', a.dH) }} < {{oH - 1}} ? {{ div('h', a.dH) }} + 1 : {{oH}}, "
        "ow1 = {{ div('w', a.dW) }} < {{oW - 1}} ? {{ div('w', a.dW) }} + 1 : {{oW}};\n"
        "real s = 0;\n" +
        _loop("oh", "oh0", "oh1", "{{ -(-a.kH // a.dH) }}") +
        _loop("ow", "ow0", "ow1", "{{ -(-a.kW // a.dW) }}", "  ") +
        "    s += {{ ld(gy, *(pre + [o[-3], 'oh', 'ow'])) }} * {{ ld(y, *(pre + [o[-3], 'oh', 'ow'])) }}"
        " / {{ ld(sums, *(pre + [o[-3], 'oh', 'ow'])) }};\n"
        "  }\n"
        "}\n"
        "return s * pow({{x}}[{{i}}], {{ c(a.pnorm - 1) }});")},
)

defop(
    name="SpatialLPPooling",
    signature="nInputPlane:int, pnorm:num, kW:int, kH:int, dW:int=nil, dH:int=nil",
    check=_lp_check, shape=_lp_shape, aux=("sums",),
    flops=lambda a, ins, out: math.prod(out) * a["kH"] * a["kW"] * 2,
    forward=("{{y}}, {{aux.sums}} = rt.lp_pool2d_forward({{x}}, {{a.pnorm}}, {{a.kH}}, {{a.kW}}, "
             "{{a.dH}}, {{a.dW}})"),
    backward={"x": ("rt.lp_pool2d_backward({{gy}}, {{x}}, {{y}}, {{aux.sums}}, {{a.pnorm}}, "
                    "{{a.kH}}, {{a.kW}}, {{a.dH}}, {{a.dW}})")},
    doc="(sum of x^pnorm over each kH x kW window)^(1/pnorm) (dW, dH default to kW, kH), as "
        "Torch7's Power, SpatialAveragePooling, MulConstant, Power chain; x^pnorm of a "
        "negative x with a fractional pnorm is NaN, as there.",
    torch_diff="nInputPlane is not checked against the input (Torch7 ignores it too).",
    cuda=_LP_CUDA,
)

# ---- TemporalMaxPooling -----------------------------------------------------------------------


def _tmax_check(a):
    a["dW"] = a["kW"] if a["dW"] is None else a["dW"]
    if min(a["kW"], a["dW"]) < 1:
        return "kW and dW must be >= 1"


def _tmax_shape(a, shapes):
    x = shapes[0]
    if len(x) not in (2, 3):
        raise ShapeError(f"expects a 2D (TxF) or 3D (BxTxF) input, got {len(x)}D")
    t = x[-2]
    if t == B:
        raise ShapeError("the time dimension cannot be the batch dimension B (give the input "
                         "as BxTxF)")
    if t < a["kW"]:
        raise ShapeError(f"input sequence ({t} frames) is smaller than the kernel size ({a['kW']})")
    return x[:-2] + ((t - a["kW"]) // a["dW"] + 1, x[-1])


# CUDA: aux `argmax` (int, per output element): the window offset of the first max; the
# input gradient adds gy of the windows whose max it is.
_TMAX_CUDA = CudaRule(
    "kernel", kernel="elem",
    aux={"argmax": ("int", lambda a, ins, out: out, (
        "{% set pre = o[:-2] %}"
        "const int u0 = {{o[-2]}} * {{a.dW}};\n"
        "int best = 0;\n"
        "real m = {{ ld(x, *(pre + ['u0', o[-1]])) }};\n"
        "for (int k = 1; k < {{a.kW}}; ++k) {\n"
        "  const real v = {{ ld(x, *(pre + ['u0 + k', o[-1]])) }};\n"
        "  if (v > m) { m = v; best = k; }\n"
        "}\n"
        "return best;"))},
    forward=("{% set pre = o[:-2] %}"
             "return {{ ld(x, *(pre + [o[-2] ~ ' * ' ~ a.dW ~ ' + ' ~ ld(argmax, *o), o[-1]])) }};"),
    backward={"x": _DIV + (
        "{% set pre, oT = o[:-2], shp.y[-2] %}"
        "const int u = {{o[-2]}}, tu = u - {{a.kW - 1}};\n"
        "const int t0 = tu > 0 ? {{ ceil('tu', a.dW) }} : 0;\n"
        "const int t1 = {{ div('u', a.dW) }} + 1 < {{oT}} ? {{ div('u', a.dW) }} + 1 : {{oT}};\n"
        "real s = 0;\n" +
        _loop("t", "t0", "t1", "{{ -(-a.kW // a.dW) }}") +
        "  if (t * {{a.dW}} + {{ ld(argmax, *(pre + ['t', o[-1]])) }} == u)\n"
        "    s += {{ ld(gy, *(pre + ['t', o[-1]])) }};\n"
        "}\n"
        "return s;")},
)

defop(
    name="TemporalMaxPooling", signature="kW:int, dW:int=nil",
    check=_tmax_check, shape=_tmax_shape, aux=("argmax",),
    flops=lambda a, ins, out: math.prod(out) * a["kW"],
    forward="{{y}}, {{aux.argmax}} = rt.temporal_maxpool_forward({{x}}, {{a.kW}}, {{a.dW}})",
    backward={"x": ("rt.temporal_maxpool_backward({{gy}}, {{aux.argmax}}, {{x}}.shape, {{a.kW}}, "
                    "{{a.dW}})")},
    doc="Max over windows of kW frames every dW frames (dW defaults to kW), per feature: input "
        "TxF or BxTxF. Ties go to the first max.",
    cuda=_TMAX_CUDA,
)
