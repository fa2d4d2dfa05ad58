"""--prelude FILE.lua (and graphc's prelude= option): the globals a training script would set,
run first in the spec's top-level scope; -D NAME.FIELD=VALUE sets a field of a table the file
assigns; the prelude is a dependency (--depfile, graphc.load's cache)."""
import pytest

import graphc
from graphc import cli

SPEC = """require 'nngraph'
require 'cudnn'
local x = nn.Identity()()
local h = x
for L = 1, opt.num_layers do
  h = cudnn.Tanh()(nn.Linear(L == 1 and opt.input_size or opt.rnn_size, opt.rnn_size)(h))
end
return nn.gModule({x}, {h})
"""
PRELUDE = "opt = {input_size = 3, rnn_size = 5, num_layers = 2}\ncudnn = nn\n"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "model.lua").write_text(SPEC)
    (tmp_path / "opts.lua").write_text(PRELUDE)
    return tmp_path / "model.lua", tmp_path / "opts.lua"


def shapes_of(mod):
    return [s for _, s, _ in mod.PARAMETERS]


def test_prelude_sets_what_the_spec_reads(files):
    spec, prelude = files
    mod = graphc.compile_file(spec, prelude=prelude, shapes={"input1": "Bx3"})
    assert shapes_of(mod) == [(5, 3), (5,), (5, 5), (5,)]
    with pytest.raises(graphc.SpecError, match="attempt to index a nil value \\(global 'opt'\\)"):
        graphc.compile_file(spec, shapes={"input1": "Bx3"})  # what the prelude is for


def test_define_sets_a_field_of_a_table_the_prelude_assigns(files):
    spec, prelude = files
    mod = graphc.compile_file(spec, prelude=str(prelude), shapes={"input1": "Bx3"},
                              defines=["opt.rnn_size=8", "opt.num_layers=1"])
    assert shapes_of(mod) == [(8, 3), (8,)]


def test_define_field_wins_over_a_top_level_field_assignment(tmp_path):
    spec = tmp_path / "s.lua"
    spec.write_text("require 'nngraph'\nlocal opt = {}\nopt.n = 4\nopt.m = 2\n"
                    "local x = nn.Identity()()\nreturn nn.gModule({x}, {nn.Linear(opt.m, opt.n)(x)})\n")
    mod = graphc.compile_file(spec, defines={"opt.n": 7})
    assert shapes_of(mod) == [(7, 2), (7,)]


def test_prelude_locals_are_in_the_spec_scope_and_plain_defines_reach_them(tmp_path):
    (tmp_path / "p.lua").write_text("local width = 6\n")
    spec = tmp_path / "s.lua"
    spec.write_text("require 'nngraph'\nlocal x = nn.Identity()()\n"
                    "return nn.gModule({x}, {nn.Linear(2, width)(x)})\n")
    assert shapes_of(graphc.compile_file(spec, prelude=tmp_path / "p.lua")) == [(6, 2), (6,)]
    mod = graphc.compile_file(spec, prelude=tmp_path / "p.lua", defines={"width": 9})
    assert shapes_of(mod) == [(9, 2), (9,)]


def test_cli_prelude_define_and_depfile(files, capsys):
    spec, prelude = files
    out = spec.with_suffix(".py")
    assert cli.main(["compile", str(spec), "--prelude", str(prelude), "-D", "opt.rnn_size=4",
                     "--shape", "input1=Bx3", "-o", str(out), "--depfile", str(out) + ".d"]) == 0
    dep = (spec.parent / "model.py.d").read_text()
    assert dep.splitlines()[0] == f"{out}: {spec} {prelude}"
    text = out.read_text()
    assert f"--prelude {prelude}" in text.splitlines()[1]  # the recompile command
    assert "(4, 3)" in text


@pytest.mark.parametrize("prelude, defines, message", [
    (None, ["opt.rnn_size=4"], "-D opt.rnn_size=...: {spec} never assigns 'opt' at top level"),
    ("opts.lua", ["opts.rnn_size=4"], "never assigns 'opts' at top level, so there is no table "
                                       "to set the field of (did you mean 'opt'?)"),
    ("missing.lua", [], "--prelude {dir}/missing.lua: cannot read it"),
    ("returns.lua", [], "returns.lua:1:1: error: a --prelude file runs before the spec and cannot return"),
])
def test_errors(files, prelude, defines, message, capsys):
    spec, _ = files
    (spec.parent / "returns.lua").write_text("return 1\n")
    argv = ["check", str(spec), "--shape", "input1=Bx3"] + [a for d in defines for a in ("-D", d)]
    if prelude:
        argv += ["--prelude", str(spec.parent / prelude)]
    assert cli.main(argv) != 0
    err = capsys.readouterr().err
    assert message.format(spec=spec, dir=spec.parent) in err


def test_a_field_of_a_non_table_is_an_error(tmp_path):
    (tmp_path / "p.lua").write_text("opt = 3\n")
    spec = tmp_path / "s.lua"
    spec.write_text("require 'nngraph'\nlocal x = nn.Identity()()\nreturn nn.gModule({x}, {x})\n")
    with pytest.raises(graphc.SpecError, match=r"p.lua:1:1: error: -D opt.n: opt is a number here, "
                                               r"not a table with fields to set"):
        graphc.compile_file(spec, prelude=tmp_path / "p.lua", defines=["opt.n=2"])


def test_bad_define_names_and_prelude_type():
    with pytest.raises(graphc.OptionError, match="must be a Lua identifier, or fields of one"):
        graphc.compile_file("x.lua", defines=["opt..n=2"])
    with pytest.raises(TypeError, match="prelude must be a path, not int"):
        graphc.compile_file("x.lua", prelude=3)


def test_load_keys_on_the_prelude_text(files, tmp_path, monkeypatch):
    spec, prelude = files
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    first = graphc.load(spec, prelude=prelude, shapes={"input1": "Bx3"})
    assert graphc.load(spec, prelude=prelude, shapes={"input1": "Bx3"}) is first
    prelude.write_text(PRELUDE.replace("rnn_size = 5", "rnn_size = 7"))
    second = graphc.load(spec, prelude=prelude, shapes={"input1": "Bx3"})
    assert second is not first and shapes_of(second)[0] == (7, 3)
