"""Golden files of `--emit ir` and of generated code for the samples: a codegen change
shows up as a readable diff. Regenerate with GRAPHC_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from graphc.compiler import Options, compile_spec, parse_shape

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = {
    "lstm.ir": ("samples/lstm.lua", {}, "ir"),
    "lstm.py": ("samples/lstm.lua", {}, "py"),
    "lenet.ir": ("samples/lenet.lua", {"input1": "Bx1x32x32"}, "ir"),
    "rnn.py": ("samples/rnn.lua", {}, "py"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name, monkeypatch):
    spec, shapes, emit = CASES[name]
    monkeypatch.chdir(ROOT)
    opts = Options(shapes={k: parse_shape(v) for k, v in shapes.items()}, emit=emit)
    text = compile_spec(spec, opts).source
    path = GOLDEN / name
    if os.environ.get("GRAPHC_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing {path}: run with GRAPHC_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} changed: review the diff, then GRAPHC_UPDATE_GOLDEN=1"


def test_output_is_byte_identical_across_hash_seeds_and_directories(tmp_path):
    outs = []
    for seed, cwd in (("0", ROOT), ("12345", tmp_path)):
        spec = ROOT / "samples" / "lstm.lua"
        if cwd == tmp_path:
            (tmp_path / "lstm.lua").write_text(spec.read_text())
            spec = Path("lstm.lua")
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-m", "graphc", "compile", str(spec)], cwd=cwd, env=env,
                           capture_output=True)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert outs[0] == outs[1]
