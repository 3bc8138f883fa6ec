"""Fixtures of the HTTP server tests: a handler module owned by the code server."""

from __future__ import annotations

import dataclasses
import importlib
import textwrap
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from server import code_server
from server.net import http_server
from server.net._http11 import PARSERS

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class HandlerModule:
    """An application handler module under a name no other test uses."""

    name: str
    path: Path

    def write(self, source: str) -> None:
        """Replace the module's source file (what an edit on disk does)."""
        self.path.write_text(textwrap.dedent(source), encoding="utf-8")


@pytest.fixture
def handler_module(tmp_path: Path) -> Iterator[HandlerModule]:
    """A top-level module ``net_handler_<hex>`` in a source root given to the code server.

    Write its first version with ``write``; ``importlib.import_module`` then loads it and
    ``code_server.load(name)`` loads the file again as a new version.
    """
    root = tmp_path / "src"
    root.mkdir()
    name = f"net_handler_{uuid.uuid4().hex}"
    module = HandlerModule(name=name, path=root / f"{name}.py")
    module.write('"""Not written yet."""\n')
    assert code_server.add_path(root) == [name]
    importlib.invalidate_caches()
    try:
        yield module
    finally:
        code_server.remove_path(root)


@pytest.fixture(params=PARSERS)
def asgi_parser(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each HTTP/1.1 parser in turn as the node's ``[node.http] parser`` (ASGI connections)."""
    parser: str = request.param
    before = http_server.node_defaults()
    http_server.configure(dataclasses.replace(before, parser=request.param))
    try:
        yield parser
    finally:
        http_server.configure(before)
