"""The net kernel's connection table when both nodes dial each other (real net kernel).

The Python node runs in the test process (``py@localhost``); the other node is scripted
with the library's own handshake (``tests.dist._handshake_support``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketListener
from anyio.streams.buffered import BufferedByteStream

from server import dist, kernel
from server.dist import HIDDEN_FLAGS, EpmdClient, handshake
from server.dist import _handshake_wire as wire
from server.dist._handshake_wire import STATUSES
from tests._support.waits import step
from tests.dist._handshake_support import ScriptedPeer
from tests.dist.conftest import COOKIE, distributed, settings

if TYPE_CHECKING:
    from server.kernel import Node
    from tests._support.erl_nodes import Epmd

pytestmark = pytest.mark.timeout(60)

PY = "py@localhost"
PEER = "zz@localhost"  # greater than PY: its attempt wins a simultaneous connect


async def test_a_dialer_whose_place_was_taken_answers_alive_with_false(
    node: Node, epmd: Epmd
) -> None:
    """Our attempt to the peer is under way when the peer's own connection to us comes up
    (the greater name's wins: ours steps aside). The peer, connected now, answers our late
    attempt ``alive``: we must say ``false`` (our connection to it is alive: the one it
    made), as Erlang's ``is_pending`` does; ``true`` would make it drop that connection."""

    async def body() -> None:
        async with (
            distributed(settings(epmd)),
            await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        ):
            port = listener.extra(SocketAttribute.local_port)
            registration = await EpmdClient("127.0.0.1", epmd.port).register(
                "zz", port, hidden=True
            )
            async with registration:
                kernel.send(("someone", PEER), "hello")  # auto-connect: our dialer starts
                inner = listener.listeners[0]
                assert isinstance(inner, SocketListener)
                with step("our dialer connects"):
                    accepted = BufferedByteStream(await inner.accept())
                async with accepted:
                    ours = ScriptedPeer(accepted)
                    assert wire.parse_send_name(await ours.receive()).name == PY
                    report = await dist.node_report()
                    theirs = BufferedByteStream(
                        await anyio.connect_tcp("127.0.0.1", report["port"])
                    )
                    async with theirs:
                        with step("the peer's own attempt"):
                            done = await handshake.initiate(
                                theirs,
                                our_name=PEER,
                                peer_name=PY,
                                our_flags=int(HIDDEN_FLAGS),
                                our_creation=5,
                                cookie=COOKIE,
                                setup_timeout=5.0,
                            )
                        assert done.status == "ok_simultaneous"
                        await ours.send(wire.pack_status("alive"))
                        answer = wire.parse_status(
                            await ours.receive(), STATUSES | {"true", "false"}
                        )
                        assert answer.status == "false"
                        assert await ours.closed()
                        rows = [row for row in await dist.connections() if row.node == PEER]
                        assert [(row.state, row.direction) for row in rows] == [("up", "in")]

    await node.run_process(body)
