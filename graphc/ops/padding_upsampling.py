"""Torch7's image padding (SpatialZeroPadding, SpatialReflectionPadding,
SpatialReplicationPadding) and SpatialUpSamplingNearest: CxHxW or NxCxHxW input; the numpy
kernels are in graphc_runtime.pad_norm_pool."""
from .registry import B, CudaRule, ShapeError, defop
from .spatial import _image


def _pads_default(a):
    """Torch: pad_r, pad_t and pad_b default to pad_l."""
    for k in ("pad_r", "pad_t", "pad_b"):
        if a[k] is None:
            a[k] = a["pad_l"]


def _hw(x, what):
    _, h, w = _image(x, None, what)
    if h == B or w == B:
        raise ShapeError("the image height and width cannot be the batch dimension B")
    return h, w


def _padded_shape(what, need_pad_below_size):
    def rule(a, shapes):
        x = shapes[0]
        h, w = _hw(x, what)
        if need_pad_below_size and (max(a["pad_t"], a["pad_b"]) >= h or
                                    max(a["pad_l"], a["pad_r"]) >= w):
            raise ShapeError(f"each pad must be smaller than the input's size (pads l, r, t, b = "
                             f"{a['pad_l']}, {a['pad_r']}, {a['pad_t']}, {a['pad_b']} on a {h}x{w} "
                             "image): a reflection repeats no edge")
        oh, ow = h + a["pad_t"] + a["pad_b"], w + a["pad_l"] + a["pad_r"]
        if oh < 1 or ow < 1:
            raise ShapeError(f"the pads crop the {h}x{w} image to nothing ({oh}x{ow})")
        return x[:-2] + (oh, ow)
    return rule


_PAD_SIG = "pad_l:int, pad_r:int=nil, pad_t:int=nil, pad_b:int=nil"
_PAD_ARGS = "{{a.pad_l}}, {{a.pad_r}}, {{a.pad_t}}, {{a.pad_b}}"
_PAD_NEG = "{{ -a.pad_l }}, {{ -a.pad_r }}, {{ -a.pad_t }}, {{ -a.pad_b }}"


def _zero_check(a):
    _pads_default(a)


# CUDA: gathers, one thread per element. The output cell (oh, ow) is input cell
# (oh - pad_t, ow - pad_l), zero outside the input; the input gradient reads back.
_ZERO_CUDA = CudaRule(
    "kernel", kernel="elem",
    forward=(
        "{% set pre, H, W = o[:-3], shp.x[-2], shp.x[-1] %}"
        "const int h = {{o[-2]}} - {{a.pad_t}}, w = {{o[-1]}} - {{a.pad_l}};\n"
        "return h >= 0 && h < {{H}} && w >= 0 && w < {{W}} ? "
        "{{ ld(x, *(pre + [o[-3], 'h', 'w'])) }} : (real)0;"),
    backward={"x": (
        "{% set pre, oH, oW = o[:-3], shp.y[-2], shp.y[-1] %}"
        "const int h = {{o[-2]}} + {{a.pad_t}}, w = {{o[-1]}} + {{a.pad_l}};\n"
        "return h >= 0 && h < {{oH}} && w >= 0 && w < {{oW}} ? "
        "{{ ld(gy, *(pre + [o[-3], 'h', 'w'])) }} : (real)0;")},
)

defop(
    name="SpatialZeroPadding", signature=_PAD_SIG, check=_zero_check,
    shape=_padded_shape("SpatialZeroPadding", False),
    forward="{{y}} = rt.zero_pad2d({{x}}, " + _PAD_ARGS + ")",
    backward={"x": "rt.zero_pad2d({{gy}}, " + _PAD_NEG + ")"},
    doc="Adds pad_l / pad_r zero columns and pad_t / pad_b zero rows (pad_r, pad_t, pad_b "
        "default to pad_l); a negative pad crops, as in Torch.",
    cuda=_ZERO_CUDA,
)


def _mirror_check(a):
    _pads_default(a)
    if min(a["pad_l"], a["pad_r"], a["pad_t"], a["pad_b"]) < 0:
        return "pads must be >= 0 (nn.SpatialZeroPadding crops with negative pads)"


# The input row the output row `oh` copies, as C statements setting int `var` (reflection:
# mirrored at the edges without repeating them; replication: clamped).
_SRC = (
    "{% macro src(var, out, pad, size, mode) %}"
    "int {{var}} = {{out}} - {{pad}};\n"
    "{% if mode == 'reflect' %}"
    "if ({{var}} < 0) {{var}} = -{{var}};\n"
    "if ({{var}} > {{size - 1}}) {{var}} = {{2 * (size - 1)}} - {{var}};\n"
    "{% else %}"
    "if ({{var}} < 0) {{var}} = 0;\n"
    "if ({{var}} > {{size - 1}}) {{var}} = {{size - 1}};\n"
    "{% endif %}{% endmacro %}")
# The output rows that copy input row `at` (reflection: itself and at most one mirror on
# each side; replication: an edge row is copied into every pad row beside it), as C
# statements filling int `var`[3] / the range var0 .. var1 - 1.
_DST = (
    "{% macro dst(var, at, before, after, size, mode) %}"
    "{% if mode == 'reflect' %}"
    "int {{var}}[3], n{{var}} = 0;\n"
    "{{var}}[n{{var}}++] = {{at}} + {{before}};\n"
    "if ({{at}} >= 1 && {{at}} <= {{before}}) {{var}}[n{{var}}++] = {{before}} - {{at}};\n"
    "if ({{at}} <= {{size - 2}} && {{at}} >= {{size - 1 - after}}) "
    "{{var}}[n{{var}}++] = {{before + 2 * (size - 1)}} - {{at}};\n"
    "{% else %}"
    "const int {{var}}0 = {{at}} == 0 ? 0 : {{at}} + {{before}};\n"
    "const int {{var}}1 = {{at}} == {{size - 1}} ? {{size + before + after}} : {{at}} + {{before}} + 1;\n"
    "{% endif %}{% endmacro %}")


def _mirror_cuda(mode):
    fwd = (_SRC + "{% set pre, H, W = o[:-3], shp.x[-2], shp.x[-1] %}"
           "{{ src('h', o[-2], a.pad_t, H, '" + mode + "') }}"
           "{{ src('w', o[-1], a.pad_l, W, '" + mode + "') }}"
           "return {{ ld(x, *(pre + [o[-3], 'h', 'w'])) }};")
    head = (_DST + "{% set pre, H, W = o[:-3], shp.x[-2], shp.x[-1] %}"
            "{{ dst('rh', o[-2], a.pad_t, a.pad_b, H, '" + mode + "') }}"
            "{{ dst('rw', o[-1], a.pad_l, a.pad_r, W, '" + mode + "') }}"
            "real s = 0;\n")
    if mode == "reflect":
        loops = ("for (int p = 0; p < nrh; ++p)\n"
                 "  for (int q = 0; q < nrw; ++q) s += {{ ld(gy, *(pre + [o[-3], 'rh[p]', 'rw[q]'])) }};\n")
    else:
        loops = ("for (int h = rh0; h < rh1; ++h)\n"
                 "  for (int w = rw0; w < rw1; ++w) s += {{ ld(gy, *(pre + [o[-3], 'h', 'w'])) }};\n")
    return CudaRule("kernel", kernel="elem", forward=fwd,
                    backward={"x": head + loops + "return s;"})


for _name, _mode, _what in (
        ("SpatialReflectionPadding", "reflect",
         "mirror images of the border (without repeating the edge row or column)"),
        ("SpatialReplicationPadding", "replicate", "copies of the edge row or column")):
    defop(
        name=_name, signature=_PAD_SIG, check=_mirror_check,
        shape=_padded_shape(_name, _mode == "reflect"),
        forward=("{{y}} = rt.gather2d({{x}}, rt.pad_index({{in_shapes[0][-2]}}, {{a.pad_t}}, "
                 "{{a.pad_b}}, '" + _mode + "'), rt.pad_index({{in_shapes[0][-1]}}, {{a.pad_l}}, "
                 "{{a.pad_r}}, '" + _mode + "'))"),
        backward={"x": ("rt.gather2d_backward({{gy}}, rt.pad_index({{in_shapes[0][-2]}}, "
                        "{{a.pad_t}}, {{a.pad_b}}, '" + _mode + "'), rt.pad_index("
                        "{{in_shapes[0][-1]}}, {{a.pad_l}}, {{a.pad_r}}, '" + _mode + "'), "
                        "{{in_shapes[0][-2]}}, {{in_shapes[0][-1]}})")},
        doc=f"Pads with {_what}: pad_l / pad_r columns, pad_t / pad_b rows (pad_r, pad_t, "
            "pad_b default to pad_l)." + (" Each pad must be smaller than the image's size."
                                          if _mode == "reflect" else ""),
        torch_diff="Negative pads (cropping) are refused; nn.SpatialZeroPadding takes them.",
        cuda=_mirror_cuda(_mode),
    )


# ---- SpatialUpSamplingNearest ------------------------------------------------------------------


def _up_check(a):
    if a["scale"] < 1:
        return f"scale must be >= 1, got {a['scale']}"


def _up_shape(a, shapes):
    x = shapes[0]
    h, w = _hw(x, "SpatialUpSamplingNearest")
    return x[:-2] + (h * a["scale"], w * a["scale"])


defop(
    name="SpatialUpSamplingNearest", signature="scale:int", check=_up_check, shape=_up_shape,
    forward="{{y}} = rt.upsample_nearest({{x}}, {{a.scale}})",
    backward={"x": "rt.upsample_nearest_backward({{gy}}, {{a.scale}})"},
    doc="Nearest-neighbour upsampling by an integer factor: each pixel becomes a scale x "
        "scale block; the gradient sums each block.",
    cuda=CudaRule(
        "kernel", kernel="elem",
        forward=("{% set pre = o[:-3] %}"
                 "return {{ ld(x, *(pre + [o[-3], '(' ~ o[-2] ~ ') / ' ~ a.scale, '(' ~ o[-1] ~ ') / ' ~ a.scale])) }};"),
        backward={"x": (
            "{% set pre, s = o[:-3], a.scale %}"
            "real g = 0;\n"
            "for (int p = 0; p < {{s}}; ++p)\n"
            "  for (int q = 0; q < {{s}}; ++q)\n"
            "    g += {{ ld(gy, *(pre + [o[-3], '(' ~ o[-2] ~ ') * ' ~ s ~ ' + p', '(' ~ o[-1] ~ ') * ' ~ s ~ ' + q'])) }};\n"
            "return g;")}),
)
