"""Each version is a real module object with its own globals; sys.modules holds a proxy."""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from server import code_server
from server.code_server import ModuleProxy

if TYPE_CHECKING:
    from ._helpers import App

COUNTER = """
    import sys

    __vsn__ = "$vsn"
    counter = 0
    SEEN_AS = sys.modules[__name__]  # what the import system shows while the body runs


    def bump():
        global counter
        counter += 1
        return counter
"""


def test_each_version_is_a_real_module_with_its_own_globals(app: App) -> None:
    v1 = app.first("counter", COUNTER, vsn="v1")
    v2 = app.load("counter", COUNTER, vsn="v2")
    for version in (v1, v2):
        assert type(version.module) is types.ModuleType
        assert version.module.bump.__globals__ is version.module.__dict__
    assert v1.module is not v2.module
    assert v1.module.__dict__ is not v2.module.__dict__
    assert (v1.module.__vsn__, v2.module.__vsn__) == ("v1", "v2")


def test_module_level_state_belongs_to_one_version(app: App) -> None:
    v1 = app.first("counter", COUNTER, vsn="v1")
    counter = app.import_("counter")
    assert [counter.bump() for _ in range(3)] == [1, 2, 3]
    app.load("counter", COUNTER, vsn="v2")
    assert counter.bump() == 1, "the new version starts from its own body"
    assert counter.counter == 1
    assert v1.module.counter == 3, "the old version keeps its own state"


def test_sys_modules_holds_one_stable_proxy_forwarding_to_current(app: App) -> None:
    app.first("counter", COUNTER, vsn="v1")
    proxy = sys.modules[app.dotted("counter")]
    assert isinstance(proxy, ModuleProxy)
    assert proxy.__vsn__ == "v1"
    app.load("counter", COUNTER, vsn="v2")
    assert sys.modules[app.dotted("counter")] is proxy
    assert app.import_("counter") is proxy
    assert proxy.__vsn__ == "v2"


def test_the_version_itself_is_in_sys_modules_while_its_body_runs(app: App) -> None:
    v1 = app.first("counter", COUNTER, vsn="v1")
    v2 = app.load("counter", COUNTER, vsn="v2")
    assert v1.module.SEEN_AS is v1.module
    assert v2.module.SEEN_AS is v2.module
    assert isinstance(sys.modules[app.dotted("counter")], ModuleProxy), "put back afterwards"


def test_the_proxy_namespace_is_the_current_versions(app: App) -> None:
    app.first("counter", COUNTER, vsn="v1")
    proxy = app.import_("counter")
    v2 = app.load("counter", COUNTER, vsn="v2")
    assert vars(proxy) is v2.module.__dict__
    assert "bump" in dir(proxy)


def test_setting_and_deleting_through_the_proxy_changes_the_current_version(app: App) -> None:
    v1 = app.first("counter", COUNTER, vsn="v1")
    proxy = app.import_("counter")
    attr = "extra"
    setattr(proxy, attr, "set")
    assert v1.module.extra == "set"
    delattr(proxy, attr)
    assert not hasattr(v1.module, attr)


def test_a_proxy_repr_names_the_current_file(app: App) -> None:
    v1 = app.first("counter", COUNTER, vsn="v1")
    assert v1.path in repr(code_server.module_proxy(app.dotted("counter")))
