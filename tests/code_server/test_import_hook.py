"""The import hook owns the modules under an application source root, and nothing else."""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
import uuid
from typing import TYPE_CHECKING

import pytest

from server import code_server
from server.code_server import ModuleProxy
from server.errors import ModuleConflict, UnknownModule

if TYPE_CHECKING:
    from pathlib import Path

    from ._helpers import App


def test_a_module_under_the_root_is_a_managed_proxy(app: App) -> None:
    app.write("mod", "X = 1\n")
    mod = app.import_("mod")
    assert isinstance(mod, ModuleProxy)
    assert sys.modules[app.dotted("mod")] is mod
    assert code_server.is_managed(app.dotted("mod"))
    assert [info.slot for info in code_server.which_versions(app.dotted("mod"))] == ["current"]


def test_a_single_file_module_at_the_root_is_managed_too(app: App) -> None:
    name = f"solo_{uuid.uuid4().hex}"
    (app.root / f"{name}.py").write_text("X = 'solo'\n")
    assert code_server.add_path(app.root) == sorted([app.name, name])
    solo = importlib.import_module(name)
    assert isinstance(solo, ModuleProxy)
    assert solo.X == "solo"


def test_a_module_elsewhere_on_sys_path_imports_as_usual(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    name = f"plain_{uuid.uuid4().hex}"
    (elsewhere / f"{name}.py").write_text("X = 'plain'\n")
    monkeypatch.syspath_prepend(str(elsewhere))
    try:
        plain = importlib.import_module(name)
        assert type(plain) is types.ModuleType
        assert type(plain.__loader__) is importlib.machinery.SourceFileLoader
        assert not code_server.is_managed(name)
        assert code_server.which_versions(name) == []
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("name", ["colorsys", "json.tool", "anyio", "pydantic"])
def test_the_hook_does_not_answer_for_stdlib_or_third_party(app: App, name: str) -> None:
    assert code_server.code_server.find_spec(name, None) is None
    assert not code_server.is_managed(name)


def test_a_stdlib_module_imported_after_add_path_is_a_plain_module(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    colorsys = importlib.import_module("colorsys")
    assert type(colorsys) is types.ModuleType
    assert code_server.which_versions("colorsys") == []


def test_a_second_root_providing_the_same_name_is_refused(app: App, tmp_path: Path) -> None:
    other = tmp_path / "other"
    (other / app.name).mkdir(parents=True)
    (other / app.name / "__init__.py").write_text("")
    with pytest.raises(ModuleConflict, match=app.name):
        code_server.add_path(other)
    assert code_server.root_of(app.name) == app.root.resolve(), "nothing changed"


def test_a_missing_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        code_server.add_path(tmp_path / "missing")


def test_remove_path_forgets_the_modules(tmp_path: Path) -> None:
    root = tmp_path / "src"
    name = f"gone_{uuid.uuid4().hex}"
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("X = 1\n")
    code_server.add_path(root)
    importlib.import_module(name)
    code_server.remove_path(root)
    assert name not in sys.modules
    assert not code_server.is_managed(name)
    assert code_server.which_versions(name) == []


def test_module_proxy_of_an_unmanaged_name_is_refused(app: App) -> None:
    with pytest.raises(UnknownModule, match="colorsys"):
        code_server.module_proxy("colorsys")
    assert code_server.code_server.entry_of("colorsys") is None, "no entry was made up"


def test_loading_an_unmanaged_module_is_refused(app: App) -> None:
    with pytest.raises(UnknownModule, match="json"):
        code_server.load("json", "X = 1\n")
    assert type(sys.modules["json"]) is types.ModuleType
