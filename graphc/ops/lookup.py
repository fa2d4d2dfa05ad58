"""Index-taking modules: LookupTable (1-based indices, as Torch) and OneHot (char-rnn's)."""
from .registry import CudaRule, ParamSpec, ShapeError, defop


def _lookup_shape(a, shapes):
    (x,) = shapes
    if len(x) not in (1, 2):
        raise ShapeError(f"expects a 1D (N) or 2D (BxN) tensor of indices, got {len(x)}D")
    return x + (a["nOutput"],)


# CUDA: a thread per output element copies its weight element. The weight gradient is a
# gather: the thread of weight element (r, j) sums gy over the positions holding index r+1,
# found through the positions sorted by index (`order`) and where each index's run starts
# (`starts`), made on the device by rt.index_rows: O(positions x nOutput) work in all.
_LOOKUP_CUDA = CudaRule(
    "kernel", kernel="elem",
    aux={"order": ("int", lambda a, ins, out: ins[0], ""),
         "starts": ("int", lambda a, ins, out: (a["nIndex"] + 1,), "")},
    host=("rt.check_indices({{x}}, {{a.nIndex}}, 'nn.LookupTable (input {{x}})')\n"
          "_rows = rt.index_rows({{x}}, {{a.nIndex}})\n"
          "{{aux.order}} = _rows[0]\n"
          "{{aux.starts}} = _rows[1]"),
    forward="return {{ ld(weight, ld(x, *o[:-1]) ~ ' - 1', o[-1]) }};",
    backward={"weight": (
        "{% if a.paddingValue %}"
        "if ({{o[0]}} + 1 == {{a.paddingValue}}) return 0;  // the padding row: no gradient\n"
        "{% endif %}"
        "real s = 0;\n"
        "for (int q = {{starts}}[{{o[0]}}]; q < {{starts}}[{{o[0]}} + 1]; ++q)\n"
        "  s += {{gy}}[{{order}}[q] * {{a.nOutput}} + {{o[1]}}];\n"
        "return s;")},
)

defop(
    name="LookupTable", signature="nIndex:int, nOutput:int, paddingValue:int=0, maxNorm:num=nil",
    params=(ParamSpec("weight", lambda a: (a["nIndex"], a["nOutput"]), lambda a: ("normal", 1.0)),),
    int_inputs=("x",), shape=_lookup_shape, row_wise=True,
    check=lambda a: "maxNorm is not supported (it renormalizes weights in place)" if a["maxNorm"] is not None else None,
    input_hint=lambda a, slot, shapes: ("B",),
    # indices are checked at run time (rt.check_indices) so a bad one names the module
    forward="{{y}} = {{weight}}[rt.check_indices({{x}}, n={{a.nIndex}}, module='nn.LookupTable (input {{x}})') - 1]",
    backward={"weight": "rt.scatter_rows({{gy}}, {{x}}, n={{a.nIndex}}, padding_value={{a.paddingValue}})"},
    doc="Row `i` of weight (nIndex x nOutput) for each index i in 1..nIndex; weight ~ N(0, 1). "
        "Input N or BxN integer indices; rows equal to paddingValue get no gradient.",
    torch_diff="maxNorm is not supported.",
    cuda=_LOOKUP_CUDA,
)


def _onehot_shape(a, shapes):
    (x,) = shapes
    if len(x) not in (1, 2):
        raise ShapeError(f"expects a 1D (B) or 2D tensor of indices, got {len(x)}D")
    return x + (a["outputSize"],)


defop(
    name="OneHot", signature="outputSize:int", int_inputs=("x",), shape=_onehot_shape, row_wise=True,
    input_hint=lambda a, slot, shapes: ("B",),
    forward="{{y}} = rt.one_hot({{x}}, n={{a.outputSize}}, dtype=self.dtype, module='nn.OneHot (input {{x}})')",
    doc="A one-hot float vector of size outputSize for each 1-based index (char-rnn's OneHot); "
        "no gradient to the indices.",
    cuda=CudaRule(
        "kernel", kernel="elem",
        host="rt.check_indices({{x}}, {{a.outputSize}}, 'nn.OneHot (input {{x}})')",
        forward="return {{ ld(x, *o[:-1]) }} == {{o[-1]}} + 1 ? (real)1 : (real)0;"),
)
