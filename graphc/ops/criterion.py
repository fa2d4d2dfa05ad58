"""Criteria as graph nodes. nngraph turns `crit({prediction, target})` into
nn.ModuleFromCriterion(crit): its output is a 1-element tensor holding the loss, its backward
is the criterion's gradient times gradOutput[1], and the target gets a zero gradient.

Class targets (ClassNLLCriterion, CrossEntropyCriterion) are 1-based integer indices, as in
Torch, so they must come from a graph input (int_inputs)."""
from .registry import (CudaRule, ShapeError, batched, defop, is_symbolic, numel, rows_of_input,
                       shape_text)

CRITERIA: set[str] = set()  # the ops that are criteria (what nn.ModuleFromCriterion accepts)


def _weights_check(a):
    """`weights` arrives as a Lua table of numbers or a spec-time tensor (its numbers, flat);
    it is stored as a tuple of floats."""
    w = a.get("weights")
    if w is None or isinstance(w, tuple):
        return None
    items = w.array() if hasattr(w, "array") else None
    if (items is None or not items or
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items)):
        return "weights must be a table of numbers, one per class, e.g. {1, 0.5, 2}"
    a["weights"] = tuple(float(v) for v in items)
    return None


def _pair(shapes):
    if len(shapes) != 2:
        raise ShapeError(f"expects a table {{prediction, target}}, got {len(shapes)} element(s)")
    return shapes


def _same_numel_shape(a, shapes):
    x, t = _pair(shapes)
    if batched(x) != batched(t) or numel(x) != numel(t):
        raise ShapeError(f"input and target should have the same number of elements, got "
                         f"{shape_text(x)} and {shape_text(t)}")
    return (1,)


def _sibling(a, slot, shapes):
    other = shapes[1 - slot] if slot in (0, 1) and len(shapes) > 1 else None
    return other


def _class_shape(weights_needed=True):
    def rule(a, shapes):
        x, t = _pair(shapes)
        if len(x) not in (1, 2):
            raise ShapeError(f"input tensor should be 1D (C) or 2D (BxC), got {shape_text(x)}")
        if is_symbolic(x[-1]):
            raise ShapeError("the class dimension cannot be the batch dimension B")
        want = (1,) if len(x) == 1 else (x[0],)
        if tuple(t) != want:
            raise ShapeError(f"expects a target of shape {shape_text(want)} (one 1-based class index "
                             f"per row of the {shape_text(x)} input), got {shape_text(t)}")
        w = a.get("weights")
        if w is not None and len(w) != x[-1]:
            raise ShapeError(f"weights has {len(w)} element(s) but the input has {x[-1]} classes")
        return (1,)
    return rule


def _class_hint(a, slot, shapes):
    x = shapes[0] if shapes else None
    if slot == 1 and x is not None:
        return (x[0],) if batched(x) else (1,)
    return None


def _criterion(name, signature, forward, grad, doc, *, shape=_same_numel_shape,
               input_hint=_sibling, check=None, int_target=False, aux=(), torch_diff="",
               cuda=None):
    """`forward`: lines setting {{y}} (a 1-element array); `grad`: lines setting {{G}}, the
    gradient w.r.t. the prediction already multiplied by gradOutput[1] ({{gy}}[0])."""
    CRITERIA.add(name)
    backward = ("{% if g.xs[0] %}{% set G = g.xs[0] %}" + grad + "\n{% endif %}"
                "{% if g.xs[1] %}{{g.xs[1]}} = np.zeros_like({{xs[1]}})\n{% endif %}")
    return defop(name=name, signature=signature, inputs=("xs",), shape=shape,
                 input_hint=input_hint, check=check, int_inputs=(1,) if int_target else (),
                 aux=aux, forward=forward, backward_stmt=backward, doc=doc + _NODE_DOC,
                 torch_diff=torch_diff, cuda=cuda)


_NODE_DOC = (" As a node, crit({prediction, target}) outputs the loss as a 1-element tensor; the "
             "target gets no gradient.")
_T = "{{ as1(xs[1], 1) }}"  # the target viewed with the prediction's shape
_N = "{% if a.sizeAverage %} / {{xs[0]}}.size{% endif %}"  # sizeAverage: / nElement
_LOSS = "{{y}} = np.array([{{y}}" + _N + "], {{xs[0]}}.dtype)"
_SCALE = "({{gy}}[0]" + _N + ")"

# ---- CUDA target ('elem' kernels) ---------------------------------------------------------
# The loss is a single element: a thread per row of the input sums that row (an aux array),
# then one thread sums the rows. Gradients are one thread per element of the prediction.
# The target's gradient (k = 1) is zero.

_C_N = "{% set N = in_shapes[0]|join(' * ') %}"  # the prediction's element count, in C
# rows of the prediction (its first dim; a 1-D one is one row) and their length L
_C_ROW = "{% set L = in_shapes[0][1:]|join(' * ') if in_shapes[0]|length > 1 else in_shapes[0][0] %}"

_C_SA = "{% if a.sizeAverage %} / (real)({{N}}){% endif %}"
_C_ZERO = "return 0;  // nn.ModuleFromCriterion: the target gets a zero gradient"


def _elementwise_cuda(term, grad, negate=False, host="", aux=None):
    """A criterion summing over the elements: `term`, C statements adding element j's loss to
    `s`, from `xv` and `tv` (element j of the prediction and the target, read flat: the
    target only has the same element count). `grad`: the prediction's gradient at element i,
    a C expression of `xv`, `tv`, `i` and `scale` (gradOutput[1], / nElement with
    sizeAverage). `negate`: the loss is -sum, as numpy's."""
    part = (_C_ROW + "{% set C = in_shapes[0][-1] %}real s = 0;\n"
            "for (int q = 0; q < {{L}}; ++q) {\n"
            "  const int j = {{o[0]}} * {{L}} + q;\n"
            "  const real xv = {{xs[0]}}[j], tv = {{xs[1]}}[j];\n"
            "  " + term + "\n"
            "}\n"
            "return s;")
    forward = (_C_N + "real s = 0;\n"
               "for (int r = 0; r < {{shp.part[0]}}; ++r) s += {{part}}[r];\n"
               "return " + ("-s" if negate else "s") + _C_SA + ";")
    backward = ("{% if k == 0 %}" + _C_N + "{% set C = in_shapes[0][-1] %}"
                + ("const real xv = {{xs[0]}}[i];\n" if "xv" in grad else "") +
                "const real tv = {{xs[1]}}[i];\n"
                "const real scale = {{ ld(gy, 0) }}" + _C_SA + ";\n"
                "return " + grad + ";{% else %}" + _C_ZERO + "{% endif %}")
    return CudaRule("kernel", kernel="elem", forward=forward, backward={"xs": backward},
                    host=host, aux={**(aux or {}), "part": ("real", rows_of_input, part)})


# Weights (a tuple attr) reach the kernels as a small array copied to the device by the host
# (without weights the aux is never assigned nor read).
_C_WEIGHTS_AUX = {"w": ("real", lambda a, ins, out: (len(a["weights"] or (0,)),), "")}
_C_WEIGHTS_HOST = ("{% if a.weights is not none %}"
                   "{{aux.w}} = rt.xp.asarray({{a.weights|pyrepr}}, dt)\n{% endif %}")

# Class criteria: the input is C (one row) or RxC, the target one 1-based class per row.
_C_CLS = ("{% set C = in_shapes[0][-1] %}"
          "{% set R = in_shapes[0][0] if in_shapes[0]|length == 2 else 1 %}"
          "{% set W = (w ~ '[cls - 1]') if a.weights is not none else '' %}"  # row's weight
          "{% macro X(r, c) %}{{ ld(xs[0], r, c) if in_shapes[0]|length == 2 else ld(xs[0], c) }}"
          "{% endmacro %}")  # the input's element (r, c)


def _class_cuda(name, log_softmax):
    """ClassNLL (log_softmax False: the input holds log-probabilities) or CrossEntropy (a
    per-row max and log-sum-exp first, as numpy's LogSoftMax: lsm = (x - max) - lse)."""
    ign = "-100" if log_softmax else "{{a.ignoreIndex}}"
    # the same check and message as graphc_runtime.kernels._class_rows, before any kernel
    host = (_C_WEIGHTS_HOST +
            "{% set t = xs[1] %}_bad = ({{t}} != " + ign + ") & (({{t}} < 1) | ({{t}} > "
            "{{in_shapes[0][-1]}}))\n"
            "if bool(_bad.any()): raise ValueError(f\"nn." + name + " (targets {{t}}): target "
            "{int({{t}}[_bad][0])} is out of range 1..{{in_shapes[0][-1]}} (class indices are "
            "1-based) at position {rt.position(_bad)}\")")
    lsm = ("({{ X('r', 'cls - 1') }} - {{max}}[r] - {{lse}}[r])" if log_softmax
           else "{{ X('r', 'cls - 1') }}")
    aux = dict(_C_WEIGHTS_AUX)
    if log_softmax:
        aux["max"] = ("real", rows_of_input, _C_CLS + (
            "real m = {{ X(o[0], 0) }};\n"
            "for (int c = 1; c < {{C}}; ++c) m = g_fmax(m, {{ X(o[0], 'c') }});\n"
            "return m;"))
        aux["lse"] = ("real", rows_of_input, _C_CLS + (
            "const real m = {{ ld(max, o[0]) }};\n"
            "real s = 0;\n"
            "for (int c = 0; c < {{C}}; ++c) s += g_exp({{ X(o[0], 'c') }} - m);\n"
            "return g_log(s);"))
    # the weight total (the sizeAverage divisor): one thread, before the loss
    aux["total"] = ("real", lambda a, ins, out: (1,), _C_CLS + (
        "real total = 0;\n"
        "for (int r = 0; r < {{R}}; ++r) {\n"
        "  const int cls = {{xs[1]}}[r];\n"
        "  if (cls != " + ign + ") total += {{W or 1}};\n"
        "}\n"
        "return total;"))
    forward = _C_CLS + (
        "real s = 0;\n"
        "for (int r = 0; r < {{R}}; ++r) {\n"
        "  const int cls = {{xs[1]}}[r];\n"
        "  if (cls != " + ign + ") s += {% if W %}{{W}} * {% endif %}" + lsm + ";\n"
        "}\n"
        "{% if a.sizeAverage %}const real total = {{total}}[0];\n"
        "return total != 0 ? -s / total : -s;{% else %}return -s;{% endif %}")
    # the NLL gradient is -w[cls] * scale at (r, cls - 1) only, and nothing when total <= 0
    g = ("const int cls = {{xs[1]}}[{{r}}];\n"
         "const real total = {{total}}[0];\n"
         "const real scale = {{ ld(gy, 0) }}{% if a.sizeAverage %} / total{% endif %};\n"
         "const real g = total > 0 && cls != " + ign + " ? -{% if W %}{{W}} * {% endif %}scale"
         " : 0;\n")
    if log_softmax:  # LogSoftMax's backward: g - exp(lsm) * (the row's sum of g)
        g += ("const real lsm = {{xs[0]}}[i] - {{ ld(max, r) }} - {{ ld(lse, r) }};\n"
              "return (cls - 1 == {{c}} ? g : 0) - g_exp(lsm) * g;")
    else:
        g += "return cls - 1 == {{c}} ? g : 0;"
    backward = ("{% if k == 0 %}" + _C_CLS +
                "{% set r = o[0] if in_shapes[0]|length == 2 else 0 %}{% set c = o[-1] %}" + g +
                "{% else %}" + _C_ZERO + "{% endif %}")
    return CudaRule("kernel", kernel="elem", forward=forward, backward={"xs": backward},
                    aux=aux, host=host)


# ---- class criteria ----------------------------------------------------------------------

_criterion(
    "ClassNLLCriterion", "weights:any=nil, sizeAverage:bool=true, ignoreIndex:int=-100",
    forward=("{{y}}, {{aux.state}} = rt.class_nll_forward({{xs[0]}}, {{xs[1]}}, "
             "weights={{a.weights|pyrepr}}, size_average={{a.sizeAverage}}, "
             "ignore_index={{a.ignoreIndex}}, module='nn.ClassNLLCriterion (targets {{xs[1]}})')"),
    grad=("{{G}} = rt.class_nll_backward({{gy}}, {{xs[0]}}.shape, {{aux.state}}, "
          "size_average={{a.sizeAverage}}, dtype={{xs[0]}}.dtype)"),
    shape=_class_shape(), input_hint=_class_hint, check=_weights_check, int_target=True,
    aux=("state",),
    doc="Negative log-likelihood of 1-based class targets: -sum w[t] x[t] over the rows of the "
        "N or BxN input (log-probabilities), divided by sum w[t] with sizeAverage (B without "
        "weights). Targets equal to ignoreIndex are skipped. The target (B, or 1 for 1D input) "
        "must be an integer graph input.",
    torch_diff="`weights` is a Lua table of numbers or a spec-time tensor (`torch.ones(n)`), read when the spec is compiled.",
    cuda=_class_cuda("ClassNLLCriterion", log_softmax=False),
)

_criterion(
    "CrossEntropyCriterion", "weights:any=nil, sizeAverage:bool=true",
    forward=("{{y}}, {{aux.state}} = rt.cross_entropy_forward({{xs[0]}}, {{xs[1]}}, "
             "weights={{a.weights|pyrepr}}, size_average={{a.sizeAverage}}, "
             "module='nn.CrossEntropyCriterion (targets {{xs[1]}})')"),
    grad="{{G}} = rt.cross_entropy_backward({{gy}}, {{aux.state}}, size_average={{a.sizeAverage}})",
    shape=_class_shape(), input_hint=_class_hint, check=_weights_check, int_target=True,
    aux=("state",),
    doc="LogSoftMax over the classes, then ClassNLLCriterion(weights, sizeAverage); 1-based "
        "integer targets from a graph input.",
    torch_diff="Input must be 1D or 2D (Torch squeezes any input first). `weights` is a Lua "
               "table of numbers.",
    cuda=_class_cuda("CrossEntropyCriterion", log_softmax=True),
)

# ---- regression criteria -----------------------------------------------------------------

_criterion(
    "MSECriterion", "sizeAverage:bool=true",
    forward="{{y}} = {{xs[0]}} - " + _T + "\n{{y}} = ({{y}} * {{y}}).sum()\n" + _LOSS,
    grad="{{G}} = ({{xs[0]}} - " + _T + ") * (2 * " + _SCALE + ")",
    doc="sum (x - t)^2, divided by the number of elements with sizeAverage. Target: same "
        "element count as the input.",
    cuda=_elementwise_cuda("s += (xv - tv) * (xv - tv);", "(xv - tv) * ((real)2 * scale)"),
)

_criterion(
    "AbsCriterion", "sizeAverage:bool=true",
    forward="{{y}} = np.abs({{xs[0]}} - " + _T + ").sum()\n" + _LOSS,
    grad=("{{G}} = np.full({{xs[0]}}.shape, " + _SCALE + ")\n"
          "{{G}} = np.where({{xs[0]}} - " + _T + " >= 0, {{G}}, -{{G}})"),
    doc="sum abs(x - t) (/ nElement with sizeAverage); the gradient is +1 where x = t, as Torch.",
    cuda=_elementwise_cuda("s += g_fabs(xv - tv);", "xv - tv >= 0 ? scale : -scale"),
)

_criterion(
    "SmoothL1Criterion", "sizeAverage:bool=true",
    forward=("{{y}} = np.abs({{xs[0]}} - " + _T + ")\n"
             "{{y}} = np.where({{y}} < 1, 0.5 * {{y}} * {{y}}, {{y}} - 0.5).sum()\n" + _LOSS),
    grad="{{G}} = np.clip({{xs[0]}} - " + _T + ", -1, 1) * " + _SCALE,
    doc="Huber loss: 0.5 d^2 where abs(d) < 1, else abs(d) - 0.5 (d = x - t); summed, / nElement "
        "with sizeAverage.",
    cuda=_elementwise_cuda(
        "const real d = g_fabs(xv - tv);\n  s += d < 1 ? (real)0.5 * d * d : d - (real)0.5;",
        "(xv - tv < -1 ? -1 : xv - tv > 1 ? 1 : xv - tv) * scale"),  # a clip that keeps NaN
)

_criterion(
    "DistKLDivCriterion", "sizeAverage:bool=true",
    forward=("{% set t = as1(xs[1], 1) %}"
             "{{y}} = np.where({{t}} > 0, {{t}} * (np.log(np.where({{t}} > 0, {{t}}, 1)) - "
             "{{xs[0]}}), 0).sum()\n" + _LOSS),
    grad="{% set t = as1(xs[1], 1) %}{{G}} = np.where({{t}} > 0, -{{t}}, 0) * " + _SCALE,
    doc="KL divergence of target probabilities t from input log-probabilities x: sum over "
        "t > 0 of t (log t - x), / nElement with sizeAverage.",
    cuda=_elementwise_cuda("s += tv > 0 ? tv * (g_log(tv) - xv) : 0;",
                           "(tv > 0 ? -tv : 0) * scale"),
)


def _bce_check(a):
    return _weights_check(a)


def _bce_shape(a, shapes):
    _same_numel_shape(a, shapes)
    x = shapes[0]
    w = a.get("weights")
    if w is not None and (not x or x[-1] != len(w)):
        raise ShapeError(f"weights has {len(w)} element(s) but the input's last dimension is "
                         f"{x[-1] if x else 1} (input {shape_text(x)})")
    return (1,)


def _c_w(j):
    """BCE's weight factor for flat element j (weights go with the last dim's index)."""
    return "{% if a.weights is not none %} * {{w}}[" + j + " % {{C}}]{% endif %}"


_W = "{% if a.weights is not none %} * np.array({{a.weights|pyrepr}}, {{xs[0]}}.dtype){% endif %}"
_criterion(
    "BCECriterion", "weights:any=nil, sizeAverage:bool=true",
    forward=("{% set t = as1(xs[1], 1) %}"
             "{{y}} = rt.bce_check({{xs[0]}})\n"
             "{{y}} = -((np.log({{y}} + 1e-12) * {{t}} + np.log(1 - {{y}} + 1e-12) * (1 - {{t}}))"
             + _W + ").sum()\n" + _LOSS),
    grad=("{% set t = as1(xs[1], 1) %}"
          "{{G}} = -({{t}} - {{xs[0]}}) / ((1 - {{xs[0]}} + 1e-12) * ({{xs[0]}} + 1e-12))"
          + _W + " * " + _SCALE),
    shape=_bce_shape, check=_bce_check,
    doc="Binary cross-entropy of probabilities x in [0, 1] (checked): -sum w (t log(x + eps) + "
        "(1 - t) log(1 - x + eps)), eps = 1e-12, / nElement with sizeAverage; `weights` (one "
        "per element of the last dimension) broadcast over the batch.",
    torch_diff="`weights` is a Lua table of numbers.",
    cuda=_elementwise_cuda(
        "s += (g_log(xv + (real)1e-12) * tv + g_log((real)1 - xv + (real)1e-12) * ((real)1 - tv))"
        + _c_w("j") + ";",
        "-(tv - xv) / (((real)1 - xv + (real)1e-12) * (xv + (real)1e-12))" + _c_w("i") + " * scale",
        negate=True, aux=_C_WEIGHTS_AUX, host=_C_WEIGHTS_HOST + (
            # graphc_runtime.kernels.bce_check, before any kernel
            "_ok = ({{xs[0]}} >= 0) & ({{xs[0]}} <= 1)\n"
            "if not bool(_ok.all()): raise ValueError(f\"BCECriterion: input value should be "
            "between 0~1, but got {float({{xs[0]}}[~_ok][0])}\")")),
)
