"""`pip install .` ships graphc (with grammar/ and templates/) and graphc_runtime, and the
installed compiler works from any directory."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # build from a copy: setuptools writes build/ and *.egg-info into the tree it builds
    src = tmp_path_factory.mktemp("src") / "graphc"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(out), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("graphc-*.whl")
    return whl


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "graphc/grammar/lua.lark" in names
    assert "graphc/templates/numpy/module.py.j2" in names
    assert "graphc/templates/cpu/entries.cpp.j2" in names
    assert {"graphc/templates/cuda/host_shim.h"} <= names and any(
        n.startswith("graphc/templates/cuda/") and n.endswith(".j2") for n in names)
    assert "graphc_runtime/module.py" in names and "graphc_runtime/kernels.py" in names
    entry = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry[0]).decode()
    assert "graphc = graphc.cli:main" in text


def test_installed_wheel_compiles_from_another_directory(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "m.lua").write_text("x = nn.Identity()()\nm = nn.gModule({x}, {nn.Tanh()(nn.Linear(3, 2)(x))})\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    r = subprocess.run([sys.executable, "-m", "graphc", "compile", "m.lua", "-o", "m.py"],
                       cwd=work, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # the generated module needs only graphc_runtime and numpy
    code = ("import m, numpy as np, sys, graphc_runtime\n"
            f"assert graphc_runtime.__file__.startswith({str(site)!r}), graphc_runtime.__file__\n"
            "print(m.Model().forward(np.zeros((2, 3), 'float32')).shape)\n"
            "assert not {'lark', 'jinja2', 'graphc'} & set(sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(2, 2)"
