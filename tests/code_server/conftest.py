"""Fixtures of the code server tests: a fresh application source tree per test."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from server import code_server

from ._helpers import App

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """An application package under a name no other test uses, managed by the code server.

    Module names are process-global (like ``sys.modules``), so each test gets its own
    top-level package ``app_<hex>``; its modules are forgotten when the test ends.
    """
    root = tmp_path / "src"
    root.mkdir()
    tree = App(name=f"app_{uuid.uuid4().hex}", root=root)
    tree.write("", '"""The application package of one test."""\n')
    managed = code_server.add_path(root)
    assert managed == [tree.name]
    try:
        yield tree
    finally:
        code_server.remove_path(root)
