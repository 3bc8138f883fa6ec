"""Responses and the response writer, pure: records in, wire bytes out."""

from __future__ import annotations

import pytest

from server.net.http import (
    HttpProtocolError,
    Request,
    Response,
    error_response,
    http_date,
    json_response,
    should_close,
    text_response,
    write_response,
)


def request(method: str = "GET", version: str = "HTTP/1.1", *, keep_alive: bool = True) -> Request:
    return Request(method, "/", "/", "", version, (("host", "h"),), b"", keep_alive)


def test_a_response_gets_its_length_and_no_connection_header_when_it_stays_open() -> None:
    wire = write_response(Response(200, (("X-A", "1"),), b"hi"), close=False, request=request())
    assert wire == b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhi"


def test_a_closing_response_says_so_and_the_date_comes_first() -> None:
    wire = write_response(
        text_response("no", 404), close=True, date="Thu, 01 Jan 1970 00:00:00 GMT"
    )
    assert wire == (
        b"HTTP/1.1 404 Not Found\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
        b"content-type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n"
        b"Connection: close\r\n\r\nno"
    )


def test_an_http_1_0_client_that_stays_is_told_keep_alive() -> None:
    wire = write_response(Response(204), close=False, request=request(version="HTTP/1.0"))
    assert wire == b"HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"


def test_head_gets_the_length_but_not_the_body() -> None:
    wire = write_response(Response(200, (), b"abc"), close=False, request=request("HEAD"))
    assert wire == b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"


def test_an_unknown_status_has_an_empty_phrase() -> None:
    assert write_response(Response(299), close=True).startswith(b"HTTP/1.1 299 \r\n")


def test_json_response_is_compact_utf8() -> None:
    response = json_response({"a": [1, "é"]}, status=201)
    assert response == Response(
        201, (("content-type", "application/json"),), '{"a":[1,"é"]}'.encode()
    )


def test_error_response_carries_the_status() -> None:
    response = error_response(HttpProtocolError(431, "too big"))
    assert (response.status, response.body) == (431, b"Request Header Fields Too Large\n")


def test_http_date() -> None:
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"


@pytest.mark.parametrize(
    ("keep_alive", "headers", "closes"),
    [
        (True, (), False),
        (False, (), True),
        (True, (("Connection", "close"),), True),
        (True, (("connection", "keep-alive"),), False),
    ],
)
def test_should_close(keep_alive: bool, headers: tuple[tuple[str, str], ...], closes: bool) -> None:
    assert should_close(request(keep_alive=keep_alive), Response(200, headers)) is closes
    assert should_close(None, Response(200, headers)) is True


def test_the_handler_connection_header_is_replaced_by_the_writers() -> None:
    wire = write_response(Response(200, (("connection", "close"),)), close=True)
    assert wire.count(b"onnection") == 1


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        pytest.param(99, (), b"", id="status-low"),
        pytest.param(600, (), b"", id="status-high"),
        pytest.param(True, (), b"", id="status-bool"),
        pytest.param(200, (("bad name", "v"),), b"", id="name-not-token"),
        pytest.param(200, (("x", "a\r\nInjected: 1"),), b"", id="crlf-injection"),
        pytest.param(200, (("x", "€"),), b"", id="not-latin-1"),
        pytest.param(200, (("Content-Length", "3"),), b"", id="own-content-length"),
        pytest.param(200, (("transfer-encoding", "chunked"),), b"", id="own-transfer-encoding"),
        pytest.param(200, ("x",), b"", id="header-not-a-pair"),
        pytest.param(204, (), b"x", id="204-with-body"),
        pytest.param(304, (), b"x", id="304-with-body"),
    ],
)
def test_an_invalid_response_is_refused_when_built(
    status: int, headers: tuple[tuple[str, str], ...], body: bytes
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        Response(status, headers, body)


def test_responses_compare_by_value_and_take_a_list_of_headers() -> None:
    assert Response(200, [("a", "b")], b"x") == Response(200, (("a", "b"),), b"x")
