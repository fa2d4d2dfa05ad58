"""Spec text (names, file names, the command line) in generated files: one escaping function
per output language, used by every backend and applied as template filters, so that no
spec text can end a comment or a string, or run as code, wherever it lands."""
from __future__ import annotations

import re


def python_comment(text: str) -> str:
    """Spec text in a Python `#` comment: any character outside printable ASCII that Python
    would escape (newlines and other control characters) as its escape, so nothing can end
    the comment."""
    return "".join(c if " " <= c < "\x7f" else repr(c)[1:-1] for c in text)


def python_docstring(text: str) -> str:
    """Spec text inside a triple-quoted docstring: no quote or backslash to end or escape it."""
    return python_comment(text).replace('"', "'").replace("\\", "/")


def c_comment(text: str) -> str:
    """Spec text in a CUDA C `//` comment: printable ASCII (others as '?'), no backslash (a
    backslash at the end of a line would splice the next line into the comment)."""
    return "".join(c if " " <= c < "\x7f" else "?" for c in text).replace("\\", "/")


def c_identifier(text: str) -> str:
    """Spec text as (part of) a C identifier: runs of other characters become '_'."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_") or "v"


def python_text_block(text: str) -> str:
    """A Python string literal that reads back as exactly `text`, laid out as its lines:
    '''\\ + the text + ''', escaping backslashes, any quote that could close it and the
    characters repr() escapes (control characters, line breaks other than newline)."""
    out = []
    for k, c in enumerate(text):
        if c == "\\":
            out.append("\\\\")
        elif c == "'" and text[k + 1:k + 2] in ("'", ""):  # could close the literal
            out.append("\\'")
        elif c == "\n" or " " <= c < "\x7f":
            out.append(c)
        else:
            out.append(repr(c)[1:-1])
    return "'''\\\n" + "".join(out) + "'''"
