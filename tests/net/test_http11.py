"""The two HTTP/1.1 implementations of the ASGI connection side by side (``_http11``).

The same bytes in give the same events out; the same response gives the framing h11
chooses (read back by an h11 client); bad requests and bad responses are refused by both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import h11
import pydantic
import pytest

from server.net._asgi_connection import AsgiConfig
from server.net._http11 import (
    PARSERS,
    BadRequest,
    Closed,
    Data,
    EndOfMessage,
    Http11,
    NeedData,
    ParserName,
    Request,
    ResponseError,
    default_parser,
    new_http11,
)
from server.net.http_server import HttpDefaults
from server.spec.sys_config import HttpSettings
from tests.net.test_asgi_connection import APPS, get, serving

if TYPE_CHECKING:
    from server.kernel import Node

parsers = pytest.mark.parametrize("parser", PARSERS)


def _events(http: Http11) -> list[object]:
    """Every event up to the end of the current request (or until more data is needed)."""
    seen: list[object] = []
    while True:
        event = http.next_event()
        if isinstance(event, Request):
            seen.append((event.method, event.target, event.http_version, event.headers))
        elif isinstance(event, Data):
            seen.append(event.data)
        elif isinstance(event, EndOfMessage):
            seen.append("end")
        elif isinstance(event, NeedData):
            return [*seen, "need"]
        elif isinstance(event, Closed):
            return [*seen, "closed"]


PIPELINED = (
    b"GET /a?x=1 HTTP/1.1\r\nHost: t\r\nX-Pad:  v \r\n\r\n"
    b"POST /b HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
    b"2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"
)


def test_the_same_bytes_give_the_same_events_one_request_at_a_time() -> None:
    seen = {}
    for parser in PARSERS:
        http = new_http11(parser, 8192)
        http.receive_data(PIPELINED)
        first = _events(http)
        assert http.send_response(200, [(b"content-length", b"0")]) + http.send_end()
        assert http.reusable
        assert http.start_next_cycle()
        second = _events(http)
        body = b"".join(e for e in second if isinstance(e, bytes))
        seen[parser] = (first, [e for e in second if not isinstance(e, bytes)], body)
    assert seen["httptools"] == seen["h11"]
    first, _, body = seen["h11"]
    assert first == [(b"GET", b"/a?x=1", b"1.1", [(b"host", b"t"), (b"x-pad", b"v")]), "end",
                     "closed"]  # fmt: skip
    assert body == b"abc"


# (request, status, response headers, body) -> what an h11 client reads back
RESPONSES = [
    ("GET / HTTP/1.1", 200, [(b"content-length", b"2")], b"hi"),
    ("GET / HTTP/1.1", 200, [], b"hi"),  # no length: chunked
    ("GET / HTTP/1.0", 200, [], b"hi"),  # HTTP/1.0: up to the close
    ("HEAD / HTTP/1.1", 200, [(b"content-length", b"5")], b""),
    ("HEAD / HTTP/1.1", 200, [], b""),
    ("GET / HTTP/1.1", 204, [], b""),
    ("GET / HTTP/1.1", 304, [(b"etag", b'"x"')], b""),
    ("GET / HTTP/1.1\r\nconnection: close", 200, [(b"content-length", b"2")], b"hi"),
    ("GET / HTTP/1.1", 200, [(b"connection", b"close"), (b"content-length", b"2")], b"hi"),
    ("GET / HTTP/1.1", 200, [(b"transfer-encoding", b"chunked")], b"hi"),
]


def _read_back(request: bytes, answer: bytes) -> tuple[int, bytes, dict[bytes, bytes], bool]:
    """What an h11 client that sent ``request`` reads in ``answer``; True: it may reuse."""
    client = h11.Connection(h11.CLIENT)
    head, _, _ = request.partition(b"\r\n\r\n")
    method, target, _ = head.split(b"\r\n")[0].split(b" ")
    headers = [line.partition(b": ")[::2] for line in head.split(b"\r\n")[1:]]
    client.send(
        h11.Request(
            method=method,
            target=target,
            headers=headers,
            # an h11 client only speaks 1.1; it reads an answer's framing all the same
        )
    )
    client.send(h11.EndOfMessage())
    client.receive_data(answer)
    client.receive_data(b"")  # the server closes after this answer (or would)
    response = client.next_event()
    assert isinstance(response, h11.Response)
    body = b""
    while not isinstance(event := client.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data)
        body += event.data
    named = {name: value for name, value in response.headers if name != b"date"}
    return (
        response.status_code,
        body,
        named,
        client.our_state is h11.DONE and (client.their_state is h11.DONE),
    )


@pytest.mark.parametrize(("line", "status", "headers", "body"), RESPONSES)
def test_a_response_is_framed_as_h11_frames_it(
    line: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    request = f"{line}\r\nhost: t\r\n\r\n".encode()
    seen = {}
    for parser in PARSERS:
        http = new_http11(parser, 8192)
        http.receive_data(request)
        _events(http)
        answer = http.send_response(status, headers) + http.send_data(body) + http.send_end()
        status_seen, body_seen, named, _ = _read_back(request, answer)
        framing = {k: v for k, v in named.items() if k in (b"content-length",
                   b"transfer-encoding", b"connection")}  # fmt: skip
        seen[parser] = (status_seen, body_seen, framing, http.reusable)
    assert seen["httptools"] == seen["h11"]
    assert seen["h11"][1] == body


@parsers
@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
        (b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n", 400),
        (b"G\x00T / HTTP/1.1\r\nhost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nhost: a\r\nx: " + b"v" * 300, 431),  # a head not complete yet
    ],
)
def test_a_bad_request_is_refused_with_its_status_and_nothing_after_it(
    parser: ParserName, data: bytes, status: int
) -> None:
    http = new_http11(parser, 256)
    http.receive_data(data)
    with pytest.raises(BadRequest) as refused:
        _events(http)
    assert refused.value.status == status
    assert str(refused.value)
    assert "\n" not in str(refused.value)
    assert http.can_respond
    assert not http.reusable


@parsers
def test_a_complete_head_over_the_limit_is_seen_over_it(parser: ParserName) -> None:
    """h11 bounds a head only while it is incomplete: the connection checks ``head_size``."""
    http = new_http11(parser, 256)
    http.receive_data(b"GET / HTTP/1.1\r\nhost: a\r\n" + b"x: v\r\n" * 60 + b"\r\n")
    try:
        event: object = http.next_event()
    except BadRequest as refused:
        event = refused.status
    assert event == 431 or (isinstance(event, Request) and event.head_size > 256)


@parsers
@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ([(b"x-a", b"v\r\nset-cookie: injected")], b""),
        ([(b"bad name", b"v")], b""),
        ([(b"content-length", b"1")], b"too long"),
        ([(b"content-length", b"9")], b"short"),
    ],
)
def test_a_response_that_breaks_http_is_refused(
    parser: ParserName, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    http = new_http11(parser, 8192)
    http.receive_data(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
    _events(http)
    with pytest.raises(ResponseError, match=r"^[^\n]+$"):
        _respond(http, headers, body)


@parsers
@pytest.mark.parametrize(
    ("headers", "dates"),
    [
        ([(b"content-length", b"0")], [b"Thu, 03 Dec 2026 10:00:00 GMT"]),
        ([(b"Date", b"mine"), (b"content-length", b"0")], [b"mine"]),  # the app's own wins
    ],
)
def test_a_date_is_added_to_a_response_that_has_none(
    parser: ParserName, headers: list[tuple[bytes, bytes]], dates: list[bytes]
) -> None:
    request = b"GET / HTTP/1.1\r\nhost: t\r\n\r\n"
    http = new_http11(parser, 8192)
    http.receive_data(request)
    _events(http)
    answer = http.send_response(200, headers, b"Thu, 03 Dec 2026 10:00:00 GMT")
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "t")]))
    client.receive_data(answer + http.send_end())
    response = client.next_event()
    assert isinstance(response, h11.Response)
    assert [value for name, value in response.headers if name == b"date"] == dates


@parsers
@pytest.mark.parametrize(
    ("head", "upgrade"),
    [
        (b"GET / HTTP/1.1\r\nhost: t\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nhost: t\r\nUpgrade: websocket\r\nconnection: upgrade\r\n\r\n", True),
    ],
)  # fmt: skip
def test_a_request_says_whether_it_asks_for_an_upgrade(
    parser: ParserName, head: bytes, upgrade: bool
) -> None:
    http = new_http11(parser, 8192)
    http.receive_data(head)
    event = http.next_event()
    assert isinstance(event, Request)
    assert event.upgrade is upgrade


def _respond(http: Http11, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    return http.send_response(200, headers) + http.send_data(body) + http.send_end()


@parsers
def test_100_continue_is_owed_until_the_client_sends_body_or_has_an_answer(
    parser: ParserName,
) -> None:
    http = new_http11(parser, 8192)
    http.receive_data(
        b"POST / HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n"
    )
    assert isinstance(http.next_event(), Request)
    assert http.waiting_for_continue
    assert http.send_continue().startswith(b"HTTP/1.1 100 ")
    assert not http.waiting_for_continue


@parsers
def test_an_upgrade_keeps_the_bytes_after_its_head(parser: ParserName) -> None:
    http = new_http11(parser, 8192)
    http.receive_data(
        b"GET /ws HTTP/1.1\r\nhost: t\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n\x81\x00"
    )
    assert isinstance(http.next_event(), Request)
    assert http.trailing_data == b"\x81\x00"


def test_httptools_is_the_default_when_it_is_installed() -> None:
    assert default_parser() == "httptools"


def test_an_unknown_parser_is_refused_everywhere_it_can_be_named() -> None:
    with pytest.raises(ValueError, match="parser must be one of httptools, h11, not 'llhttp'"):
        AsgiConfig(app="m:app", parser="llhttp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parser must be httptools or h11, got 'llhttp'"):
        HttpDefaults(parser="llhttp")  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError, match="parser"):
        HttpSettings(parser="llhttp")  # type: ignore[arg-type]
    assert HttpDefaults(**HttpSettings(parser="h11").model_dump()).parser == "h11"  # the boot
    assert HttpSettings().parser is None
    assert HttpDefaults().parser is None


# the status line tells the implementations apart: h11 sends no reason phrase
REASON = {"httptools": b"HTTP/1.1 200 OK\r\n", "h11": b"HTTP/1.1 200 \r\n"}


async def _status_line(config: AsgiConfig) -> bytes:
    async with serving(config) as (stream, _):
        await stream.send(get("/"))
        received = b""
        while b"\r\n" not in received:
            received += await stream.receive()
        return received.partition(b"\r\n")[0] + b"\r\n"


@parsers
async def test_the_parser_named_by_the_config_serves_the_connection(
    node: Node, parser: ParserName
) -> None:
    async def body() -> None:
        line = await _status_line(AsgiConfig(app=f"{APPS}:scope_echo", parser=parser))
        assert line == REASON[parser]

    await node.run_process(body)


async def test_the_node_default_serves_a_connection_whose_config_names_none(
    node: Node, asgi_parser: ParserName
) -> None:
    async def body() -> None:
        assert await _status_line(AsgiConfig(app=f"{APPS}:scope_echo")) == REASON[asgi_parser]

    await node.run_process(body)
