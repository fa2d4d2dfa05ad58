"""Elementwise functions (Exp ... Threshold), constants (MulConstant, AddConstant), SoftMin,
PReLU, the elementwise parametric layers (Mul, CMul, Add, CAdd), Copy and Contiguous, and
the elementwise table ops (CSubTable, CDivTable, CMaxTable, CMinTable).

Numeric arguments reach the templates through `d` as Python literals (`_consts`), so
math.huge becomes np.inf and negative numbers are parenthesised."""
import math

from .activation import _OVER_B, _softmax_axis, _softmax_shape, softmax_over_batch
from .registry import (CudaRule, ParamSpec, ShapeError, batched, defop, is_symbolic, numel,
                       shape_text, uniform)
from .table import _same_numel, _sibling_hint


def _same(a, shapes):
    return shapes[0]


def _lit(v) -> str:
    """A Python literal for a Lua number."""
    if isinstance(v, float) and math.isnan(v):
        return "np.nan"
    if isinstance(v, float) and math.isinf(v):
        return "np.inf" if v > 0 else "(-np.inf)"
    text = repr(v)
    return f"({text})" if text.startswith("-") else text


def _consts(a, shapes=None):
    return {k: _lit(v) for k, v in a.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _pointwise(name, signature, forward, backward, doc, torch_diff="", check=None, derive=_consts,
               out=()):
    return defop(name=name, signature=signature, shape=_same, elementwise=True, derive=derive,
                 forward=forward, backward={"x": backward}, doc=doc, torch_diff=torch_diff,
                 check=check, out=out)


_INPLACE = "`inplace` is accepted and ignored: graphc never aliases activations."

# ---- elementwise functions ----------------------------------------------------------

_pointwise("Exp", "", "{{y}} = {{ ufunc('exp', x) }}", "{{ binop('multiply', gy, y) }}",
           "Elementwise exp.", out=("y", "x"))
_pointwise("Log", "", "{{y}} = {{ ufunc('log', x) }}", "{{ binop('divide', gy, x) }}",
           "Elementwise natural log.", out=("y", "x"))
_pointwise("Abs", "", "{{y}} = {{ ufunc('abs', x) }}", "np.where({{x}} >= 0, {{gy}}, -{{gy}})",
           "abs(x); the gradient is sign(x), with +1 at x = 0 (as Torch).", out=("y",))
_pointwise("Square", "", "{{y}} = {{ binop('multiply', x, x) }}", "2 * {{x}} * {{gy}}", "x * x.",
           out=("y",))
# 0 where y == 0: dividing by inf there avoids a numpy divide-by-zero warning.
_pointwise("Sqrt", "b:num=0", "{{y}} = {{ ufunc('sqrt', x) }}",
           "0.5 * {{gy}} / np.where({{y}} == 0, np.inf, {{y}})",
           "Elementwise square root; the gradient is 0.5 g / y, and 0 where y = 0. The `b` (eps) "
           "argument is ignored, as in Torch's forward.", out=("y",))


def _power_derive(a, shapes):
    d = _consts(a)
    d["pm1"] = _lit(a["p"] - 1)
    return d


_pointwise("Power", "p:num", "{{y}} = {{x}} ** {{d.p}}", "{{gy}} * {{d.p}} * {{x}} ** {{d.pm1}}",
           "x ^ p; the gradient is p x^(p-1) g.", derive=_power_derive)


def _hardtanh_check(a):
    if not a["max_value"] > a["min_value"]:
        return f"max_value ({a['max_value']}) must be larger than min_value ({a['min_value']})"


_CLAMP_FWD = "{{y}} = np.clip({{x}}, {{d.min_value}}, {{d.max_value}})"
_CLAMP_BWD = "{{gy}} * (({{x}} >= {{d.min_value}}) & ({{x}} <= {{d.max_value}}))"
_CLAMP_DIFF = ("The gradient passes at x = min_value and x = max_value, as Torch's "
               "out-of-place kernel does (its in-place kernel gives 0 there).")
_pointwise("HardTanh", "min_value:num=-1, max_value:num=1, inplace:bool=false", _CLAMP_FWD,
           _CLAMP_BWD, "Clamps to [min_value, max_value]; the gradient is 0 outside.",
           torch_diff=_CLAMP_DIFF + " " + _INPLACE, check=_hardtanh_check)
_pointwise("Clamp", "min_value:num=-1, max_value:num=1", _CLAMP_FWD, _CLAMP_BWD,
           "HardTanh(min_value, max_value): clamps; the gradient is 0 outside the range.",
           torch_diff=_CLAMP_DIFF, check=_hardtanh_check)

_pointwise("LeakyReLU", "negval:num=0.01, inplace:bool=false",
           "{{y}} = np.where({{x}} > 0, {{x}}, {{x}} * {{d.negval}})",
           "np.where({{x}} > 0, {{gy}}, {{gy}} * {{d.negval}})",
           "x if x > 0 else negval * x.", torch_diff=_INPLACE)

_pointwise("ELU", "alpha:num=1, inplace:bool=false",
           "{{y}} = np.where({{x}} <= 0, np.expm1(np.minimum({{x}}, 0)) * {{d.alpha}}, {{x}})",
           "np.where({{y}} <= 0, {{gy}} * ({{y}} + {{d.alpha}}), {{gy}})",
           "x if x > 0 else alpha (exp(x) - 1); the gradient is computed from the output.",
           torch_diff=_INPLACE)


def _softplus_check(a):
    a.setdefault("threshold", 20)  # Torch: a field, not a constructor argument


_pointwise("SoftPlus", "beta:num=1",
           "{% if a.beta == 1 %}"
           "{{y}} = np.where({{x}} > {{d.threshold}}, {{x}}, np.logaddexp(0, {{x}}))"
           "{% else %}{{y}} = {{d.beta}} * {{x}}\n"
           "{{y}} = np.where({{y}} > {{d.threshold}}, {{x}}, np.logaddexp(0, {{y}}) / {{d.beta}})"
           "{% endif %}",
           "{% set by %}{% if a.beta != 1 %}{{d.beta}} * {% endif %}{{y}}{% endset %}"
           "np.where({{by}} > {{d.threshold}}, {{gy}}, -{{gy}} * np.expm1(-{{by}}))",
           "log(1 + exp(beta x)) / beta, and x where beta x > 20 (Torch's fixed threshold). "
           "As in Torch the gradient is computed from the output: 1 - exp(-beta y), or 1 where "
           "beta y > 20.", check=_softplus_check)

_pointwise("SoftSign", "", "{{y}} = {{x}} / (1 + np.abs({{x}}))",
           "{{gy}} / (1 + np.abs({{x}})) ** 2", "x / (1 + abs(x)).")

_pointwise("LogSigmoid", "", "{{y}} = -np.logaddexp(0, -{{x}})", "-{{gy}} * np.expm1({{y}})",
           "log(1 / (1 + exp(-x))).",
           torch_diff="Computed without overflow: Torch gives -inf and a NaN gradient for very "
                      "negative x (below about -709 in double precision).")


def _threshold_check(a):
    if a["inplace"] and a["v"] > a["th"]:
        return f"in-place processing requires value ({a['v']}) not exceed threshold ({a['th']})"


_pointwise("Threshold", "th:num=1e-6, v:num=0, inplace:bool=false",
           "{{y}} = np.where({{x}} > {{d.th}}, {{x}}, {{d.v}})", "{{gy}} * ({{x}} > {{d.th}})",
           "x if x > th else v; the gradient is 0 where x <= th.", torch_diff=_INPLACE,
           check=_threshold_check)

_pointwise("MulConstant", "constant_scalar:num, inplace:bool=false",
           "{{y}} = {{ binop('multiply', x, d.constant_scalar) }}",
           "{{ binop('multiply', gy, d.constant_scalar) }}",
           "x * constant_scalar.", torch_diff=_INPLACE, out=("y", "x"))
_pointwise("AddConstant", "constant_scalar:num, inplace:bool=false",
           "{{y}} = {{ binop('add', x, d.constant_scalar) }}", "{{gy}}",
           "x + constant_scalar.", out=("y",),
           torch_diff="The constant must be a number (Torch also takes a tensor). " + _INPLACE)


def _row_shape(a, shapes, out):
    """The input's shape with SoftMin's axis reduced to 1: one element per row."""
    axis = _softmax_axis(a, shapes)["axis"]
    return tuple(1 if k == axis else s for k, s in enumerate(shapes[0]))


# element o with its softmax axis index replaced by `k` (a loop variable: `at`) or 0 (`row`)
_AT = ("{% set at = o[:d.axis] + ['k'] + o[d.axis + 1:] %}"
       "{% set row = o[:d.axis] + [0] + o[d.axis + 1:] %}\n")
_ROW_LOOP = "for (int k = 0; k < {{ shp.x[d.axis] }}; ++k) "
_SOFTMIN_CUDA = CudaRule(
    "kernel", kernel="elem",
    # per row, as numpy: the row's minimum, then the sum of exp(min - x); no per-element loop
    aux={"mn": ("real", _row_shape,
                _AT + "real m = {{ ld(x, *row) }};\n"
                + _ROW_LOOP + "m = g_fmin(m, {{ ld(x, *at) }});\n"
                "return m;"),
         "den": ("real", _row_shape,
                 _AT + "real s = 0;\n"
                 + _ROW_LOOP + "s += g_exp({{ ld(mn, *o) }} - {{ ld(x, *at) }});\n"
                 "return s;")},
    forward=_AT + "return g_exp({{ ld(mn, *row) }} - {{ ld(x, *o) }}) / {{ ld(den, *row) }};",
    # per row, once: sum(gy * y)
    backward_aux={"gy_y": ("real", _row_shape,
                           _AT + "real s = 0;\n"
                           + _ROW_LOOP + "s += {{ ld(gy, *at) }} * {{ ld(y, *at) }};\n"
                           "return s;")},
    backward={"x": _AT + "return -{{ ld(y, *o) }} * ({{ ld(gy, *o) }} - {{ ld(gy_y, *row) }});"},
)

defop(
    name="SoftMin", signature="", shape=_softmax_shape, derive=_softmax_axis,
    warn=softmax_over_batch("ones"), torch_diff=_OVER_B,
    forward=("{{y}} = np.exp({{x}}.min({{d.axis}}, keepdims=True) - {{x}})\n"
             "{{y}} /= {{y}}.sum({{d.axis}}, keepdims=True)"),
    backward={"x": "-{{y}} * ({{gy}} - ({{gy}} * {{y}}).sum({{d.axis}}, keepdims=True))"},
    doc="SoftMax of -x; same dimension rule as SoftMax.",
    cuda=_SOFTMIN_CUDA,
)

# ---- pass-through ----------------------------------------------------------------------

defop(
    name="Copy", signature="intype:str=nil, outtype:str=nil, forceCopy:bool=false, "
                           "dontCast:bool=false",
    passthrough=True, shape=_same, forward="",
    doc="Passes its input through.",
    torch_diff="Torch copies (and may cast to `outtype`); a graphc model has one dtype, so "
               "the types are ignored and nothing is copied.",
    cuda=CudaRule("index", index="view"),  # no IR node (passthrough): listed as supported
)
defop(
    name="Contiguous", signature="", passthrough=True, shape=_same, forward="",
    doc="Passes its input through (numpy code does not need contiguous arrays).",
    cuda=CudaRule("index", index="view"),
)

# ---- CUDA: a parameter broadcast over the input ------------------------------------------
# PReLU, Mul, CMul, CAdd and Add ('elem' kernels). `d.pmap` says which element of parameter P
# element i of the input meets: 'one' (P[0]), 'flat' (P[i]), 'row' (P[i % d.wnumel]: each
# row of the input), or 'dims' (by dims: the input dims d.axes broadcast over P).


def _param_rule(p, forward, grad_x, term, wdim="0 if d.wshape[k] == 1 else o[k]", fixed="o[k]"):
    """The CudaRule of such an op with parameter `p`. `forward`, `grad_x`: C bodies where
    `{{w}}` is the element of P that input element i meets. `term`: the summand of P's
    gradient, of an input element `{{ex}}` and its output gradient `{{eg}}`: each thread of
    P's gradient loops over the input elements that meet its element. For 'dims', jinja
    expressions of k: `wdim`, P's dim k from the output dims o; `fixed`, the input's dim k
    (when not looped over) from P's dims o. The defaults: CMul's size-1 dims broadcasting."""
    w = ("{% set P = " + p + " %}\n"
         "{% if d.pmap == 'one' %}{% set w = P ~ '[0]' %}\n"
         "{% elif d.pmap == 'flat' %}{% set w = P ~ '[i]' %}\n"
         "{% elif d.pmap == 'row' %}{% set w = P ~ '[i % ' ~ d.wnumel ~ ']' %}\n"
         "{% else %}\n"
         "{% set ns = namespace(wd=[]) %}\n"
         "{% for k in range(shp." + p + "|length) %}"
         "{% set ns.wd = ns.wd + [" + wdim + "] %}{% endfor %}\n"
         "{% set w = ld(P, *ns.wd) %}\n"
         "{% endif %}\n")
    grad = ("{% if d.pmap == 'flat' %}\n"
            "{% set ex, eg = x ~ '[i]', gy ~ '[i]' %}\n"
            "return " + term + ";\n"
            "{% else %}\n"
            "real s = 0;\n"
            "{% set ns = namespace(at=[], ind='  ') %}\n"
            "{% if d.pmap == 'one' %}\n"
            "{% set ex, eg = x ~ '[e]', gy ~ '[e]' %}\n"
            "for (int e = 0; e < {{ shp.x|join(' * ') }}; ++e)\n"
            "{% elif d.pmap == 'row' %}\n"
            "{% set at = '[r * ' ~ d.wnumel ~ ' + i]' %}\n"
            "{% set ex, eg = x ~ at, gy ~ at %}\n"
            "for (int r = 0; r < {{ shp.x[0] }}; ++r)\n"
            "{% else %}\n"
            "{% set ns.ind = '' %}\n"
            "{% for k in range(shp.x|length) %}\n"
            "{% if k in d.axes and shp.x[k] != 1 %}\n"
            "{{ ns.ind }}for (int d{{k}} = 0; d{{k}} < {{ shp.x[k] }}; ++d{{k}})\n"
            "{% set ns.at = ns.at + ['d' ~ k] %}{% set ns.ind = ns.ind ~ '  ' %}\n"
            "{% else %}\n"
            "{% set ns.at = ns.at + [" + fixed + "] %}\n"
            "{% endif %}\n"
            "{% endfor %}\n"
            "{% set ex, eg = ld(x, *ns.at), ld(gy, *ns.at) %}\n"
            "{% endif %}\n"
            "{{ ns.ind }}s += " + term + ";\n"
            "return s;\n"
            "{% endif %}")
    return CudaRule("kernel", kernel="elem", forward=w + forward,
                    backward={"x": w + grad_x, p: grad})


# ---- PReLU -------------------------------------------------------------------------------


def _prelu_derive(a, shapes):
    x = shapes[0]
    n = a["nOutputPlane"]
    if n == 0:
        return {"wview": None, "axes": None, "pmap": "one"}
    axis = 1 if len(x) > 1 else 0  # THNN: the plane dim is dim 2, or dim 1 of a 1D input
    if x[axis] != n:
        raise ShapeError(f"expects {n} input planes in dimension {axis + 1}, got {x[axis]}")
    wview = tuple(n if k == axis else 1 for k in range(len(x)))
    return {"wview": wview if len(x) > 1 else None,
            "axes": tuple(k for k in range(len(x)) if k != axis), "pmap": "dims", "axis": axis}


def _prelu_shape(a, shapes):
    _prelu_derive(a, shapes)
    return shapes[0]


def _prelu_check(a):
    if a["nOutputPlane"] < 0:
        return "nOutputPlane must be >= 0 (0: one weight shared by all planes)"


_W = "{{weight}}{% if d.wview %}.reshape({{d.wview|pyshape}}){% endif %}"
defop(
    name="PReLU", signature="nOutputPlane:int=0", shape=_prelu_shape, derive=_prelu_derive,
    check=_prelu_check, elementwise=True,
    params=(ParamSpec("weight", lambda a: (max(a["nOutputPlane"], 1),), lambda a: ("const", 0.25)),),
    forward="{{y}} = np.where({{x}} > 0, {{x}}, " + _W + " * {{x}})",
    backward={
        "x": "np.where({{x}} > 0, {{gy}}, {{gy}} * " + _W + ")",
        "weight": "({{gy}} * {{x}} * ({{x}} <= 0))"
                  "{% if d.axes is none %}.sum(){% elif d.axes %}.sum({{d.axes}}){% endif %}",
    },
    doc="x if x > 0 else w x. nOutputPlane = 0: one shared w; else one w per plane of dim 2 "
        "(dim 1 for 1D input). w starts at 0.25.",
    # the weight's gradient is numpy's gy x (x <= 0): the same NaN for x = inf
    cuda=_param_rule("weight", "real v = {{x}}[i];\nreturn v > 0 ? v : {{w}} * v;",
                     "return {{x}}[i] > 0 ? {{gy}}[i] : {{gy}}[i] * {{w}};",
                     "{{eg}} * {{ex}} * (real)({{ex}} <= 0)", wdim="o[d.axis]",
                     fixed="o[0] if k == d.axis else 0"),
    torch_diff="`nn.PReLU(0)` has one shared weight (Torch made an empty weight for an "
               "explicit 0).",
)

# ---- Mul, CMul, Add, CAdd --------------------------------------------------------------


def _bcast(size, x):
    """How a parameter of shape `size` meets input `x` in CMul/CAdd (Torch's three cases):
    `wview` is the shape to view the parameter as (None: as it is) and `axes` the input axes
    its gradient sums over."""
    if batched(x) or numel(x) != numel(size):
        if numel(size) == 1:  # each case below expands a single element to every one of x
            return {"wview": (1,) * len(x), "axes": tuple(range(len(x))), "wshape": tuple(size),
                    "pmap": "one"}
        if len(size) == len(x):  # expandAs: size-1 dims of the parameter broadcast
            bad = [k for k, (w, s) in enumerate(zip(size, x)) if w != 1 and w != s]
            if bad:
                k = bad[0]
                why = "the batch dimension B" if is_symbolic(x[k]) else f"{x[k]}"
                raise ShapeError(f"the parameter's size {shape_text(size)} does not expand to the input "
                                 f"{shape_text(x)}: dimension {k + 1} is {size[k]}, not 1 or {why}")
            return {"wview": None, "axes": tuple(k for k, (w, s) in enumerate(zip(size, x))
                                                 if w == 1 and s != 1), "wshape": tuple(size),
                    "pmap": "dims"}
        per = x[1:]
        if len(x) < 2 or numel(per) != numel(size):
            raise ShapeError(f"the parameter has {numel(size)} elements ({shape_text(size)}), but the "
                             f"input {shape_text(x)} has {numel(per) if len(x) > 1 else numel(x)} per "
                             f"row: they must match")
        return {"wview": (1,) + tuple(per), "axes": (0,), "wshape": tuple(size), "pmap": "row",
                "wnumel": numel(size)}
    return {"wview": tuple(x), "axes": (), "wshape": tuple(size), "pmap": "flat"}  # same nElement


def _size_check(a):
    if not a["size"] or any(s < 1 for s in a["size"]):
        return "needs the parameter's size: positive numbers, e.g. (3) or (1, 3, 1, 1)"


def _cmul_derive(a, shapes):
    return _bcast(a["size"], shapes[0])


def _cmul_shape(a, shapes):
    _cmul_derive(a, shapes)
    return shapes[0]


# The parameter as the input sees it; its gradient summed back to the parameter's shape.
_PV = "{% if d.wview %}.reshape({{d.wview|pyshape}}){% endif %}"
_PG = ("{% if d.axes %}.sum({{d.axes}}){% endif %}"
       "{% if d.axes or d.wview %}.reshape({{d.wshape|pyshape}}){% endif %}")
_BCAST_DOC = ("Torch7's rules: same element count as the input: elementwise; same number of "
              "dims: size-1 dims broadcast; else it is applied to each row of the input viewed "
              "as (size(1), -1). A one-element parameter always applies to every element.")

_MUL_CUDA = _param_rule("weight", "return {{x}}[i] * {{w}};", "return {{gy}}[i] * {{w}};",
                        "{{ex}} * {{eg}}")
_ADD_CUDA = _param_rule("bias", "return {{x}}[i] + {{w}};", "return {{gy}}[i];", "{{eg}}")


def _one_param(a, shapes):
    return {"pmap": "one"}


defop(
    name="Mul", signature="", shape=_same, elementwise=True, derive=_one_param,
    params=(ParamSpec("weight", lambda a: (1,), lambda a: ("uniform", 1.0)),),
    forward="{{y}} = {{ binop('multiply', x, weight) }}", out=("y", "x"),
    backward={"x": "{{ binop('multiply', gy, weight) }}", "weight": "({{x}} * {{gy}}).sum()"},
    doc="x times one learned scalar (init U(-1, 1)).",
    cuda=_MUL_CUDA,
)

defop(
    name="CMul", signature="size:int*", shape=_cmul_shape, derive=_cmul_derive,
    check=_size_check, elementwise=True,
    params=(ParamSpec("weight", lambda a: tuple(a["size"]),
                      uniform(lambda a: 1 / math.sqrt(numel(a["size"])))),),
    forward="{% set w %}{{weight}}" + _PV + "{% endset %}{{y}} = {{ binop('multiply', x, w) }}",
    out=("y", "x"),
    backward={"x": "{% set w %}{{weight}}" + _PV + "{% endset %}{{ binop('multiply', gy, w) }}", "weight": "({{x}} * {{gy}})" + _PG},
    doc="x times a learned weight of shape `size`. " + _BCAST_DOC, cuda=_MUL_CUDA,
    torch_diff="With a batch dim B the rules see the batched shape, as Torch7's saw a real "
               "batch (`nn.CMul(4, 1, 3)` on Bx4x2x3 is refused, as Torch7 refused a real "
               "4-D batch), but the elementwise case never applies: Torch7 took it when a "
               "batch's element count happened to equal the parameter's.",
)

defop(
    name="CAdd", signature="size:int*", shape=_cmul_shape, derive=_cmul_derive,
    check=_size_check, elementwise=True,
    params=(ParamSpec("bias", lambda a: tuple(a["size"]),
                      uniform(lambda a: 1 / math.sqrt(numel(a["size"])))),),
    forward="{% set b %}{{bias}}" + _PV + "{% endset %}{{y}} = {{ binop('add', x, b) }}", out=("y",),
    backward={"x": "{{gy}}", "bias": "{{gy}}" + _PG},
    doc="x plus a learned bias of shape `size`. " + _BCAST_DOC, cuda=_ADD_CUDA,
    torch_diff="As CMul.",
)


def _add_derive(a, shapes):
    x = shapes[0]
    if a["scalar"]:
        return {"scalar": True, "pmap": "one"}
    n = a["inputSize"]
    if not batched(x) and tuple(x) == (n,):
        return {"scalar": False, "wview": None, "axes": (), "wshape": (n,), "pmap": "flat"}
    per = x[1:]
    if len(x) < 2 or numel(per) != n:
        raise ShapeError(f"expects {n} elements per sample (input {n} or Bx{n}, or Bx... "
                         f"holding {n}), got {shape_text(x)}")
    return {"scalar": False, "wview": (1,) + tuple(per), "axes": (0,), "wshape": (n,),
            "pmap": "row", "wnumel": n}


def _add_shape(a, shapes):
    _add_derive(a, shapes)
    return shapes[0]


defop(
    name="Add", signature="inputSize:int, scalar:bool=false", shape=_add_shape,
    derive=_add_derive, elementwise=True,
    params=(ParamSpec("bias", lambda a: (1,) if a["scalar"] else (a["inputSize"],),
                      uniform(lambda a: 1 / math.sqrt(1 if a["scalar"] else a["inputSize"]))),),
    forward="{% set b %}{{bias}}{% if not d.scalar %}" + _PV + "{% endif %}{% endset %}"
            "{{y}} = {{ binop('add', x, b) }}", out=("y",),
    backward={"x": "{{gy}}",
              "bias": "{% if d.scalar %}{{gy}}.sum(){% else %}{{gy}}" + _PG + "{% endif %}"},
    doc="x plus a learned bias of `inputSize` elements, per sample (a batch is viewed as "
        "Bx-1); `scalar` = true: one bias for everything. Init U(+-1/sqrt(bias size)).",
    cuda=_ADD_CUDA,
)

# ---- table ops ---------------------------------------------------------------------------


def _pair_numel(a, shapes):
    if len(shapes) != 2:
        raise ShapeError(f"expects a table of two tensors, got {len(shapes)}")
    return _same_numel(a, shapes)


defop(
    name="CSubTable", signature="", inputs=("xs",), shape=_pair_numel, input_hint=_sibling_hint,
    forward="{{y}} = {{ binop('subtract', *xs1) }}", out=("y",),
    backward={"xs": "{% if i == 0 %}{{gy}}{% else %}{{ like('-' ~ gy, 1) }}{% endif %}"},
    doc="x1 - x2.",
)

defop(
    name="CDivTable", signature="", inputs=("xs",), shape=_pair_numel, input_hint=_sibling_hint,
    forward="{{y}} = {{ binop('divide', *xs1) }}", out=("y",),
    backward={"xs": "{% if i == 0 %}{{gy}} / {{ as1(xs[1], 1) }}{% else %}{% set x2 = as1(xs[1], 1) %}"
                    "{{ like('-' ~ gy ~ ' / ' ~ x2 ~ ' / ' ~ x2 ~ ' * ' ~ xs[0], 1) }}{% endif %}"},
    doc="x1 / x2.",
)


def _select_cuda(cmp):
    """'elem': aux idx (as numpy's) is the first input holding the max/min (`cmp` is > or <; a
    NaN wins, as in np.argmax); the output and the gradients read it."""
    return CudaRule(
        "kernel", kernel="elem",
        aux={"idx": ("int", lambda a, ins, out: out,
                     "int j = 0;\n"
                     "real m = {{xs[0]}}[i];\n"
                     "{% for x in xs[1:] %}\n"
                     "if ({{x}}[i] " + cmp + " m || ({{x}}[i] != {{x}}[i] && m == m)) "
                     "{ j = {{loop.index}}; m = {{x}}[i]; }\n"
                     "{% endfor %}\n"
                     "return j;")},
        forward=("{% for x in xs[:-1] %}\n"
                 "if ({{idx}}[i] == {{loop.index0}}) return {{x}}[i];\n"
                 "{% endfor %}\n"
                 "return {{xs[-1]}}[i];"),
        backward={"xs": "return {{gy}}[i] * (real)({{idx}}[i] == {{k}});"},
    )


def _select_op(name, fn, word, cmp):
    defop(
        name=name, signature="", inputs=("xs",), shape=_same_numel, input_hint=_sibling_hint,
        aux=("idx",),
        forward=("{{y}} = np.stack([{% for x in xs %}{{ as1(x, loop.index0) }}"
                 "{{ ', ' if not loop.last }}{% endfor %}])\n"
                 "{{aux.idx}} = {{y}}." + fn + "(0)\n"
                 "{{y}} = np.take_along_axis({{y}}, {{aux.idx}}[None], 0)[0]"),
        backward={"xs": "{% set p %}{{gy}} * ({{aux.idx}} == {{i}}){% endset %}{{ like(p, i) }}"},
        doc=f"Elementwise {word} of its inputs; the gradient goes to the input that holds it "
            "(ties: the first).",
        cuda=_select_cuda(cmp),
    )


_select_op("CMaxTable", "argmax", "maximum", ">")
_select_op("CMinTable", "argmin", "minimum", "<")


# ---- CUDA rules (backends/fuse.py, backends/cuda.py): C expressions fused into kernels ------
# `c(v)` writes a number as a `real` literal; g_* are templates/cuda/module.cu.j2's helpers.

def _cuda(name, forward, backward):
    """An elementwise op's CUDA rule; elementwise, it is also row-wise (--unroll)."""
    from .registry import REGISTRY, CudaRule
    REGISTRY[name].cuda = CudaRule("pointwise", forward=forward, backward=backward)
    REGISTRY[name].row_wise = True


_cuda("Exp", "g_exp({{x}})", {"x": "{{gy}} * {{y}}"})
_cuda("Log", "g_log({{x}})", {"x": "{{gy}} / {{x}}"})
_cuda("Abs", "({{x}} < 0 ? -{{x}} : {{x}})", {"x": "({{x}} >= 0 ? {{gy}} : -{{gy}})"})
_cuda("Square", "{{x}} * {{x}}", {"x": "2 * {{x}} * {{gy}}"})
_cuda("Sqrt", "g_sqrt({{x}})", {"x": "({{y}} == 0 ? (real)0 : (real)0.5 * {{gy}} / {{y}})"})
_cuda("Power", "g_pow({{x}}, {{ c(a.p) }})", {"x": "{{gy}} * {{ c(a.p) }} * g_pow({{x}}, {{ c(a.p - 1) }})"})
for _name in ("HardTanh", "Clamp"):
    _cuda(_name, "({{x}} < {{ c(a.min_value) }} ? {{ c(a.min_value) }} : {{x}} > {{ c(a.max_value) }} "
                 "? {{ c(a.max_value) }} : {{x}})",
          {"x": "({{x}} >= {{ c(a.min_value) }} && {{x}} <= {{ c(a.max_value) }} ? {{gy}} : (real)0)"})
_cuda("LeakyReLU", "({{x}} > 0 ? {{x}} : {{x}} * {{ c(a.negval) }})",
      {"x": "({{x}} > 0 ? {{gy}} : {{gy}} * {{ c(a.negval) }})"})
_cuda("ELU", "({{x}} <= 0 ? g_expm1({{x}}) * {{ c(a.alpha) }} : {{x}})",
      {"x": "({{y}} <= 0 ? {{gy}} * ({{y}} + {{ c(a.alpha) }}) : {{gy}})"})
# log(1 + exp(z)) as numpy's logaddexp(0, z): max(z, 0) + log1p(exp(-|z|)), no overflow
_BETA = "{% if a.beta == 1 %}{{v}}{% else %}({{ c(a.beta) }} * {{v}}){% endif %}"  # beta v
_cuda("SoftPlus",
      "{% set v = x %}{% set bx %}" + _BETA + "{% endset %}"
      "({{bx}} > {{ c(a.threshold) }} ? {{x}} : "
      "(g_fmax({{bx}}, (real)0) + g_log1p(g_exp(-g_fabs({{bx}}))))"
      "{% if a.beta != 1 %} / {{ c(a.beta) }}{% endif %})",
      {"x": "{% set v = y %}{% set by %}" + _BETA + "{% endset %}"
            "({{by}} > {{ c(a.threshold) }} ? {{gy}} : -{{gy}} * g_expm1(-{{by}}))"})
_cuda("LogSigmoid", "-(g_fmax(-{{x}}, (real)0) + g_log1p(g_exp(-g_fabs({{x}}))))",
      {"x": "-{{gy}} * g_expm1({{y}})"})
_cuda("SoftSign", "{{x}} / (1 + ({{x}} < 0 ? -{{x}} : {{x}}))",
      {"x": "{{gy}} / ((1 + ({{x}} < 0 ? -{{x}} : {{x}})) * (1 + ({{x}} < 0 ? -{{x}} : {{x}})))"})
_cuda("Threshold", "({{x}} > {{ c(a.th) }} ? {{x}} : {{ c(a.v) }})",
      {"x": "({{x}} > {{ c(a.th) }} ? {{gy}} : (real)0)"})
_cuda("MulConstant", "{{x}} * {{ c(a.constant_scalar) }}", {"x": "{{gy}} * {{ c(a.constant_scalar) }}"})
_cuda("AddConstant", "{{x}} + {{ c(a.constant_scalar) }}", {"x": "{{gy}}"})
_cuda("CSubTable", "{{xs[0]}} - {{xs[1]}}", {"xs": "{% if i == 0 %}{{gy}}{% else %}-{{gy}}{% endif %}"})
_cuda("CDivTable", "{{xs[0]}} / {{xs[1]}}",
      {"xs": "{% if i == 0 %}{{gy}} / {{xs[1]}}{% else %}-{{gy}} / {{xs[1]}} / {{xs[1]}} * {{xs[0]}}{% endif %}"})
