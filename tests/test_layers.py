"""Layering: a sub-package's private modules (``server.<pkg>._x``) are used only inside it.

Every other sub-package goes through the public names its ``__init__`` re-exports, so the
kernel stays self-contained and a private module can change without breaking its users.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[1] / "server"


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def owner_of(path: Path) -> str:
    relative = path.relative_to(SERVER)
    return relative.parts[0] if len(relative.parts) > 1 else ""


SOURCES = sorted(SERVER.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(SERVER)) for p in SOURCES])
def test_private_modules_stay_inside_their_package(path: Path) -> None:
    owner = owner_of(path)
    wrong = []
    for module in imported_modules(path):
        parts = module.split(".")
        if parts[0] != "server" or len(parts) < 3:
            continue
        package, name = parts[1], parts[2]
        if name.startswith("_") and not name.startswith("__") and package != owner:
            wrong.append(module)
    assert wrong == [], f"{path.relative_to(SERVER)} uses private modules of another package"


def test_the_kernel_uses_no_other_sub_package() -> None:
    for path in (SERVER / "kernel").rglob("*.py"):
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] == "server" and len(parts) > 1:
                assert parts[1] in ("kernel", "errors"), f"{path.name} imports {module}"
