"""The request parser, pure: no event loop, bytes in, ``Request`` records or errors out."""

from __future__ import annotations

import pytest

from server.net.http import HttpLimits, HttpProtocolError, Request, RequestParser

GET = b"GET /items?id=3 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"


def parse_all(data: bytes, limits: HttpLimits | None = None) -> list[Request]:
    parser = RequestParser(limits) if limits is not None else RequestParser()
    parser.feed(data)
    requests = []
    while (request := parser.next_request()) is not None:
        requests.append(request)
    return requests


def error_of(data: bytes, limits: HttpLimits | None = None) -> HttpProtocolError:
    with pytest.raises(HttpProtocolError) as caught:
        parse_all(data, limits)
    return caught.value


def test_a_get_request_becomes_one_record() -> None:
    (request,) = parse_all(GET)
    assert request == Request(
        method="GET",
        target="/items?id=3",
        path="/items",
        query="id=3",
        version="HTTP/1.1",
        headers=(("host", "example.com"), ("accept", "*/*")),
        body=b"",
        keep_alive=True,
    )
    assert request.header("HOST") == "example.com"
    assert request.header("missing", "none") == "none"


def test_header_names_are_lowercased_and_values_stripped_and_repeats_kept() -> None:
    data = b"GET / HTTP/1.1\r\nHost: h\r\nX-Tag:  a \t\r\nx-tag:b\r\nX-Empty:\r\n\r\n"
    (request,) = parse_all(data)
    assert request.headers == (("host", "h"), ("x-tag", "a"), ("x-tag", "b"), ("x-empty", ""))
    assert request.header_values("X-Tag") == ("a", "b")


def test_a_post_body_is_framed_by_content_length() -> None:
    data = b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET"
    parser = RequestParser()
    parser.feed(data)
    request = parser.next_request()
    assert request is not None
    assert (request.method, request.body) == ("POST", b"hello")
    assert parser.next_request() is None
    assert parser.pending  # "GET" waits for the rest of its request


def test_pipelined_requests_in_one_feed_come_out_in_order() -> None:
    second = b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
    third = b"DELETE /c HTTP/1.1\r\nHost: h\r\n\r\n"
    requests = parse_all(GET + second + third)
    assert [(r.method, r.path, r.body) for r in requests] == [
        ("GET", "/items", b""),
        ("POST", "/b", b"hi"),
        ("DELETE", "/c", b""),
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 7], ids=lambda n: f"{n}-byte-feeds")
def test_a_request_split_across_many_feeds_is_the_same_request(size: int) -> None:
    data = b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789" + GET
    parser = RequestParser()
    seen: list[Request] = []
    for start in range(0, len(data), size):
        parser.feed(data[start : start + size])
        while (request := parser.next_request()) is not None:
            seen.append(request)
    assert [(r.method, r.body) for r in seen] == [("PUT", b"0123456789"), ("GET", b"")]
    assert seen == parse_all(data)
    assert not parser.pending


def test_bare_lf_line_ends_and_leading_empty_lines_are_accepted() -> None:
    (request,) = parse_all(b"\r\n\nGET / HTTP/1.1\nHost: h\n\n")
    assert (request.path, request.headers) == ("/", (("host", "h"),))


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("HTTP/1.1", None, True),
        ("HTTP/1.1", "close", False),
        ("HTTP/1.1", "Upgrade, Close", False),
        ("HTTP/1.1", "keep-alive", True),
        ("HTTP/1.0", None, False),
        ("HTTP/1.0", "Keep-Alive", True),
        ("HTTP/1.0", "close", False),
    ],
    ids=lambda v: str(v),
)
def test_keep_alive_follows_the_version_and_the_connection_header(
    version: str, connection: str | None, keep_alive: bool
) -> None:
    head = f"GET / {version}\r\nHost: h\r\n"
    if connection is not None:
        head += f"Connection: {connection}\r\n"
    (request,) = parse_all(head.encode() + b"\r\n")
    assert (request.version, request.keep_alive) == (version, keep_alive)


def test_http_1_0_needs_no_host() -> None:
    (request,) = parse_all(b"GET / HTTP/1.0\r\n\r\n")
    assert request.version == "HTTP/1.0"


def test_nothing_is_parsed_after_a_request_that_closes() -> None:
    closing = b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    parser = RequestParser()
    parser.feed(closing + GET + b"garbage")
    request = parser.next_request()
    assert request is not None
    assert request.keep_alive is False
    assert parser.finished
    assert parser.next_request() is None
    parser.feed(GET)
    assert parser.next_request() is None
    assert not parser.pending


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/", "/", ""),
        ("/a/b?x=1&y", "/a/b", "x=1&y"),
        ("http://example.com/p?q", "/p", "q"),
        ("http://example.com", "/", ""),
    ],
)
def test_the_target_is_split_into_path_and_query(target: str, path: str, query: str) -> None:
    (request,) = parse_all(f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert (request.target, request.path, request.query) == (target, path, query)


def test_options_asterisk_form() -> None:
    (request,) = parse_all(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert request.path == "*"


def test_expect_100_continue_is_signalled_once_before_the_body() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert parser.next_request() is None
    assert parser.take_continue() is True
    assert parser.take_continue() is False
    parser.feed(b"abc")
    request = parser.next_request()
    assert request is not None
    assert request.body == b"abc"


def test_expect_100_continue_with_the_body_already_there_needs_no_interim_answer() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx")
    assert parser.next_request() is not None
    assert parser.take_continue() is False


# -- refusals: every status the parser answers -------------------------------------------------

BAD_REQUESTS = [
    pytest.param(b"\x00\x01\x02garbage\r\n\r\n", 400, id="binary-garbage"),
    pytest.param(b"GET /\r\nHost: h\r\n\r\n", 400, id="two-part-request-line"),
    pytest.param(b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, id="double-space"),
    pytest.param(b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, id="method-not-a-token"),
    pytest.param(b"GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n", 400, id="control-in-target"),
    pytest.param(b"GET nowhere HTTP/1.1\r\nHost: h\r\n\r\n", 400, id="target-not-a-path"),
    pytest.param(b"GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400, id="not-http"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, id="no-host"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="two-hosts"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: h\r\nNo colon\r\n\r\n", 400, id="header-no-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, id="space-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400, id="obs-fold"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400, id="nul-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400, id="bare-cr"),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x1\r\n\r\n", 400, id="length-not-digits"
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400, id="length-negative"
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        400,
        id="conflicting-lengths",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        400,
        id="length-and-transfer-encoding",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 501, id="chunked"
    ),
    pytest.param(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, id="http-2.0"),
    pytest.param(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505, id="http-1.2"),
    pytest.param(b"GET / HTTP/0.9\r\n\r\n", 505, id="http-0.9"),
]


@pytest.mark.parametrize(("data", "status"), BAD_REQUESTS)
def test_a_bad_request_is_refused_with_its_status(data: bytes, status: int) -> None:
    error = error_of(data)
    assert error.status == status
    assert str(error).startswith(f"{status} ")


def test_equal_repeated_content_lengths_are_one() -> None:
    data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok"
    (request,) = parse_all(data)
    assert request.body == b"ok"


def test_an_error_breaks_the_parser_for_good_after_the_good_requests() -> None:
    parser = RequestParser()
    parser.feed(GET + b"BROKEN\r\n\r\n")
    assert parser.next_request() is not None  # the good one first
    with pytest.raises(HttpProtocolError) as first:
        parser.next_request()
    parser.feed(GET)
    with pytest.raises(HttpProtocolError) as again:
        parser.next_request()
    assert again.value is first.value
    assert not parser.pending


# -- limits -------------------------------------------------------------------------------------


def test_the_default_limits_are_16_kib_of_head_and_1_mib_of_body() -> None:
    assert HttpLimits() == HttpLimits(max_head_bytes=16 * 1024, max_body_bytes=1024 * 1024)


def test_a_head_at_the_limit_is_accepted_and_one_byte_more_is_431() -> None:
    limits = HttpLimits(max_head_bytes=200)
    base = b"GET / HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n"
    fits = base.replace(b"X: ", b"X: " + b"a" * (200 - len(base)))
    assert len(fits) == 200
    assert len(parse_all(fits, limits)) == 1
    too_long = fits.replace(b"X: ", b"X: a")
    assert error_of(too_long, limits).status == 431


def test_an_endless_head_is_refused_once_it_passes_the_limit() -> None:
    parser = RequestParser(HttpLimits(max_head_bytes=100))
    fed = b"GET / HTTP/1.1\r\nHost: h\r\n"
    parser.feed(fed)
    line = b"X-Filler: 0123456789\r\n"
    while len(fed) + len(line) <= 100:
        parser.feed(line)
        fed += line
        assert parser.next_request() is None, "no end of head was sent"
    parser.feed(line)
    fed += line
    with pytest.raises(HttpProtocolError) as caught:
        parser.next_request()
    assert caught.value.status == 431
    assert 100 < len(fed) <= 122  # refused at the first feed past the limit


def test_a_request_line_longer_than_the_head_limit_is_414() -> None:
    limits = HttpLimits(max_head_bytes=64)
    assert error_of(b"GET /" + b"a" * 100, limits).status == 414


def test_a_body_over_the_limit_is_413_before_it_arrives() -> None:
    limits = HttpLimits(max_body_bytes=10)
    head = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n"
    assert len(parse_all(head % 10 + b"x" * 10, limits)) == 1
    assert error_of(head % 11, limits).status == 413  # no byte of the body was sent
    assert error_of(head % (10**30), limits).status == 413


def test_the_default_body_limit_is_one_mib() -> None:
    head = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n"
    assert error_of(head % (1024 * 1024 + 1)).status == 413
    parser = RequestParser()
    parser.feed(head % (1024 * 1024))
    assert parser.next_request() is None
    assert parser.pending


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_limits_are_positive_integers(value: object) -> None:
    with pytest.raises(ValueError, match="max_head_bytes"):
        HttpLimits(max_head_bytes=value)  # type: ignore[arg-type]
