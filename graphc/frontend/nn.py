"""The objects a spec builds: nn modules and nngraph nodes, as the evaluator sees them.
Nothing here knows about arrays; lower.py turns these into the IR."""
from __future__ import annotations

import itertools
import re

from ..errors import Loc, SpecError, did_you_mean
from ..ops import REGISTRY
from .tensor import TensorObj
from .values import Builtin, ClassObj, LuaFunction, LuaTable

# Containers (lowered structurally by lower.py): their Lua signatures. All but gModule
# take children with :add(m).
CONTAINER_SIGNATURES = {
    "Sequential": "", "Parallel": "inputDimension:int, outputDimension:int", "ConcatTable": "",
    "ParallelTable": "", "Concat": "dimension:int", "gModule": "",
    "Bottle": "nInputDim:int=2, nOutputDim:int=nil",  # after its module: nn.Bottle(m, 2)
}
CONTAINERS = tuple(CONTAINER_SIGNATURES)
ADDABLE = tuple(c for c in CONTAINERS if c not in ("gModule", "Bottle"))

# Torch7 nn module names graphc does not support (yet): a located "not supported" error,
# distinct from a misspelling.
TORCH_NN = """Abs AbsCriterion Add AddConstant BatchNormalization Bilinear BCECriterion Bottle
CAdd CAddTable CDivTable Clamp ClassNLLCriterion ClassSimplexCriterion CMaxTable CMinTable CMul
CMulTable Concat ConcatTable Container Contiguous Copy Cosine CosineDistance
CosineEmbeddingCriterion CriterionTable CrossEntropyCriterion CSubTable DepthConcat
DistKLDivCriterion DotProduct Dropout ELU Euclidean Exp FlattenTable GradientReversal HardShrink
HardTanh HingeEmbeddingCriterion Identity Index JoinTable L1Cost L1HingeEmbeddingCriterion
L1Penalty LeakyReLU Linear LogSigmoid LogSoftMax LookupTable MarginCriterion
MarginRankingCriterion MaskedSelect Max Mean Min MixtureTable MM Module MSECriterion Mul
MulConstant MultiCriterion MultiLabelMarginCriterion MultiLabelSoftMarginCriterion
MultiMarginCriterion MV Narrow NarrowTable Normalize Padding PairwiseDistance Parallel
ParallelCriterion ParallelTable PartialLinear Power PReLU ReLU ReLU6 Replicate Reshape RReLU
Select SelectTable Sequential Sigmoid SmoothL1Criterion SoftMax SoftMin SoftPlus SoftShrink
SoftSign SoftMarginCriterion SpatialAdaptiveMaxPooling SpatialAveragePooling
SpatialBatchNormalization SpatialConvolution SpatialConvolutionLocal SpatialConvolutionMap
SpatialConvolutionMM SpatialCrossMapLRN SpatialDilatedConvolution SpatialDivisiveNormalization
SpatialDropout SpatialFractionalMaxPooling SpatialFullConvolution SpatialLPPooling
SpatialMaxPooling SpatialMaxUnpooling SpatialReflectionPadding SpatialReplicationPadding
SpatialSoftMax SpatialSubtractiveNormalization SpatialUpSamplingNearest SpatialZeroPadding
SplitTable Sqrt Square Squeeze Sum Tanh TanhShrink TemporalConvolution TemporalMaxPooling
TemporalSubSampling Threshold Transpose Unsqueeze View VolumetricConvolution
VolumetricMaxPooling WeightedEuclidean WeightedMSECriterion OneHot ModuleFromCriterion
gModule""".split()


class ModuleObj:
    """An `nn.X(...)` instance. `serial` is its constructor order (it fixes parameter order)."""

    def __init__(self, kind: str, attrs: dict, loc: Loc, serial: int):
        self.kind, self.attrs, self.loc, self.serial = kind, attrs, loc, serial
        self.children: list[ModuleObj] = []  # containers
        self.fields: dict = {}  # Lua fields a spec sets on it (`m.name = 'x'`)
        self.inputs: list[NodeObj] = []  # gModule
        self.outputs: list[NodeObj] = []
        self.contained = False  # added to a container or used in a graph
        # Torch's object API (objects.py): initialisations the spec recorded per parameter
        # slot (replacing the op's default init), and slots tied to another module's
        # (`m:share(other, 'weight')`): slot -> (module, slot)
        self.inits: dict[str, tuple] = {}
        self.shared: dict[str, tuple] = {}
        self.share_loc: dict[str, Loc] = {}  # where each tie was made (for shape errors)
        self.cls = None  # the ClassObj it is an instance of (a torch.class, or nn.<kind>)
        self.bound = True  # False until a torch.class instance's parent.__init binds attrs

    @property
    def typename(self) -> str:
        """torch.type(m): its class's name (a torch.class's, or nn.<kind>)."""
        return self.cls.typename if self.cls is not None else f"nn.{self.kind}"

    def __repr__(self):
        return self.typename


def module_text(mod: ModuleObj) -> str:
    """print(m), tostring(m): Torch's description of a module; containers list theirs."""
    if mod.kind in CONTAINERS and mod.kind != "gModule" and mod.children:
        n = len(mod.children)
        head = [f"{mod.typename} {{"]
        if mod.kind == "Sequential":
            head.append("  [input -> " + " -> ".join(f"({i})" for i in range(1, n + 1)) + " -> output]")
        body = [f"  ({i}): " + module_text(c).replace("\n", "\n  ")
                for i, c in enumerate(mod.children, 1)]
        return "\n".join(head + body + ["}"])
    if mod.kind == "Linear" and mod.bound:
        a = mod.attrs
        return f"{mod.typename}({a['inputSize']} -> {a['outputSize']}" + \
            ("" if a.get("bias", True) else " without bias") + ")"
    args = [_arg_text(v) for v in mod.attrs.values() if v is not None]
    return mod.typename + (f"({', '.join(args)})" if args else "")


def _arg_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        return "{" + ", ".join(_arg_text(x) for x in v) + "}"
    return repr(v) if isinstance(v, str) else "%.14g" % v if isinstance(v, float) else str(v)


class ParamRef:
    """`m.weight`, `m.bias`: one parameter (or buffer) slot of a module, as the tensor a spec
    can read the size of and initialise (objects.py gives it its Lua methods)."""

    __slots__ = ("module", "slot")

    def __init__(self, module: ModuleObj, slot: str):
        self.module, self.slot = module, slot

    def __eq__(self, other):
        return isinstance(other, ParamRef) and resolve(self.module, self.slot) == \
            resolve(other.module, other.slot)

    def __hash__(self):
        m, s = resolve(self.module, self.slot)
        return hash((id(m), s))

    def __repr__(self):
        return f"{self.module!r}.{self.slot}"


def resolve(mod: ModuleObj, slot: str):
    """The (module, slot) that owns a parameter slot, following `share` ties."""
    seen = set()
    while slot in mod.shared and id(mod) not in seen:
        seen.add(id(mod))
        mod, slot = mod.shared[slot]
    return mod, slot


class NodeObj:
    """An nngraph node: a module applied to input nodes (`select` >= 0: output i of a split)."""

    _serials = itertools.count()

    def __init__(self, module, inputs, loc: Loc, select: int = -1):
        self.module, self.inputs, self.loc, self.select = module, inputs, loc, select
        self.annotations: dict = {}
        self.split_n = 0  # set on the parent by split(n)
        self.split_outputs: list[NodeObj] = []  # ... with the n select nodes it returned
        self.var_name = None  # the first Lua variable it was assigned to (a readable default)
        self.serial = next(NodeObj._serials)  # creation order: a topological order

    @property
    def name(self):
        n = self.annotations.get("name")
        return n if isinstance(n, str) else None

    def __repr__(self):
        return f"nngraph.Node({self.module!r})"


# ---- Lua argument binding ------------------------------------------------------

_SIG = re.compile(r"(\w+):(\w+)(\*)?(?:=(\S+))?")


def bind_args(kind: str, signature: str, args: list, loc: Loc) -> dict:
    """Bind Lua call arguments to `name:type[*][=default]` items."""
    items = [_SIG.fullmatch(s.strip()).groups() for s in signature.split(",") if s.strip()]
    out, i = {}, 0
    usage = f"nn.{kind}({re.sub(r':(int|bool|num|str|table)', '', signature)})"
    for name, typ, star, default in items:
        if star:
            vals = []
            while i < len(args) and _is(args[i], typ):
                vals.append(_coerce(args[i], typ, kind, name, loc))
                i += 1
            if typ == "table" and i < len(args) and args[i] is not None:
                raise SpecError(f"nn.{kind}: argument {i + 1} must be a table such as {{1, 2}}, "
                                f"got {lua_type(args[i])}; usage: {usage}", loc)
            out[name] = tuple(vals)
            continue
        if i < len(args) and args[i] is not None:
            out[name] = _coerce(args[i], typ, kind, name, loc)
        elif default is None:
            raise SpecError(f"nn.{kind}: missing argument '{name}'; usage: {usage}", loc)
        else:
            out[name] = {"nil": None, "true": True, "false": False}.get(default, None) \
                if default in ("nil", "true", "false") else _num(default)
        i += 1
    while i < len(args) and args[i] is None:
        i += 1
    if i < len(args):
        raise SpecError(f"nn.{kind}: too many arguments ({len(args)} given); usage: {usage}", loc)
    return out


def _num(text):
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


def _is(v, typ):
    if typ == "int":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if typ == "num":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if typ == "bool":
        return isinstance(v, bool)
    if typ == "str":
        return isinstance(v, str)
    if typ == "table":  # a Lua table, or a spec-time tensor (torch.Tensor{...})
        return isinstance(v, (LuaTable, TensorObj))
    return True


def _coerce(v, typ, kind, name, loc):
    if not _is(v, typ):
        want = {"int": "a number", "num": "a number", "bool": "a boolean", "str": "a string",
                "table": "a table"}[typ]
        raise SpecError(f"nn.{kind}: argument '{name}' must be {want}, got {lua_type(v)}", loc)
    if typ == "int":
        if float(v) != int(v):
            raise SpecError(f"nn.{kind}: argument '{name}' must be a whole number, got {v}", loc)
        return int(v)
    if typ == "table":  # a Lua array of numbers, e.g. Transpose's {1, 2} pairs
        if hasattr(v, "a"):  # a tensor: its rows (a 2-D kernel) or numbers
            return tuple(tuple(row) if isinstance(row, list) else row for row in v.a.tolist())
        return tuple(tuple(x.array()) if hasattr(x, "array") else x for x in v.array())
    return v


def make_module(kind: str, args: list, loc: Loc, serial: int) -> ModuleObj:
    if kind == "Bottle":  # nn.Bottle(module, nInputDim=2, nOutputDim=nInputDim)
        inner = args[0] if args else None
        if not isinstance(inner, ModuleObj):
            raise SpecError("nn.Bottle expects a module first: nn.Bottle(module, nInputDim=2, "
                            "nOutputDim=nInputDim)", loc)
        attrs = bind_args(kind, CONTAINER_SIGNATURES[kind], list(args[1:]), loc)
        if attrs["nInputDim"] < 1 or (attrs["nOutputDim"] is not None and attrs["nOutputDim"] < 1):
            raise SpecError("nn.Bottle: nInputDim and nOutputDim must be at least 1", loc)
        mod = ModuleObj(kind, attrs, loc, serial)
        inner.contained = True
        mod.children.append(inner)
        return mod
    if kind in CONTAINERS:
        attrs = bind_args(kind, CONTAINER_SIGNATURES[kind], args, loc) if kind != "gModule" else {}
        return ModuleObj(kind, attrs, loc, serial)
    op = REGISTRY[kind]
    attrs = bind_args(kind, op.signature, args, loc)
    mod = ModuleObj(kind, attrs, loc, serial)
    check_attrs(mod, loc)
    return mod


def check_attrs(mod: ModuleObj, loc: Loc):
    op = REGISTRY.get(mod.kind)
    if op is not None and op.check is not None:
        err = op.check(mod.attrs)
        if err:
            raise SpecError(f"nn.{mod.kind}: {err}", loc)


def set_module_field(mod: ModuleObj, key: str, v, loc):
    """A spec assigning a constructor argument after construction (`crit.sizeAverage = false`)."""
    op = REGISTRY.get(mod.kind)
    if op is None:
        return
    for item in op.signature.split(","):
        m = _SIG.fullmatch(item.strip())
        if m and m.group(1) == key:
            mod.attrs[key] = v if v is None else _coerce(v, m.group(2), mod.kind, key, loc)
            check_attrs(mod, loc)
            return


def unknown_module(kind: str, loc: Loc) -> SpecError:
    if kind in TORCH_NN:
        return SpecError(f"nn.{kind} is a Torch nn module that graphc does not support yet "
                         f"(see docs/modules.md for the supported ones)", loc)
    return SpecError(f"unknown module nn.{kind}" + did_you_mean(kind, list(REGISTRY) + list(CONTAINERS)), loc)


def lua_type(v) -> str:
    """Lua's type(); modules and nodes are tables in Torch, so they are here too."""
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (LuaTable, ClassObj)):
        return "table"
    if isinstance(v, (LuaFunction, Builtin)):
        return "function"
    if isinstance(v, (ModuleObj, NodeObj)):
        return "table"
    return "userdata"  # tensors
