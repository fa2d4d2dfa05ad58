"""The passes on their own: purity, validation, autodiff structure."""
import pytest

from graphc.compiler import Options, build_graph
from graphc.ir.dump import dump
from graphc.ir.graph import Value
from graphc.passes.autodiff import autodiff
from graphc.ops.shape_rules import infer_shapes
from graphc.passes.validate import InvalidIR, validate

SPEC = """
x = nn.Identity()()
l = nn.Linear(3, 3)
a = l(x)
b = nn.Tanh()(a)
y = nn.CAddTable()({l(b), a, nn.Sigmoid()(a)})
m = nn.gModule({x}, {y, b})
"""


def graph():
    g, _ = build_graph("spec.lua", Options(), SPEC)
    return g


def test_passes_are_pure():
    g = graph()
    before = dump(g)
    shaped = infer_shapes(g, {"input1": (4, 3)})  # re-specialize to a fixed batch
    assert dump(g) == before and g.inputs[0].shape == ("B", 3)
    assert shaped.outputs[0].shape == (4, 3) and g.outputs[0].shape == ("B", 3)
    d = autodiff(shaped)
    assert not shaped.grad_nodes and d.grad_nodes


def test_fan_out_gradients_are_summed_and_shared_params_accumulate():
    g = autodiff(infer_shapes(graph(), {}))
    adds = [n for n in g.grad_nodes if n.op == "add"]
    # `a` feeds Tanh, CAddTable and Sigmoid: a sum of 3; `b` is an output and feeds l: 2
    sizes = sorted(len(n.inputs) for n in adds)
    assert sizes == [2, 3]
    # the shared Linear is one set of parameters, accumulated from both uses
    assert len(g.params) == 2
    assert sorted(i for i, _ in g.param_grads) == [0, 0, 1, 1]


def test_no_gradient_work_where_none_is_needed():
    # An integer input (indices) takes no gradient: its consumer computes only the
    # parameter gradients, and backward returns None for it.
    g = infer_shapes(graph(), {})
    x = g.inputs[0]
    x.dtype = "index"
    d = autodiff(g)
    first = [n for n in d.grad_nodes if n.op == "grad" and n.attrs["fwd"] is d.nodes[0]]
    assert [n.attrs["needs"] for n in first] == [(False, True, True)]
    assert d.input_grads == [None]
    # and the branch that only led to the forward output b still gets its gradient
    assert len([n for n in d.grad_nodes if n.op == "grad"]) == len(d.nodes)


def test_validate_rejects_use_before_definition():
    g = infer_shapes(graph(), {})
    g.nodes[0].inputs[0] = Value("tmp", shape=(3,), name="ghost")
    with pytest.raises(InvalidIR, match="before it is defined"):
        validate(g)


def _reads(gnode):
    return gnode.inputs[len(gnode.inputs) - gnode.attrs["reads"]:]


def test_grad_nodes_list_the_forward_values_their_backward_reads():
    g = autodiff(graph())
    by_op = {}
    for n in g.grad_nodes:
        if n.op == "grad":
            by_op.setdefault(n.attrs["fwd"].op, []).append(n)
    for n in by_op["Linear"]:  # x @ W backward: the input (weight grad) and the weight (input grad)
        fwd = n.attrs["fwd"]
        assert _reads(n) == [fwd.inputs[0], fwd.inputs[1]]
        assert n.inputs[: len(n.inputs) - n.attrs["reads"]] == [v for v in n.inputs if v not in _reads(n)]
    (tanh,) = by_op["Tanh"]  # 1 - y^2: the output only
    assert _reads(tanh) == [tanh.attrs["fwd"].outputs[0]]
    (add,) = by_op["CAddTable"]  # the gradient passes through: nothing
    assert _reads(add) == []
    assert "; reads %" in dump(g)


def test_convolution_backward_does_not_keep_its_input_for_its_shape():
    g, _ = build_graph("spec.lua", Options(shapes={"input1": ("B", 1, 8, 8)}), """
        x = nn.Identity()()
        h = nn.SpatialMaxPooling(2, 2)(nn.SpatialConvolution(1, 2, 3, 3)(x))
        y = nn.SpatialConvolution(2, 2, 3, 3)(h)
        return nn.gModule({x}, {y})""")
    g = autodiff(g)
    conv2 = next(n for n in g.grad_nodes if n.attrs["fwd"].op == "SpatialConvolution"
                 and n.attrs["fwd"].inputs[0] is g.nodes[1].outputs[0])
    assert g.nodes[1].outputs[0] not in _reads(conv2)  # the pooling output: not kept
    assert g.nodes[2].outputs[1] in _reads(conv2)  # its im2col columns are


def test_validate_checks_grad_node_reads():
    g = autodiff(graph())
    n = next(n for n in g.grad_nodes if n.op == "grad")
    n.attrs["reads"] += 1  # claims a given gradient is a forward value
    with pytest.raises(InvalidIR, match="values of its forward node"):
        validate(g)


def test_a_backward_template_reading_an_undeclared_value_fails_to_compile(monkeypatch):
    import dataclasses

    from graphc.compiler import compile_spec
    from graphc.ops import REGISTRY
    monkeypatch.setitem(REGISTRY, "Tanh", dataclasses.replace(REGISTRY["Tanh"], reads=()))
    with pytest.raises(AssertionError, match="nn.Tanh names .* declare it in OpDef.reads"):
        compile_spec("spec.lua", Options(), SPEC)
