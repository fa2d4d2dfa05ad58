"""Modules whose behaviour depends on training/evaluate: Dropout, BatchNormalization and
SpatialBatchNormalization (running statistics kept as buffers)."""
from .registry import B, CudaRule, ParamSpec, ShapeError, defop


def _dropout_check(a):
    if not 0 <= a["p"] < 1:
        return f"p must be in [0, 1), got {a['p']}"


# CUDA: the mask is drawn on the host exactly as the numpy target draws it (same RNG, same
# order), so both targets drop the same elements; the kernels only multiply by it.
_DROPOUT_CUDA = CudaRule(
    "kernel", kernel="elem",
    aux={"mask": ("real", lambda a, s, out: out, "")},
    # one line per branch: the backend saves a mask for the backward only from an unindented
    # assignment
    host=("{% if a.p == 0 and not a.v1 %}{% elif a.stochasticInference %}"
          "{{aux.mask}} = rt.dropout_mask(self._rng, {{shape.x}}, dt, {{a.p}}, {{a.v1}})"
          "{% else %}"
          "{{aux.mask}} = (rt.dropout_mask(self._rng, {{shape.x}}, dt, {{a.p}}, {{a.v1}}) if self.train\n"
          "    else rt.xp.full({{shape.x}}, {{ (1 - a.p) if a.v1 else 1.0 }}, dt))"
          "{% endif %}"),
    # p = 0 (v2) keeps everything: no mask at all
    forward="return {{ ld(x, *o) }}{% if not (a.p == 0 and not a.v1) %} * {{ ld(mask, *o) }}{% endif %};",
    backward={"x": "return {{ ld(gy, *o) }}{% if not (a.p == 0 and not a.v1) %} * {{ ld(mask, *o) }}{% endif %};"},
)

defop(
    name="Dropout", signature="p:num=0.5, v1:bool=false, inplace:bool=false, stochasticInference:bool=false",
    shape=lambda a, s: s[0], elementwise=True, check=_dropout_check, aux=("mask",),
    # v2 (default): scale by 1/(1-p) when training, identity at evaluation.
    # v1: no scaling when training; multiply by (1-p) at evaluation.
    forward=("{% if a.p == 0 and not a.v1 %}{{y}} = {{x}}\n{{aux.mask}} = 1.0\n{% else %}"
             "if self.train or {{a.stochasticInference}}:\n"
             "    {{aux.mask}} = rt.dropout_mask(self._rng, {{x}}, {{a.p}}, {{a.v1}})\n"
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
    rank = len(shapes[0])
    axes = {2: (0,), 4: (0, 2, 3), 3: (1, 2)}[rank]  # 3D = CxHxW (one image)
    bshape = {2: (1, -1), 4: (1, -1, 1, 1), 3: (-1, 1, 1)}[rank]
    return {"axes": axes, "bshape": bshape}


_BN_FWD = ("{{y}}, {{aux.xhat}}, {{aux.invstd}} = rt.batchnorm_forward({{x}}, {{weight}}, {{bias}}, "
           "{{running_mean}}, {{running_var}}, {{d.axes}}, {{d.bshape}}, {{a.eps}}, "
           "{{a.momentum}}, self.train)")
_BN_BWD = ("{{g.x or '_'}}, {{g.weight or '_'}}, {{g.bias or '_'}} = rt.batchnorm_backward("
           "{{gy}}, {{aux.xhat}}, {{aux.invstd}}, {{weight}}, {{d.axes}}, {{d.bshape}})")
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
    )
