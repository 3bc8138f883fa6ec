"""Layering: a sub-package's private modules (``server.<pkg>._x``) are used only inside it.

Every other sub-package goes through the public names its ``__init__`` re-exports, so the
kernel stays self-contained and a private module can change without breaking its users.
"""

from __future__ import annotations

import ast
import subprocess
import sys
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


# --- direction: a sub-package imports only sub-packages below it (or in its own row) ---------

DESIGN = SERVER.parents[1] / "shared" / "DESIGN.md"

#: Packages that DESIGN.md's table does not list, with the row they sit just below (``None``:
#: above every row). ``testing`` drives whole nodes; ``dev`` is started by the CLI; ``node``
#: holds the node's boot and its control commands, so it sits above release and control.
EXTRA_ROWS: dict[str, str | None] = {
    "testing": None,
    "dev": "cli",
    "node": "heart",
    "cluster": "control",  # release handling across nodes: above dist, below the node's boot
    "observer": "node",  # the web view, metrics and lag sampler the boot starts; CLI views' data
}

#: Top-level modules every layer may import (the error tree) and the entry point (top).
BOTTOM_MODULES = {"errors"}
TOP_MODULES = {"__main__", "__init__"}

#: Known violations, each with the issue that removes it (none today).
PENDING: set[tuple[str, str]] = set()


def declared_rows(text: str) -> list[set[str]]:
    """The packages of section 2's table, one set per row, top row first."""
    section = text.split("\n## 2", 1)[1].split("\n## 3", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `server/"):
            cell = line.split("|")[1]
            rows.append({part.strip(" `/").removeprefix("server/") for part in cell.split(",")})
    return rows


def ranks() -> dict[str, int]:
    """Each sub-package's rank: a package may import those of a rank >= its own."""
    rows = declared_rows(DESIGN.read_text(encoding="utf-8"))
    for name, below in EXTRA_ROWS.items():
        at = 0 if below is None else next(i for i, r in enumerate(rows) if below in r) + 1
        rows.insert(at, {name})
    rank = {package: i for i, row in enumerate(rows) for package in row}
    rank.update(dict.fromkeys(BOTTOM_MODULES, len(rows)))
    rank.update(dict.fromkeys(TOP_MODULES, -1))
    return rank


def violations() -> set[tuple[str, str]]:
    rank = ranks()
    found = set()
    for path in SOURCES:
        relative = path.relative_to(SERVER)
        owner = relative.parts[0].removesuffix(".py")
        assert owner in rank, f"{relative}: place its package in DESIGN.md or EXTRA_ROWS"
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] != "server" or len(parts) < 2 or parts[1] not in rank:
                continue
            if rank[parts[1]] < rank[owner]:
                found.add((str(relative), parts[1]))
    return found


@pytest.mark.skipif(not DESIGN.exists(), reason="../shared/DESIGN.md is not beside the repository")
def test_imports_go_down_the_declared_layers() -> None:
    assert violations() == PENDING


@pytest.mark.skipif(not DESIGN.exists(), reason="../shared/DESIGN.md is not beside the repository")
def test_the_declared_rows_are_read() -> None:
    rows = declared_rows(DESIGN.read_text(encoding="utf-8"))
    assert rows[0] == {"cli"}
    assert {"control", "net"} in rows
    assert rows[-1] == {"spec"}


def test_the_code_server_imports_without_the_behaviours() -> None:
    code = "import sys, server.code_server; print('server.behaviours' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
