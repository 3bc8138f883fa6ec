"""Connected stream pairs and a scripted peer for the handshake tests."""

from __future__ import annotations

import socket
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteStream

from server.dist import _handshake_wire as wire

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

STEP = 5.0


@asynccontextmanager
async def stream_pair() -> AsyncIterator[tuple[BufferedByteStream, BufferedByteStream]]:
    """Two connected buffered streams over a socket pair; both closed at the end."""
    left, right = socket.socketpair()
    a = BufferedByteStream(await SocketStream.from_socket(left))
    b = BufferedByteStream(await SocketStream.from_socket(right))
    try:
        yield a, b
    finally:
        with anyio.CancelScope(shield=True):
            await a.aclose()
            await b.aclose()


class ScriptedPeer:
    """The far end, driven by the test: send bodies, read bodies, see the close."""

    def __init__(self, stream: BufferedByteStream) -> None:
        self.stream = stream

    async def send(self, body: bytes) -> None:
        await self.stream.send(wire.frame(body))

    async def receive(self) -> bytes:
        with anyio.fail_after(STEP):
            length = wire.parse_length(await self.stream.receive_exactly(2))
            return await self.stream.receive_exactly(length)

    async def closed(self) -> bool:
        """Wait until the other side closes the connection (discarding what it sends)."""
        with anyio.fail_after(STEP):
            while True:
                try:
                    await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return True
