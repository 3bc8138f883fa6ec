"""The HTTP/1.1 server side of a connection on httptools' parser (``_http11.Http11``).

httptools (llhttp, uvicorn's parser) parses everything it is fed, pipelined requests
included; its callbacks queue events that ``next_event`` hands out one request at a
time, as h11 does (after a request's end, nothing until ``start_next_cycle``). What h11
checks and llhttp does not is checked here: a head over the size limit (431, also while
it is still incomplete), a missing or repeated ``Host`` in HTTP/1.1 (400).

The response is framed as h11 frames it: no body for HEAD, 204, 304 (and a 2xx to
CONNECT); else ``content-length`` when the application gave one, ``chunked`` to an
HTTP/1.1 client when it did not, and a body up to the close to an HTTP/1.0 one;
``connection: close`` added when either side will close.
"""

from __future__ import annotations

import re
from collections import deque
from http import HTTPStatus
from typing import TYPE_CHECKING, Final, final

import httptools

from server.net._http11 import (
    CLOSED,
    END,
    NEED_DATA,
    BadRequest,
    Data,
    EndOfMessage,
    Event,
    Request,
    ResponseError,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["HttptoolsHttp11"]

_TOKEN: Final = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_BAD_VALUE: Final = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$")
_REASONS: Final = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}


class _Paused(Exception):
    """Raised from a callback: the rest of the bytes wait for the next cycle."""


class _Error:
    """A protocol error, queued after the events parsed before it."""

    __slots__ = ("error",)

    def __init__(self, error: BadRequest) -> None:
        self.error = error


class _Head:
    """A request head as queued, with what its cycle needs to know of it."""

    __slots__ = ("expect", "keep_alive", "request")

    def __init__(self, request: Request, keep_alive: bool, expect: bool) -> None:
        self.request = request
        self.keep_alive = keep_alive
        self.expect = expect


@final
class HttptoolsHttp11:
    """One connection's httptools request parser and response writer."""

    def __init__(self, max_head_bytes: int) -> None:
        self._max_head = max_head_bytes
        self._parser = httptools.HttpRequestParser(self)
        self._events: deque[Data | EndOfMessage | _Head | _Error] = deque()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._hosts = 0
        self._expect = False
        self._upgrading = False
        self._in_head = False  # a request head begun and not complete
        self._partial = 0  # bytes of a head's last line not parsed yet (near)
        self._upgrade: bytearray | None = None  # after an upgrade head: the bytes after it
        self._eof = False
        self._failed = False
        # this cycle
        self._started = False  # something of a request received
        self._their_done = False
        self._their_keep_alive = True
        self._version = b"1.0"  # the client's version (1.0 framing before a request)
        self._method = b""
        self._continue = False
        self._responded = False  # the response head sent
        self._our_done = False
        self._our_keep_alive = True
        self._framing = ""  # "length", "chunked", "close"
        self._remaining = 0

    # -- parsing --------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if not data:
            self._eof = True
            return
        if self._upgrade is not None:
            self._upgrade += data
            return
        if self._failed:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade = bytearray(data[upgrade.args[0] :])
        except httptools.HttpParserCallbackError as error:
            self._fail(error.__context__)
        except httptools.HttpParserError as error:
            self._fail(BadRequest(400, str(error) or "malformed request"))
        if self._in_head and not self._failed:
            newline = data.rfind(b"\n")
            self._partial = self._partial + len(data) if newline < 0 else len(data) - newline - 1
            if self._head_size + self._partial > self._max_head:
                self._fail(BadRequest(431, "the request head exceeds the size limit"))

    def _fail(self, error: BaseException | None) -> None:
        if not isinstance(error, BadRequest):
            error = BadRequest(400, str(error) or "malformed request")
        self._failed = True
        self._events.append(_Error(error))

    def next_event(self) -> Event:
        events = self._events
        if self._their_done:  # as h11: paused with bytes of the next request, else needing
            return CLOSED if events or self._eof else NEED_DATA
        if not events:
            return CLOSED if self._eof else NEED_DATA
        event = events.popleft()
        if isinstance(event, Data):
            self._continue = False
            return event
        if isinstance(event, _Head):
            request = event.request
            self._started = True
            self._method = request.method
            self._version = request.http_version
            self._their_keep_alive = event.keep_alive
            self._continue = event.expect
            return request
        if isinstance(event, _Error):
            raise event.error
        self._their_done = True
        return event

    # httptools' callbacks

    def on_message_begin(self) -> None:
        self._in_head = True
        self._partial = 0
        self._url = b""
        self._headers = []
        self._head_size = 13
        self._hosts = 0
        self._expect = False
        self._upgrading = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if value and value[-1] in b" \t":
            value = value.rstrip(b" \t")
        self._headers.append((name, value))
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._max_head:
            raise BadRequest(431, "the request head exceeds the size limit")
        if name == b"host":
            self._hosts += 1
        elif name == b"expect" and value.lower() == b"100-continue":
            self._expect = True
        elif name == b"upgrade":
            self._upgrading = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        version: bytes = parser.get_http_version().encode("ascii")
        if version == b"1.1" and self._hosts != 1:
            raise BadRequest(
                400,
                "missing mandatory Host: header"
                if not self._hosts
                else "found multiple Host: headers",
            )
        method: bytes = parser.get_method()
        request = Request(
            method, self._url, version, self._headers, self._head_size, self._upgrading
        )
        keep_alive = bool(parser.should_keep_alive()) and version == b"1.1"
        self._events.append(_Head(request, keep_alive, self._expect and version == b"1.1"))

    def on_body(self, body: bytes) -> None:
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        self._events.append(END)

    # -- the cycle ------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return not self._started

    @property
    def can_respond(self) -> bool:
        return not self._responded

    @property
    def waiting_for_continue(self) -> bool:
        return self._continue and not self._responded

    @property
    def reusable(self) -> bool:
        return (
            self._their_keep_alive
            and self._our_keep_alive
            and not self._failed
            and self._upgrade is None
        )

    @property
    def trailing_data(self) -> bytes:
        return bytes(self._upgrade or b"")

    def start_next_cycle(self) -> bool:
        if not (self._their_done and self._our_done and self.reusable):
            return False
        self._their_done = self._responded = self._our_done = self._started = False
        self._method = b""
        self._version = b"1.0"
        self._continue = False
        return True

    # -- writing --------------------------------------------------------------------------

    def send_continue(self) -> bytes:
        self._continue = False
        return b"HTTP/1.1 100 Continue\r\n\r\n"

    def send_response(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], date: bytes | None = None
    ) -> bytes:
        if self._responded:
            raise ResponseError("a response was already started")
        if not 200 <= status <= 999:
            raise ResponseError(f"a response's status is 200 to 999, not {status}")
        method = self._method
        out = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
        length: int | None = None
        chunked = False
        close = False
        for name, value in headers:
            if _TOKEN.fullmatch(name) is None or _BAD_VALUE.search(value) is not None:
                raise ResponseError(f"illegal header {name!r}: {value!r}")
            lower = name.lower()
            if lower == b"date":
                date = None
            elif lower == b"content-length":
                if not value.isdigit():
                    raise ResponseError(f"bad content-length {value!r}")
                if length is not None and int(value) != length:
                    raise ResponseError("conflicting content-length headers")
                length = int(value)
                continue
            if lower == b"transfer-encoding":
                if value.lower() != b"chunked":
                    raise ResponseError("only transfer-encoding: chunked is supported")
                chunked = True
                continue
            if lower == b"connection" and b"close" in (
                t.strip() for t in value.lower().split(b",")
            ):
                close = True
                continue
            out.append(b"%s: %s\r\n" % (name, value))
        no_body = (
            status in (204, 304) or method == b"HEAD" or (method == b"CONNECT" and status < 300)
        )
        if status in (204, 304) or (method == b"CONNECT" and status < 300):
            self._framing, self._remaining = "length", 0
            if length is not None:
                out.append(b"content-length: %d\r\n" % length)
        elif chunked or length is None:
            if self._version == b"1.1":
                out.append(b"transfer-encoding: chunked\r\n")
                self._framing = "length" if no_body else "chunked"
            else:
                self._framing = "length" if no_body else "close"
                close = close or not no_body
            self._remaining = 0
        else:
            out.append(b"content-length: %d\r\n" % length)
            self._framing, self._remaining = "length", 0 if no_body else length
        if date is not None:
            out.append(b"date: %s\r\n" % date)
        if close or not self._their_keep_alive or self._version != b"1.1":
            self._our_keep_alive = False
            out.append(b"connection: close\r\n")
        out.append(b"\r\n")
        self._responded = True
        return b"".join(out)

    def send_data(self, data: bytes) -> bytes:
        if not self._responded or self._our_done:
            raise ResponseError("body data outside a response")
        if not data:
            return b""
        framing = self._framing
        if framing == "length":
            if len(data) > self._remaining:
                raise ResponseError("Too much data for declared Content-Length")
            self._remaining -= len(data)
            return data
        if framing == "chunked":
            return b"%x\r\n%s\r\n" % (len(data), data)
        return data

    def send_end(self) -> bytes:
        if not self._responded or self._our_done:
            raise ResponseError("end of a response not started")
        if self._framing == "length" and self._remaining:
            raise ResponseError("Too little data for declared Content-Length")
        self._our_done = True
        return b"0\r\n\r\n" if self._framing == "chunked" else b""
