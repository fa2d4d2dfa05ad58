"""The Python front door (graphc.compile_file, graphc.load) and what a newcomer meets first:
options in the CLI's forms, the CLI's messages for bad ones, names of inputs and outputs,
print(model), class-label conventions, dtype errors, Sequence(every_step=True)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc
from graphc import cli
from graphc_runtime import ClassNLLCriterion, CrossEntropyCriterion, MultiMarginCriterion

from conftest import central_differences

ROOT = Path(__file__).resolve().parent.parent
LSTM = str(ROOT / "samples" / "lstm.lua")
LENET = str(ROOT / "samples" / "lenet.lua")


# ---- options in every form ---------------------------------------------------------------

@pytest.mark.parametrize("shapes", [{"input1": "Bx1x32x32"}, {"input1": ("B", 1, 32, 32)},
                                    ["input1=Bx1x32x32"], "input1=Bx1x32x32"])
def test_shapes_in_the_cli_forms_and_as_tuples(shapes):
    mod = graphc.compile_file(LENET, shapes=shapes)
    assert mod.INPUTS == (("input1", ("B", 1, 32, 32), "float"),)


@pytest.mark.parametrize("state", [["output1=input2", "output2=input3"],
                                   [("output1", "input2"), ("output2", "input3")],
                                   {"output1": "input2", "output2": "input3"},
                                   ["next_c=prev_c", "next_h=prev_h"]])
def test_state_as_strings_pairs_dicts_and_lua_names(state):
    mod = graphc.compile_file(LSTM, unroll="T", state=state, dtype="float64")
    assert mod.Sequence.STATE == ((0, 1), (1, 2))


@pytest.mark.parametrize("no_grad", ["input1", ["input1"], "input", ("input",)])
def test_no_grad_as_a_name_or_a_list(no_grad):
    m = graphc.compile_file(LSTM, no_grad=no_grad, dtype="float64").Model()
    xs = [np.ones((2, n)) for n in (3, 2, 2)]
    out = m.forward(*xs)
    grads = m.backward(xs, [np.ones_like(o) for o in out])
    assert grads[0] is None and grads[1] is not None


def test_no_grad_keeps_the_input_name_with_a_fixed_unroll():
    """--unroll 3 makes input1 a sequence input (input1_seq); its own name still works."""
    for name in ("input1", "input"):
        m = graphc.compile_file(LSTM, unroll=3, state=["next_c=prev_c", "next_h=prev_h"],
                                no_grad=name, dtype="float64").Model()
        xs = [np.ones((3, 2, 3)), np.ones((2, 2)), np.ones((2, 2))]
        out = m.forward(*xs)
        assert m.backward(xs, [np.ones_like(o) for o in out])[0] is None


def test_defines_as_a_dict_or_strings(tmp_path):
    spec = tmp_path / "d.lua"
    spec.write_text("require 'nngraph'\nn = 3\nx = nn.Identity()()\n"
                    "return nn.gModule({x}, {nn.Linear(n, 2)(x)})\n")
    for defines in ({"n": 5}, {"n": "5"}, ["n=5"], "n=5"):
        assert graphc.compile_file(spec, defines=defines).INPUTS[0][1] == ("B", 5)


def test_unknown_keyword_names_the_valid_ones():
    with pytest.raises(TypeError) as e:
        graphc.compile_file(LENET, shape={"input1": "Bx1x32x32"})
    assert "unknown option 'shape' (did you mean 'shapes'?)" in str(e.value)
    assert "options: entry, defines, shapes, dtype" in str(e.value)
    with pytest.raises(TypeError, match="unknown option 'nograd'"):
        graphc.load(LSTM, nograd="input1")


def _cli_message(argv, capsys):
    assert cli.main(argv) == 2
    return capsys.readouterr().err.strip().removeprefix("graphc: error: ")


@pytest.mark.parametrize("kw,argv", [
    (dict(shapes={"input1": "Bxq"}), ["--shape", "input1=Bxq"]),
    (dict(shapes=["input1"]), ["--shape", "input1"]),
    (dict(state=["output1"], unroll="T"), ["--state", "output1", "--unroll", "T"]),
    (dict(state=["output1=input2"]), ["--state", "output1=input2"]),
    (dict(unroll=0, state=["output1=input2"]), ["--unroll", "0", "--state", "output1=input2"]),
    (dict(no_grad="input9"), ["--no-grad", "input9"]),
    (dict(no_grad="prev_hh"), ["--no-grad", "prev_hh"]),
    (dict(unroll="T", state=["next_h=prev_hh"]), ["--unroll", "T", "--state", "next_h=prev_hh"]),
    (dict(shapes={"inptu1": "Bx3"}), ["--shape", "inptu1=Bx3"]),
    (dict(defines=["1x=2"]), ["-D", "1x=2"]),
])
def test_a_bad_value_gets_the_cli_message(kw, argv, capsys):
    with pytest.raises(ValueError) as e:
        graphc.compile_file(LSTM, **kw)
    assert isinstance(e.value, graphc.OptionError)
    assert str(e.value) == _cli_message(["compile", LSTM] + argv, capsys)


def test_option_errors_say_the_names_and_suggest_one(capsys):
    msg = _cli_message(["compile", LSTM, "--unroll", "T", "--state", "next_h=prev_hh"], capsys)
    assert msg == ("--state next_h=prev_hh: the model has no input 'prev_hh' (inputs: "
                   "input1 (input), input2 (prev_c), input3 (prev_h)) (did you mean 'prev_h'?)")


def test_check_lists_the_lua_names(capsys):
    assert cli.main(["check", LSTM]) == 0
    out = capsys.readouterr().out
    assert "inputs:  input1 (input): Bx3, input2 (prev_c): Bx2, input3 (prev_h): Bx2" in out
    assert "outputs: output1 (next_c): Bx2, output2 (next_h): Bx2" in out


def test_options_are_documented():
    for fn in (graphc.compile_file, graphc.load):
        for name in ("entry", "defines", "shapes", "dtype", "target", "unroll", "state",
                     "optimize", "no_grad", "prelude"):
            assert f"    {name}: " in fn.__doc__, (fn.__name__, name)


def test_the_samples_use_only_the_public_api():
    for script in (ROOT / "samples").glob("*.py"):
        text = script.read_text()
        assert "from graphc." not in text and "import graphc." not in text, script


# ---- messages a newcomer meets -----------------------------------------------------------

def test_misspelt_module_suggests_the_case_insensitive_match():
    from conftest import compile_error
    _, text = compile_error("require 'nn'\nx = nn.Identity()()\ny = nn.linear(3, 2)(x)\n"
                            "m = nn.gModule({x}, {y})\n")
    assert "unknown module nn.linear (did you mean 'Linear'?)" in text


def test_a_wrong_linear_is_reported_at_the_linear():
    """input2 has no --shape: nn.Linear(3, 2) reads it as Bx3, the CAddTable wants Bx2. The
    error is at the Linear that decided the shape, with a note at the CAddTable."""
    from conftest import compile_error
    spec = ("require 'nngraph'\nx1 = nn.Identity()(); x2 = nn.Identity()()\n"
            "a = nn.Linear(3, 2)(x2)\n"
            "h = nn.Tanh()(nn.CAddTable()({nn.Linear(3, 2)(x1), x2}))\n"
            "m = nn.gModule({x1, x2}, {h, a})\n")
    err, text = compile_error(spec)
    assert (err.loc.line, err.loc.col) == (3, 5)
    assert ("input 'input2' has no --shape, and the modules reading it disagree: nn.Linear "
            "here reads it as Bx3, but nn.CAddTable needs Bx2") in text
    assert "spec.lua:4:15: note: nn.CAddTable reads 'input2' here" in text


def test_float64_given_to_a_float32_model_says_how_to_fix_it():
    m = graphc.compile_file(LSTM).Model()
    with pytest.raises(ValueError) as e:
        m.forward(np.ones((2, 3)), np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))
    assert ("input 'input1': expected dtype float32, got float64 (convert it with "
            ".astype(np.float32), or make the model with Model(dtype=\"float64\"))") == str(e.value)


def test_print_model_is_a_torch_style_summary():
    m = graphc.compile_file(LENET, shapes={"input1": "Bx1x32x32"}).Model()
    text = repr(m)
    lines = text.splitlines()
    assert lines[0].endswith("Model (float32, training mode) {") and lines[-1] == "}"
    assert lines[1] == "  inputs:  input1: Bx1x32x32"
    assert "(1)  lenet.lua:7   nn.SpatialConvolution  -> Bx6x28x28" in text and " 156" in lines[2]
    assert "(13) lenet.lua:19  nn.LogSoftMax" in text
    assert "  parameters: 61,706 in 10 arrays" in text
    counts = [int(line.split()[-1].replace(",", "")) for line in lines[2:-3]
              if line.split()[-1][0].isdigit()]
    assert sum(counts) == m.getParameters()[0].size


# ---- class labels: 0-based, or Torch's 1-based with one_based=True -------------------------

@pytest.mark.parametrize("make", [ClassNLLCriterion, CrossEntropyCriterion, MultiMarginCriterion])
def test_one_based_labels_give_the_same_loss_and_gradient(make):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    y = rng.integers(0, 4, 5)
    zero, one = make(), make(one_based=True)
    assert zero.forward(x, y) == one.forward(x, y + 1)
    np.testing.assert_array_equal(zero.backward(x, y), one.backward(x, y + 1))


def test_an_out_of_range_label_states_the_rule():
    x = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"target 4 \(at index 1\) is out of range: valid class "
                       r"indices are 0\.\.3 \(0-based; pass one_based=True for Torch's 1-based labels\)"):
        ClassNLLCriterion().forward(x, np.array([0, 4]))
    with pytest.raises(ValueError, match=r"target 0 \(at index 0\) is out of range: valid class "
                       r"indices are 1\.\.4 \(1-based; pass one_based=False for 0-based labels\)"):
        ClassNLLCriterion(one_based=True).forward(x, np.array([0, 4]))


# ---- Sequence(every_step=True): every step's state, and its gradient -----------------------

def test_sequence_every_step_matches_the_step_model_and_finite_differences():
    mod = graphc.compile_file(LSTM, unroll="T", state=["next_c=prev_c", "next_h=prev_h"],
                              dtype="float64")
    seq = mod.Sequence(seed=1, every_step=True)
    rng = np.random.default_rng(0)
    T, B = 4, 2
    xs, c0, h0 = rng.standard_normal((T, B, 3)), rng.standard_normal((B, 2)), rng.standard_normal((B, 2))
    cs, hs = seq.forward(xs, c0, h0)
    assert cs.shape == hs.shape == (T, B, 2)
    step = mod.Model(seed=1)  # the same weights, run by hand
    c, h = c0, h0
    for t in range(T):
        c, h = step.forward(xs[t], c, h)
        np.testing.assert_allclose(cs[t], c, rtol=1e-13)
        np.testing.assert_allclose(hs[t], h, rtol=1e-13)
    gc, gh = rng.standard_normal((T, B, 2)), rng.standard_normal((T, B, 2))

    def loss():
        c_all, h_all = seq.forward(xs, c0, h0)
        return float((c_all * gc).sum() + (h_all * gh).sum())
    loss()
    seq.zeroGradParameters()
    gx, gc0, gh0 = seq.backward((xs, c0, h0), (gc, gh))
    for array, grad in ((xs, gx), (c0, gc0), (h0, gh0)):
        np.testing.assert_allclose(grad, central_differences(loss, array), rtol=1e-6, atol=1e-8)
    flat_w, flat_g = seq.getParameters()
    analytic = flat_g.copy()
    np.testing.assert_allclose(analytic, central_differences(loss, flat_w), rtol=1e-6, atol=1e-8)


def test_sequence_default_returns_the_final_state_only():
    mod = graphc.compile_file(LSTM, unroll="T", state=["next_c=prev_c", "next_h=prev_h"],
                              dtype="float64")
    rng = np.random.default_rng(0)
    args = rng.standard_normal((3, 2, 3)), np.zeros((2, 2)), np.zeros((2, 2))
    final = mod.Sequence(seed=1).forward(*args)
    every = mod.Sequence(seed=1, every_step=True).forward(*args)
    for f, e in zip(final, every):
        np.testing.assert_array_equal(f, e[-1])


# ---- the README's import line works from a fresh interpreter --------------------------------

def test_import_graphc_and_compile_from_a_fresh_process(tmp_path):
    code = ("import graphc; m = graphc.compile_file(%r, shapes={'input1': 'Bx1x32x32'}).Model();"
            "print(type(m).__name__)" % LENET)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "Model", r.stderr


def test_torchs_batch_size_guess_at_a_view_is_kept_with_a_located_warning(capsys):
    """The tutorial's LeNet at --shape input1=1x32x32: View(400) on 16x10x10 makes a batch of
    4, as Torch did; graphc says so at the View, and how to state the batch with B."""
    spec = str(ROOT / "samples" / "lenet_tutorial.lua")
    assert cli.main(["compile", spec, "--shape", "input1=1x32x32", "--emit", "ir"]) == 0
    out, err = capsys.readouterr()
    forward = out.split("\nbackward")[0].splitlines()
    assert forward[-1].startswith("  return %") and ": 4x10 = LogSoftMax" in forward[-2]
    first = err.splitlines()[0]
    assert first.startswith("samples/lenet_tutorial.lua:") or "lenet_tutorial.lua:" in first
    assert ": warning: nn.View: Torch's batch-size guess: the input 16x10x10 has 1600 elements " \
           "and the view holds 400, so the first dimension becomes a batch of 4 (output 4x400)" in first
    assert "--shape input1=Bx1x32x32" in first
    with pytest.warns(graphc.errors.GraphcWarning, match="batch of 4"):
        graphc.compile_file(spec, shapes={"input1": "1x32x32"})
    # with B, no guess and no warning: the located error of a per-sample mismatch instead
    assert cli.main(["check", spec, "--shape", "input1=Bx1x32x32"]) == 1
    assert "warning" not in capsys.readouterr().err
