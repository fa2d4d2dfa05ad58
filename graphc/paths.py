"""Where graphc finds its own files and keeps its caches. Ground floor: imports nothing of
graphc, so the low-level caches (lark tables, jinja bytecode) and the top-level graphc.load
cache can all use it."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """$GRAPHC_CACHE_DIR, else $XDG_CACHE_HOME/graphc, else ~/.cache/graphc."""
    base = os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "graphc")
    return Path(base)


def resource_dir(name: str) -> Path:
    """grammar/ or templates/: inside the installed package (graphc/<name>), else at the repo
    root (a source checkout)."""
    here = Path(__file__).resolve().parent
    for base in (here, here.parent):
        if (base / name).is_dir():
            return base / name
    raise FileNotFoundError(f"graphc is missing its {name}/ directory (broken install?)")


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace `path` with `data`: written to a unique temporary name beside it (one per
    writer, threads included), synced, then renamed into place, so a reader sees the old
    bytes or the new ones, never part of them; `mode` for the new file (mkstemp makes 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent.resolve()))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
