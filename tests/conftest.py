"""Shared fixtures: every test runs on the asyncio backend, the one the node runs on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from server.kernel import Node
from server.kernel.virtual_time import VirtualTimeEventLoop

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

# The properties are about what a parser accepts, not how fast examples are drawn: on a
# loaded 2-core machine (CI, other jobs) draws can be slow, which must not fail the suite.
settings.register_profile("project", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("project")


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
