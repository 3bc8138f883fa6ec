"""Helpers for the HTTP server tests: bounded waits and a minimal HTTP/1.1 client.

The client is written independently of ``server.net.http`` (it parses *responses*, the
parser under test parses requests), so a bug in the writer cannot hide behind the same
bug in the reader. Every wait runs under ``anyio.fail_after`` and names its step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from tests._support.waits import STEP as STEP
from tests._support.waits import reason_of as reason_of
from tests._support.waits import step as step
from tests._support.waits import within as within

if TYPE_CHECKING:
    from anyio.abc import SocketStream


@dataclass(frozen=True, slots=True)
class Reply:
    """One response as the client read it."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Client:
    """One client connection: write raw bytes, read responses one at a time."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def connect(cls, port: int) -> Client:
        return cls(await within(anyio.connect_tcp("127.0.0.1", port), "connect"))

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stream.aclose()

    async def send(self, data: bytes) -> None:
        await within(self.stream.send(data), "send")

    async def get(self, target: str, *headers: str) -> Reply:
        head = "".join(f"{h}\r\n" for h in headers)
        await self.send(f"GET {target} HTTP/1.1\r\nHost: test\r\n{head}\r\n".encode())
        return await self.read_response()

    async def post(self, target: str, body: bytes) -> Reply:
        head = f"POST {target} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n\r\n"
        await self.send(head.encode() + body)
        return await self.read_response()

    async def _fill(self, name: str) -> None:
        self.buffer += await within(self.stream.receive(), name)

    async def read_response(self, *, head_only: bool = False) -> Reply:
        """Read one response (its body framed by Content-Length)."""
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            await self._fill("response head")
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        version, code, _phrase = lines[0].split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        headers = tuple(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(":") for line in lines[1:])
        )
        reply = Reply(int(code), headers, b"")
        length = 0 if head_only else int(reply.header("content-length") or 0)
        while len(self.buffer) < length:
            await self._fill("response body")
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return Reply(reply.status, headers, body)

    async def closed_by_peer(self) -> bool:
        """Wait for the server to close; True when it did with nothing more to read."""
        with step("server closes the connection"):
            try:
                extra = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                return not self.buffer
        raise AssertionError(f"more bytes instead of the end of the stream: {extra!r}")
