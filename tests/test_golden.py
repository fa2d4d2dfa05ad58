"""Golden files, as data (tests/golden/cases.txt): what `graphc ARGS` prints for the samples
(--emit ir, the numpy and CUDA modules, the CUDA kernels, --unroll N and T, char-rnn's
Sequence) and for the most common spec errors (in full, caret included), so that any change
to generated code or messages shows up as a readable diff. Regenerate after a deliberate
change with

    GRAPHC_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

and review the diff (git diff tests/golden)."""
import contextlib
import io
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from graphc import cli

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"


def _cases() -> dict:
    cases = {}
    for line in (GOLDEN / "cases.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, args = line.split(":", 1)
            assert name not in cases, f"cases.txt names {name} twice"
            cases[name] = shlex.split(args)
    return cases


CASES = _cases()


def run_graphc(args) -> str:
    """stdout of `graphc ARGS`, or "exit N" and stderr when it fails."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return out.getvalue() if code == 0 else f"exit {code}\n{err.getvalue()}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    text = run_graphc(CASES[name])
    path = GOLDEN / name
    if os.environ.get("GRAPHC_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing {path}: run with GRAPHC_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} changed: review the diff, then GRAPHC_UPDATE_GOLDEN=1"


def test_every_golden_file_has_a_case():
    files = {p.name for p in GOLDEN.iterdir() if p.is_file() and p.name != "cases.txt"}
    assert files == set(CASES), f"golden files without a case (or the reverse): {files ^ set(CASES)}"


def test_error_cases_fail_and_the_others_succeed():
    for name in CASES:
        text = (GOLDEN / name).read_text()
        assert text.startswith("exit 1\n") == name.startswith("err_"), name


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
