"""Located compiler errors: `file:line:col: error: message`, the source line, a caret; and
located warnings (`warn`), the same with `warning:`."""
from __future__ import annotations

import sys
import warnings
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Loc:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class SpecError(Exception):
    """An error in the user's spec (exit code 1). `notes` are (Loc | None, text) pairs."""

    def __init__(self, message: str, loc: Loc | None = None, notes=()):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.notes = list(notes)

    def format(self, sources: dict[str, str] | None = None) -> str:
        lines = [_located(self.loc, "error", self.message, sources)]
        for loc, text in self.notes:
            lines.append(_located(loc, "note", text, sources))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


class OptionError(SpecError, ValueError):
    """A compiler option that does not fit the model or is malformed (--shape, --state,
    --no-grad, -D, ...): the CLI's usage error (exit 2); from Python a ValueError."""

    def __str__(self) -> str:
        return self.message


class OptionTypeError(TypeError):
    """A keyword of graphc.load/compile_file that does not exist, or a value of the wrong
    type."""


def _located(loc: Loc | None, kind: str, message: str, sources) -> str:
    if loc is None:
        return f"graphc: {kind}: {message}"
    head = f"{loc}: {kind}: {message}"
    text = (sources or {}).get(loc.file)
    if text is None:
        return head
    src_lines = text.splitlines()
    if not 1 <= loc.line <= len(src_lines):
        return head
    line = src_lines[loc.line - 1].expandtabs(1)
    caret = " " * (max(loc.col, 1) - 1) + "^"
    return f"{head}\n  {line}\n  {caret}"


def did_you_mean(name: str, candidates) -> str:
    """' (did you mean X?)' for the closest candidate (a case-insensitive match first:
    nn.linear -> Linear), or ''."""
    import difflib

    names = sorted(set(candidates))
    same = [c for c in names if c.lower() == name.lower() and c != name]
    if same:
        return f" (did you mean '{same[0]}'?)"
    best = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if not best:  # the case-blind spelling: 'lstm' is as close to 'LSTM' as it gets
        lowered = {c.lower(): c for c in names}
        best = [lowered[b] for b in difflib.get_close_matches(name.lower(), sorted(lowered), n=1, cutoff=0.6)]
    return f" (did you mean '{best[0]}'?)" if best else ""


# ---- warnings ------------------------------------------------------------------------------
# A warning is a spec that compiles but probably does not mean what it says. Any part of the
# compiler calls `warn(text, loc)`; compile_spec collects them (each place and text once) and
# issues them through Python's `warnings` module; the CLI collects them itself and prints them
# to stderr as `file:line:col: warning: ...` with the source line.


class GraphcWarning(UserWarning):
    """A located compile-time warning about a spec (a `warnings` category)."""

    def __init__(self, message: str, loc: Loc | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc

    def format(self, sources: dict[str, str] | None = None) -> str:
        return _located(self.loc, "warning", self.message, sources)

    def __str__(self) -> str:
        return self.format()


_collected: ContextVar[list | None] = ContextVar("graphc_warnings", default=None)


def warn(message: str, loc: Loc | None = None) -> None:
    """Warn about the spec at `loc`: recorded by the innermost `collect_warnings`, or issued
    at once when none is open."""
    _record(GraphcWarning(message, loc))


def _record(w: GraphcWarning) -> None:
    found = _collected.get()
    if found is None:
        _issue(w)
    elif all((v.loc, v.message) != (w.loc, w.message) for v in found):
        found.append(w)  # shape rules run more than once per node: say it once


class collect_warnings:
    """`with collect_warnings() as found:` records the warnings made inside into the list
    `found`. On leaving (an error too) they go to the enclosing collector, else, with
    `issue` (the default), to Python's `warnings`; `issue=False`: the caller shows them."""

    def __init__(self, issue: bool = True):
        self.issue = issue
        self.found: list[GraphcWarning] = []

    def __enter__(self) -> list:
        self.token = _collected.set(self.found)
        return self.found

    def __exit__(self, *exc) -> None:
        _collected.reset(self.token)
        if self.issue or _collected.get() is not None:
            for w in self.found:
                _record(w)


_PACKAGE = Path(__file__).resolve().parent


def _issue(w: GraphcWarning) -> None:
    # attribute it to the first caller outside graphc (say, the user's graphc.load line)
    frame, level = sys._getframe(0), 1
    while frame is not None and Path(frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(w, stacklevel=level)
