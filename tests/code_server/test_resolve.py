"""resolve: the module whose code runs now for a name, managed or not."""

from __future__ import annotations

import json
import sys
import types
import uuid
from typing import TYPE_CHECKING

import pytest

from server import behaviours, code_server
from server.code_server import ModuleProxy
from server.errors import UnknownModule

if TYPE_CHECKING:
    from pathlib import Path

    from ._helpers import App

MOD = """
__vsn__ = "$vsn"
"""


def test_a_managed_module_is_its_current_version_not_its_proxy(app: App) -> None:
    first = app.first("mod", MOD, vsn="v1")
    assert code_server.resolve(app.dotted("mod")) is first.module
    second = app.load("mod", MOD, vsn="v2")
    found = code_server.resolve(app.dotted("mod"))
    assert found is second.module
    assert not isinstance(found, ModuleProxy)


def test_a_managed_module_never_imported_is_imported_through_the_hook(app: App) -> None:
    app.write("lazy", MOD, vsn="v1")
    found = code_server.resolve(app.dotted("lazy"))
    assert found.__vsn__ == "v1"
    assert isinstance(sys.modules[app.dotted("lazy")], ModuleProxy)
    assert app.slots("lazy") == [("current", "v1")]


def test_a_plain_module_is_what_sys_modules_holds() -> None:
    assert code_server.resolve("json") is json


def test_a_plain_module_not_imported_yet_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"plain_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("X = 'plain'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        found = code_server.resolve(name)
        assert type(found) is types.ModuleType
        assert found is sys.modules[name]
        assert not code_server.is_managed(name)
    finally:
        sys.modules.pop(name, None)


def test_a_deleted_module_is_refused_and_nothing_changes(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    code_server.delete(app.dotted("mod"))
    with pytest.raises(UnknownModule, match="deleted"):
        code_server.resolve(app.dotted("mod"))
    assert app.slots("mod") == [("old", "v1")]


def test_a_missing_module_is_refused() -> None:
    name = f"missing_{uuid.uuid4().hex}"
    with pytest.raises(ModuleNotFoundError, match=name):
        code_server.resolve(name)
    assert name not in sys.modules


def test_behaviours_dispatch_through_it(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    second = app.load("mod", MOD, vsn="v2")
    assert behaviours.resolve(app.dotted("mod")) is second.module
