"""HTTP/1.1 without I/O: an incremental request parser and a response writer.

Pure functions and records over bytes; nothing here reads a socket or a clock, so the
whole protocol is tested synchronously and the async shell (``http_server``) stays small.

How this works:

1. ``RequestParser.feed(data)`` only buffers. ``next_request()`` returns the next complete
   ``Request``, None while one is incomplete, or raises ``HttpProtocolError`` carrying the
   status to answer. Pipelined requests come out one per call, in order, so a server
   answers each good request before it meets a bad one.
2. A head is the request line and the header lines up to the first empty line. Lines end
   with CRLF; a bare LF is accepted too (RFC 9112 section 2.2), a bare CR is not. Empty
   lines before a request line are skipped.
3. A body is framed by ``Content-Length`` only. ``Transfer-Encoding`` (chunked or any
   other) is refused with 501 (with ``Content-Length`` as well, 400: a smuggling attempt).
   Most clients send ``Content-Length`` for request bodies; supporting chunked bodies is a
   contained change in ``_body_of`` should it be wanted.
4. Limits (``HttpLimits``) are checked before anything is buffered beyond them: a head
   longer than ``max_head_bytes`` is 431 (414 when the request line alone is longer), a
   declared body longer than ``max_body_bytes`` is 413 before a byte of it arrives.
5. After a request that does not keep the connection alive the parser takes no more: the
   bytes after it are dropped. After an error it is broken: ``next_request`` raises the
   same error again.

Statuses raised: 400 (malformed), 413, 414, 431 (too large), 501 (transfer codings),
505 (a version other than HTTP/1.0 and HTTP/1.1).
"""

from __future__ import annotations

import email.utils
import json
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Final, final

from server.errors import HttpProtocolError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "CONTINUE",
    "DEFAULT_LIMITS",
    "HttpLimits",
    "HttpProtocolError",
    "Request",
    "RequestParser",
    "Response",
    "error_response",
    "http_date",
    "json_response",
    "should_close",
    "text_response",
    "write_response",
]

Headers = tuple[tuple[str, str], ...]

_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_TEXT: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET: Final = re.compile(rb"[\x21-\x7e]+")
_VERSION: Final = re.compile(rb"HTTP/([0-9])\.([0-9])")
_FIELD_VALUE: Final = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_HEAD_END: Final = re.compile(rb"\n\r?\n")
_DIGITS: Final = re.compile(r"[0-9]+")
_OWS: Final = b" \t"
_VERSIONS: Final = {(1, 0): "HTTP/1.0", (1, 1): "HTTP/1.1"}


@final
@dataclass(frozen=True, slots=True)
class HttpLimits:
    """How much of a request the parser accepts.

    Raises:
        ValueError: a limit is not a positive integer.
    """

    max_head_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_head_bytes", "max_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS: Final = HttpLimits()


@final
@dataclass(frozen=True, slots=True)
class Request:
    """One complete request.

    Attributes:
        method: the method as sent (case-sensitive, e.g. ``"GET"``).
        target: the request target as sent (``"/items?id=3"``).
        path: the target's path (``"/items"``; ``"*"`` for ``OPTIONS *``).
        query: the target's query without ``?`` (``""`` when none).
        version: ``"HTTP/1.0"`` or ``"HTTP/1.1"``.
        headers: ``(lowercased name, value)`` pairs in arrival order; values are decoded
            as ISO-8859-1 with surrounding whitespace removed.
        body: the body bytes (``b""`` when none).
        keep_alive: whether the connection stays open after the answer: HTTP/1.1 unless
            ``Connection: close``; HTTP/1.0 only with ``Connection: keep-alive``.
    """

    method: str
    target: str
    path: str
    query: str
    version: str
    headers: Headers
    body: bytes
    keep_alive: bool

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any case), or ``default``."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return default

    def header_values(self, name: str) -> tuple[str, ...]:
        """Every value of header ``name`` (any case), in arrival order."""
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key == wanted)


_FRAMING: Final = frozenset({"content-length", "transfer-encoding"})
_NO_BODY: Final = frozenset({204, 304})


@final
@dataclass(frozen=True, slots=True)
class Response:
    """What a handler answers.

    ``Content-Length`` and ``Connection`` are written by ``write_response``; a handler
    that wants the connection closed after this answer sets ``("connection", "close")``.

    Raises:
        ValueError: the status is not an integer 100..599, a header name is not a token,
            a value holds CR, LF or NUL or is not ISO-8859-1, a framing header
            (``content-length``, ``transfer-encoding``) is given, or a 204 or 304 has a
            body.
    """

    status: int
    headers: Headers = ()
    body: bytes = b""
    _encoded: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __init__(
        self, status: int, headers: Sequence[tuple[str, str]] = (), body: bytes = b""
    ) -> None:
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "headers", tuple(headers))
        object.__setattr__(self, "body", bytes(body))
        object.__setattr__(self, "_encoded", _encode_headers(self))


def _encode_headers(response: Response) -> bytes:
    # typed callers cannot get these wrong; untyped ones get a clear error here
    status: object = response.status
    headers: tuple[object, ...] = response.headers
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"invalid status {status!r}: an integer 100..599")
    lines: list[bytes] = []
    for item in headers:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise ValueError(f"a header is a (name, value) pair of str, got {item!r}")
        name: object = item[0]
        value: object = item[1]
        if not isinstance(name, str) or _TOKEN_TEXT.fullmatch(name) is None:
            raise ValueError(f"invalid header name {name!r}")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"invalid value for header {name!r}: {value!r}")
        lowered = name.lower()
        if lowered in _FRAMING:
            raise ValueError(f"header {name!r} is written by the server, not by a handler")
        if lowered == "connection":
            continue
        try:
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        except UnicodeEncodeError:
            raise ValueError(f"header {name!r}: value is not ISO-8859-1: {value!r}") from None
    if status in _NO_BODY and response.body:
        raise ValueError(f"a {status} response has no body")
    return b"".join(lines)


def json_response(obj: object, status: int = 200) -> Response:
    """A response with ``obj`` encoded as compact UTF-8 JSON.

    Raises:
        TypeError: ``obj`` is not JSON-serialisable.
    """
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(status, (("content-type", "application/json"),), body)


def text_response(text: str, status: int = 200) -> Response:
    """A ``text/plain`` UTF-8 response."""
    return Response(status, (("content-type", "text/plain; charset=utf-8"),), text.encode())


def error_response(error: HttpProtocolError) -> Response:
    """The answer to a request the parser refused (its status, a one-line text body)."""
    return text_response(f"{_phrase(error.status)}\n", error.status)


def http_date(timestamp: float) -> str:
    """``timestamp`` (seconds since the epoch) as an HTTP date (``Date`` header value)."""
    return email.utils.formatdate(timestamp, usegmt=True)


def should_close(request: Request | None, response: Response) -> bool:
    """Whether the connection closes after ``response`` (no request: a parse error)."""
    if request is None or not request.keep_alive:
        return True
    return any(
        name.lower() == "connection" and _has_token(value, "close")
        for name, value in response.headers
    )


def write_response(
    response: Response,
    *,
    close: bool,
    request: Request | None = None,
    date: str | None = None,
) -> bytes:
    """The bytes of ``response`` on the wire.

    Adds ``Content-Length`` (except for 1xx, 204 and 304), ``Date`` when ``date`` is given,
    and ``Connection: close`` when ``close``; to an HTTP/1.0 request that stays open it
    adds ``Connection: keep-alive``. The answer to a ``HEAD`` request has no body.
    """
    status = response.status
    parts = [f"HTTP/1.1 {status} {_phrase(status)}\r\n".encode("latin-1")]
    if date is not None:
        parts.append(f"Date: {date}\r\n".encode("latin-1"))
    parts.append(response._encoded)
    if status >= 200 and status not in _NO_BODY:
        parts.append(b"Content-Length: %d\r\n" % len(response.body))
    if close:
        parts.append(b"Connection: close\r\n")
    elif request is not None and request.version == "HTTP/1.0":
        parts.append(b"Connection: keep-alive\r\n")
    parts.append(b"\r\n")
    if request is None or request.method != "HEAD":
        parts.append(response.body)
    return b"".join(parts)


#: The interim answer to ``Expect: 100-continue``.
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _has_token(value: str, token: str) -> bool:
    return any(part.strip().lower() == token for part in value.split(","))


# -- parsing --------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class _Head:
    method: str
    target: str
    path: str
    query: str
    version: str
    headers: Headers
    content_length: int
    keep_alive: bool
    expect_continue: bool


@final
class RequestParser:
    """Turns the bytes of one connection into ``Request`` records, incrementally.

    Use: ``feed(data)`` whatever arrives, then call ``next_request()`` until it returns
    None; each call returns one request, in arrival order.
    """

    __slots__ = ("_buffer", "_continue_due", "_error", "_finished", "_head", "_limits", "_scan")

    def __init__(self, limits: HttpLimits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = bytearray()
        self._head: _Head | None = None
        self._scan = 0  # where the search for the end of the head resumes
        self._error: HttpProtocolError | None = None
        self._finished = False
        self._continue_due = False

    @property
    def pending(self) -> bool:
        """True when part of a request has arrived and the rest has not."""
        if self._finished or self._error is not None:
            return False
        return self._head is not None or bool(self._buffer.lstrip(b"\r\n"))

    @property
    def finished(self) -> bool:
        """True once a request that closes the connection was returned."""
        return self._finished

    def feed(self, data: bytes) -> None:
        """Buffer bytes received (ignored after a closing request or an error)."""
        if not self._finished and self._error is None:
            self._buffer += data

    def take_continue(self) -> bool:
        """True once per request whose client waits for ``100 Continue`` before its body.

        The server sends ``CONTINUE`` when this returns True, then reads the body.
        """
        due = self._continue_due
        self._continue_due = False
        return due

    def next_request(self) -> Request | None:
        """The next complete request, or None until more bytes arrive.

        Raises:
            HttpProtocolError: the request is malformed or too large (see the module
                docstring for the statuses); every later call raises it again.
        """
        if self._error is not None:
            raise self._error
        if self._finished:
            return None
        try:
            request = self._next()
        except HttpProtocolError as error:
            self._error = error
            self._buffer.clear()
            self._head = None
            self._continue_due = False
            raise
        if request is not None and not request.keep_alive:
            self._finished = True
            self._buffer.clear()
        return request

    def _next(self) -> Request | None:
        head = self._head
        if head is None:
            head = self._read_head()
            if head is None:
                return None
            self._head = head
            if head.expect_continue and len(self._buffer) < head.content_length:
                self._continue_due = True
        size = head.content_length
        if len(self._buffer) < size:
            return None
        body = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._head = None
        self._continue_due = False
        return Request(
            method=head.method,
            target=head.target,
            path=head.path,
            query=head.query,
            version=head.version,
            headers=head.headers,
            body=body,
            keep_alive=head.keep_alive,
        )

    def _read_head(self) -> _Head | None:
        buffer = self._buffer
        blank = 0
        while blank < len(buffer) and buffer[blank] in b"\r\n":
            blank += 1
        if blank:  # empty lines before a request line are skipped (RFC 9112 section 2.2)
            del buffer[:blank]
            self._scan = 0
        if not buffer:
            return None
        limit = self._limits.max_head_bytes
        found = _HEAD_END.search(buffer, max(self._scan - 2, 0))
        if found is None:
            self._scan = len(buffer)
            if len(buffer) > limit:
                raise _too_large(buffer, limit)
            return None
        self._scan = 0
        end = found.end()
        if end > limit:
            raise _too_large(buffer, limit)
        raw = bytes(buffer[: found.start()])
        del buffer[:end]
        return _parse_head(raw, self._limits)


def _too_large(buffer: bytearray, limit: int) -> HttpProtocolError:
    line_end = buffer.find(b"\n", 0, limit + 1)
    if line_end < 0:
        return HttpProtocolError(414, f"request line longer than {limit} bytes")
    return HttpProtocolError(431, f"request head longer than {limit} bytes")


def _parse_head(raw: bytes, limits: HttpLimits) -> _Head:
    lines = [line[:-1] if line.endswith(b"\r") else line for line in raw.split(b"\n")]
    method, target, version = _request_line(lines[0])
    headers = tuple(_header(line) for line in lines[1:])
    path, query = _split_target(method, target)
    if version == "HTTP/1.1":
        hosts = sum(1 for name, _ in headers if name == "host")
        if hosts != 1:
            raise HttpProtocolError(400, f"an HTTP/1.1 request has one Host header, not {hosts}")
    content_length = _body_of(headers, limits)
    connection = [value for name, value in headers if name == "connection"]
    if version == "HTTP/1.1":
        keep_alive = not any(_has_token(value, "close") for value in connection)
    else:
        keep_alive = any(_has_token(value, "keep-alive") for value in connection)
    expect_continue = (
        version == "HTTP/1.1"
        and content_length > 0
        and any(name == "expect" and value.lower() == "100-continue" for name, value in headers)
    )
    return _Head(
        method=method,
        target=target,
        path=path,
        query=query,
        version=version,
        headers=headers,
        content_length=content_length,
        keep_alive=keep_alive,
        expect_continue=expect_continue,
    )


def _request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HttpProtocolError(400, f"malformed request line {line[:80]!r}")
    method, target, version = parts
    if _TOKEN.fullmatch(method) is None:
        raise HttpProtocolError(400, f"malformed method {method[:40]!r}")
    if _TARGET.fullmatch(target) is None:
        raise HttpProtocolError(400, f"malformed request target {target[:80]!r}")
    numbers = _VERSION.fullmatch(version)
    if numbers is None:
        raise HttpProtocolError(400, f"malformed HTTP version {version[:20]!r}")
    known = _VERSIONS.get((int(numbers[1]), int(numbers[2])))
    if known is None:
        raise HttpProtocolError(505, f"{version.decode('ascii')} is not supported")
    return method.decode("ascii"), target.decode("ascii"), known


def _header(line: bytes) -> tuple[str, str]:
    if line[:1] in (b" ", b"\t"):
        raise HttpProtocolError(400, "obsolete line folding in a header")
    name, colon, value = line.partition(b":")
    if not colon or _TOKEN.fullmatch(name) is None:
        raise HttpProtocolError(400, f"malformed header line {line[:80]!r}")
    value = value.strip(_OWS)
    if _FIELD_VALUE.fullmatch(value) is None:
        raise HttpProtocolError(400, f"control character in header {name.decode('ascii')!r}")
    return name.decode("ascii").lower(), value.decode("latin-1")


def _split_target(method: str, target: str) -> tuple[str, str]:
    if target.startswith("/"):
        path, _, query = target.partition("?")
        return path, query
    if target == "*" and method == "OPTIONS":
        return "*", ""
    scheme, sep, rest = target.partition("://")
    if sep and scheme.lower() in ("http", "https"):  # absolute form (RFC 9112 3.2.2)
        slash = rest.find("/")
        path, _, query = (rest[slash:] if slash >= 0 else "/").partition("?")
        return path, query
    if method == "CONNECT":
        return target, ""
    raise HttpProtocolError(400, f"malformed request target {target[:80]!r}")


def _body_of(headers: Headers, limits: HttpLimits) -> int:
    lengths = [value for name, value in headers if name == "content-length"]
    if any(name == "transfer-encoding" for name, _ in headers):
        if lengths:
            raise HttpProtocolError(400, "both Transfer-Encoding and Content-Length")
        raise HttpProtocolError(501, "transfer codings (chunked bodies) are not supported")
    if not lengths:
        return 0
    values = {part.strip() for value in lengths for part in value.split(",")}
    if len(values) != 1:
        raise HttpProtocolError(400, f"conflicting Content-Length values {sorted(values)}")
    (text,) = values
    if _DIGITS.fullmatch(text) is None:
        raise HttpProtocolError(400, f"malformed Content-Length {text[:40]!r}")
    if len(text) > 18 or int(text) > limits.max_body_bytes:
        raise HttpProtocolError(
            413, f"body of {text[:40]} bytes, more than {limits.max_body_bytes}"
        )
    return int(text)
