"""Located compile-time warnings (graphc/errors.py `warn`): collected once per place and text,
issued through Python's `warnings` by the Python API, printed to stderr by the CLI."""
import warnings

import pytest

from graphc.errors import GraphcWarning, Loc, collect_warnings, warn


def test_warn_outside_a_compile_is_issued_at_once():
    with pytest.warns(GraphcWarning) as got:
        warn("something odd", Loc("m.lua", 3, 7))
    assert [str(w.message) for w in got] == ["m.lua:3:7: warning: something odd"]
    # attributed to the caller outside graphc: this file, not graphc/errors.py
    assert got[0].filename == __file__


def test_collect_records_each_place_and_text_once_then_issues():
    here, there = Loc("m.lua", 3, 7), Loc("m.lua", 4, 1)
    with pytest.warns(GraphcWarning) as got:
        with collect_warnings() as found:
            warn("a", here)
            warn("a", here)  # a shape rule run twice for one node
            warn("b", here)
            warn("a", there)
            assert len(got) == 0  # nothing issued while collecting
        assert [(w.loc, w.message) for w in found] == [(here, "a"), (here, "b"), (there, "a")]
    assert [w.message.loc for w in got] == [here, here, there]


def test_collect_without_issue_leaves_showing_to_the_caller():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any issued warning would raise
        with collect_warnings(issue=False) as outer:
            with collect_warnings() as inner:  # compile_spec's own: goes to the outer one
                warn("x", Loc("m.lua", 1, 1))
            warn("x", Loc("m.lua", 1, 1))
    assert len(inner) == 1 and len(outer) == 1


def test_warnings_are_issued_when_an_error_ends_the_compile():
    with pytest.warns(GraphcWarning, match="before the error"):
        with pytest.raises(ValueError):
            with collect_warnings():
                warn("before the error", Loc("m.lua", 1, 1))
                raise ValueError("the compile failed")


def test_format_with_the_source_line():
    w = GraphcWarning("look here", Loc("m.lua", 2, 3))
    assert w.format({"m.lua": "a\nb = c\n"}) == "m.lua:2:3: warning: look here\n  b = c\n    ^"
    assert GraphcWarning("no place").format() == "graphc: warning: no place"


# ---- SoftMax, LogSoftMax, SoftMin reducing over the batch dimension B -----------------------

import numpy as np  # noqa: E402
import torch  # noqa: E402

from conftest import build  # noqa: E402
from graphc import cli  # noqa: E402
from graphc.compiler import Options, compile_spec  # noqa: E402


def one_node(body):
    return f"local x = nn.Identity()()\nlocal y = {body}\nreturn nn.gModule({{x}}, {{y}})\n"


def compile_warnings(spec, shape):
    """The GraphcWarnings compiling `spec` (as spec.lua) issues, and Result.warnings."""
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        res = compile_spec("spec.lua", Options(shapes={"input1": shape}), text=spec)
    issued = [w.message for w in got if issubclass(w.category, GraphcWarning)]
    assert [str(w) for w in issued] == [str(w) for w in res.warnings]
    return issued


@pytest.mark.parametrize("op, constant", [("SoftMax", "ones"), ("LogSoftMax", "zeros"),
                                          ("SoftMin", "ones")])
def test_softmax_over_batch_warns_at_the_node(op, constant):
    spec = one_node(f"nn.{op}()(nn.Tanh()(x))")
    (w,) = compile_warnings(spec, ("B", 3, 4))
    assert w.loc == Loc("spec.lua", 2, 11)
    text = w.format({"spec.lua": spec})
    assert text.startswith(f"spec.lua:2:11: warning: nn.{op}: reduces over dimension 1 of its "
                           "Bx3x4 input, the batch dimension B (Torch7 reduces a 3-D input over "
                           f"dim 1): it mixes the samples of a batch, and called without B (a "
                           f"batch of one) it gives all {constant}."), text
    assert "View to 2-D first: nn.View(12)" in text and "nn.View(3, 4, 1)" in text
    assert text.endswith(f"\n  local y = nn.{op}()(nn.Tanh()(x))\n            ^")
    (w,) = compile_warnings(one_node(f"nn.{op}()(x)"), ("B",))  # 1-D: over all elements
    assert "dimension 1 of its B input" in str(w) and "a BxN input" in str(w)


@pytest.mark.parametrize("shape", [("B", 5), ("B", 3, 4, 5), (3, 4, 5), (4, 5), (7,), ("B", 1, 4)])
def test_softmax_within_samples_does_not_warn(shape):
    # 2-D and 4-D batches reduce over a sample's dim; without B there is no batch to mix
    for op in ("SoftMax", "LogSoftMax", "SoftMin"):
        if shape == ("B", 1, 4):
            continue  # Bx1x4 is 3-D: over B too (checked below)
        assert compile_warnings(one_node(f"nn.{op}()(x)"), shape) == []
    assert len(compile_warnings(one_node("nn.SoftMax()(x)"), ("B", 1, 4))) == 1


def test_softmax_over_batch_keeps_torch_rule_with_and_without_b(tmp_path, rng):
    # the compiled rule stays: over B; a 3x4 call (a batch of one) is all ones, not rows
    with pytest.warns(GraphcWarning):
        m = build(one_node("nn.SoftMax()(x)"), tmp_path, shapes={"input1": ("B", 3, 4)}).Model()
    x = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(m.forward(x), torch.softmax(torch.tensor(x), 0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.forward(x[0]), np.ones((3, 4)))


@pytest.mark.parametrize("body, dim", [
    ("nn.View(3, 4)(nn.SoftMax()(nn.View(12)(x)))", None),  # each sample's 12 values
    ("nn.View(3, 4)(nn.SoftMax()(nn.View(3, 4, 1)(x)))", 1),  # over the 3 of each column
    ("nn.Transpose({2, 3})(nn.View(4, 3)(nn.SoftMax()(nn.View(4, 3, 1)(nn.Transpose({2, 3})(x)))))",
     2),  # over the 4 of each row
])
def test_the_fixes_the_warning_names_normalize_within_each_sample(body, dim, tmp_path, rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error", GraphcWarning)
        m = build(one_node(body), tmp_path, shapes={"input1": ("B", 3, 4)}).Model()
    x = rng.standard_normal((2, 3, 4))
    t = torch.tensor(x)
    want = torch.softmax(t.reshape(2, 12), 1).reshape(2, 3, 4) if dim is None else torch.softmax(t, dim)
    np.testing.assert_allclose(m.forward(x), want.numpy(), rtol=1e-12)


def test_cli_prints_the_warning_located_to_stderr(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    spec = one_node("nn.LogSoftMax()(x)")
    (tmp_path / "m.lua").write_text(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GraphcWarning)  # the CLI prints; it issues nothing
        assert cli.main(["check", "m.lua", "--shape", "input1=Bx3x4"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("m.lua:2:11: warning: nn.LogSoftMax: reduces over dimension 1 of its "
                          "Bx3x4 input, the batch dimension B"), err
    assert err.count("warning:") == 1 and "\n  local y = nn.LogSoftMax()(x)\n            ^\n" in err
    # a warning before an error is still printed, first
    (tmp_path / "bad.lua").write_text(
        "local x = nn.Identity()()\nlocal y = nn.SoftMax()(x)\n"
        "local z = nn.Linear(5, 2)(nn.View(12)(y))\nreturn nn.gModule({x}, {z})\n")
    assert cli.main(["check", "bad.lua", "--shape", "input1=Bx3x4"]) == 1
    err = capsys.readouterr().err
    assert err.index("bad.lua:2:11: warning: nn.SoftMax") < err.index("bad.lua:3:") , err
    assert "error:" in err
