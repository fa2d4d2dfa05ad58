"""Views and slices: View, Reshape, Narrow, Select. In the generated code these are numpy
views (no copies); gradients are reshaped or scattered back."""
from .registry import (CudaRule, ShapeError, batch_times, batched, defop, is_symbolic, numel,
                       shape_text, torch_dim)


def _resolve(sizes, n, what):
    """Fill a single -1 in `sizes` so that they hold n elements."""
    if list(sizes).count(-1) > 1:
        raise ShapeError(f"{what}: at most one size may be -1")
    known = numel([d for d in sizes if d != -1])
    if -1 in sizes:
        if known == 0 or n % known:
            raise ShapeError(f"{what}: cannot fit {n} elements into {shape_text(sizes)}")
        return tuple(n // known if d == -1 else d for d in sizes)
    return tuple(sizes)


def _symbolic_count(x, what) -> int:
    """Elements of x per unit of B, for an x holding the batch in one dim."""
    if sum(is_symbolic(d) for d in x) > 1:
        raise ShapeError(f"{what}: the input {shape_text(x)} holds the batch in more than one dim")
    return numel(x)


def _view_shape(a, shapes):
    """Torch's View.batchsize with a symbolic batch. With setNumInputDims(n) on a longer
    input the leading dims are the batch, folded into one; else a -1 size absorbs the
    batch (View(-1, 4) on Bx5x4 gives (B*5)x4, and View(-1, 5, 4) folds it back). Sizes
    without -1 apply per sample; where they do not match it, Torch guessed a batch size
    from element counts and graphc refuses."""
    (x,) = shapes
    sizes, what = tuple(a["sizes"]), f"View({', '.join(map(str, a['sizes']))})"
    nid = a.get("numInputDims")
    if nid is not None and len(x) > nid:
        lead, per = x[: len(x) - nid], x[len(x) - nid:]
        if any(is_symbolic(d) for d in per):
            raise ShapeError(f"{what} with setNumInputDims({nid}): the batch dim of the input "
                             f"{shape_text(x)} is not among its leading dims, which Torch takes as the batch")
        out = _resolve(sizes, numel(per), what)
        if numel(out) != numel(per):
            raise ShapeError(f"{what} with setNumInputDims({nid}): the input {shape_text(x)} has "
                             f"{shape_text(per)} = {numel(per)} elements per sample, but the view holds "
                             f"{numel(out)}")
        if any(is_symbolic(d) for d in lead):
            return (batch_times(_symbolic_count(lead, what)),) + out
        return (numel(lead),) + out
    if any(is_symbolic(d) for d in x):
        n = _symbolic_count(x, what)
        if -1 in sizes:  # the -1 takes the batch with whatever else is left
            k = _resolve(sizes, n, what)[sizes.index(-1)]
            return tuple(batch_times(k) if d == -1 else d for d in sizes)
        if not batched(x):
            raise ShapeError(f"{what}: the input {shape_text(x)} has its batch dim inside; say where "
                             f"the batch goes with a -1 size")
        if numel(x[1:]) != numel(sizes):
            raise ShapeError(f"{what}: the input has {shape_text(x[1:])} = {numel(x[1:])} elements per "
                             f"sample, but the view holds {numel(sizes)}")
        return (x[0],) + sizes
    n = numel(x)
    if -1 in sizes:
        return _resolve(sizes, n, what)
    want = numel(sizes)
    if n % want:
        raise ShapeError(f"{what}: the input {shape_text(x)} has {n} elements, not a multiple of {want}")
    bsz = n // want
    return tuple(sizes) if bsz == 1 else (bsz,) + tuple(sizes)


def _view_guess(a, shapes):
    """The warning for Torch's batch-size guess: sizes without -1 on an input with no B that
    holds a multiple of them (the tutorial's LeNet at View(400) on 16x10x10 gives 4x400)."""
    (x,) = shapes
    sizes = a["sizes"]
    nid = a.get("numInputDims")
    if any(is_symbolic(d) for d in x) or -1 in sizes or (nid is not None and len(x) > nid):
        return None
    n, want = numel(x), numel(sizes)
    if n % want or n == want:
        return None
    return (f"Torch's batch-size guess: the input {shape_text(x)} has {n} elements and the view holds "
            f"{want}, so the first dimension becomes a batch of {n // want} (output "
            f"{n // want}x{shape_text(sizes)}); if the model's input has a batch dimension, give its "
            f"shape with a leading B (e.g. --shape input1=Bx1x32x32) so the sizes apply per "
            f"sample, or use View(-1, ...) to say the batch is meant")


def _set_num_input_dims(a, n):
    a["numInputDims"] = int(n)


def _view_check(a):
    if not a["sizes"]:
        return "View needs at least one size"
    if any(d == 0 or d < -1 for d in a["sizes"]):
        return "View sizes must be positive (or a single -1)"


# the batch dim's size from the array reshaped: x.reshape((x.shape[0] * 5, 4)) for (B*5)x4
_RESHAPE_FWD = "{{y}} = {{x}}.reshape({{ sized(out_shape, x, in_shapes[0]) }})"
_RESHAPE_BWD = {"x": "{{gy}}.reshape({{ sized(in_shapes[0], gy, out_shape) }})"}

defop(
    name="View", signature="sizes:int*", shape=_view_shape, check=_view_check,
    methods={"setNumInputDims": _set_num_input_dims}, warn=_view_guess,
    forward=_RESHAPE_FWD, backward=_RESHAPE_BWD, view=True,
    doc="Reshapes (a view). One size may be -1; on a batched input it absorbs the batch, "
        "so View(-1, 4) on Bx5x4 gives (B*5)x4 and View(-1, 5, 4) gives Bx5x4 back. "
        "setNumInputDims(n) makes the dims before the last n the batch (folded into one).",
    cuda=CudaRule("index", index="view"),
    torch_diff="Sizes without -1 on a batched input apply per sample and a mismatch is an "
               "error; Torch guessed the batch size from element counts.",
)


def _reshape_shape(a, shapes):
    """Torch's Reshape: no batch when batchMode is false, or when it is nil and the input
    holds exactly the sizes' elements with a first dim other than 1; else the first dim is
    kept as the batch. A batched input (B or B*k first) can only be the latter."""
    (x,) = shapes
    sizes, mode = tuple(a["sizes"]), a["batchMode"]
    what = f"Reshape({', '.join(map(str, sizes))})"
    if any(is_symbolic(d) for d in x):
        if not batched(x):
            raise ShapeError(f"{what}: the batch dim of the input {shape_text(x)} must come first")
        if mode is False:
            raise ShapeError(f"{what}: batchMode=false cannot reshape across the batch dim {x[0]}")
        if numel(x[1:]) != numel(sizes):
            raise ShapeError(f"{what}: the input has {shape_text(x[1:])} = {numel(x[1:])} elements per "
                             f"sample, but the shape holds {numel(sizes)}")
        return (x[0],) + sizes
    if mode is False or (mode is None and numel(x) == numel(sizes) and x[0] != 1):
        if numel(x) != numel(sizes):
            raise ShapeError(f"{what}: the input {shape_text(x)} has {numel(x)} elements, not {numel(sizes)}")
        return sizes
    if numel(x[1:]) != numel(sizes):
        raise ShapeError(f"{what}: the input {shape_text(x)} does not hold {numel(sizes)} elements per sample")
    return (x[0],) + sizes


def _reshape_check(a):
    if not a["sizes"] or any(d <= 0 for d in a["sizes"]):
        return "Reshape sizes must be positive numbers"


defop(
    name="Reshape", signature="sizes:int*, batchMode:bool=nil", shape=_reshape_shape,
    check=_reshape_check, forward=_RESHAPE_FWD, backward=_RESHAPE_BWD, view=True,
    doc="Reshapes; the leading dim is kept as a batch dim as Torch decides (batchMode: "
        "true keeps it, false never, nil when the input holds more than the sizes or its "
        "first dim is 1). A batched input (B or B*k first) keeps its batch.",
    cuda=CudaRule("index", index="view"),
    torch_diff="A batched input keeps its first dim as the batch and sizes that do not match a "
               "sample are an error; Torch drops the batch when the whole input happens to "
               "hold the sizes' elements.",
)


def _narrow_derive(a, shapes):
    x = shapes[0]
    axis = torch_dim(a["dimension"], len(x))
    size = x[axis]
    if is_symbolic(size):
        raise ShapeError(f"cannot narrow the batch dimension {size}")
    offset, length = a["offset"], a["length"]
    if offset < 1:
        raise ShapeError(f"offset {offset} must be at least 1 (Torch offsets are 1-based)")
    if length < 0:
        length = size - offset + length + 2
    if length < 1 or offset + length - 1 > size:
        raise ShapeError(f"elements {offset}..{offset + length - 1} are out of range for "
                         f"dimension {a['dimension']} of size {size} (input {shape_text(x)})")
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
    backward_stmt="{{g.x}} = np.zeros({{xshape(0)}}, {{gy}}.dtype)\n{{g.x}}" + _SLICE + " = {{gy}}",
    doc="Slice `length` elements of `dimension` from 1-based `offset` (a view).",
    cuda=CudaRule("index", index="narrow"),
)


def _select_derive(a, shapes):
    x = shapes[0]
    axis = torch_dim(a["dimension"], len(x))
    size = x[axis]
    if is_symbolic(size):
        raise ShapeError(f"cannot select along the batch dimension {size}")
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
    backward_stmt="{{g.x}} = np.zeros({{xshape(0)}}, {{gy}}.dtype)\n{{g.x}}" + _PICK + " = {{gy}}",
    doc="Picks index `index` (1-based, negative from the end) of `dimension`; drops that dim.",
    cuda=CudaRule("index", index="select"),
)
