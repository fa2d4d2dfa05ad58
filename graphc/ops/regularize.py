"""Modules whose behaviour depends on training/evaluate: Dropout, BatchNormalization and
SpatialBatchNormalization (running statistics kept as buffers)."""
from .registry import CudaRule, ParamSpec, ShapeError, c_count, c_dim, defop, is_symbolic


def _dropout_check(a):
    if not 0 <= a["p"] < 1:
        return f"p must be in [0, 1), got {a['p']}"


# CUDA: the mask is drawn on the host exactly as the numpy target draws it (same RNG, same
# order), so both targets drop the same elements; the kernels only multiply by it. With p = 0
# (v2) numpy keeps everything and draws nothing: no mask then.
_DROPOUT_CUDA = CudaRule(
    "kernel", kernel="elem",
    aux={"mask": ("real", lambda a, s, out: out, "")},
    # the mask of the numpy target (same seeded host RNG), so both targets drop the same
    host=("{% set draw = 'rt.dropout_mask(self._rng, %s, dt, %s, %s)' % (shape.x, a.p, a.v1) %}"
          "{% if not (a.p or a.v1) %}{% elif a.stochasticInference %}{{aux.mask}} = {{draw}}"
          "{% else %}{{aux.mask}} = ({{draw}} if self.train\n"
          "    else rt.full({{shape.x}}, {{ (1 - a.p) if a.v1 else 1.0 }}, dt)){% endif %}"),
    host_training_only=lambda a: not a["stochasticInference"],  # evaluate mode fills a constant
    forward="return {{x}}[{{i}}]{% if a.p or a.v1 %} * {{mask}}[{{i}}]{% endif %};",
    backward={"x": "return {{gy}}[{{i}}]{% if a.p or a.v1 %} * {{mask}}[{{i}}]{% endif %};"},
)

defop(
    name="Dropout", signature="p:num=0.5, v1:bool=false, inplace:bool=false, stochasticInference:bool=false",
    shape=lambda a, s: s[0], elementwise=True, check=_dropout_check, aux=("mask",),
    # v2 (default): scale by 1/(1-p) when training, identity at evaluation.
    # v1: no scaling when training; multiply by (1-p) at evaluation.
    forward=("{% if a.p == 0 and not a.v1 %}{{y}} = {{x}}\n{{aux.mask}} = 1.0\n{% else %}"
             "if self.train or {{a.stochasticInference}}:\n"
             "    {{aux.mask}} = rt.dropout_mask(self._rng, {{x}}, p={{a.p}}, v1={{a.v1}})\n"
             "    {{y}} = {{x}} * {{aux.mask}}\n"
             "else:\n"
             "    {{aux.mask}} = {{ (1 - a.p) if a.v1 else 1.0 }}\n"
             "    {{y}} = {{x}} * {{aux.mask}}{% endif %}"),
    backward={"x": "{{gy}} * {{aux.mask}}"},
    doc="Zeroes each element with probability p when training (`m.training()`); v2 scales "
        "the kept ones by 1/(1-p), v1 (`nn.Dropout(p, true)`) scales by (1-p) at evaluation.",
    torch_diff="`inplace` is accepted and ignored. The mask comes from the model's seeded numpy RNG.",
    cuda=_DROPOUT_CUDA,
)


def _bn_params(ndim):
    feat = lambda a: (a["nOutput"],)  # noqa: E731
    return (
        ParamSpec("weight", feat, lambda a: ("uniform01", 1.0), present=lambda a: a["affine"]),
        ParamSpec("bias", feat, lambda a: ("const", 0.0), present=lambda a: a["affine"]),
        ParamSpec("running_mean", feat, lambda a: ("const", 0.0), trainable=False),
        ParamSpec("running_var", feat, lambda a: ("const", 1.0), trainable=False),
    )


def _bn_shape(ranks):
    def rule(a, shapes):
        (x,) = shapes
        if len(x) not in ranks:
            raise ShapeError(f"expects a {' or '.join(f'{r}D' for r in ranks)} input, got {len(x)}D")
        c = x[1] if len(x) in (2, 4) else x[0]
        if c != a["nOutput"]:
            raise ShapeError(f"expects {a['nOutput']} features/channels, got {c}")
        return x
    return rule


def _bn_derive(a, shapes):
    x = shapes[0]
    rank = len(x)
    axes = {2: (0,), 4: (0, 2, 3), 3: (1, 2)}[rank]  # 3D = CxHxW (one image)
    bshape = {2: (1, -1), 4: (1, -1, 1, 1), 3: (-1, 1, 1)}[rank]
    # For the CUDA target: x seen as P x C x Q (channel dim cdim); a channel's n = P*Q elements
    # are (p * C + c) * Q + q. `batch_stats` is C for batchnorm_forward's rule (batch
    # statistics only when training with n > 1 and x.shape[0] > 1).
    if rank == 3:
        cdim, P, Q = 0, 1, x[1] * x[2]
        batch_stats = "train" if Q > 1 and x[0] > 1 else "0"
    else:
        cdim, P, Q = 1, (c_dim(x[0]) if is_symbolic(x[0]) else x[0]), (x[2] * x[3] if rank == 4 else 1)
        batch_stats = f"train && {P} > 1" if is_symbolic(x[0]) else "train" if P > 1 else "0"
    n = c_count((x[0], Q)) if rank != 3 and is_symbolic(x[0]) else P * Q
    return {"axes": axes, "bshape": bshape, "cdim": cdim, "P": P, "Q": Q, "n": n,
            "batch_stats": batch_stats}


_BN_FWD = ("{{y}}, {{aux.xhat}}, {{aux.invstd}} = rt.batchnorm_forward({{x}}, {{weight}}, {{bias}}, "
           "{{running_mean}}, {{running_var}}, axes={{d.axes}}, bshape={{d.bshape}}, eps={{a.eps}}, "
           "momentum={{a.momentum}}, train=self.train)")
_BN_BWD = ("{{g.x or '_'}}, {{g.weight or '_'}}, {{g.bias or '_'}} = rt.batchnorm_backward("
           "{{gy}}, {{aux.xhat}}, {{aux.invstd}}, {{weight}}, axes={{d.axes}}, bshape={{d.bshape}})")
# CUDA: per-channel statistics in two stages, so no thread walks a whole channel of a big
# batch: partial sums per (row p, channel c) of x seen as P x C x Q (one thread each; one row
# of the whole channel when P is 1 or Q is 1), then per channel over the rows. Then one thread
# per element. `stats` keeps the forward's choice (batch or running statistics) for the
# backward.
_BN_EACH = ("{% if in_shapes[0]|length == 4 %}for (int q = 0; q < {{d.Q}}; ++q) {  // row o[0]\n"
            "  const int e = ({{o[0]}} * {{a.nOutput}} + c) * {{d.Q}} + q;\n"
            "{% elif d.P == 1 %}for (int q = 0; q < {{d.Q}}; ++q) {\n"
            "  const int e = c * {{d.Q}} + q;\n"
            "{% else %}for (int p = 0; p < {{d.P}}; ++p) {\n"
            "  const int e = p * {{a.nOutput}} + c;\n{% endif %}")


def _bn_rows(a, ins, out):
    """Rows of the partial sums: the batch of a 4-D input, else one."""
    return (ins[0][0] if len(ins[0]) == 4 else 1, a["nOutput"])


def _bn_partial(setup, term):
    """A partial sum over row o[0] of channel o[1] (the whole channel when there is one row)."""
    return ("const int c = {{o[1]}};\n" + setup + "real s = 0;\n" + _BN_EACH +
            "  s += " + term + ";\n}\nreturn s;")


def _bn_total(part, scale=""):
    return ("const int c = {{o[0]}};\nreal s = 0;\n"
            "for (int p = 0; p < {{shp." + part + "[0]}}; ++p) s += {{" + part + "}}[p * {{a.nOutput}} + c];\n"
            "return s" + scale + ";")


_BN_C = lambda a, s, out: (a["nOutput"],)  # noqa: E731
_BN_CUDA = CudaRule(
    "kernel", kernel="elem",
    aux={
        "stats": ("int", lambda a, s, out: (1,),
                  "return {{d.batch_stats}};  // 1: batch statistics, 0: running ones"),
        "xsum": ("real", _bn_rows, _bn_partial("", "{{x}}[e]")),
        "mean": ("real", _BN_C,
                 "if (!{{stats}}[0]) return {{running_mean}}[{{o[0]}}];\n"
                 + _bn_total("xsum", " / (real)({{d.n}})")),
        "xsq": ("real", _bn_rows, _bn_partial("const real m = {{mean}}[c];\n",
                                              "({{x}}[e] - m) * ({{x}}[e] - m)")),
        "var": ("real", _BN_C,  # biased
                "if (!{{stats}}[0]) return {{running_var}}[{{o[0]}}];\n"
                + _bn_total("xsq", " / (real)({{d.n}})")),
        "invstd": ("real", _BN_C,
                   "return (real)1 / g_sqrt({{var}}[{{o[0]}}] + {{c(a.eps)}});"),
    },
    forward=("const int c = {{o[d.cdim]}};\n"
             "const real xhat = ({{x}}[{{i}}] - {{mean}}[c]) * {{invstd}}[c];\n"
             "return xhat{% if a.affine %} * {{weight}}[c] + {{bias}}[c]{% endif %};"),
    # the running statistics move only when the batch statistics were used (as numpy)
    host_training_only=True,
    host_after=("if self.train and {{x}}.size // {{a.nOutput}} > 1 and {{x}}.shape[0] > 1:\n"
                "    {{running_mean}} *= 1 - {{a.momentum}}\n"
                "    {{running_mean}} += {{a.momentum}} * {{aux.mean}}\n"
                "    {{running_var}} *= 1 - {{a.momentum}}\n"
                "    {{running_var}} += {{a.momentum}} * {{aux.var}} * ({{x}}.size // {{a.nOutput}})"
                " / ({{x}}.size // {{a.nOutput}} - 1)"),
    # per channel, once: sum(gy) and sum(gy * xhat), in the same two stages
    backward_aux={
        "gpart": ("real", _bn_rows, _bn_partial("", "{{gy}}[e]")),
        "gxpart": ("real", _bn_rows, _bn_partial("const real m = {{mean}}[c], inv = {{invstd}}[c];\n",
                                                 "{{gy}}[e] * (({{x}}[e] - m) * inv)")),
        "gsum": ("real", _BN_C, _bn_total("gpart")),
        "gxhat": ("real", _BN_C, _bn_total("gxpart")),
    },
    backward={
        "weight": "return {{gxhat}}[{{o[0]}}];",
        "bias": "return {{gsum}}[{{o[0]}}];",
        "x": ("const int c = {{o[d.cdim]}};\n"
              "const real m = {{mean}}[c], inv = {{invstd}}[c];\n"
              "{% set w %}{% if a.affine %} * {{weight}}[c]{% endif %}{% endset %}"
              "const real g = {{gy}}[{{i}}]{{w}};\n"
              "if (!{{stats}}[0]) return g * inv;\n"
              "const real n = (real)({{d.n}});\n"
              "return (g - {{gsum}}[c]{{w}} / n - ({{x}}[{{i}}] - m) * inv * ({{gxhat}}[c]{{w}} / n)) * inv;"),
    },
)

for _name, _ranks, _doc in (("BatchNormalization", (2,), "Input BxN"),
                            ("SpatialBatchNormalization", (3, 4), "Input BxCxHxW (or CxHxW)")):
    defop(
        name=_name, signature="nOutput:int, eps:num=1e-5, momentum:num=0.1, affine:bool=true",
        params=_bn_params(None), shape=_bn_shape(_ranks), derive=_bn_derive,
        aux=("xhat", "invstd"), forward=_BN_FWD, backward_stmt=_BN_BWD,
        doc=f"{_doc}. Training: batch mean and biased variance, running stats updated with "
            "momentum (unbiased variance); evaluation: running stats. weight ~ U(0, 1), bias 0.",
        torch_diff="With a batch of one in training mode Torch silently used the running "
                   "statistics; graphc does the same.",
        cuda=_BN_CUDA,
    )


# ---- SpatialDropout ----------------------------------------------------------------------------

def _spatial_dropout_shape(a, shapes):
    x = shapes[0]
    if len(x) not in (3, 4):
        raise ShapeError(f"expects a 3D (CxHxW) or 4D (NxCxHxW) input, got {len(x)}D")
    return x


# CUDA: the numpy target's mask (one value per plane, same host RNG draws), read per element
_SPATIAL_DROPOUT_CUDA = CudaRule(
    "kernel", kernel="elem",
    aux={"mask": ("real", lambda a, s, out: out[:-2] + (1, 1), "")},
    host=("{% set draw = 'rt.dropout_mask(self._rng, %s[:-2] + (1, 1), dt, %s, True)' % (shape.x, a.p) %}"
          "{% if a.stochasticInference %}{{aux.mask}} = {{draw}}"
          "{% else %}{{aux.mask}} = ({{draw}} if self.train\n"
          "    else rt.full({{shape.x}}[:-2] + (1, 1), {{ 1 - a.p }}, dt)){% endif %}"),
    host_training_only=lambda a: not a["stochasticInference"],
    forward="return {{x}}[{{i}}] * {{ ld(mask, *(o[:-2] + [0, 0])) }};",
    backward={"x": "return {{gy}}[{{i}}] * {{ ld(mask, *(o[:-2] + [0, 0])) }};"},
)

defop(
    name="SpatialDropout", signature="p:num=0.5, stochasticInference:bool=false",
    shape=_spatial_dropout_shape, check=_dropout_check, aux=("mask",),
    # Torch7's SpatialDropout is v1-style: no scaling when training, times (1-p) at evaluation
    forward=("if self.train or {{a.stochasticInference}}:\n"
             "    {{aux.mask}} = rt.dropout_mask(self._rng, {{x}}[..., :1, :1], {{a.p}}, True)\n"
             "else:\n"
             "    {{aux.mask}} = {{ 1 - a.p }}\n"
             "{{y}} = {{x}} * {{aux.mask}}"),
    backward={"x": "{{gy}} * {{aux.mask}}"},
    doc="Dropout of whole feature maps: when training each plane of a CxHxW or NxCxHxW input "
        "is zeroed with probability p (kept ones are not scaled); at evaluation the output is "
        "x (1-p), as Torch7's SpatialDropout.",
    torch_diff="The backward at evaluation is gradOutput (1-p) (Torch7 raises an error). The "
               "mask comes from the model's seeded numpy RNG.",
    cuda=_SPATIAL_DROPOUT_CUDA,
)
