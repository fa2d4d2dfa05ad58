"""Criteria as graph nodes. nngraph turns `crit({prediction, target})` into
nn.ModuleFromCriterion(crit): its output is a 1-element tensor holding the loss, its backward
is the criterion's gradient times gradOutput[1], and the target gets a zero gradient.

Class targets (ClassNLLCriterion, CrossEntropyCriterion) are 1-based integer indices, as in
Torch, so they must come from a graph input (int_inputs)."""
from .registry import ShapeError, B, batched, defop, numel

CRITERIA: set[str] = set()  # the ops that are criteria (what nn.ModuleFromCriterion accepts)


def _s(shape):
    return "x".join(map(str, shape))


def _weights_check(a):
    """`weights` arrives as a Lua table of numbers (torch.Tensor is not available in specs);
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
                         f"{_s(x)} and {_s(t)}")
    return (1,)


def _sibling(a, slot, shapes):
    other = shapes[1 - slot] if slot in (0, 1) and len(shapes) > 1 else None
    return other


def _class_shape(weights_needed=True):
    def rule(a, shapes):
        x, t = _pair(shapes)
        if len(x) not in (1, 2):
            raise ShapeError(f"input tensor should be 1D (C) or 2D (BxC), got {_s(x)}")
        if x[-1] == B:
            raise ShapeError("the class dimension cannot be the batch dimension B")
        want = (1,) if len(x) == 1 else (x[0],)
        if tuple(t) != want:
            raise ShapeError(f"expects a target of shape {_s(want)} (one 1-based class index "
                             f"per row of the {_s(x)} input), got {_s(t)}")
        w = a.get("weights")
        if w is not None and len(w) != x[-1]:
            raise ShapeError(f"weights has {len(w)} element(s) but the input has {x[-1]} classes")
        return (1,)
    return rule


def _class_hint(a, slot, shapes):
    x = shapes[0] if shapes else None
    if slot == 1 and x is not None:
        return (B,) if batched(x) else (1,)
    return None


def _criterion(name, signature, forward, grad, doc, *, shape=_same_numel_shape,
               input_hint=_sibling, check=None, int_target=False, aux=(), torch_diff=""):
    """`forward`: lines setting {{y}} (a 1-element array); `grad`: lines setting {{G}}, the
    gradient w.r.t. the prediction already multiplied by gradOutput[1] ({{gy}}[0])."""
    CRITERIA.add(name)
    backward = ("{% if g.xs[0] %}{% set G = g.xs[0] %}" + grad + "\n{% endif %}"
                "{% if g.xs[1] %}{{g.xs[1]}} = np.zeros_like({{xs[1]}})\n{% endif %}")
    return defop(name=name, signature=signature, inputs=("xs",), shape=shape,
                 input_hint=input_hint, check=check, int_inputs=(1,) if int_target else (),
                 aux=aux, forward=forward, backward_stmt=backward, doc=doc + _NODE_DOC,
                 torch_diff=torch_diff)


_NODE_DOC = (" As a node, crit({prediction, target}) outputs the loss as a 1-element tensor; the "
             "target gets no gradient.")
_T = "{{ as1(xs[1], 1) }}"  # the target viewed with the prediction's shape
_N = "{% if a.sizeAverage %} / {{xs[0]}}.size{% endif %}"  # sizeAverage: / nElement
_LOSS = "{{y}} = np.array([{{y}}" + _N + "], {{xs[0]}}.dtype)"
_SCALE = "({{gy}}[0]" + _N + ")"

# ---- class criteria ----------------------------------------------------------------------

_criterion(
    "ClassNLLCriterion", "weights:any=nil, sizeAverage:bool=true, ignoreIndex:int=-100",
    forward=("{{y}}, {{aux.state}} = rt.class_nll_forward({{xs[0]}}, {{xs[1]}}, "
             "{{a.weights|pyrepr}}, {{a.sizeAverage}}, {{a.ignoreIndex}}, "
             "'nn.ClassNLLCriterion (targets {{xs[1]}})')"),
    grad=("{{G}} = rt.class_nll_backward({{gy}}, {{xs[0]}}.shape, {{aux.state}}, "
          "{{a.sizeAverage}}, {{xs[0]}}.dtype)"),
    shape=_class_shape(), input_hint=_class_hint, check=_weights_check, int_target=True,
    aux=("state",),
    doc="Negative log-likelihood of 1-based class targets: -sum w[t] x[t] over the rows of the "
        "N or BxN input (log-probabilities), divided by sum w[t] with sizeAverage (B without "
        "weights). Targets equal to ignoreIndex are skipped. The target (B, or 1 for 1D input) "
        "must be an integer graph input.",
    torch_diff="`weights` is a Lua table of numbers (torch.Tensor is not available in specs).",
)

_criterion(
    "CrossEntropyCriterion", "weights:any=nil, sizeAverage:bool=true",
    forward=("{{y}}, {{aux.state}} = rt.cross_entropy_forward({{xs[0]}}, {{xs[1]}}, "
             "{{a.weights|pyrepr}}, {{a.sizeAverage}}, -100, "
             "'nn.CrossEntropyCriterion (targets {{xs[1]}})')"),
    grad="{{G}} = rt.cross_entropy_backward({{gy}}, {{aux.state}}, {{a.sizeAverage}})",
    shape=_class_shape(), input_hint=_class_hint, check=_weights_check, int_target=True,
    aux=("state",),
    doc="LogSoftMax over the classes, then ClassNLLCriterion(weights, sizeAverage); 1-based "
        "integer targets from a graph input.",
    torch_diff="Input must be 1D or 2D (Torch squeezes any input first). `weights` is a Lua "
               "table of numbers.",
)

# ---- regression criteria -----------------------------------------------------------------

_criterion(
    "MSECriterion", "sizeAverage:bool=true",
    forward="{{y}} = {{xs[0]}} - " + _T + "\n{{y}} = ({{y}} * {{y}}).sum()\n" + _LOSS,
    grad="{{G}} = ({{xs[0]}} - " + _T + ") * (2 * " + _SCALE + ")",
    doc="sum (x - t)^2, divided by the number of elements with sizeAverage. Target: same "
        "element count as the input.",
)

_criterion(
    "AbsCriterion", "sizeAverage:bool=true",
    forward="{{y}} = np.abs({{xs[0]}} - " + _T + ").sum()\n" + _LOSS,
    grad=("{{G}} = np.full({{xs[0]}}.shape, " + _SCALE + ")\n"
          "{{G}} = np.where({{xs[0]}} - " + _T + " >= 0, {{G}}, -{{G}})"),
    doc="sum abs(x - t) (/ nElement with sizeAverage); the gradient is +1 where x = t, as Torch.",
)

_criterion(
    "SmoothL1Criterion", "sizeAverage:bool=true",
    forward=("{{y}} = np.abs({{xs[0]}} - " + _T + ")\n"
             "{{y}} = np.where({{y}} < 1, 0.5 * {{y}} * {{y}}, {{y}} - 0.5).sum()\n" + _LOSS),
    grad="{{G}} = np.clip({{xs[0]}} - " + _T + ", -1, 1) * " + _SCALE,
    doc="Huber loss: 0.5 d^2 where abs(d) < 1, else abs(d) - 0.5 (d = x - t); summed, / nElement "
        "with sizeAverage.",
)

_criterion(
    "DistKLDivCriterion", "sizeAverage:bool=true",
    forward=("{% set t = as1(xs[1], 1) %}"
             "{{y}} = np.where({{t}} > 0, {{t}} * (np.log(np.where({{t}} > 0, {{t}}, 1)) - "
             "{{xs[0]}}), 0).sum()\n" + _LOSS),
    grad="{% set t = as1(xs[1], 1) %}{{G}} = np.where({{t}} > 0, -{{t}}, 0) * " + _SCALE,
    doc="KL divergence of target probabilities t from input log-probabilities x: sum over "
        "t > 0 of t (log t - x), / nElement with sizeAverage.",
)


def _bce_check(a):
    return _weights_check(a)


def _bce_shape(a, shapes):
    _same_numel_shape(a, shapes)
    x = shapes[0]
    w = a.get("weights")
    if w is not None and (not x or x[-1] != len(w)):
        raise ShapeError(f"weights has {len(w)} element(s) but the input's last dimension is "
                         f"{x[-1] if x else 1} (input {_s(x)})")
    return (1,)


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
)
