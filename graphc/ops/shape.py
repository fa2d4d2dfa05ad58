"""Views and slices: View, Reshape, Narrow, Select. In the generated code these are numpy
views (no copies); gradients are reshaped or scattered back."""
from .registry import CudaRule, ShapeError, batched, defop, numel, torch_dim, B

def _s(shape):
    return "x".join(map(str, shape))


def _resolve(sizes, n, what):
    """Fill a single -1 in `sizes` so that they hold n elements."""
    if list(sizes).count(-1) > 1:
        raise ShapeError(f"{what}: at most one size may be -1")
    known = numel([d for d in sizes if d != -1])
    if -1 in sizes:
        if known == 0 or n % known:
            raise ShapeError(f"{what}: cannot fit {n} elements into {_s(sizes)}")
        return tuple(n // known if d == -1 else d for d in sizes)
    return tuple(sizes)


def _view_shape(a, shapes):
    (x,) = shapes
    sizes, what = a["sizes"], f"View({', '.join(map(str, a['sizes']))})"
    if batched(x):
        # graphc's rule: with a free batch dim, sizes apply per sample (Torch guessed).
        n = numel(x[1:])
        out = _resolve(sizes, n, what)
        if numel(out) != n:
            raise ShapeError(f"{what}: the input has {_s(x[1:])} = {n} elements per sample, "
                             f"but the view holds {numel(out)}")
        return (B,) + out
    nid = a.get("numInputDims")
    if nid is not None and len(x) > nid:
        lead, n = x[: len(x) - nid], numel(x[len(x) - nid:])
        return (numel(lead),) + _resolve(sizes, n, what)
    n = numel(x)
    if -1 in sizes:
        return _resolve(sizes, n, what)
    want = numel(sizes)
    if n % want:
        raise ShapeError(f"{what}: the input {_s(x)} has {n} elements, not a multiple of {want}")
    bsz = n // want
    return tuple(sizes) if bsz == 1 else (bsz,) + tuple(sizes)


def _view_guess(a, shapes):
    """The warning for Torch's batch-size guess: sizes without -1 on an input with no B that
    holds a multiple of them (the tutorial's LeNet at View(400) on 16x10x10 gives 4x400)."""
    (x,) = shapes
    sizes = a["sizes"]
    nid = a.get("numInputDims")
    if batched(x) or -1 in sizes or (nid is not None and len(x) > nid):
        return None
    n, want = numel(x), numel(sizes)
    if n % want or n == want:
        return None
    return (f"Torch's batch-size guess: the input {_s(x)} has {n} elements and the view holds "
            f"{want}, so the first dimension becomes a batch of {n // want} (output "
            f"{n // want}x{_s(sizes)}); if the model's input has a batch dimension, give its "
            f"shape with a leading B (e.g. --shape input1=Bx1x32x32) so the sizes apply per "
            f"sample, or use View(-1, ...) to say the batch is meant")


def _set_num_input_dims(a, n):
    a["numInputDims"] = int(n)


def _view_check(a):
    if not a["sizes"]:
        return "View needs at least one size"
    if any(d == 0 or d < -1 for d in a["sizes"]):
        return "View sizes must be positive (or a single -1)"


_RESHAPE_FWD = "{{y}} = {{x}}.reshape({{ out_shape|pyshape }})"
_RESHAPE_BWD = {"x": "{{gy}}.reshape({{ in_shapes[0]|pyshape }})"}

defop(
    name="View", signature="sizes:int*", shape=_view_shape, check=_view_check,
    methods={"setNumInputDims": _set_num_input_dims}, warn=_view_guess,
    forward=_RESHAPE_FWD, backward=_RESHAPE_BWD, view=True,
    doc="Reshapes (a view). One size may be -1.", cuda=CudaRule("index", index="view"),
    torch_diff="With a free batch dim B the sizes apply per sample and a mismatch is an "
               "error; Torch guessed the batch size from element counts.",
)


def _reshape_shape(a, shapes):
    (x,) = shapes
    sizes, mode = tuple(a["sizes"]), a["batchMode"]
    what = f"Reshape({', '.join(map(str, sizes))})"
    if batched(x):
        if mode is False:
            raise ShapeError(f"{what}: batchMode=false cannot reshape across the batch dim B")
        if numel(x[1:]) != numel(sizes):
            raise ShapeError(f"{what}: the input has {_s(x[1:])} = {numel(x[1:])} elements per "
                             f"sample, but the shape holds {numel(sizes)}")
        return (B,) + sizes
    if mode is False or (mode is None and numel(x) == numel(sizes) and x[0] != 1):
        if numel(x) != numel(sizes):
            raise ShapeError(f"{what}: the input {_s(x)} has {numel(x)} elements, not {numel(sizes)}")
        return sizes
    if numel(x[1:]) != numel(sizes):
        raise ShapeError(f"{what}: the input {_s(x)} does not hold {numel(sizes)} elements per sample")
    return (x[0],) + sizes


def _reshape_check(a):
    if not a["sizes"] or any(d <= 0 for d in a["sizes"]):
        return "Reshape sizes must be positive numbers"


defop(
    name="Reshape", signature="sizes:int*, batchMode:bool=nil", shape=_reshape_shape,
    check=_reshape_check, forward=_RESHAPE_FWD, backward=_RESHAPE_BWD, view=True,
    doc="Reshapes; the leading dim is kept as a batch dim as Torch decides (batchMode).",
    cuda=CudaRule("index", index="view"),
    torch_diff="With a free batch dim B the sizes apply per sample.",
)


def _narrow_derive(a, shapes):
    x = shapes[0]
    axis = torch_dim(a["dimension"], len(x))
    size = x[axis]
    if size == B:
        raise ShapeError("cannot narrow the batch dimension B")
    offset, length = a["offset"], a["length"]
    if offset < 1:
        raise ShapeError(f"offset {offset} must be at least 1 (Torch offsets are 1-based)")
    if length < 0:
        length = size - offset + length + 2
    if length < 1 or offset + length - 1 > size:
        raise ShapeError(f"elements {offset}..{offset + length - 1} are out of range for "
                         f"dimension {a['dimension']} of size {size} (input {_s(x)})")
    return {"axis": axis, "start": offset - 1, "stop": offset - 1 + length}


def _narrow_shape(a, shapes):
    d = _narrow_derive(a, shapes)
    s = list(shapes[0])
    s[d["axis"]] = d["stop"] - d["start"]
    return tuple(s)


_SLICE = "[{{ ':, ' * d.axis }}{{d.start}}:{{d.stop}}]"
defop(
    name="Narrow", signature="dimension:int, offset:int, length:int=1",
    shape=_narrow_shape, derive=_narrow_derive, view=True,
    row_wise=lambda a, shapes: _narrow_derive(a, shapes)["axis"] > 0,  # not a slice of rows
    forward="{{y}} = {{x}}" + _SLICE,
    backward_stmt="{{g.x}} = np.zeros_like({{x}})\n{{g.x}}" + _SLICE + " = {{gy}}",
    doc="Slice `length` elements of `dimension` from 1-based `offset` (a view).",
    cuda=CudaRule("index", index="narrow"),
)


def _select_derive(a, shapes):
    x = shapes[0]
    axis = torch_dim(a["dimension"], len(x))
    size = x[axis]
    if size == B:
        raise ShapeError("cannot select along the batch dimension B")
    i = a["index"]
    i = i - 1 if i > 0 else size + i
    if not 0 <= i < size:
        raise ShapeError(f"index {a['index']} is out of range for dimension {a['dimension']} "
                         f"of size {size}")
    return {"axis": axis, "index": i}


def _select_shape(a, shapes):
    d = _select_derive(a, shapes)
    return tuple(s for k, s in enumerate(shapes[0]) if k != d["axis"])


_PICK = "[{{ ':, ' * d.axis }}{{d.index}}]"
defop(
    name="Select", signature="dimension:int, index:int",
    shape=_select_shape, derive=_select_derive, view=True,
    row_wise=lambda a, shapes: _select_derive(a, shapes)["axis"] > 0,
    forward="{{y}} = {{x}}" + _PICK,
    backward_stmt="{{g.x}} = np.zeros_like({{x}})\n{{g.x}}" + _PICK + " = {{gy}}",
    doc="Picks index `index` (1-based, negative from the end) of `dimension`; drops that dim.",
    cuda=CudaRule("index", index="select"),
)
