"""Located compiler errors: `file:line:col: error: message`, the source line, a caret."""
from __future__ import annotations

from dataclasses import dataclass


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
