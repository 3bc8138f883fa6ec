"""The public surface of ``server.net``: ``__all__`` lists exactly what each module exports."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import server.net

PUBLIC_MODULES = ["server.net.http", "server.net.http_server", "server.net.http_callbacks"]


@pytest.mark.parametrize("module_name", ["server.net", *PUBLIC_MODULES])
def test_all_names_exist_and_are_sorted(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_definition_is_in_all(module_name: str) -> None:
    module = importlib.import_module(module_name)
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module_name
    }
    assert defined <= set(module.__all__)


def test_the_package_re_exports_its_modules_names() -> None:
    for name in server.net.__all__:
        value = getattr(server.net, name)
        # errors live in the one tree of ``server.errors``; the package re-exports its own
        assert value.__module__ in (*PUBLIC_MODULES, "server.errors"), name


def test_only_public_kernel_names_are_used() -> None:
    root = Path(server.net.__file__).parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                assert not node.module.startswith("server.kernel._"), path.name
                if node.module.startswith("server.kernel"):
                    assert all(not a.name.startswith("_") for a in node.names), path.name
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "kernel"
            ):
                assert not node.attr.startswith("_"), f"{path.name}: kernel.{node.attr}"


def test_the_sans_io_core_does_not_import_anyio() -> None:
    source = (Path(server.net.__file__).parent / "http.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert "anyio" not in imported
    assert "asyncio" not in imported
