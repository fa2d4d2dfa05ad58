"""graphc: compile nngraph-style Lua model definitions to generated numpy code.

The public names below load on first use, so `import graphc` (and importing any one
submodule) does not pull in the whole compiler."""
from .version import __version__  # noqa: F401

# public name -> the submodule that defines it
_PUBLIC = {
    "load": "cache", "compile_file": "api", "Options": "compiler", "compile_spec": "compiler",
    "OptionError": "errors", "SpecError": "errors",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'graphc' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
