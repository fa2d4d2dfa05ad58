"""The jinja2 environment for code templates (templates/ in the repo, graphc/templates/
when installed)."""
from __future__ import annotations

import functools
import hashlib
import os

import jinja2

from ..paths import cache_dir, resource_dir
from . import escape
from .common import pyshape, pytuple


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
    env.filters["pyshape"] = pyshape
    env.filters["pyrepr"] = repr
    env.filters["pytuple"] = pytuple
    env.filters["pyinit"] = _pyinit
    # spec text: every comment and embedded source in a template goes through one of these
    env.filters["pycomment"] = escape.python_comment
    env.filters["pydocstring"] = escape.python_docstring
    env.filters["ccomment"] = escape.c_comment
    env.filters["pytextblock"] = escape.python_text_block
    return env
