"""The house rules, read from the source: no import cycle in python/manifpt (imports inside functions
count too), baselines never import the method's modules, only manifpt_ext/ops.py touches torch.ops.manifpt,
no file in python/manifpt over 400 lines, and a space added to the registry reaches the CLI."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "python" / "manifpt"
METHOD = {"manifpt.attribute", "manifpt.manifold", "manifpt.workflow", "manifpt.experiments", "manifpt.spaces"}


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # `import a.b.c` depends on the module that exists
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_no_import_cycle():
    graph = _graph()
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_graph_sees_imports_inside_functions():
    # the check above would pass vacuously if deferred imports were missed: commands import lazily
    assert "manifpt.workflow" in _graph()["manifpt.commands.fit"]


def test_baselines_do_not_import_the_method():
    graph = _graph()
    for name, deps in graph.items():
        if name.startswith("manifpt.baselines"):
            bad = {d for d in deps if any(d == m or d.startswith(m + ".") for m in METHOD)}
            assert not bad, f"{name} imports the method's {sorted(bad)}"


def _touches_torch_ops(path: Path) -> bool:  # in code, not in docstrings or comments
    return any(isinstance(n, ast.Attribute) and ast.unparse(n).startswith("torch.ops.manifpt")
               for n in ast.walk(ast.parse(path.read_text())))


def test_only_ops_py_touches_torch_ops():
    users = [f.relative_to(ROOT) for f in [*PKG.rglob("*.py"), *(ROOT / "manifpt_ext").rglob("*.py")] if _touches_torch_ops(f)]
    assert users == [Path("manifpt_ext/ops.py")], users


def test_no_file_over_400_lines():
    long = {str(f.relative_to(ROOT)): n for f in PKG.rglob("*.py") if (n := len(f.read_text().splitlines())) > 400}
    assert not long, long


def test_a_registered_space_reaches_the_cli(monkeypatch):
    from manifpt import spaces
    from manifpt.cli import build_parser
    from manifpt.spaces import registry
    from manifpt.spaces.rgb import RGB

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    spaces.register(spaces.Space("gray", "a test space", lambda weights=None, **kw: RGB(**kw)))
    args = build_parser().parse_args(["fit", "--space", "gray"])
    assert args.space == "gray" and spaces.get_embedder("gray").name == "rgb"
    with pytest.raises(ValueError, match="registered twice"):
        spaces.register(spaces.Space("gray", "again", lambda **kw: RGB()))
