"""A module's vsn: its ``__vsn__``, or a hash of its source when it sets none."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest

from server import code_server
from server.errors import UnknownModule

if TYPE_CHECKING:
    from ._helpers import App


def test_the_vsn_is_dunder_vsn_when_set(app: App) -> None:
    version = app.first("mod", '__vsn__ = "1.2.0"\n')
    assert version.vsn == "1.2.0"
    assert code_server.get_vsn(app.dotted("mod")) == "1.2.0"


def test_without_dunder_vsn_the_vsn_is_a_hash_of_the_source(app: App) -> None:
    one = app.first("mod", "X = 1\n").vsn
    same = app.load("mod", "X = 1\n").vsn
    code_server.soft_purge(app.dotted("mod"))
    other = app.load("mod", "X = 2\n").vsn
    assert one == same == hashlib.sha256(b"X = 1\n").hexdigest()[:16]
    assert other != one
    assert code_server.get_vsn(app.dotted("mod")) == other


def test_each_slot_reports_its_own_vsn(app: App) -> None:
    app.first("mod", '__vsn__ = "v1"\n')
    app.load("mod", '__vsn__ = "v2"\n')
    assert app.slots("mod") == [("current", "v2"), ("old", "v1")]


def test_the_vsn_of_a_module_not_loaded_is_unknown(app: App) -> None:
    with pytest.raises(UnknownModule):
        code_server.get_vsn(app.dotted("nothing"))
