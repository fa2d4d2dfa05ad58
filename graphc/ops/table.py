"""Ops over a table of tensors: CAddTable, CMulTable, JoinTable."""
from .registry import ShapeError, batched, defop, numel, torch_dim, B


def _same_numel(a, shapes):
    # Torch needs equal element counts, not equal shapes; the result has input 1's shape.
    if len(shapes) < 1:
        raise ShapeError("expects a table of at least one tensor")
    first = shapes[0]
    for i, s in enumerate(shapes[1:], 2):
        if batched(s) != batched(first) or numel(s) != numel(first):
            raise ShapeError(f"input {i} has shape {'x'.join(map(str, s))} but input 1 has "
                             f"{'x'.join(map(str, first))}: element counts must match")
    return first


def _sibling_hint(a, slot, shapes):
    known = [s for s in shapes if s is not None]
    return known[0] if known else None


# `as1(v, i)` reshapes input i to input 1's shape when they differ (a view, no copy).
defop(
    name="CAddTable", signature="inplace:bool=false", inputs=("xs",), shape=_same_numel,
    input_hint=_sibling_hint,
    forward="{{y}} = {% for x in xs %}{{ as1(x, loop.index0) }}{{ ' + ' if not loop.last }}{% endfor %}",
    backward={"xs": "{{ like(gy, i) }}"},
    doc="Sum of its inputs.", torch_diff="`inplace` is accepted and ignored.",
)

defop(
    name="CMulTable", signature="", inputs=("xs",), shape=_same_numel,
    input_hint=_sibling_hint,
    forward="{{y}} = {% for x in xs %}{{ as1(x, loop.index0) }}{{ ' * ' if not loop.last }}{% endfor %}",
    backward={"xs": "{% set p %}{{gy}}{% for x in xs %}{% if loop.index0 != i %} * {{ as1(x, loop.index0) }}"
                    "{% endif %}{% endfor %}{% endset %}{{ like(p, i) }}"},
    doc="Elementwise product of its inputs.",
)


def _join_derive(a, shapes):
    rank = len(shapes[0])
    dim = a["dimension"]
    if a["nInputDims"] is not None and rank == a["nInputDims"] + 1 and dim > 0:
        dim += 1
    axis = torch_dim(dim, rank)
    for i, s in enumerate(shapes[1:], 2):
        if len(s) != rank or any(p != q for k, (p, q) in enumerate(zip(s, shapes[0])) if k != axis):
            raise ShapeError(f"input {i} has shape {'x'.join(map(str, s))}, which cannot be "
                             f"joined with {'x'.join(map(str, shapes[0]))} along dimension {dim}")
    if any(s[axis] == B for s in shapes):
        raise ShapeError("cannot join along the batch dimension B")
    offsets = [0]
    for s in shapes:
        offsets.append(offsets[-1] + s[axis])
    return {"axis": axis, "offsets": offsets}


def _join_shape(a, shapes):
    d = _join_derive(a, shapes)
    s = list(shapes[0])
    s[d["axis"]] = d["offsets"][-1]
    return tuple(s)


defop(
    name="JoinTable", signature="dimension:int, nInputDims:int=nil", inputs=("xs",),
    shape=_join_shape, derive=_join_derive,
    forward="{{y}} = np.concatenate([{{ xs|join(', ') }}], {{d.axis}})",
    backward={"xs": "{{gy}}[{{ ':, ' * d.axis }}{{d.offsets[i]}}:{{d.offsets[i + 1]}}]"},
    doc="Concatenates its inputs along `dimension` (1-based; shifted by one for batch "
        "input when nInputDims is given).",
)
