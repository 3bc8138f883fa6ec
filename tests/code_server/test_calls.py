"""Qualified calls run the newest code, local calls their own version, ``from`` imports stay."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._helpers import App

MOD = """
    from server.code_server import module_proxy

    this = module_proxy(__name__)


    def version():
        return "$vsn"


    def local():
        return version()  # a local call: this version's own function


    def qualified():
        return this.version()  # a qualified call: the current version's
"""

CLIENT = """
    import $app.mod
    from $app import mod as aliased
    from $app.mod import version as captured


    def through_import():
        return $app.mod.version()


    def through_alias():
        return aliased.version()


    def through_capture():
        return captured()
"""


def test_a_qualified_call_runs_the_newest_version(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    mod = app.import_("mod")
    assert mod.version() == "v1"
    app.load("mod", MOD, vsn="v2")
    assert mod.version() == "v2"


def test_a_local_call_inside_a_module_runs_its_own_version(app: App) -> None:
    old = app.first("mod", MOD, vsn="v1").module
    mod = app.import_("mod")
    app.load("mod", MOD, vsn="v2")
    assert old.local() == "v1", "old code calling a bare name stays in old code"
    assert old.qualified() == "v2", "old code making a qualified call reaches the new"
    assert mod.local() == "v2"


def test_qualified_calls_from_another_module_run_the_newest(app: App) -> None:
    app.first("mod", MOD, vsn="v1")
    client = app.first("client", CLIENT).module
    app.load("mod", MOD, vsn="v2")
    assert client.through_import() == "v2"
    assert client.through_alias() == "v2"


def test_from_import_keeps_the_version_of_import_time(app: App) -> None:
    old = app.first("mod", MOD, vsn="v1").module
    client = app.first("client", CLIENT).module
    app.load("mod", MOD, vsn="v2")
    assert client.through_capture() == "v1"
    assert client.captured is old.version, "a fun of the version current at import"
