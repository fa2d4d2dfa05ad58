"""SpatialConvolution and SpatialMaxPooling: NCHW (or CHW), Torch7 argument order
(kW before kH). The heavy lifting is in graphc_runtime.kernels (im2col + GEMM)."""
import math

from .registry import CudaRule, ParamSpec, ShapeError, defop, uniform


def conv_out(size, k, d, pad):
    return (size + 2 * pad - k) // d + 1


def pool_out(size, k, d, pad, ceil_mode, keep_outside=False):
    span = size + 2 * pad - k
    out = (-(-span // d) if ceil_mode else span // d) + 1
    if ceil_mode and not keep_outside and (out - 1) * d >= size + pad:
        out -= 1  # the last window must start inside the (left-padded) input
    return out


def _image(shape, channels, what):
    if len(shape) not in (3, 4):
        raise ShapeError(f"{what} expects a 3D (CxHxW) or 4D (NxCxHxW) input, got "
                         f"{'x'.join(map(str, shape))}")
    c, h, w = shape[-3:]
    if channels is not None and c != channels:
        raise ShapeError(f"{what} expects {channels} input planes, got {c} "
                         f"(input {'x'.join(map(str, shape))})")
    return c, h, w


def _conv_shape(a, shapes):
    x = shapes[0]
    _, h, w = _image(x, a["nInputPlane"], "SpatialConvolution")
    oh, ow = conv_out(h, a["kH"], a["dH"], a["padH"]), conv_out(w, a["kW"], a["dW"], a["padW"])
    if oh < 1 or ow < 1:
        raise ShapeError(f"input {h}x{w} is too small for a {a['kH']}x{a['kW']} kernel "
                         f"(output would be {oh}x{ow})")
    return x[:-3] + (a["nOutputPlane"], oh, ow)


def _conv_check(a):
    if a["padH"] is None:
        a["padH"] = a["padW"]  # Torch: padH defaults to padW
    if min(a["kW"], a["kH"], a["dW"], a["dH"]) < 1 or min(a["padW"], a["padH"]) < 0:
        return "kernel sizes and strides must be >= 1 and padding >= 0"


def _no_bias(a):
    a["bias"] = False


_conv_stdv = uniform(lambda a: 1 / math.sqrt(a["kW"] * a["kH"] * a["nInputPlane"]))
_HW = "{{a.dH}}, {{a.dW}}, {{a.padH}}, {{a.padW}}"
_4D = "{% if rank == 3 %}[None]{% endif %}"  # kernels take NCHW; CHW gets a batch of one
_3D = "{% if rank == 3 %}[0]{% endif %}"

defop(
    name="SpatialConvolution",
    signature="nInputPlane:int, nOutputPlane:int, kW:int, kH:int, dW:int=1, dH:int=1, "
              "padW:int=0, padH:int=nil",
    params=(
        ParamSpec("weight", lambda a: (a["nOutputPlane"], a["nInputPlane"], a["kH"], a["kW"]),
                  _conv_stdv),
        ParamSpec("bias", lambda a: (a["nOutputPlane"],), _conv_stdv,
                  present=lambda a: a.get("bias", True)),
    ),
    methods={"noBias": _no_bias}, check=_conv_check, shape=_conv_shape,
    aux=("cols",),
    flops=lambda a, ins, out: 2 * math.prod(out) * a["nInputPlane"] * a["kH"] * a["kW"],
    forward=("{{y}}, {{aux.cols}} = rt.conv2d_forward({{x}}" + _4D + ", {{weight}}, {{bias}}, " + _HW + ")\n"
             "{% if rank == 3 %}{{y}} = {{y}}[0]\n{% endif %}"),
    backward_stmt=("{{g.x or '_'}}, {{g.weight or '_'}}, {{g.bias or '_'}} = rt.conv2d_backward("
                   "{{gy}}" + _4D + ", {{x}}" + _4D + ".shape, {{aux.cols}}, {{weight}}, " + _HW +
                   ", need_input={{ g.x is not none }})\n"
                   "{% if g.x and rank == 3 %}{{g.x}} = {{g.x}}[0]\n{% endif %}"),
    doc="2D cross-correlation (im2col + GEMM); weight nOutputPlane x nInputPlane x kH x kW; "
        "padH defaults to padW. Input CxHxW or NxCxHxW.",
    aliases=("SpatialConvolutionMM",),
    # im2col kernel (reading x through a fused prologue) + cuBLAS GEMM; bias and the
    # NHWC -> NCHW layout join the consumers' fused kernel; backward GEMMs on (N*H*W) x C rows
    cuda=CudaRule("kernel", kernel="conv2d", reads="prologue", grad_reads="rows"),
)


def _pool_shape(a, shapes):
    x = shapes[0]
    _, h, w = _image(x, None, "SpatialMaxPooling")
    if a["padW"] * 2 > a["kW"] or a["padH"] * 2 > a["kH"]:
        raise ShapeError("pad should be at most half of the kernel size")
    # Torch7 (SpatialDilatedMaxPooling.c) drops a ceil-mode window that starts past the input
    # only when some padding is set; with none it keeps it (-inf, no winner)
    keep = not (a["padW"] or a["padH"])
    oh = pool_out(h, a["kH"], a["dH"], a["padH"], a["ceil_mode"], keep)
    ow = pool_out(w, a["kW"], a["dW"], a["padW"], a["ceil_mode"], keep)
    if oh < 1 or ow < 1:
        raise ShapeError(f"input {h}x{w} is too small for a {a['kH']}x{a['kW']} pooling window")
    return x[:-3] + (x[-3], oh, ow)


def _pool_check(a):
    a["dW"] = a["kW"] if a["dW"] is None else a["dW"]
    a["dH"] = a["kH"] if a["dH"] is None else a["dH"]
    a.setdefault("ceil_mode", False)
    if min(a["kW"], a["kH"], a["dW"], a["dH"]) < 1 or min(a["padW"], a["padH"]) < 0:
        return "kernel sizes and strides must be >= 1 and padding >= 0"


def _set_ceil(value):
    def method(a):
        a["ceil_mode"] = value
    return method


_POOL = "{{a.kH}}, {{a.kW}}, {{a.dH}}, {{a.dW}}, {{a.padH}}, {{a.padW}}"
defop(
    name="SpatialMaxPooling", signature="kW:int, kH:int, dW:int=nil, dH:int=nil, padW:int=0, padH:int=0",
    check=_pool_check, shape=_pool_shape, aux=("argmax",),
    flops=lambda a, ins, out: math.prod(out) * a["kH"] * a["kW"],
    methods={"ceil": _set_ceil(True), "floor": _set_ceil(False)},
    forward=("{{y}}, {{aux.argmax}} = rt.maxpool2d_forward({{x}}" + _4D + ", " + _POOL +
             ", {{a.ceil_mode}})\n{% if rank == 3 %}{{y}} = {{y}}[0]\n{% endif %}"),
    backward={"x": "rt.maxpool2d_backward({{gy}}" + _4D + ", {{aux.argmax}}, {{x}}" + _4D +
                   ".shape, " + _POOL + ")" + _3D},
    doc="Max over kH x kW windows (dW, dH default to kW, kH); `:ceil()` rounds the output "
        "size up. Ties go to the first max. In ceil mode with no padding, a last window that "
        "starts past the input (a stride larger than the kernel) is kept, as in Torch7: its "
        "output is -inf and it passes no gradient (PyTorch drops it; with padding both drop it).",
    cuda=CudaRule("kernel", kernel="maxpool2d", reads="prologue", grad_reads="prologue"),
)
