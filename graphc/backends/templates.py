"""The jinja2 environment for code templates (templates/ in the repo, graphc/templates/
when installed)."""
from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from . import escape


def resource_dir(name: str) -> Path:
    """grammar/ or templates/: inside the installed package, else at the repo root."""
    here = Path(__file__).resolve().parent.parent
    for base in (here, here.parent):
        if (base / name).is_dir():
            return base / name
    raise FileNotFoundError(f"graphc is missing its {name}/ directory (broken install?)")


def _pytuple(shape) -> str:
    """A shape (or a tuple of them, or any tuple) as Python source; symbolic dims as 'B'
    and 'B*5'."""
    from ..ir.graph import dim_text, is_symbolic
    items = [_pytuple(d) if isinstance(d, (tuple, list)) else repr(dim_text(d)) if is_symbolic(d)
             else repr(d) for d in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _pyinit(init) -> str:
    """A parameter's init as Python: a ('values', ...) init (the spec's :copy) is written
    four numbers to a line, inside its PARAMETERS entry."""
    if init[0] != "values":
        return repr(init)
    vals = [repr(float(v)) for v in init[1]]
    rows = [", ".join(vals[i:i + 4]) + "," for i in range(0, len(vals), 4)]
    return "('values', (\n" + "".join(f"        {r}\n" for r in rows) + "    ))"


def bytecode_cache(kind: str, trim: bool):
    """Compiled templates kept on disk (compiling them was half of a compile's time) in the
    user's graphc cache dir, one directory per environment setting; None if unwritable.
    Jinja keys each file by template name and source checksum, and writes it atomically."""
    import os
    from ..cache import cache_dir
    d = cache_dir() / "jinja" / f"{kind}-jinja{jinja2.__version__}-trim{int(trim)}"
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(d)) if os.access(d, os.W_OK) else None


_STRINGS: dict[str, str] = {}  # template name -> the text of a template given as a string


@functools.lru_cache(maxsize=None)
def string_template(text: str) -> jinja2.Template:
    """A template given as text (an op's CUDA rule), compiled once and cached on disk like
    the file templates."""
    import hashlib
    name = "string-" + hashlib.sha256(text.encode()).hexdigest()
    _STRINGS[name] = text
    return environment().get_template(name)


@functools.lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(resource_dir("templates"))),
                                    jinja2.FunctionLoader(_STRINGS.get)]),
        undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True,
        bytecode_cache=bytecode_cache("files", True),
    )
    from .numpy import pyshape  # noqa: cyclic at import time only
    env.filters["pyshape"] = pyshape
    env.filters["pyrepr"] = repr
    env.filters["pytuple"] = _pytuple
    env.filters["pyinit"] = _pyinit
    # spec text: every comment and embedded source in a template goes through one of these
    env.filters["pycomment"] = escape.python_comment
    env.filters["pydocstring"] = escape.python_docstring
    env.filters["ccomment"] = escape.c_comment
    env.filters["pytextblock"] = escape.python_text_block
    return env
