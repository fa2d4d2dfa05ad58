"""Reductions and dimension shuffles: Sum, Mean, Max, Min, Transpose, Replicate, Squeeze,
Unsqueeze. Dims are Torch's: 1-based over the full shape (B included), negative from the
end; an `nInputDims` / `numInputDims` argument shifts them by one for batch input."""
import math

from .registry import CudaRule, ShapeError, batched, defop, is_symbolic, shape_text, torch_dim


def _set_num_input_dims(a, n):
    a["numInputDims"] = int(n)


def _reduce_axis(a, x, what):
    """Torch's _getPositiveDimension: nInputDims shifts a positive dim for batch input."""
    dim = a["dimension"]
    if dim > 0 and a["nInputDims"] is not None and len(x) == a["nInputDims"] + 1:
        dim += 1
    axis = torch_dim(dim, len(x))
    if is_symbolic(x[axis]):
        raise ShapeError(f"cannot {what} over the batch dimension B (dimension {dim} of "
                         f"{shape_text(x)}); count B as dimension 1, or give nInputDims")
    return axis


def _reduce_flops(a, ins, out):
    return math.prod(ins[0])


# ---- Sum, Mean -----------------------------------------------------------------------


def _sum_derive(mean):
    def derive(a, shapes):
        x = shapes[0]
        axis = _reduce_axis(a, x, "sum")
        squeeze = a.get("squeeze", True) and len(x) > 1  # Torch keeps a 1D result 1D
        return {"axis": axis, "squeeze": squeeze, "n": x[axis],
                "mean": mean if mean is not None else a["sizeAverage"]}
    return derive


def _sum_shape(derive):
    def shape(a, shapes):
        d = derive(a, shapes)
        s = list(shapes[0])
        if d["squeeze"]:
            del s[d["axis"]]
        else:
            s[d["axis"]] = 1
        return tuple(s)
    return shape


_SUM_FWD = ("{{y}} = {{x}}.{{ 'mean' if d.mean else 'sum' }}({{d.axis}}"
            "{% if not d.squeeze %}, keepdims=True{% endif %})")
_SUM_BWD = {"x": "np.repeat({% if d.squeeze %}np.expand_dims({{gy}}, {{d.axis}}){% else %}{{gy}}"
                 "{% endif %}, {{d.n}}, {{d.axis}}){% if d.mean %} / {{d.n}}{% endif %}"}

# CUDA: each output element loops over the reduced axis; the gradient is a broadcast.
# `od`: the dims of the output element an input element o was reduced into.
_GY_AT = "{% set od = o[:d.axis] + ([] if d.squeeze else [0]) + o[d.axis + 1:] %}"
_SUM_CUDA = CudaRule(
    "kernel", kernel="elem",
    forward=("real s = 0;\n"
             "for (int k = 0; k < {{d.n}}; ++k) s += {{ ld(x, *(o[:d.axis] + ['k'] + o[d.axis + (0 if d.squeeze else 1):])) }};\n"
             "return {% if d.mean %}s / {{ c(d.n) }}{% else %}s{% endif %};"),
    backward={"x": (_GY_AT +
                    "return {{ ld(gy, *od) }}{% if d.mean %} / {{ c(d.n) }}{% endif %};")},
)

for _name, _sig, _mean, _doc in (
    ("Sum", "dimension:int=1, nInputDims:int=nil, sizeAverage:bool=false, squeeze:bool=true", None,
     "Sum over `dimension` (mean with sizeAverage); the dim is dropped when squeeze is true "
     "and the input has more than one dim."),
    ("Mean", "dimension:int=1, nInputDims:int=nil", True,
     "Mean over `dimension` (Sum with sizeAverage); the dim is dropped unless the input is 1D."),
):
    _derive = _sum_derive(_mean)
    defop(name=_name, signature=_sig, shape=_sum_shape(_derive), derive=_derive,
          forward=_SUM_FWD, backward=_SUM_BWD, doc=_doc, flops=_reduce_flops, cuda=_SUM_CUDA,
          torch_diff="Reducing over the batch dim B is an error (Torch's default dimension 1 "
                     "is the batch dim of batch input).")

# ---- Max, Min --------------------------------------------------------------------------


def _max_derive(a, shapes):
    x = shapes[0]
    axis = _reduce_axis(a, x, "reduce")
    return {"axis": axis, "squeeze": len(x) > 1, "n": x[axis]}


def _x_dims(at):  # jinja: `xd`, the input dims of output element `o` with `at` on the axis
    return "{% set xd = o[:d.axis] + [" + at + "] + o[d.axis + (0 if d.squeeze else 1):] %}"


# CUDA: aux `idx` (one per output element) is the first position of the extreme along the
# axis (a NaN wins, as numpy's argmax); the gradient goes to the element at that position.
def _max_cuda(cmp):
    return CudaRule(
        "kernel", kernel="elem",
        aux={"idx": ("int", lambda a, ins, out: out,
                     _x_dims("0") + "real best = {{ ld(x, *xd) }};\n" + _x_dims("'k'") +
                     "int j = 0;\n"
                     "for (int k = 1; k < {{d.n}}; ++k) {\n"
                     "  const real v = {{ ld(x, *xd) }};\n"
                     "  if (v " + cmp + " best || (v != v && best == best)) { best = v; j = k; }\n"
                     "}\n"
                     "return j;")},
        forward=_x_dims("'j'") + "const int j = {{ ld(idx, *o) }};\nreturn {{ ld(x, *xd) }};",
        backward={"x": (_GY_AT +
                        "return {{ o[d.axis] }} == {{ ld(idx, *od) }} ? {{ ld(gy, *od) }} : (real)0;")},
    )


for _name, _fn, _cmp in (("Max", "argmax", ">"), ("Min", "argmin", "<")):
    defop(
        name=_name, signature="dimension:int=1, nInputDims:int=nil",
        shape=_sum_shape(_max_derive), derive=_max_derive, aux=("idx",), flops=_reduce_flops,
        forward=("{{aux.idx}} = {{x}}." + _fn + "({{d.axis}}, keepdims=True)\n"
                 "{{y}} = np.take_along_axis({{x}}, {{aux.idx}}, {{d.axis}})"
                 "{% if d.squeeze %}.squeeze({{d.axis}}){% endif %}"),
        backward_stmt=("{{g.x}} = np.zeros({{xshape(0)}}, {{gy}}.dtype)\n"
                       "np.put_along_axis({{g.x}}, {{aux.idx}}, {% if d.squeeze %}np.expand_dims("
                       "{{gy}}, {{d.axis}}){% else %}{{gy}}{% endif %}, {{d.axis}})"),
        doc=f"{_name} over `dimension` (values only; the dim is dropped unless the input is "
            "1D). The gradient goes to the first " + ("maximum." if _fn == "argmax" else "minimum."),
        torch_diff="Reducing over the batch dim B is an error.", cuda=_max_cuda(_cmp),
    )

# ---- Transpose ---------------------------------------------------------------------------


def _transpose_check(a):
    perms = []
    for t in a["permutations"]:
        pair = t if isinstance(t, tuple) else (t.array() if hasattr(t, "array") else None)
        if (pair is None or len(pair) != 2 or
                not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                        and float(v) == int(v) for v in pair)):
            return "each argument must be a pair of dimensions, e.g. nn.Transpose({1, 2}, {3, 4})"
        perms.append((int(pair[0]), int(pair[1])))
    a["permutations"] = tuple(perms)
    a.setdefault("numInputDims", None)


def _transpose_derive(a, shapes):
    x = shapes[0]
    rank = len(x)
    nid = a["numInputDims"]
    offset = rank - nid if nid is not None else 0
    perm = list(range(rank))
    for d1, d2 in a["permutations"]:
        if d1 < 1 or d2 < 1:
            raise ShapeError(f"dimensions must be positive, got {{{d1}, {d2}}}")
        i, j = torch_dim(d1 + offset, rank), torch_dim(d2 + offset, rank)
        perm[i], perm[j] = perm[j], perm[i]
    if batched(x) and perm[0] != 0:
        raise ShapeError("cannot move the batch dimension B (dimension 1); count B as "
                         "dimension 1, or use setNumInputDims")
    inverse = [0] * rank
    for k, p in enumerate(perm):
        inverse[p] = k
    return {"perm": tuple(perm), "inverse": tuple(inverse)}


def _transpose_shape(a, shapes):
    d = _transpose_derive(a, shapes)
    return tuple(shapes[0][p] for p in d["perm"])


def _permuted(arr, order):  # jinja: `return arr[o[order[0]], o[order[1]], ...];`
    return ("{% set at = [] %}{% for p in d." + order + " %}{% set _ = at.append(o[p]) %}{% endfor %}"
            "return {{ ld(" + arr + ", *at) }};")


defop(
    name="Transpose", signature="permutations:table*", shape=_transpose_shape,
    derive=_transpose_derive, check=_transpose_check, view=True,
    methods={"setNumInputDims": _set_num_input_dims},
    forward="{{y}} = {{x}}.transpose({{d.perm}})",
    backward={"x": "{{gy}}.transpose({{d.inverse}})"},
    # CUDA: output dim j is input dim perm[j], so input dim p is output dim inverse[p]
    cuda=CudaRule("kernel", kernel="elem", forward=_permuted("x", "inverse"),
                  backward={"x": _permuted("gy", "perm")}),
    doc="Swaps each pair {d1, d2} of dims in turn (a view); `:setNumInputDims(n)` offsets them "
        "for batch input.",
    torch_diff="The result is a view, not a copy.",
)

# ---- Replicate ---------------------------------------------------------------------------


def _replicate_check(a):
    if a["dim"] < 1:
        return "can only replicate across positive integer dimensions"
    if a["nFeature"] < 1:
        return "nFeature must be at least 1"


def _replicate_derive(a, shapes):
    x = shapes[0]
    offset = 1 if a["ndim"] is not None and len(x) > a["ndim"] else 0
    rdim = a["dim"] + offset
    if rdim > len(x) + 1:
        raise ShapeError(f"not enough input dimensions to replicate along dimension {rdim}")
    if rdim == 1 and batched(x):
        raise ShapeError("replicating along dimension 1 would put the copies before the batch "
                         "dimension B; give ndim (the number of non-batch dims) or a later dim")
    return {"axis": rdim - 1}


def _replicate_shape(a, shapes):
    d = _replicate_derive(a, shapes)
    s = list(shapes[0])
    s.insert(d["axis"], a["nFeature"])
    return tuple(s)


defop(
    name="Replicate", signature="nFeature:int, dim:int=1, ndim:int=nil", shape=_replicate_shape,
    derive=_replicate_derive, check=_replicate_check,
    forward="{{y}} = np.repeat(np.expand_dims({{x}}, {{d.axis}}), {{a.nFeature}}, {{d.axis}})",
    backward={"x": "{{gy}}.sum({{d.axis}})"},
    # CUDA: each output element reads its source; the gradient sums the nFeature copies
    cuda=CudaRule("kernel", kernel="elem",
                  forward="return {{ ld(x, *(o[:d.axis] + o[d.axis + 1:])) }};",
                  backward={"x": ("real s = 0;\n"
                                  "for (int k = 0; k < {{a.nFeature}}; ++k) s += {{ ld(gy, *(o[:d.axis] + ['k'] + o[d.axis:])) }};\n"
                                  "return s;")}),
    doc="Adds a dim of size nFeature at `dim` holding copies of the input; `ndim` set and a "
        "bigger input shifts dim by one (batch).",
    torch_diff="The result is a copy (Torch: a zero-stride view).",
)

# ---- Squeeze, Unsqueeze -------------------------------------------------------------------

_RESHAPE_FWD = "{{y}} = {{x}}.reshape({{ out_shape|pyshape }})"
_RESHAPE_BWD = {"x": "{{gy}}.reshape({{ in_shapes[0]|pyshape }})"}


def _squeeze_shape(a, shapes):
    x = list(shapes[0])
    nid = a["numInputDims"]
    batch_mode = nid is not None and len(x) == nid + 1
    dim = a["dim"]
    if dim is not None:
        if batch_mode:
            dim += 1
        axis = torch_dim(dim, len(x))
        if is_symbolic(x[axis]):
            raise ShapeError(f"dimension {dim} is the batch dimension B, which is never "
                             "squeezed; count B as dimension 1, or give numInputDims")
        if x[axis] == 1 and len(x) > 1:
            del x[axis]
        return tuple(x)
    out = [s for s in x if s != 1] or [1]  # torch's squeeze() keeps at least one dim
    if batch_mode and x[0] == 1:
        out = [1] + out  # Torch puts a batch of one back
    return tuple(out)


def _unsqueeze_derive(a, shapes):
    x = shapes[0]
    rank = len(x)
    nid = a["numInputDims"] if a["numInputDims"] is not None else rank
    offset = rank - nid
    if offset < 0:
        raise ShapeError(f"numInputDims ({nid}) must be <= the input's dims ({rank})")
    pos = a["pos"] + offset
    if not 1 <= pos <= rank + 1:
        raise ShapeError(f"invalid position {a['pos']}: the input has {rank} dims "
                         f"(numInputDims {nid})")
    if pos == 1 and batched(x):
        raise ShapeError("cannot insert a dim before the batch dimension B; count B as "
                         "dimension 1, or give numInputDims")
    return {"axis": pos - 1}


def _unsqueeze_shape(a, shapes):
    s = list(shapes[0])
    s.insert(_unsqueeze_derive(a, shapes)["axis"], 1)
    return tuple(s)


defop(
    name="Squeeze", signature="dim:int=nil, numInputDims:int=nil", shape=_squeeze_shape,
    methods={"setNumInputDims": _set_num_input_dims}, view=True,
    forward=_RESHAPE_FWD, backward=_RESHAPE_BWD, cuda=CudaRule("index", index="view"),
    doc="Drops dim `dim` if it has size 1, or every size-1 dim when no dim is given (a view). "
        "numInputDims shifts dim by one for batch input.",
    torch_diff="The batch dim B is never squeezed (Torch squeezed a batch of one unless "
               "numInputDims was set).",
)

defop(
    name="Unsqueeze", signature="pos:int, numInputDims:int=nil", shape=_unsqueeze_shape,
    derive=_unsqueeze_derive, methods={"setNumInputDims": _set_num_input_dims}, view=True,
    forward=_RESHAPE_FWD, backward=_RESHAPE_BWD, cuda=CudaRule("index", index="view"),
    doc="Inserts a size-1 dim at position `pos` (a view); with numInputDims, pos counts from "
        "the first non-batch dim.",
    torch_diff="Without numInputDims each input uses its own rank (Torch remembered the first "
               "input's rank).",
)
