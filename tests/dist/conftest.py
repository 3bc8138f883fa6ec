"""Fixtures of the distribution tests: an EPMD of the test's own, a distributed node here."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest

from server import dist, kernel
from server.spec import DistSettings
from tests._support.erl_nodes import Epmd, running_epmd
from tests._support.waits import down, step

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

COOKIE = "interop-cookie"
RPC_ALLOW = [
    "tests.dist._targets:add",
    "tests.dist._targets:slow_double",
    "tests.dist._targets:fail",
]


@pytest.fixture
async def epmd() -> AsyncIterator[Epmd]:
    """An EPMD on a free loopback port, stopped by its pid at the end."""
    async with running_epmd() as running:
        yield running


def settings(epmd: Epmd, name: str = "py@localhost", **overrides: object) -> DistSettings:
    """``[node.dist]`` for a node of the test, pointed at the test's EPMD."""
    values: dict[str, object] = {
        "name": name,
        "cookie": COOKIE,
        "epmd_port": epmd.port,
        "start_epmd": False,
        "net_ticktime": 60.0,
        "rpc_allow": RPC_ALLOW,
    }
    values.update(overrides)
    return DistSettings.model_validate(values)


@asynccontextmanager
async def distributed(config: DistSettings) -> AsyncIterator[str]:
    """This node distributed under ``config`` (inside a process); stopped at the end."""
    with step("start the distribution"):
        sup = await dist.start_link(config)
    try:
        yield kernel.node()
    finally:
        ref = kernel.monitor(sup)
        kernel.unlink(sup)
        kernel.exit(sup, kernel.SHUTDOWN)
        await down(ref, step="stop the distribution")
