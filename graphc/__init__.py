"""graphc: compile nngraph-style Lua model definitions to generated numpy code."""
__version__ = "0.1.0"

from .cache import load  # noqa: E402,F401
from .api import compile_file  # noqa: E402,F401
from .compiler import Options, compile_spec  # noqa: E402,F401
from .errors import OptionError, SpecError  # noqa: E402,F401
