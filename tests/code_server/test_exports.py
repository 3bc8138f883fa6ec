"""The public surface of ``server.code_server``, and what it must not import."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import server.code_server
from server.code_server import _api

PACKAGE = Path(server.code_server.__file__).parent


def test_all_names_exist_and_are_sorted() -> None:
    names = server.code_server.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(server.code_server, name), name


def test_every_call_is_re_exported_under_the_public_path() -> None:
    for name in _api.__all__:
        call = getattr(server.code_server, name)
        assert name in server.code_server.__all__, name
        assert call.__module__ == "server.code_server", name
    defined = {
        name
        for name, value in vars(_api).items()
        if not name.startswith("_") and inspect.isfunction(value)
    }
    assert defined == set(_api.__all__)


def test_the_package_only_re_exports() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    assert defined == []


def test_no_module_of_the_code_server_imports_the_behaviours() -> None:
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                imported = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            else:
                continue
            assert not any(m.startswith("server.behaviours") for m in imported), path.name


def test_importing_the_code_server_does_not_import_the_behaviours() -> None:
    script = (
        "import sys\n"
        "import server.code_server\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('server.behaviours'))\n"
        "print('server.code_server._table' in sys.modules, loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "True []", done.stdout + done.stderr
