"""The package layers of docs/architecture.md: no package imports one above its own layer.

Lazy imports inside functions count too: they are still a dependency, only a hidden one.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "reidcli"

# Bottom to top. A package may import its own layer's siblings only where listed in SIDEWAYS.
LAYERS: list[set[str]] = [
    {"errors", "__init__"},
    {"utils"},
    {"runtime"},
    {"data", "models", "retrieval"},
    {"inference", "visualize"},
    {"training", "ssl"},
    {"selection", "runs"},
    {"demo"},
    {"cli"},
    {"__main__"},
]
SIDEWAYS: set[tuple[str, str]] = set()


def _layer(package: str) -> int:
    for i, names in enumerate(LAYERS):
        if package in names:
            return i
    raise AssertionError(f"reidcli/{package} has no layer: add it to LAYERS here and to "
                         "docs/architecture.md")


def _imports() -> set[tuple[str, str, str]]:
    edges = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        here = parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = ([f"{node.module}.{a.name}" for a in node.names]
                         if node.module == "reidcli" else [node.module])
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                bits = name.split(".")
                if bits[0] == "reidcli" and len(bits) > 1 and bits[1] != here:
                    target = "__init__" if bits[1].startswith("__") else bits[1]
                    edges.add((here, target, str(path.relative_to(PACKAGE))))
    return edges


def test_no_package_imports_a_layer_above_it() -> None:
    wrong = [f"{where} imports reidcli.{dst}"
             for src, dst, where in sorted(_imports())
             if _layer(dst) > _layer(src)
             or (_layer(dst) == _layer(src) and (src, dst) not in SIDEWAYS)]
    assert not wrong, "\n".join(wrong)


def test_every_package_has_a_layer() -> None:
    for path in PACKAGE.iterdir():
        if path.is_dir() and (path / "__init__.py").is_file():
            _layer(path.name)


def test_the_check_sees_lazy_imports() -> None:
    # `demo` reaches `training` only inside functions; the scan must still see it.
    assert any(src == "demo" and dst == "training" for src, dst, _ in _imports())
