"""MemN2N's custom module (facebookarchive/MemNN, MemN2N-lang-model/LinearNB.lua), ported to
Python for graphc: nn.LinearNB, a Linear without a bias, initialised as Torch's Linear
(uniform in +-1/sqrt(inputSize)). Its Lua file derives from nn.Module with its own math, so
graphc cannot compile it from the Lua.

    graphc compile model.lua --plugin samples/plugins/memnn.py --prelude setup.lua ...
"""
from graphc.plugin import B, Module, Param, ShapeError


class LinearNB(Module):
    """y = x W^T (no bias). Input N or BxN."""
    signature = "inputSize:int, outputSize:int"
    params = (Param("weight", lambda a: (a["outputSize"], a["inputSize"]),
                    lambda a: ("uniform", a["inputSize"] ** -0.5)),)

    def input_hint(attrs, slot, in_shapes):
        return (B, attrs["inputSize"])

    def shape(attrs, in_shapes):
        (x,) = in_shapes
        if not x or x[-1] != attrs["inputSize"]:
            raise ShapeError(f"LinearNB({attrs['inputSize']} -> {attrs['outputSize']}) expects "
                             f"rows of {attrs['inputSize']}, got {'x'.join(map(str, x))}")
        return tuple(x[:-1]) + (attrs["outputSize"],)

    def forward(attrs, inputs, params):
        return inputs[0] @ params[0].T

    def backward(attrs, inputs, params, output, grad_output):
        (x,), (weight,) = inputs, params
        rows = grad_output.reshape(-1, grad_output.shape[-1])
        return [grad_output @ weight, rows.T @ x.reshape(-1, x.shape[-1])]
