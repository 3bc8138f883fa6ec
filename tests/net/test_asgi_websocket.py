"""The ASGI websocket scope over real TCP connections (wsproto on both sides)."""

from __future__ import annotations

import contextlib
import os
import socket
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from anyio.abc import SocketAttribute
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    RejectConnection,
    Request,
    TextMessage,
)

from server import kernel
from server.net._asgi_connection import AsgiConfig
from tests.net.test_asgi_connection import serving

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import SocketStream

    from server.kernel import Node, Pid

pytestmark = pytest.mark.usefixtures("asgi_parser")  # each HTTP/1.1 parser in turn

APPS = "tests.net.asgi_apps"


class WsClient:
    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.early: list[object] = []  # events that came with the handshake's answer

    async def events(self) -> list[object]:
        """The next events, reading once if none are buffered."""
        while True:
            found = [*self.early, *self.ws.events()]
            self.early = []
            if found:
                return found
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return []
            self.ws.receive_data(data)

    async def handshake(self, path: str = "/ws", subprotocols: list[str] | None = None) -> Any:
        await self.stream.send(
            self.ws.send(Request(host="t", target=path, subprotocols=subprotocols or []))
        )
        first, *self.early = await self.events()
        return first

    async def send(self, event: object) -> None:
        await self.stream.send(self.ws.send(event))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def ws_connected(app: str) -> AsyncIterator[tuple[WsClient, Pid]]:
    async with serving(AsgiConfig(app=f"{APPS}:{app}")) as (stream, pid):
        yield WsClient(stream), pid


async def test_a_websocket_is_accepted_with_a_subprotocol_echoes_and_sees_the_close_code(
    node: Node,
) -> None:
    async def body() -> None:
        kernel.register("asgi_tester", kernel.self())
        async with ws_connected("ws_echo") as (client, _):
            accepted = await client.handshake(subprotocols=["chat", "other"])
            assert isinstance(accepted, AcceptConnection)
            assert accepted.subprotocol == "chat"
            await client.send(TextMessage(data="hi"))
            (answer,) = await client.events()
            assert isinstance(answer, TextMessage)
            assert answer.data == "echo: hi"
            await client.send(BytesMessage(data=b"abc"))
            (answer,) = await client.events()
            assert isinstance(answer, BytesMessage)
            assert answer.data == b"cba"
            await client.send(CloseConnection(code=1001))
            assert await kernel.receive() == ("ws_disconnect", 1001)

    await node.run_process(body)


async def test_a_message_in_fragments_arrives_whole(node: Node) -> None:
    async def body() -> None:
        async with ws_connected("ws_echo") as (client, _):
            await client.handshake()
            await client.send(TextMessage(data="frag", message_finished=False))
            await client.send(TextMessage(data="ments", message_finished=True))
            (answer,) = await client.events()
            assert isinstance(answer, TextMessage)
            assert answer.data == "echo: fragments"

    await node.run_process(body)


async def test_a_close_before_accept_is_an_http_403(node: Node) -> None:
    async def body() -> None:
        async with ws_connected("ws_refuses") as (client, _):
            refused = await client.handshake()
            assert isinstance(refused, RejectConnection)
            assert refused.status_code == 403

    await node.run_process(body)


async def test_the_application_closes_with_its_code_and_reason(node: Node) -> None:
    async def body() -> None:
        async with ws_connected("ws_closes") as (client, _):
            await client.handshake()
            events = await client.events()
            close = next(e for e in events if isinstance(e, CloseConnection))
            assert (close.code, close.reason) == (4000, "bye")

    await node.run_process(body)


async def test_a_flood_to_an_application_that_never_reads_stays_in_the_network(
    node: Node,
) -> None:
    async def body() -> None:
        kernel.register("asgi_tester", kernel.self())
        async with ws_connected("ws_never_reads") as (client, pid):
            await client.handshake()
            await kernel.receive(lambda m: type(m) is tuple and m[0] == "ws_accepted")
            frame = client.ws.send(BytesMessage(data=b"x" * 65536))
            fd = client.stream.extra(SocketAttribute.raw_socket).fileno()
            sent = 0
            with socket.socket(fileno=os.dup(fd)) as raw:  # a plain, non-blocking socket
                raw.setblocking(False)
                while sent < 256 * 1024 * 1024:  # the kernel's buffers fill long before
                    try:
                        sent += raw.send(frame)
                    except BlockingIOError:
                        break
            assert sent < 256 * 1024 * 1024, "the server read the flood it never asked for"
            assert kernel.is_alive(pid)
            kernel.send(pid, "stop")

    await node.run_process(body)
