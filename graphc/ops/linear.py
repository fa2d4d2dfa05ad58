"""Identity and Linear."""
import math

from .registry import ParamSpec, ShapeError, defop, uniform, B


def _no_bias(a):
    a["bias"] = False


def _linear_shape(a, shapes):
    (x,) = shapes
    if len(x) not in (1, 2) or x[-1] != a["inputSize"]:
        raise ShapeError(f"Linear({a['inputSize']} -> {a['outputSize']}) expects input of shape "
                         f"{a['inputSize']} or Nx{a['inputSize']}, got {'x'.join(map(str, x))}")
    return x[:-1] + (a["outputSize"],)


defop(
    name="Identity", signature="", inputs=("x",), passthrough=True, shape=lambda a, s: s[0],
    forward="", doc="Passes its input (a tensor or a table) through unchanged.",
)

defop(
    name="Linear", signature="inputSize:int, outputSize:int, bias:bool=true",
    params=(
        ParamSpec("weight", lambda a: (a["outputSize"], a["inputSize"]),
                  uniform(lambda a: 1 / math.sqrt(a["inputSize"]))),
        ParamSpec("bias", lambda a: (a["outputSize"],),
                  uniform(lambda a: 1 / math.sqrt(a["inputSize"])), present=lambda a: a["bias"]),
    ),
    methods={"noBias": _no_bias},
    shape=_linear_shape,
    input_hint=lambda a, slot, shapes: (B, a["inputSize"]),
    forward="{{y}} = {{x}} @ {{weight}}.T{% if bias %} + {{bias}}{% endif %}",
    backward={
        "x": "{{gy}} @ {{weight}}",
        "weight": "{% if rank == 1 %}np.outer({{gy}}, {{x}}){% else %}{{gy}}.T @ {{x}}{% endif %}",
        "bias": "{% if rank == 1 %}{{gy}}{% else %}{{gy}}.sum(0){% endif %}",
    },
    flops=lambda a, ins, out: 2 * math.prod(ins[0]) * a["outputSize"],
    doc="y = x W^T + b. Input N or BxN.",
)
