"""``[node.dist] connect``: the peers a node connects to at boot, retried, or given up."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.behaviours import supervisor
from server.dist._supervisor import NAME as DIST_SUP
from tests._support.erl_shell import running_erl_shell
from tests._support.waits import down, within

from .conftest import COOKIE, distributed, settings

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Node
    from tests._support.erl_nodes import Epmd

pytestmark = pytest.mark.timeout(60)


async def _connector_done() -> None:
    children = await within(supervisor.which_children(DIST_SUP), "which_children")
    for child in children:  # a temporary child that has ended is no longer listed
        if child.id == "connect_peers" and not isinstance(child.pid, str | None):
            await down(kernel.monitor(child.pid), step="the connecting process ends")


async def test_a_listed_peer_is_connected_and_a_missing_one_given_up_after_the_timeout(
    node: Node, epmd: Epmd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.dist")

    async def body() -> None:
        config = settings(
            epmd,
            connect=["py@localhost", "e1@localhost", "ghost@localhost"],
            connect_timeout=0.5,
        )
        async with (
            running_erl_shell("e1", epmd=epmd, cookie=COOKIE, home=tmp_path),
            distributed(config),
        ):
            await _connector_done()
            assert "e1@localhost" in kernel.nodes("visible")
        said = [r.getMessage() for r in caplog.records if r.name == "server.dist"]
        assert "connected to peer e1@localhost" in said
        assert "gave up on peer ghost@localhost: no answer within 0.5 s" in said
        assert not any("peer py@" in line for line in said)  # itself: nothing to do

    await node.run_process(body)


async def test_no_peers_listed_starts_no_connecting_process(node: Node, epmd: Epmd) -> None:
    async def body() -> None:
        async with distributed(settings(epmd)):
            children = await within(supervisor.which_children(DIST_SUP), "which_children")
            assert "connect_peers" not in [c.id for c in children if c.pid is not None]

    await node.run_process(body)
