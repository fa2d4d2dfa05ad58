"""SpatialConvolution and SpatialMaxPooling: NCHW (or CHW), Torch7 argument order
(kW before kH). The heavy lifting is in graphc_runtime.kernels (im2col + GEMM)."""
import math

from .registry import (CudaRule, ParamSpec, ShapeError, c_dim, defop, is_symbolic, shape_text,
                       uniform)


def _fixed(size):
    if not isinstance(size, int):  # B or B*k where an image's height or width should be
        raise ShapeError(f"an image's height and width must be fixed sizes, but one is the "
                         f"batch dimension {size}: give the input with the batch first "
                         "(NxCxHxW), or fold it with View(...):setNumInputDims(3)")
    return size


def conv_out(size, k, d, pad):
    return (_fixed(size) + 2 * pad - k) // d + 1


def pool_out(size, k, d, pad, ceil_mode, keep_outside=False):
    span = _fixed(size) + 2 * pad - k
    out = (-(-span // d) if ceil_mode else span // d) + 1
    if ceil_mode and not keep_outside and (out - 1) * d >= size + pad:
        out -= 1  # the last window must start inside the (left-padded) input
    return out


def _image(shape, channels, what):
    if len(shape) not in (3, 4):
        raise ShapeError(f"{what} expects a 3D (CxHxW) or 4D (NxCxHxW) input, got "
                         f"{shape_text(shape)}")
    c, h, w = shape[-3:]
    for size in (c, h, w):
        _fixed(size)
    if channels is not None and c != channels:
        raise ShapeError(f"{what} expects {channels} input planes, got {c} "
                         f"(input {shape_text(shape)})")
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


# ---- CUDA (kind 'kernel'): im2col / pooling kernels of their own, written through the
# backend's emit context `cx` (backends/cuda.py); the GEMMs are cuBLAS.

def _geometry(shape):
    """(N as C and as Python, C, H, W) of a CHW or NCHW shape (B: the batch size)."""
    if len(shape) == 4:
        n = c_dim(shape[0])  # B, (B * 5) for a folded batch, or a number
        return (n, n) if is_symbolic(shape[0]) else (shape[0], n), shape[1], shape[2], shape[3]
    return (1, "1"), shape[0], shape[1], shape[2]


def _reshape_arg(shape):
    """A shape for .reshape(): -1 for the batch dim (B or B*k)."""
    return "(" + ", ".join("-1" if is_symbolic(d) else str(d) for d in shape) + ")"


def _window(a):
    return {k: a[k] for k in ("kH", "kW", "dH", "dW", "padH", "padW")}


_CONV_IM2COL = (
    '{{ loader }}\n'
    '{% if cpu %}'
    '// {{ comment|ccomment }}: im2col, one iteration per row of cols ((N*{{ oH }}*{{ oW }}) x {{ K }}:\n'
    '// row (n, oh, ow), column (c, kh, kw)); the GEMM with the weight is BLAS\n'
    'extern "C" __global__ void __launch_bounds__({{ block }}) {{ name }}_im2col({{ fwd_params|join(\', \') }}) {\n'
    '  {{ each("r", n_rows, K) }}\n'
    '  const int ow = r % {{ oW }}, oh = (r / {{ oW }}) % {{ oH }}, n = r / {{ oH * oW }};\n'
    '  real* __restrict__ col = o_cols + (long)r * {{ K }};\n'
    '  for (int c = 0; c < {{ C }}; ++c) {\n'
    '    for (int kh = 0; kh < {{ kH }}; ++kh) {\n'
    '      const int h = oh * {{ dH }} - {{ padH }} + kh;\n'
    '      for (int kw = 0; kw < {{ kW }}; ++kw) {\n'
    '        const int w = ow * {{ dW }} - {{ padW }} + kw;\n'
    '        real v = 0;\n'
    '        if (h >= 0 && h < {{ H }} && w >= 0 && w < {{ W }}) v = {{ x("((n * " ~ C ~ " + c) * " ~ H ~ " + h) * " ~ W ~ " + w") }};\n'
    '        col[(c * {{ kH }} + kh) * {{ kW }} + kw] = v;\n'
    '      }\n'
    '    }\n'
    '  }\n'
    '{% else %}'
    '// {{ comment|ccomment }}: im2col, one thread per element of cols ((N*{{ oH }}*{{ oW }}) x {{ K }}:\n'
    '// row (n, oh, ow), column (c, kh, kw)); the GEMM with the weight is cuBLAS\n'
    'extern "C" __global__ void __launch_bounds__({{ block }}) {{ name }}_im2col({{ fwd_params|join(\', \') }}) {\n'
    '  {{ threads("i", n_cols) }}\n'
    '  const int k = i % {{ K }}, r = i / {{ K }};\n'
    '  const int kw = k % {{ kW }}, kh = (k / {{ kW }}) % {{ kH }}, c = k / {{ kH * kW }};\n'
    '  const int ow = r % {{ oW }}, oh = (r / {{ oW }}) % {{ oH }}, n = r / {{ oH * oW }};\n'
    '  const int h = oh * {{ dH }} - {{ padH }} + kh, w = ow * {{ dW }} - {{ padW }} + kw;\n'
    '  real v = 0;\n'
    '  if (h >= 0 && h < {{ H }} && w >= 0 && w < {{ W }}) v = {{ x("((n * " ~ C ~ " + c) * " ~ H ~ " + h) * " ~ W ~ " + w") }};\n'
    '  o_cols[i] = v;\n'
    '{% endif %}'
    '{{ end_threads }}'
    '}\n')
_CONV_COL2IM = (
    '{% if cpu %}'
    '// {{ comment|ccomment }}: col2im, one iteration per image: zeroed, then every column entry\n'
    '// added where it was read (images are disjoint: no atomics, deterministic)\n'
    'extern "C" __global__ void __launch_bounds__({{ block }}) {{ name }}_col2im({{ bwd_params|join(\', \') }}) {\n'
    '  {{ each("n", n_images, C * H * W) }}\n'
    '  real* __restrict__ g = o_gx + (long)n * {{ C * H * W }};\n'
    '  for (int k = 0; k < {{ C * H * W }}; ++k) g[k] = 0;\n'
    '  for (int oh = 0; oh < {{ oH }}; ++oh) {\n'
    '    for (int ow = 0; ow < {{ oW }}; ++ow) {\n'
    '      const real* __restrict__ col = i_gcols + ((long)(n * {{ oH }} + oh) * {{ oW }} + ow) * {{ K }};\n'
    '      for (int c = 0; c < {{ C }}; ++c) {\n'
    '        for (int kh = 0; kh < {{ kH }}; ++kh) {\n'
    '          const int h = oh * {{ dH }} - {{ padH }} + kh;\n'
    '          if (h < 0 || h >= {{ H }}) continue;\n'
    '          for (int kw = 0; kw < {{ kW }}; ++kw) {\n'
    '            const int w = ow * {{ dW }} - {{ padW }} + kw;\n'
    '            if (w >= 0 && w < {{ W }}) g[(c * {{ H }} + h) * {{ W }} + w] += col[(c * {{ kH }} + kh) * {{ kW }} + kw];\n'
    '          }\n'
    '        }\n'
    '      }\n'
    '    }\n'
    '  }\n'
    '{% else %}'
    '// {{ comment|ccomment }}: col2im, one thread per input element, summing the columns that read it\n'
    '// (a gather: no atomics, deterministic)\n'
    'extern "C" __global__ void __launch_bounds__({{ block }}) {{ name }}_col2im({{ bwd_params|join(\', \') }}) {\n'
    '  {{ threads("i", n_in) }}\n'
    '  const int w = i % {{ W }}, h = (i / {{ W }}) % {{ H }}, c = (i / {{ H * W }}) % {{ C }}, n = i / {{ C * H * W }};\n'
    '  real s = 0;\n'
    '  for (int kh = 0; kh < {{ kH }}; ++kh) {\n'
    '    const int th = h + {{ padH }} - kh;\n'
    '    if (th < 0 || th % {{ dH }} != 0 || th / {{ dH }} >= {{ oH }}) continue;\n'
    '    for (int kw = 0; kw < {{ kW }}; ++kw) {\n'
    '      const int tw = w + {{ padW }} - kw;\n'
    '      if (tw < 0 || tw % {{ dW }} != 0 || tw / {{ dW }} >= {{ oW }}) continue;\n'
    '      const int r = (n * {{ oH }} + th / {{ dH }}) * {{ oW }} + tw / {{ dW }};\n'
    '      s += i_gcols[r * {{ K }} + (c * {{ kH }} + kh) * {{ kW }} + kw];\n'
    '    }\n'
    '  }\n'
    '  o_gx[i] = s;\n'
    '{% endif %}'
    '{{ end_threads }}'
    '}\n')


def _conv_cuda_forward(cx, node):
    """im2col (reading x through the fused prologue), then the GEMM with the weight; the
    NHWC GEMM result is read back as NCHW (+ bias) by the consumers (epilogue 'nhwc')."""
    a = node.attrs
    x, w = node.inputs[0], node.inputs[1]
    y, cols = node.outputs[0], node.outputs[1]
    (N, pyN), C, H, W = _geometry(x.shape)
    _, nOut, oH, oW = _geometry(y.shape)
    K = C * a["kH"] * a["kW"]
    kb = cx.kernel_builder()
    name = cx.kernel_name("conv2d")
    loader_src, load = cx.loader(kb, x, "conv2d_x")
    kb.array(cx.n(cols), write=True, cname="o_cols")
    # every image's rows: B of them, or a fixed N (1 for a CxHxW input)
    rows_shape = (x.shape[0], oH * oW * K) if len(x.shape) == 4 and is_symbolic(x.shape[0]) \
        else (N * oH * oW * K,)
    n_cols = kb.count_expr(rows_shape)
    n_rows = kb.count_expr(rows_shape[:-1] + (rows_shape[-1] // K,))
    src = cx.render(_CONV_IM2COL, loader=loader_src, comment=f"{cx.describe(node)}: {C}->{nOut}, {a['kH']}x{a['kW']}", name=name,
                    fwd_params=kb.declarations(), n_cols=n_cols, n_rows=n_rows, x=load, C=C, H=H, W=W,
                    oH=oH, oW=oW, K=K, **_window(a))
    cx.add_kernel(name + "_im2col", src, kb)
    gemm = cx.gemm(node)
    return [
        f"{cx.n(cols)} = rt.empty(({pyN} * {oH * oW}, {K}), dt)",
        cx.launch(name + "_im2col", cx.pynumel(rows_shape), kb),
        f"{cx.n(gemm)} = rt.matmul({cx.n(cols)}, {cx.n(w)}.reshape({nOut}, {K}).T)"
        f".reshape({_reshape_arg(gemm.shape)})",
    ]


def _conv_cuda_backward(cx, gnode, fwd, targets):
    """Weight and bias gradients: GEMMs on the output gradient as (N*H*W) x C rows; the
    input gradient: a GEMM into columns, then col2im."""
    a = fwd.attrs
    x, w = fwd.inputs[0], fwd.inputs[1]
    y, cols = fwd.outputs[0], fwd.outputs[1]
    (_, pyN), C, H, W = _geometry(x.shape)
    _, nOut, oH, oW = _geometry(y.shape)
    K = C * a["kH"] * a["kW"]
    rows = f"{cx.rows_of(gnode.inputs[0])}.reshape(-1, {nOut})"
    lines = []
    if 1 in targets:
        lines.append(f"rt.addmm({cx.grad_buffer(targets[1])}.reshape({nOut}, {K}), {rows}.T, "
                     f"{cx.n(cols)}{cx.beta_of(targets[1])})")
    if 2 in targets:
        lines.append(f"rt.add_colsum({cx.grad_buffer(targets[2])}, {rows}{cx.beta_of(targets[2])})")
    if 0 in targets:
        gx = cx.n(targets[0])
        gcols = cx.n.fresh(gx + "_cols")
        kb = cx.kernel_builder()
        name = cx.kernel_name("conv2d")
        kb.array(gcols, cname="i_gcols")
        kb.array(gx, write=True, cname="o_gx")
        n_in = kb.count_expr(x.shape)
        src = cx.render(_CONV_COL2IM, comment=f"{cx.describe(gnode)}: {C}->{nOut}, {a['kH']}x{a['kW']}", name=name,
                        bwd_params=kb.declarations(), n_in=n_in, n_images=kb.count_expr(x.shape[:-3]),
                        C=C, H=H, W=W,
                        oH=oH, oW=oW, K=K, **_window(a))
        cx.add_kernel(name + "_col2im", src, kb)
        lines += [f"{gcols} = rt.matmul({rows}, {cx.n(w)}.reshape({nOut}, {K}))",
                  f"{gx} = rt.empty({cx.pyshape(x.shape)}, dt)",
                  cx.launch(name + "_col2im", cx.pynumel(x.shape), kb)]
    return lines


_MAXPOOL_FWD = (
    '{{ loader }}\n'
    '// {{ comment|ccomment }}: forward, one thread per output; argmax = h * W + w of the winner in its\n'
    '// plane (padding never wins; ties go to the first maximum in row-major window order)\n'
    'extern "C" __global__ void __launch_bounds__({{ block }}) {{ name }}_fwd({{ fwd_params|join(\', \') }}) {\n'
    '  {{ threads("o", n_out) }}\n'
    '  const int ow = o % {{ oW }}, oh = (o / {{ oW }}) % {{ oH }}, plane = o / {{ oH * oW }};\n'
    '  const int h0 = oh * {{ dH }} - {{ padH }}, w0 = ow * {{ dW }} - {{ padW }};\n'
    '  int best = (h0 < 0 ? 0 : h0) * {{ W }} + (w0 < 0 ? 0 : w0);\n'
    '{% if (oH - 1) * dH - padH >= H or (oW - 1) * dW - padW >= W %}\n'
    '  if (h0 >= {{ H }} || w0 >= {{ W }}) best = -1;  // a kept window past the input (Torch7): no winner\n'
    '{% endif %}\n'
    '  real m = g_ninf((real)0);\n'
    '  for (int kh = 0; kh < {{ kH }}; ++kh) {\n'
    '    const int h = h0 + kh;\n'
    '    if (h < 0 || h >= {{ H }}) continue;\n'
    '    for (int kw = 0; kw < {{ kW }}; ++kw) {\n'
    '      const int w = w0 + kw;\n'
    '      if (w < 0 || w >= {{ W }}) continue;\n'
    '      const real v = {{ x("plane * " ~ (H * W) ~ " + h * " ~ W ~ " + w") }};\n'
    '      if (v > m) {\n'
    '        m = v;\n'
    '        best = h * {{ W }} + w;\n'
    '      }\n'
    '    }\n'
    '  }\n'
    '  o_y[o] = m;\n'
    '  o_argmax[o] = best;\n'
    '{{ end_threads }}'
    '}\n')
_MAXPOOL_BWD = (
    '{{ loader }}\n'
    '{% if cpu %}'
    '// {{ comment|ccomment }}: backward, one iteration per plane: zeroed, then each window\'s gradient\n'
    '// added at its winner (a plane\'s windows win only in that plane: no atomics, deterministic)\n'
    'extern "C" __global__ void __launch_bounds__({{ block }}) {{ name }}_bwd({{ bwd_params|join(\', \') }}) {\n'
    '  {{ each("plane", n_planes, H * W) }}\n'
    '  real* __restrict__ g = o_gx + (long)plane * {{ H * W }};\n'
    '  for (int k = 0; k < {{ H * W }}; ++k) g[k] = 0;\n'
    '  for (int o = plane * {{ oH * oW }}; o < (plane + 1) * {{ oH * oW }}; ++o) {\n'
    '    const int at = i_argmax[o];\n'
    '    if (at >= 0) g[at] += {{ gy("o") }};\n'
    '  }\n'
    '{% else %}'
    '// {{ comment|ccomment }}: backward, one thread per input element, summing the gradients of the\n'
    '// windows it won (a gather: no atomics, deterministic)\n'
    'extern "C" __global__ void __launch_bounds__({{ block }}) {{ name }}_bwd({{ bwd_params|join(\', \') }}) {\n'
    '  {{ threads("i", n_in) }}\n'
    '  const int w = i % {{ W }}, h = (i / {{ W }}) % {{ H }}, plane = i / {{ H * W }};\n'
    '  const int me = h * {{ W }} + w;\n'
    '  const int th = h + {{ padH - kH + 1 }}, tw = w + {{ padW - kW + 1 }};\n'
    '  const int oh0 = th <= 0 ? 0 : (th + {{ dH - 1 }}) / {{ dH }}, ow0 = tw <= 0 ? 0 : (tw + {{ dW - 1 }}) / {{ dW }};\n'
    '  const int eh = (h + {{ padH }}) / {{ dH }}, ew = (w + {{ padW }}) / {{ dW }};\n'
    '  const int oh1 = eh < {{ oH - 1 }} ? eh : {{ oH - 1 }}, ow1 = ew < {{ oW - 1 }} ? ew : {{ oW - 1 }};\n'
    '  real s = 0;\n'
    '  for (int oh = oh0; oh <= oh1; ++oh) {\n'
    '    for (int ow = ow0; ow <= ow1; ++ow) {\n'
    '      const int o = (plane * {{ oH }} + oh) * {{ oW }} + ow;\n'
    '      if (i_argmax[o] == me) s += {{ gy("o") }};\n'
    '    }\n'
    '  }\n'
    '  o_gx[i] = s;\n'
    '{% endif %}'
    '{{ end_threads }}'
    '}\n')


def _pool_cuda_forward(cx, node):
    a = node.attrs
    x = node.inputs[0]
    y, argmax = node.outputs
    _, C, H, W = _geometry(x.shape)
    _, _, oH, oW = _geometry(y.shape)
    kb = cx.kernel_builder()
    name = cx.kernel_name("maxpool2d")
    loader_src, load = cx.loader(kb, x, "maxpool2d_x")
    kb.array(cx.n(y), write=True, cname="o_y")
    kb.array(cx.n(argmax), "int", write=True, cname="o_argmax")
    n_out = kb.count_expr(y.shape)
    src = cx.render(_MAXPOOL_FWD, loader=loader_src, comment=f"{cx.describe(node)}: {a['kH']}x{a['kW']}", name=name,
                    fwd_params=kb.declarations(), n_out=n_out, x=load, H=H, W=W, oH=oH,
                    oW=oW, **_window(a))
    cx.add_kernel(name + "_fwd", src, kb)
    shape = cx.pyshape(y.shape)
    return [f"{cx.n(y)} = rt.empty({shape}, dt)",
            f"{cx.n(argmax)} = rt.empty({shape}, 'int32')",
            cx.launch(name + "_fwd", cx.pynumel(y.shape), kb)]


def _pool_cuda_backward(cx, gnode, fwd, targets):
    a = fwd.attrs
    x = fwd.inputs[0]
    y, argmax = fwd.outputs
    _, C, H, W = _geometry(x.shape)
    _, _, oH, oW = _geometry(y.shape)
    gx = cx.n(targets[0])
    kb = cx.kernel_builder()
    name = cx.kernel_name("maxpool2d")
    loader_src, load = cx.loader(kb, gnode.inputs[0], "maxpool2d_gy")
    kb.array(cx.n(argmax), "int", cname="i_argmax")
    kb.array(gx, write=True, cname="o_gx")
    n_in = kb.count_expr(x.shape)
    src = cx.render(_MAXPOOL_BWD, loader=loader_src, comment=f"{cx.describe(gnode)}: {a['kH']}x{a['kW']}", name=name,
                    bwd_params=kb.declarations(), n_in=n_in, n_planes=kb.count_expr(x.shape[:-2]),
                    gy=load, H=H, W=W, oH=oH,
                    oW=oW, **_window(a))
    cx.add_kernel(name + "_bwd", src, kb)
    return [f"{gx} = rt.empty({cx.pyshape(x.shape)}, dt)",
            cx.launch(name + "_bwd", cx.pynumel(x.shape), kb)]


_conv_stdv = uniform(lambda a: 1 / math.sqrt(a["kW"] * a["kH"] * a["nInputPlane"]))
_HW = "dH={{a.dH}}, dW={{a.dW}}, padH={{a.padH}}, padW={{a.padW}}"
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
                   "{{gy}}" + _4D + ", {{xshape(0, rank == 3)}}, {{aux.cols}}, {{weight}}, " + _HW +
                   ", need_input={{ g.x is not none }})\n"
                   "{% if g.x and rank == 3 %}{{g.x}} = {{g.x}}[0]\n{% endif %}"),
    doc="2D cross-correlation (im2col + GEMM); weight nOutputPlane x nInputPlane x kH x kW; "
        "padH defaults to padW. Input CxHxW or NxCxHxW.",
    aliases=("SpatialConvolutionMM",),
    # im2col kernel (reading x through a fused prologue) + cuBLAS GEMM; bias and the
    # NHWC -> NCHW layout join the consumers' fused kernel; backward GEMMs on (N*H*W) x C rows
    cuda=CudaRule("kernel", kernel="conv2d", reads="prologue", grad_reads="rows", epilogue="nhwc",
                  doc="im2col kernel + cuBLAS GEMM",
                  emit_forward=_conv_cuda_forward, emit_backward=_conv_cuda_backward),
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


_POOL = "kH={{a.kH}}, kW={{a.kW}}, dH={{a.dH}}, dW={{a.dW}}, padH={{a.padH}}, padW={{a.padW}}"
defop(
    name="SpatialMaxPooling", signature="kW:int, kH:int, dW:int=nil, dH:int=nil, padW:int=0, padH:int=0",
    check=_pool_check, shape=_pool_shape, aux=("argmax",),
    flops=lambda a, ins, out: math.prod(out) * a["kH"] * a["kW"],
    methods={"ceil": _set_ceil(True), "floor": _set_ceil(False)},
    forward=("{{y}}, {{aux.argmax}} = rt.maxpool2d_forward({{x}}" + _4D + ", " + _POOL +
             ", ceil_mode={{a.ceil_mode}})\n{% if rank == 3 %}{{y}} = {{y}}[0]\n{% endif %}"),
    backward={"x": "rt.maxpool2d_backward({{gy}}" + _4D + ", {{aux.argmax}}, {{xshape(0, rank == 3)}}, " +
                   _POOL + ")" + _3D},
    doc="Max over kH x kW windows (dW, dH default to kW, kH); `:ceil()` rounds the output "
        "size up. Ties go to the first max. In ceil mode with no padding, a last window that "
        "starts past the input (a stride larger than the kernel) is kept, as in Torch7: its "
        "output is -inf and it passes no gradient (PyTorch drops it; with padding both drop it).",
    cuda=CudaRule("kernel", kernel="maxpool2d", reads="prologue", grad_reads="prologue",
                  emit_forward=_pool_cuda_forward, emit_backward=_pool_cuda_backward),
)
