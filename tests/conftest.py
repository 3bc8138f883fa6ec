"""Shared fixtures: every test runs on the asyncio backend, the one the node runs on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server.kernel import Node
from server.kernel.virtual_time import VirtualTimeEventLoop

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    """A running node for one test; every process is killed when the test ends."""
    async with Node(name="test") as running:
        yield running


@pytest.fixture
def virtual_time() -> tuple[str, dict[str, object]]:
    """Backend options for a loop on virtual time (see ``server.kernel.virtual_time``)."""
    return ("asyncio", {"loop_factory": VirtualTimeEventLoop})
