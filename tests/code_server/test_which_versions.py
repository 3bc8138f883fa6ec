"""which_versions and all_loaded: what is in memory, current first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import code_server
from server.code_server import VersionInfo

if TYPE_CHECKING:
    from ._helpers import App

MOD = '__vsn__ = "$vsn"\n'


def test_which_versions_of_an_unknown_module_is_empty(app: App) -> None:
    assert code_server.which_versions(app.dotted("nothing")) == []


def test_which_versions_lists_current_then_old(app: App) -> None:
    first = app.first("mod", MOD, vsn="v1")
    second = app.load("mod", MOD, vsn="v2")
    name = app.dotted("mod")
    assert code_server.which_versions(name) == [
        VersionInfo(name, "current", "v2", second.path, second.loaded_at),
        VersionInfo(name, "old", "v1", first.path, first.loaded_at),
    ]
    assert first.loaded_at <= second.loaded_at


def test_all_loaded_lists_every_version_of_every_module_by_name(app: App) -> None:
    app.first("b", MOD, vsn="b1")
    app.load("b", MOD, vsn="b2")
    app.first("a", MOD, vsn="a1")
    mine = [
        (info.module, info.slot, info.vsn)
        for info in code_server.all_loaded()
        if info.module.startswith(app.name + ".")
    ]
    assert mine == [
        (app.dotted("a"), "current", "a1"),
        (app.dotted("b"), "current", "b2"),
        (app.dotted("b"), "old", "b1"),
    ]
    assert app.name in {info.module for info in code_server.all_loaded()}, "the package too"
