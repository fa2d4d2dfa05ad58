"""The jinja2 environment for code templates (templates/ in the repo, graphc/templates/
when installed)."""
from __future__ import annotations

import functools
from pathlib import Path

import jinja2


def resource_dir(name: str) -> Path:
    """grammar/ or templates/: inside the installed package, else at the repo root."""
    here = Path(__file__).resolve().parent.parent
    for base in (here, here.parent):
        if (base / name).is_dir():
            return base / name
    raise FileNotFoundError(f"graphc is missing its {name}/ directory (broken install?)")


def _pytuple(shape) -> str:
    items = [repr(d) for d in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


@functools.lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True,
    )
    from .numpy import pyshape  # noqa: cyclic at import time only
    env.filters["pyshape"] = pyshape
    env.filters["pyrepr"] = repr
    env.filters["pytuple"] = _pytuple
    return env
