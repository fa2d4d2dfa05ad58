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
