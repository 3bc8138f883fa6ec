"""The HTTP/1.1 server side of one connection as the ASGI connection sees it (sans-IO).

Two implementations: ``_http11_h11`` (h11's state machine) and ``_http11_httptools``
(httptools' parser, llhttp, with a small response writer that frames as h11 does). Both
take bytes in (``receive_data``), give events out (``next_event``), and turn a response
into bytes (``send_response``, ``send_data``, ``send_end``); the connection does the I/O.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Protocol, final

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "CLOSED",
    "END",
    "NEED_DATA",
    "PARSERS",
    "BadRequest",
    "Closed",
    "Data",
    "EndOfMessage",
    "Http11",
    "NeedData",
    "ParserName",
    "Request",
    "ResponseError",
    "default_parser",
    "new_http11",
]

ParserName = Literal["httptools", "h11"]
PARSERS: Final[tuple[ParserName, ...]] = ("httptools", "h11")

Headers = list[tuple[bytes, bytes]]


@final
@dataclass(slots=True)
class Request:
    """A request head: header names lowercased, ``head_size`` its size as sent (near).

    ``upgrade``: it has an ``upgrade`` header (a WebSocket handshake, maybe).
    """

    method: bytes
    target: bytes
    http_version: bytes
    headers: Headers
    head_size: int
    upgrade: bool = False


@final
@dataclass(slots=True)
class Data:
    """A piece of the request body."""

    data: bytes


@final
class EndOfMessage:
    """The request body is complete."""


@final
class NeedData:
    """Nothing more can be parsed until more bytes arrive."""


@final
class Closed:
    """No more request on this connection (the client closed, or one may not be read yet)."""


END: Final = EndOfMessage()
NEED_DATA: Final = NeedData()
CLOSED: Final = Closed()

Event = Request | Data | EndOfMessage | NeedData | Closed


class BadRequest(Exception):
    """The client broke the protocol; ``status`` is the answer it gets (400, 431, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ResponseError(RuntimeError):
    """The application's response breaks HTTP/1.1 (a bad header, too much body...)."""


class Http11(Protocol):
    """One connection's HTTP/1.1 state, server side."""

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` when it closed its side."""

    def next_event(self) -> Event:
        """The next event. Raises ``BadRequest``."""

    @property
    def idle(self) -> bool:
        """Nothing of a request received since the last one."""

    @property
    def can_respond(self) -> bool:
        """No response of this cycle started yet."""

    @property
    def waiting_for_continue(self) -> bool:
        """The client asked for ``100 Continue`` and has not had it, nor sent body."""

    @property
    def reusable(self) -> bool:
        """Neither side asked to close: another request may follow this one."""

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the request head of an upgrade (the next protocol's)."""

    def send_continue(self) -> bytes:
        """``100 Continue``."""

    def send_response(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], date: bytes | None = None
    ) -> bytes:
        """The response head, with a ``date`` header of ``date`` if it has none.

        Raises ``ResponseError``.
        """

    def send_data(self, data: bytes) -> bytes:
        """A piece of the response body, framed. Raises ``ResponseError``."""

    def send_end(self) -> bytes:
        """The end of the response body. Raises ``ResponseError``."""

    def start_next_cycle(self) -> bool:
        """Ready for the next request; False when this one is not complete both ways."""


def default_parser() -> ParserName:
    """Httptools when it can be imported, h11 otherwise."""
    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


_FACTORIES: dict[str, Callable[[int], Http11]] = {}


def new_http11(parser: ParserName, max_head_bytes: int) -> Http11:
    """A connection's state under ``parser``, refusing heads over ``max_head_bytes``.

    Raises:
        ImportError: the parser's library is not installed.
    """
    factory = _FACTORIES.get(parser)
    if factory is None:
        factory = _FACTORIES[parser] = _load(parser)
    return factory(max_head_bytes)


def _load(parser: ParserName) -> Callable[[int], Http11]:
    if parser == "httptools":
        from server.net._http11_httptools import HttptoolsHttp11

        return HttptoolsHttp11
    from server.net._http11_h11 import H11Http11

    return H11Http11
