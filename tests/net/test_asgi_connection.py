"""An ASGI application served over real TCP connections, message by message (each parser in turn).

Each test accepts one real TCP connection, runs the connection process on it, and talks raw
HTTP/1.1 to it from a client stream: the bytes on the wire are what is checked.
"""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from server import kernel
from server.behaviours.socket_io import SocketIO
from server.net._asgi_connection import AsgiConfig, parse_app, serve_asgi_connection
from server.net.http import HttpLimits

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import SocketStream

    from server.kernel import Node, Pid

pytestmark = pytest.mark.usefixtures("asgi_parser")  # each HTTP/1.1 parser in turn

APPS = "tests.net.asgi_apps"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes = field(repr=False, default=b"")


class Client:
    """Raw HTTP/1.1 over one TCP stream; answers parsed by hand (length, chunked, close)."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def _more(self) -> bool:
        try:
            chunk = await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return False
        self.buffer += chunk
        return True

    async def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            assert await self._more(), f"connection closed; got {self.buffer!r}"
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    async def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            assert await self._more(), "connection closed inside a body"
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    async def answer(self) -> Answer:
        status_line = await self._line()
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while line := await self._line():
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        if status < 200:
            return Answer(status, headers, b"")
        if "content-length" in headers:
            body = await self._take(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int((await self._line()).split(b";")[0], 16):
                body += await self._take(size)
                await self._take(2)
            await self._line()
        else:
            while await self._more():
                pass
            body, self.buffer = self.buffer, b""
        return Answer(status, headers, body)

    async def closed(self) -> bool:
        """True once the server has closed the connection (after what is buffered)."""
        with anyio.fail_after(5):
            while await self._more():
                pass
        return True


@contextlib.asynccontextmanager
async def serving(config: AsgiConfig) -> AsyncIterator[tuple[SocketStream, Pid]]:
    """A client stream to a connection process serving ``config`` on one real TCP
    connection; the process is killed (and its end awaited) at the end."""
    listening = socket.create_server(("127.0.0.1", 0))
    try:
        stream = await anyio.connect_tcp("127.0.0.1", listening.getsockname()[1])
        accepted, _ = listening.accept()
    finally:
        listening.close()
    pid, ref = kernel.spawn_monitor(serve_asgi_connection, SocketIO(accepted), config)
    try:
        async with stream:
            yield stream, pid
    finally:
        kernel.exit(pid, "kill")
        await kernel.receive(lambda m: getattr(m, "ref", None) is ref)


@contextlib.asynccontextmanager
async def connected(
    app: str, *, app_name: str | None = None, **options: Any
) -> AsyncIterator[Client]:
    """A client connected to a connection process serving ``APPS:app`` (or ``app_name``)."""
    async with serving(AsgiConfig(app=app_name or f"{APPS}:{app}", **options)) as (stream, _):
        yield Client(stream)


def get(path: str, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"GET {path} HTTP/1.1\r\nhost: t\r\n{extra}\r\n".encode()


async def test_the_http_scope_carries_the_request_and_keep_alive_serves_the_next(
    node: Node,
) -> None:
    async def body() -> None:
        async with connected("scope_echo") as client:
            await client.send(get("/a%20b/c?x=1&y=%2F", "X-Thing: Value"))
            answer = await client.answer()
            assert answer.status == 200
            scope = json.loads(answer.body)
            assert scope["type"] == "http"
            assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
            assert (scope["method"], scope["http_version"], scope["scheme"]) == (
                "GET",
                "1.1",
                "http",
            )
            assert (scope["path"], scope["raw_path"]) == ("/a b/c", "/a%20b/c")
            assert scope["query_string"] == "x=1&y=%2F"
            assert ["x-thing", "Value"] in scope["headers"]  # names lowercased, values kept
            assert scope["client"][0] == "127.0.0.1"
            assert "date" in answer.headers
            await client.send(get("/second"))  # the same connection, kept alive
            assert json.loads((await client.answer()).body)["path"] == "/second"

    await node.run_process(body)


async def test_a_chunked_request_body_arrives_in_messages_with_more_body(node: Node) -> None:
    async def body() -> None:
        async with connected("body_chunks") as client:
            head = b"POST /u HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
            await client.send(head + b"5\r\nhello\r\n")
            await anyio.wait_all_tasks_blocked()
            await client.send(b"6\r\n world\r\n0\r\n\r\n")
            answer = json.loads((await client.answer()).body)
            assert answer["body"] == "hello world"
            assert answer["sizes"][-1] == 0  # the last message: more_body false, empty
            assert sum(answer["sizes"]) == 11

    await node.run_process(body)


async def test_a_response_sent_in_pieces_goes_out_chunked(node: Node) -> None:
    async def body() -> None:
        async with connected("streamed") as client:
            await client.send(get("/s"))
            answer = await client.answer()
            assert answer.headers["transfer-encoding"] == "chunked"
            assert answer.body == b"one,two,three"

    await node.run_process(body)


async def test_expect_100_continue_is_answered_when_the_application_reads_the_body(
    node: Node,
) -> None:
    async def body() -> None:
        async with connected("body_chunks") as client:
            await client.send(
                b"POST /u HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n"
            )
            interim = await client.answer()
            assert interim.status == 100
            await client.send(b"data")
            final = await client.answer()
            assert json.loads(final.body)["body"] == "data"

    await node.run_process(body)


async def test_an_application_that_raises_before_answering_gets_a_500_and_a_close(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with connected("raises_before") as client:
            await client.send(get("/"))
            answer = await client.answer()
            assert answer.status == 500
            assert answer.headers["connection"] == "close"
            assert await client.closed()

    await node.run_process(body)
    assert "failed before answering" in caplog.text


@pytest.mark.parametrize("app", ["raises_after", "silent"])
async def test_a_response_the_application_cannot_complete_closes_the_connection(
    node: Node, app: str
) -> None:
    async def body() -> None:
        async with connected(app) as client:
            await client.send(get("/"))
            if app == "silent":
                assert (await client.answer()).status == 500
            else:
                await client._line()  # the status line of the half-sent answer
            assert await client.closed()

    await node.run_process(body)


async def test_a_body_over_the_limit_gets_413_and_the_application_sees_a_disconnect(
    node: Node,
) -> None:
    async def body() -> None:
        limits = HttpLimits(max_head_bytes=4096, max_body_bytes=8)
        async with connected("body_chunks", limits=limits) as client:
            await client.send(
                b"POST /u HTTP/1.1\r\nhost: t\r\ncontent-length: 20\r\n\r\n" + b"x" * 20
            )
            answer = await client.answer()
            assert answer.status == 413
            assert await client.closed()

    await node.run_process(body)


async def test_a_head_over_the_limit_is_refused_431(node: Node) -> None:
    async def body() -> None:
        limits = HttpLimits(max_head_bytes=256, max_body_bytes=1024)
        async with connected("scope_echo", limits=limits) as client:
            await client.send(get("/", f"x-big: {'y' * 600}"))
            answer = await client.answer()
            assert answer.status == 431
            assert await client.closed()

    await node.run_process(body)


async def test_receive_after_the_body_waits_for_the_client_to_go_away(node: Node) -> None:
    async def body() -> None:
        kernel.register("asgi_tester", kernel.self())
        async with connected("waits_for_disconnect") as client:
            await client.send(b"POST /w HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\nok")
            await kernel.receive(lambda m: type(m) is tuple and m[0] == "waiting")
            await client.stream.aclose()
            got = await kernel.receive(lambda m: type(m) is tuple and m[0] == "after_body")
            assert got == ("after_body", {"type": "http.disconnect"})

    await node.run_process(body)


async def test_receive_after_a_complete_response_is_a_disconnect_at_once(node: Node) -> None:
    async def body() -> None:
        kernel.register("asgi_tester", kernel.self())
        async with connected("reports_disconnect_after_response") as client:
            await client.send(get("/"))
            assert (await client.answer()).status == 200
            got = await kernel.receive(lambda m: type(m) is tuple and m[0] == "after_response")
            assert got == ("after_response", {"type": "http.disconnect"})

    await node.run_process(body)


@pytest.mark.parametrize("text", ["module", "module:", ":app", "a b:app", "mod:1x"])
def test_an_application_name_is_module_colon_attribute(text: str) -> None:
    with pytest.raises(ValueError, match="module:attribute"):
        parse_app(text)
