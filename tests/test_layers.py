"""The packages of lancer import one way: each only from the layers below it.

From the top: the CLI; the study tools; eval; the agent (runner and loop); tools and the
grader; the sandboxes, model providers, browser machinery and task formats; the ground
(``lancer.core``, with the prompt templates as data). Packages on one layer do not import
each other. Every import counts, lazy ones inside functions and ``TYPE_CHECKING`` ones too.
"""

from __future__ import annotations

import ast
from pathlib import Path

LANCER = Path(__file__).resolve().parent.parent / "lancer"

# Top first. The README's architecture section draws the same layers.
LAYERS: list[set[str]] = [
    {"__main__"},
    {"cli"},
    {"study"},
    {"eval"},
    {"agent"},
    {"tools", "grader"},
    {"sandbox", "models", "browser", "formats"},
    {"core", "prompts"},
]


def layer_of(package: str) -> int:
    for index, names in enumerate(LAYERS):
        if package in names:
            return index
    raise AssertionError(f"lancer.{package} is on no layer: add it to LAYERS (and the README's picture)")


def imported_modules(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """Every lancer module a file imports, absolute or relative, with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            found += [(node.lineno, f"{base}.{alias.name}" if base == "lancer" else base) for alias in node.names]
    return [(line, name) for line, name in found if name == "lancer" or name.startswith("lancer.")]


def upward_imports(root: Path) -> list[str]:
    """Each import in the package at ``root`` that runs up a layer or sideways, as one line."""
    wrong = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        parts = module.split(".")
        if len(parts) < 2:
            continue  # lancer/__init__.py: the version, importable from anywhere
        own = parts[1]
        for line, name in imported_modules(ast.parse(path.read_text(), str(path)), module):
            target = name.split(".")
            if len(target) < 2 or target[1] == own or target[1] in ("__init__", "__version__"):
                continue
            if layer_of(target[1]) <= layer_of(own):
                where = "sideways" if layer_of(target[1]) == layer_of(own) else "up"
                wrong.append(f"{path.relative_to(root.parent)}:{line}: lancer.{own} imports {name} ({where})")
    return wrong


def test_every_import_runs_down_the_layers() -> None:
    assert upward_imports(LANCER) == []


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    for package in ("core", "agent", "sandbox", "tools"):
        (tmp_path / "lancer" / package).mkdir(parents=True)
        (tmp_path / "lancer" / package / "__init__.py").write_text("")
    (tmp_path / "lancer" / "__init__.py").write_text("")
    (tmp_path / "lancer" / "core" / "config.py").write_text("def f():\n    from lancer.agent.runner import run\n")
    (tmp_path / "lancer" / "sandbox" / "x.py").write_text("from ..tools import bash\nfrom lancer.core import config\n")
    (tmp_path / "lancer" / "agent" / "y.py").write_text("import lancer.sandbox.x\nfrom lancer import core\n")
    assert upward_imports(tmp_path / "lancer") == [
        "lancer/core/config.py:2: lancer.core imports lancer.agent.runner (up)",
        "lancer/sandbox/x.py:1: lancer.sandbox imports lancer.tools (up)",
    ]


def test_no_module_is_over_400_lines() -> None:
    sizes = {p.relative_to(LANCER.parent): len(p.read_text().splitlines()) for p in LANCER.rglob("*.py")}
    long = [f"{path}: {lines} lines" for path, lines in sizes.items() if lines > 400]
    assert long == []
