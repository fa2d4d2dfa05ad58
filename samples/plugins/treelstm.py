"""treelstm's custom module, ported to Python for graphc (graphc compile --plugin).

nn.CRowAddTable (stanfordnlp/treelstm, util/CRowAddTable.lua): input {M, v}, an N x D matrix
and a D vector; the output adds v to every row of M. Its gradient is the output gradient
for M, and its sum over the rows for v.
"""
from graphc.plugin import Module, ShapeError


class CRowAddTable(Module):
    """Adds a row vector (input 2) to every row of a matrix (input 1)."""
    table_input = True

    def shape(attrs, in_shapes):
        if len(in_shapes) != 2:
            raise ShapeError(f"expects a table {{matrix, vector}}, got {len(in_shapes)} inputs")
        m, v = in_shapes
        if len(m) != len(v) + 1 or m[-1] != v[-1] or m[:-2] != v[:-1]:
            raise ShapeError(f"expects an NxD matrix and a D vector, got "
                             f"{'x'.join(map(str, m))} and {'x'.join(map(str, v))}")
        return m

    def forward(attrs, inputs, params):
        m, v = inputs
        return m + v[..., None, :]

    def backward(attrs, inputs, params, output, grad_output):
        return [grad_output, grad_output.sum(-2)]
