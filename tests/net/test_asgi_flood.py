"""Hostile WebSocket clients: a flood that is never read, a client that never reads.

The bounds are asserted on the connection process's own counters (``websocket_io``), not
on time: what it read, what it wrote, the most it held at once.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

import pytest
from anyio.abc import SocketAttribute
from wsproto.events import BytesMessage, CloseConnection

from server import kernel
from server.behaviours.socket_io import DEFAULT_READ_SIZE
from server.net._asgi_connection import AsgiConfig
from server.net._asgi_websocket import DEFAULT_MAX_MESSAGE, WebSocketCounters
from tests._support.waits import within
from tests.net.test_asgi_connection import serving
from tests.net.test_asgi_websocket import WsClient

if TYPE_CHECKING:
    from anyio.abc import SocketStream

    from server.kernel import Node, Pid

pytestmark = pytest.mark.usefixtures("asgi_parser")  # each HTTP/1.1 parser in turn

LIMIT = 256 * 1024 * 1024  # far beyond what the kernel's socket buffers hold


def _flood(stream: SocketStream, frame: bytes) -> int:
    """Send ``frame`` again and again without blocking until the socket takes no more."""
    fd = stream.extra(SocketAttribute.raw_socket).fileno()
    sent = 0
    with socket.socket(fileno=os.dup(fd)) as raw:
        raw.setblocking(False)
        while sent < LIMIT:
            try:
                sent += raw.send(frame)
            except BlockingIOError:
                break
    return sent


def _counters(pid: Pid) -> WebSocketCounters:
    counters = kernel.get_label(pid, "websocket_io")
    assert isinstance(counters, WebSocketCounters)
    return counters


async def _told(tag: str) -> object:
    return await within(kernel.receive(lambda m: type(m) is tuple and m[0] == tag), tag)


async def test_a_flood_the_application_never_reads_is_not_read_by_the_process(
    node: Node,
) -> None:
    async def body() -> None:
        kernel.register("asgi_tester", kernel.self())
        async with serving(AsgiConfig(app="tests.net.asgi_apps:ws_never_reads")) as (s, pid):
            client = WsClient(s)
            await client.handshake()
            await _told("ws_accepted")
            sent = _flood(s, client.ws.send(BytesMessage(data=b"x" * 65536)))
            assert sent < LIMIT
            counters = _counters(pid)
            assert counters.bytes_in == 0  # all of it waits in the kernel's buffers
            assert kernel.is_alive(pid)
            kernel.send(pid, "stop")

    await node.run_process(body)


async def test_an_echo_flood_from_a_client_that_never_reads_is_pushed_back(node: Node) -> None:
    async def body() -> None:
        async with serving(AsgiConfig(app="tests.net.asgi_apps:ws_echo")) as (s, pid):
            client = WsClient(s)
            await client.handshake()
            sent = _flood(s, client.ws.send(BytesMessage(data=b"y" * 65536)))
            assert sent < LIMIT, "the server read on while its answers could not go out"
            counters = _counters(pid)
            assert counters.most_held <= DEFAULT_READ_SIZE + 65536 + 14
            # what it read and did not answer yet: one read and one message at most
            assert counters.bytes_in - counters.bytes_out <= DEFAULT_READ_SIZE + 2 * 65536
            assert kernel.is_alive(pid)

    await node.run_process(body)


async def test_a_message_over_the_limit_closes_with_1009_holding_no_more_than_the_limit(
    node: Node,
) -> None:
    async def body() -> None:
        async with serving(AsgiConfig(app="tests.net.asgi_apps:ws_echo")) as (s, pid):
            client = WsClient(s)
            await client.handshake()
            part = b"z" * 65536
            close: CloseConnection | None = None
            for _ in range(DEFAULT_MAX_MESSAGE // len(part) + 8):
                try:
                    await client.send(BytesMessage(data=part, message_finished=False))
                except OSError:
                    break
            events = await within(client.events(), "close")
            close = next(e for e in events if isinstance(e, CloseConnection))
            assert close.code == 1009
            assert _counters(pid).most_held <= DEFAULT_MAX_MESSAGE + DEFAULT_READ_SIZE

    await node.run_process(body)


async def test_a_client_that_never_reads_blocks_the_sender_and_is_cut_off(node: Node) -> None:
    async def body() -> None:
        kernel.register("asgi_tester", kernel.self())
        config = AsgiConfig(
            app="tests.net.asgi_conformance_apps:ws_sends_forever", send_timeout=0.3
        )
        async with serving(config) as (s, pid):
            client = WsClient(s)
            await client.handshake()
            told = await _told("saw")
            assert isinstance(told, tuple)
            sent, why = told[1]
            assert why == "ClientDisconnected"
            frame = 262144 + 10  # a binary frame of 256 KiB: its header is 10 bytes
            counters = _counters(pid)
            # nothing queued in the process: what went out is what the sends returned from
            assert sent * frame <= counters.bytes_out < (sent + 1) * frame
            assert counters.bytes_out < 64 * 1024 * 1024

    await node.run_process(body)


async def test_an_http_client_that_never_reads_blocks_the_response_and_is_cut_off(
    node: Node,
) -> None:
    async def body() -> None:
        kernel.register("asgi_tester", kernel.self())
        app = "tests.net.asgi_conformance_apps:streams_until_the_client_goes"
        async with serving(AsgiConfig(app=app, send_timeout=0.3)) as (s, _):
            await s.send(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
            assert await _told("saw") == ("saw", "started")
            assert await _told("saw") == ("saw", "ClientDisconnected")  # never read a byte

    await node.run_process(body)
