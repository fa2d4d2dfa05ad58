"""Shared test helpers: compile a spec string to an imported module."""
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graphc.compiler import Options, compile_spec  # noqa: E402

_count = itertools.count()


def build(spec: str, tmp_path=None, dtype="float64", **options):
    """Compile Lua text; return the generated module (imported from memory)."""
    import types

    path = str((tmp_path or Path("/tmp")) / f"spec{next(_count)}.lua")
    res = compile_spec(path, Options(dtype=dtype, **options), text=spec)
    mod = types.ModuleType(f"graphc_test_{next(_count)}")
    exec(compile(res.source, f"<generated {path}>", "exec"), mod.__dict__)
    mod.RESULT = res
    return mod


def compile_error(spec: str, **options):
    """The SpecError raised compiling `spec` (fails the test if none)."""
    from graphc.errors import SpecError

    path = "spec.lua"
    with pytest.raises(SpecError) as info:
        compile_spec(path, Options(**options), text=spec)
    return info.value, info.value.format({path: spec})


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
