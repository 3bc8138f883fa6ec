"""The ASGI conformance table: every message type of the http, websocket and lifespan scopes.

Each row names an application of ``asgi_conformance_apps`` (what it sends and receives),
the client's side of the exchange (a scenario over a real TCP connection), and what the
scenario observes: what the client saw on the wire, what the application saw (``saw``),
and whether the server logged the application's error.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    RejectConnection,
    TextMessage,
)

from server import kernel
from server.behaviours import gen_server
from server.errors import StartError
from server.net import asgi_lifespan
from server.net._asgi_connection import AsgiConfig
from tests._support.waits import within
from tests.net.test_asgi_connection import Client, get, serving
from tests.net.test_asgi_websocket import WsClient

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from server.kernel import Node

pytestmark = pytest.mark.usefixtures("asgi_parser")  # each HTTP/1.1 parser in turn

APPS = "tests.net.asgi_conformance_apps"


async def _saw() -> object:
    message = await within(kernel.receive(lambda m: type(m) is tuple and m[0] == "saw"), "saw")
    assert isinstance(message, tuple)
    return message[1]


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    """A log line of the server's says ``text`` (in its message or its traceback)."""
    return text in caplog.text


# -- scenarios: the client's side ------------------------------------------------------------


async def post_in_chunks(app: str, caplog: pytest.LogCaptureFixture) -> object:
    async with serving(AsgiConfig(app=f"{APPS}:{app}")) as (stream, _):
        client = Client(stream)
        await client.send(
            b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
            b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
        )
        answer = await within(client.answer(), "answer")
        return answer.status, await _saw()


async def get_and_what_it_saw(app: str, caplog: pytest.LogCaptureFixture) -> object:
    async with serving(AsgiConfig(app=f"{APPS}:{app}")) as (stream, _):
        client = Client(stream)
        await client.send(get("/"))
        answer = await within(client.answer(), "answer")
        return answer.status, answer.body, await _saw()


async def get_streamed(app: str, caplog: pytest.LogCaptureFixture) -> object:
    async with serving(AsgiConfig(app=f"{APPS}:{app}")) as (stream, _):
        client = Client(stream)
        await client.send(get("/"))
        answer = await within(client.answer(), "answer")
        headers = answer.headers
        return answer.status, headers["x-a"], headers["transfer-encoding"], answer.body


async def get_logged(app: str, caplog: pytest.LogCaptureFixture) -> object:
    async with serving(AsgiConfig(app=f"{APPS}:{app}")) as (stream, _):
        client = Client(stream)
        await client.send(get("/"))
        answer = await within(client.answer(), "answer")
        closed = answer.headers.get("connection") == "close" and await client.closed()
        return answer.status, closed, _logged(caplog, "unexpected ASGI message")


async def get_then_late_body(app: str, caplog: pytest.LogCaptureFixture) -> object:
    async with serving(AsgiConfig(app=f"{APPS}:{app}")) as (stream, _):
        client = Client(stream)
        await client.send(get("/"))
        answer = await within(client.answer(), "answer")
        seen = await _saw()
        await client.send(get("/"))  # the connection still serves: the answer was whole
        again = await within(client.answer(), "again")
        return answer.status, answer.body, seen, again.status, _logged(caplog, "failed on GET")


async def abort_mid_request(app: str, caplog: pytest.LogCaptureFixture) -> object:
    async with serving(AsgiConfig(app=f"{APPS}:{app}")) as (stream, _):
        await stream.send(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nabc")
        await stream.send_eof()  # gone, 7 bytes short
        return await _saw()


async def abort_mid_response(app: str, caplog: pytest.LogCaptureFixture) -> object:
    async with serving(AsgiConfig(app=f"{APPS}:{app}")) as (stream, _):
        await stream.send(get("/"))
        assert await _saw() == "started"
        await stream.receive()
        await stream.aclose()  # with unread data: a reset
        return await _saw()


async def ws_handshake_and_one_message(app: str, caplog: pytest.LogCaptureFixture) -> object:
    async with serving(AsgiConfig(app=f"{APPS}:{app}")) as (stream, _):
        client = WsClient(stream)
        accepted = await within(client.handshake(subprotocols=["a", "chat"]), "handshake")
        assert isinstance(accepted, AcceptConnection)
        connect = await _saw()
        await client.send(TextMessage(data="hi"))
        headers = dict(accepted.extra_headers)
        return connect, accepted.subprotocol, headers.get(b"x-extra"), await _saw()


async def ws_text_bytes_then_close(app: str, caplog: pytest.LogCaptureFixture) -> object:
    async with serving(AsgiConfig(app=f"{APPS}:{app}")) as (stream, _):
        client = WsClient(stream)
        await within(client.handshake(), "handshake")
        await client.send(TextMessage(data="abc"))
        (text,) = await within(client.events(), "text")
        await client.send(BytesMessage(data=b"abc"))
        (data,) = await within(client.events(), "bytes")
        assert isinstance(text, TextMessage)
        assert isinstance(data, BytesMessage)
        await client.send(CloseConnection(code=4002))
        return text.data, bytes(data.data), await _saw()


async def ws_server_close(app: str, caplog: pytest.LogCaptureFixture) -> object:
    async with serving(AsgiConfig(app=f"{APPS}:{app}")) as (stream, _):
        client = WsClient(stream)
        first = await within(client.handshake(), "handshake")
        if isinstance(first, RejectConnection):
            return "rejected", first.status_code, _logged(caplog, "unexpected ASGI message")
        events = await within(client.events(), "close")
        close = next(e for e in events if isinstance(e, CloseConnection))
        return close.code, close.reason, _logged(caplog, "unexpected ASGI message")


async def ws_denied(app: str, caplog: pytest.LogCaptureFixture) -> object:
    async with serving(AsgiConfig(app=f"{APPS}:{app}")) as (stream, _):
        client = WsClient(stream)
        first = await within(client.handshake(), "handshake")
        offered = await _saw()
        assert isinstance(first, RejectConnection)
        return offered, first.status_code, _logged(caplog, "unexpected ASGI message")


async def ws_close_then_send(app: str, caplog: pytest.LogCaptureFixture) -> object:
    async with serving(AsgiConfig(app=f"{APPS}:{app}")) as (stream, _):
        client = WsClient(stream)
        await within(client.handshake(), "handshake")
        events = await within(client.events(), "close")
        close = next(e for e in events if isinstance(e, CloseConnection))
        return close.code, await _saw()


async def lifespan_start_and_stop(app: str, caplog: pytest.LogCaptureFixture) -> object:
    try:
        pid = await within(asgi_lifespan.start_link(f"{APPS}:{app}"), "start")
    except StartError as error:
        return "start failed", str(error)
    startup = await _saw()
    kernel.unlink(pid)
    await within(gen_server.stop(pid, "shutdown"), "stop")
    return startup, await _saw(), _logged(caplog, "failed: could not flush")


ROWS = [
    # http: what the application receives and sends, what the client sees
    pytest.param(
        "request_messages",
        post_in_chunks,
        (
            200,
            [
                ("http.request", b"ab", True),
                ("http.request", b"cd", True),
                ("http.request", b"", False),
            ],
        ),
        id="http.request-more_body",
    ),
    pytest.param(
        "disconnect_after_response",
        get_and_what_it_saw,
        (200, b"ok", "http.disconnect"),
        id="http.disconnect-after-the-response",
    ),
    pytest.param(
        "streams",
        get_streamed,
        (201, "1", "chunked", b"abc"),
        id="http.response.start-body-more_body",
    ),
    pytest.param(
        "disconnect_mid_request",
        abort_mid_request,
        ["http.request", "http.disconnect"],
        id="client-abort-mid-request",
    ),
    pytest.param(
        "streams_until_the_client_goes",
        abort_mid_response,
        "ClientDisconnected",
        id="client-abort-mid-response",
    ),
    pytest.param(
        "sends_a_websocket_message_in_http",
        get_logged,
        (500, True, True),
        id="http-wrong-message-type-500-logged",
    ),
    pytest.param(
        "sends_after_the_response",
        get_then_late_body,
        (200, b"ok", "http.response.body after the response was complete", 200, True),
        id="http-message-after-the-response",
    ),
    # websocket
    pytest.param(
        "ws_accepts_with_headers",
        ws_handshake_and_one_message,
        ("websocket.connect", "chat", b"yes", {"type": "websocket.receive", "text": "hi"}),
        id="websocket.connect-accept-subprotocol-headers",
    ),
    pytest.param(
        "ws_echo_both",
        ws_text_bytes_then_close,
        ("ABC", b"cba", {"type": "websocket.disconnect", "code": 4002}),
        id="websocket.receive-send-text-bytes-disconnect-code",
    ),
    pytest.param(
        "ws_closes_with_a_reason",
        ws_server_close,
        (4000, "bye", False),
        id="websocket.close-code-reason",
    ),
    pytest.param(
        "ws_closes_before_accept",
        ws_server_close,
        ("rejected", 403, False),
        id="websocket.close-before-accept-403",
    ),
    pytest.param(
        "ws_denial_response",
        ws_denied,
        (False, 500, True),
        id="websocket.http.response-not-offered-500-logged",
    ),
    pytest.param(
        "ws_sends_an_http_message",
        ws_server_close,
        (1011, "", True),
        id="websocket-wrong-message-type-1011-logged",
    ),
    pytest.param(
        "ws_sends_after_close",
        ws_close_then_send,
        (1000, "ClientDisconnected"),
        id="websocket.send-after-close",
    ),
    # lifespan
    pytest.param(
        "lifespan_completes",
        lifespan_start_and_stop,
        ("lifespan.startup", "lifespan.shutdown", False),
        id="lifespan.startup-shutdown-complete",
    ),
    pytest.param(
        "lifespan_startup_fails",
        lifespan_start_and_stop,
        (
            "start failed",
            "server.net.asgi_lifespan failed to start: ('lifespan_startup_failed', 'no database')",
        ),
        id="lifespan.startup.failed",
    ),
    pytest.param(
        "lifespan_shutdown_fails",
        lifespan_start_and_stop,
        ("lifespan.startup", "lifespan.shutdown", True),
        id="lifespan.shutdown.failed-logged",
    ),
    pytest.param(
        "lifespan_sends_a_wrong_message",
        lifespan_start_and_stop,
        (
            "start failed",
            "server.net.asgi_lifespan failed to start: ('lifespan_startup_failed', "
            "\"unexpected message {'type': 'http.response.start', 'status': 200}\")",
        ),
        id="lifespan-wrong-message-type",
    ),
]


@pytest.mark.parametrize(("app", "scenario", "expected"), ROWS)
async def test_conformance(
    node: Node,
    caplog: pytest.LogCaptureFixture,
    app: str,
    scenario: Callable[[str, pytest.LogCaptureFixture], Awaitable[object]],
    expected: object,
) -> None:
    caplog.set_level(logging.INFO, logger="server.net.asgi")
    seen: list[object] = []

    async def body() -> None:
        kernel.register("asgi_tester", kernel.self())
        kernel.trap_exit(True)
        seen.append(await scenario(app, caplog))

    await node.run_process(body)
    assert seen == [expected]
