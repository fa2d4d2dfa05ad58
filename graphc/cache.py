"""graphc.load(): compile a spec once, then import the generated module from an on-disk
cache keyed by graphc's version, the options, the spec and every file it requires.

Safe under concurrent processes: every file is written to a temp name and renamed into
place, the module before its dependency record, so a reader that finds the record also
finds the complete module; racing writers write identical bytes.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

from . import __version__
from .compiler import Options, compile_spec


def cache_dir() -> Path:
    base = os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "graphc")
    return Path(base)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(path: Path, opts: Options) -> str:
    described = json.dumps({"version": __version__, "spec": str(path.resolve()),
                            "text": _sha(path.read_bytes()), "options": _opts_json(opts)},
                           sort_keys=True)
    return _sha(described.encode())[:32]


def _opts_json(opts: Options):
    return {"entry": opts.entry, "defines": sorted((k, repr(v)) for k, v in opts.defines.items()),
            "shapes": sorted((k, list(v)) for k, v in opts.shapes.items()), "dtype": opts.dtype}


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fresh(record: Path) -> bool:
    try:
        deps = json.loads(record.read_text())
        return all(Path(f).is_file() and _sha(Path(f).read_bytes()) == h for f, h in deps["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def load(path, **options):
    """Compile `path` (or reuse the cached result) and return the imported module."""
    path = Path(path)
    opts = Options(**options)
    key = _key(path, opts)
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    module_file, record = d / f"{path.stem}_{key}.py", d / f"{path.stem}_{key}.json"
    if not (record.is_file() and module_file.is_file() and _fresh(record)):
        res = compile_spec(str(path), opts)
        _atomic_write(module_file, res.source.encode())
        files = [[str(Path(f).resolve()), _sha(Path(f).read_bytes())] for f in res.files]
        _atomic_write(record, json.dumps({"files": files, "version": __version__}).encode())
    name = f"graphc_cached_{path.stem}_{key}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, module_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules[name] = mod
    return mod
