"""Shared fixtures: every test runs on the asyncio backend, the one the node runs on."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from server.kernel import Node
from server.kernel.virtual_time import VirtualTimeEventLoop
from tests._support.nodes import NodeProcess, copy_demo_tree, free_port, set_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

# The properties are about what a parser accepts, not how fast examples are drawn: on a
# loaded 2-core machine (CI, other jobs) draws can be slow, which must not fail the suite.
settings.register_profile("project", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("project")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run only with ``RUN_SLOW=1`` (CI sets it): ``make test`` stays
    under ten minutes on two cores, CI still runs everything."""
    if os.environ.get("RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: runs with RUN_SLOW=1 (as in CI)")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> str | tuple[str, dict[str, object]]:
    """asyncio, on virtual time for tests marked ``virtual_time``
    (see ``server.kernel.virtual_time``): timer rules are tested without waiting."""
    if request.node.get_closest_marker("virtual_time") is not None:
        return ("asyncio", {"loop_factory": VirtualTimeEventLoop})
    return "asyncio"


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    """A running node for one test; every process is killed when the test ends."""
    async with Node(name="test") as running:
        yield running


@pytest.fixture
def demo_tree(tmp_path: Path) -> Path:
    """A private copy of the repository's release sources (specs, apps, sys.config)."""
    return copy_demo_tree(tmp_path / "tree")


@pytest.fixture
def demo_node(demo_tree: Path, request: pytest.FixtureRequest) -> Iterator[NodeProcess]:
    """``server run`` on a copy of the demo, as an OS process, booted; killed at the end.

    Parametrize it indirectly with a number to set the node's descriptor limit.
    """
    port = free_port()
    set_port(demo_tree, port)
    node = NodeProcess(demo_tree, ["run"], port, nofile=getattr(request, "param", None))
    node.start()
    try:
        node.wait_for("release demo 1.0.0 booted")
        yield node
    finally:
        node.kill()
