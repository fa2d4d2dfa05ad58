"""graphc's own import graph: no cycle, and no module imports a higher floor. Every import
counts, function-local ones included (a cycle they hide still ties the modules together).
Also: `import graphc` stays cheap (its public names load lazily)."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "graphc"

# floors, lowest first: a module may import its own floor or lower ones
FLOORS = [
    ("graphc.version", "graphc.paths", "graphc.errors"),
    ("graphc.ir",),
    ("graphc.ops", "graphc.plugin", "graphc.options"),
    ("graphc.frontend", "graphc.passes"),
    ("graphc.backends",),
    ("graphc.compiler", "graphc.docs"),
    ("graphc.api", "graphc.cache", "graphc.cli", "graphc.testing", "graphc.__main__", "graphc"),
]


def modules() -> dict:
    found = {}
    for f in sorted(ROOT.rglob("*.py")):
        parts = list(f.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = f
    return found


def import_graph() -> dict:
    mods = modules()
    edges = {m: set() for m in mods}
    for mod, f in mods.items():
        package = mod.split(".") if f.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
                # `from pkg import sub` imports the submodule pkg.sub
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            edges[mod] |= {t for t in targets if t in mods and t != mod}
    return edges


def cycles(edges) -> list:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def floor(mod: str) -> int:
    for i, names in enumerate(FLOORS):
        if any(mod == n or (n != "graphc" and mod.startswith(n + ".")) for n in names):
            return i
    raise AssertionError(f"{mod} is on no floor: add it to FLOORS in {Path(__file__).name}")


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_upward_import():
    upward = [f"{m} -> {t}" for m, ts in sorted(import_graph().items()) for t in sorted(ts)
              if floor(t) > floor(m)]
    assert upward == []


def test_import_graphc_is_lazy():
    code = ("import sys, graphc; print(sorted(m for m in sys.modules if m.startswith(('graphc', 'jinja2', 'lark', 'numpy'))));"
            "print(graphc.__version__, graphc.SpecError.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded, names = out.splitlines()
    assert loaded == "['graphc', 'graphc.version']"
    assert names.split() == [__import__("graphc").__version__, "graphc.errors"]


def test_a_cache_hit_imports_no_compiler(tmp_path):
    """graphc.load of a cached model imports neither the compiler nor lark nor jinja2: a
    warm start pays for the generated module and the runtime only."""
    import os
    spec = Path(__file__).resolve().parent.parent / "samples" / "lstm.lua"
    code = ("import sys, graphc; graphc.load(sys.argv[1]).Model(); "
            "print(sorted({m.split('.')[0] + ('.' + m.split('.')[1] if m.startswith('graphc.') else '') "
            "for m in sys.modules if m.startswith(('graphc', 'jinja2', 'lark'))}))")
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path))
    subprocess.run([sys.executable, "-c", code, str(spec)], check=True, env=env, capture_output=True)
    out = subprocess.run([sys.executable, "-c", code, str(spec)], check=True, env=env,
                         capture_output=True, text=True).stdout
    assert "graphc.compiler" not in out and "lark" not in out and "jinja2" not in out, out
    assert "graphc.ir" not in out, out  # nor the IR's classes (graphc.options spells B itself)
    assert "graphc.cache" in out
    from graphc import ir, options
    assert options.B == ir.graph.B
