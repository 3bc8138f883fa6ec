"""One HTTP/1.1 connection served to an ASGI 3 application, in the connection's process.

HTTP/1.1 is parsed by httptools (llhttp, uvicorn's parser) or h11 (a sans-IO state
machine), behind one small interface (``_http11``): ``AsgiConfig.parser``, else the node's
``[node.http] parser``, else httptools when it is installed. This module moves bytes
between the parser and the socket and speaks ASGI's ``http`` scope to the application.

How this works:

1. The application is named ``module:attribute``. It is looked up in the module's
   *current* version (``server.behaviours.resolve``) at each request, so after an install
   every new request runs the new version, keep-alive connections included; a request
   already running finishes on the version it started on (its frames hold that code).
2. Requests on a connection are served one at a time, in order (HTTP/1.1 has no
   multiplexing). The request body is read from the socket only as the application asks
   for it (``receive``), at most ``read_size`` bytes at a time: a client that sends faster
   than the application reads is pushed back by TCP. An ``Expect: 100-continue`` request
   gets its ``100 Continue`` when the application first asks for the body, not before.
3. The response goes out as the application sends it (``http.response.start``, then each
   ``http.response.body``), each piece sent whole before ``send`` returns: a client that
   does not read blocks the application's ``send``, never the node's memory, and is cut
   off after ``send_timeout``.
4. After the body (and after the response), ``receive`` waits for the client to go away
   and answers ``http.disconnect``, or answers it at once when the response is complete.
   A ``send`` after the client went away raises ``ClientDisconnected`` (an ``OSError``).
5. An application that raises before it started the response gets a 500 for it; one that
   raises (or returns) in the middle of a response has the connection closed, since the
   response cannot be completed. Either way the traceback is logged and the connection
   process goes on only when the response was complete and reusable.
6. Purges: the connection's process holds a purge notice (``_asgi_purge_notice``) for
   its whole life, set once, not once per request (a purge ends the connection anyway,
   and between requests the process runs none of the application's code, so no purge
   looks at it then). A purge of the code a request runs (the second install of its
   module, or the end of the ``[asgi]`` table's ``purge_grace``) answers 503 to a request
   not answered yet, else closes the connection; a WebSocket of the ``websocket`` scope
   is closed with 1012 (service restart). A native WebSocket handler's connection takes
   the notice back: its callbacks run in the current version at each frame. After each
   request, a connection of an application with a purger (``AsgiConfig.purger``) tells
   it, while the module has an old version, so that the old version is soft-purged as
   soon as no request runs it.
7. Limits: a request head over ``limits.max_head_bytes`` gets 431 and a body over
   ``limits.max_body_bytes`` gets 413 (when no response started yet; the application's
   ``receive`` sees ``http.disconnect``), and the connection is closed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final
from urllib.parse import unquote

import anyio
import h11

from server import code_server, kernel
from server.behaviours import resolve
from server.behaviours.socket_io import DEFAULT_READ_SIZE
from server.net._asgi_purge_notice import run_until_purged
from server.net._asgi_websocket import (
    SERVICE_RESTART,
    ClientDisconnected,
    WebSocketCycle,
    is_websocket_upgrade,
)
from server.net._http11 import (
    PARSERS,
    BadRequest,
    Closed,
    Data,
    EndOfMessage,
    NeedData,
    ParserName,
    Request,
    ResponseError,
    default_parser,
    new_http11,
)
from server.net.http import DEFAULT_LIMITS, HttpLimits, http_date
from server.net.http_server import node_defaults
from server.net.websocket_handler import serve_native

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from server.behaviours.socket_io import SocketIO

__all__ = [
    "AsgiConfig",
    "ClientDisconnected",
    "parse_app",
    "resolve_app",
    "serve_asgi_connection",
]

logger = logging.getLogger("server.net.asgi")

Scope = dict[str, Any]
Message = dict[str, Any]

_ASGI: Final = {"version": "3.0", "spec_version": "2.3"}
_SERVER_HEADER: Final = (b"server", b"server-asgi")
_DEFAULT_PARSER: Final = default_parser()


@final
@dataclass(frozen=True, slots=True)
class AsgiConfig:
    """What every connection of one ASGI listener shares (bytes and seconds).

    Raises:
        ValueError: ``app`` is not ``module:attribute``.
    """

    app: str
    idle_timeout: float = 60.0
    limits: HttpLimits = DEFAULT_LIMITS
    read_size: int = DEFAULT_READ_SIZE
    send_timeout: float = 30.0
    root_path: str = ""
    #: the HTTP/1.1 parser, ``"httptools"`` or ``"h11"``; None: the node's ``[node.http]
    #: parser``, else httptools when it is installed, else h11
    parser: ParserName | None = None
    #: a native WebSocket handler module (``websocket_handler``) serving every WebSocket
    #: instead of the ASGI application; ``websocket_args`` is its ``on_connect``'s ``args``
    websocket_handler: str | None = None
    websocket_args: object = None
    #: the registered name of the application's purger (``_asgi_purger``), if it has one
    purger: str | None = None
    #: the lifespan's ``state`` (ASGI's lifespan state): every request and WebSocket scope
    #: gets a shallow copy. It is held by the server, not by the application object, so
    #: what the startup put there is seen by every version of the application
    lifespan_state: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        parse_app(self.app)
        if self.parser is not None and self.parser not in PARSERS:
            raise ValueError(f"parser must be one of {', '.join(PARSERS)}, not {self.parser!r}")
        handler = self.websocket_handler
        if handler is not None and not all(p.isidentifier() for p in handler.split(".")):
            raise ValueError(f"websocket_handler must be a dotted module name, not {handler!r}")


def parse_app(text: str) -> tuple[str, str]:
    """``"pkg.mod:app"`` to ``("pkg.mod", "app")``.

    Raises:
        ValueError: it is not ``module:attribute`` (dotted identifiers).
    """
    module, colon, attribute = text.partition(":")
    names = [*module.split("."), *attribute.split(".")]
    if not colon or not module or not attribute or not all(n.isidentifier() for n in names):
        raise ValueError(f"an ASGI application is named module:attribute, not {text!r}")
    return module, attribute


@functools.lru_cache(maxsize=256)
def _parts(text: str) -> tuple[str, tuple[str, ...]]:
    """``parse_app`` with the attribute's path split, parsed once per name."""
    module, attribute = parse_app(text)
    return module, tuple(attribute.split("."))


def resolve_app(text: str) -> Any:
    """The application ``module:attribute`` names, in the module's current version.

    Raises:
        ValueError: ``text`` is not ``module:attribute``.
        ImportError, AttributeError: the module or the attribute does not exist.
    """
    module, attribute = _parts(text)
    found: Any = resolve(module)
    for part in attribute:
        found = getattr(found, part)
    return found


_date_second = -1
_date_value = b""


def _date() -> bytes:
    """The ``date`` header's value now, formatted once per second."""
    global _date_second, _date_value
    second = int(time.time())
    if second != _date_second:
        _date_value = http_date(second).encode()
        _date_second = second
    return _date_value


async def serve_asgi_connection(io: SocketIO, config: AsgiConfig) -> None:
    """The body of an ASGI connection process: serve requests, then close the socket."""
    kernel.set_label("behaviour", "asgi_connection")
    kernel.set_label("asgi_app", config.app)
    with contextlib.suppress(OSError):  # TCP only: no Nagle delay between an answer's writes
        io.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection = _Connection(io, config)
    try:
        if await run_until_purged(connection.run, connection.purged) is not None:
            await connection.close()
    except (TimeoutError, OSError):
        pass  # the client went away, or took nothing, while we wrote
    finally:
        io.close()


def _address(sock: Any, peer: bool) -> list[Any] | None:
    try:
        where = sock.getpeername() if peer else sock.getsockname()
    except OSError:
        return None
    if isinstance(where, tuple) and len(where) >= 2:
        return [str(where[0]), int(where[1])]
    return None


def _as_h11(request: Request) -> h11.Request | None:
    """The request as h11's event (what wsproto's handshake takes); None: h11 refuses it."""
    try:
        return h11.Request(
            method=request.method,
            target=request.target,
            headers=request.headers,
            http_version=request.http_version,
        )
    except h11.LocalProtocolError:
        return None


class _Connection:
    """The HTTP/1.1 state of one connection and the request cycle running on it."""

    def __init__(self, io: SocketIO, config: AsgiConfig) -> None:
        self.io = io
        self.config = config
        parser = config.parser or node_defaults().parser or _DEFAULT_PARSER
        self.http = new_http11(parser, config.limits.max_head_bytes)
        self.client = _address(io.socket, peer=True)
        self.server = _address(io.socket, peer=False)
        self.gone = False  # the client closed or reset its side
        self.module = parse_app(config.app)[0]
        #: what runs the application now, for a purge to tell its client
        self.current: _Cycle | WebSocketCycle | None = None

    async def run(self) -> None:
        while True:
            event = await self.next_event(self.config.idle_timeout, idle=True)
            if event is None:
                return
            if isinstance(event, Request):
                if event.head_size > self.config.limits.max_head_bytes:
                    await self.respond_and_close(431, b"Request Header Fields Too Large\n")
                    return
                if event.upgrade:
                    upgrade = _as_h11(event)
                    if upgrade is None:
                        await self.respond_and_close(400, b"Bad Request\n")
                        return
                    if is_websocket_upgrade(upgrade):
                        await self.websocket(upgrade)
                        return
                cycle = self.current = _Cycle(self, event)
                served = await cycle.run()
                self.current = None
                self.tell_purger()
                if not served:
                    return
            if not self.http.reusable or not self.http.start_next_cycle():
                await self.close()
                return

    async def purged(self, module: str) -> None:
        """The code this connection ran was purged, its call cancelled: tell the client.

        A request not answered yet gets a 503, a WebSocket is closed with 1012 (service
        restart), one not accepted yet gets a 503; the connection is closed after.
        """
        current = self.current
        config = self.config
        if isinstance(current, WebSocketCycle):
            logger.info(
                "asgi: websocket %s closed with 1012: the code it ran (%s) was purged",
                current.request.target.decode("latin-1"),
                module,
                extra={"report": "asgi_purged", "app": config.app},
            )
            if current.accepted:
                await current.close(SERVICE_RESTART)
            else:
                await self.respond(503, b"Service Unavailable\n")
        elif current is not None:
            request = current.request
            await current.purged()
            logger.info(
                "asgi: %s %s ended: the code it ran (%s) was purged",
                request.method.decode("ascii", "replace"),
                request.target.decode("latin-1"),
                module,
                extra={"report": "asgi_purged", "app": config.app},
            )

    def tell_purger(self) -> None:
        """Tell the purger this process may have left old code (while there is some)."""
        purger = self.config.purger
        if purger is None or not code_server.has_old(self.module):
            return
        pid = kernel.whereis(purger)
        if pid is not None:
            kernel.send(pid, ("left_old_code", kernel.self()))

    async def websocket(self, request: h11.Request) -> None:
        """Hand the connection to the application's ``websocket`` scope until it ends."""
        config = self.config
        cycle = WebSocketCycle(
            self.io,
            request,
            self.http.trailing_data,
            client=self.client,
            server=self.server,
            root_path=config.root_path,
            state=config.lifespan_state,
            read_size=config.read_size,
            send_timeout=config.send_timeout,
        )
        if config.websocket_handler is not None:
            # its callbacks run in the current version at each frame: no purge notice
            code_server.on_purge(None)
            await serve_native(cycle, config.websocket_handler, config.websocket_args)
            await self.close()
            return
        try:
            app = resolve_app(config.app)
            self.current = cycle
            await app(cycle.scope(), cycle.receive, cycle.send)
        except Exception:
            logger.exception(
                "asgi: application %s failed on websocket %s",
                config.app,
                request.target.decode("latin-1"),
                extra={"report": "asgi_app_error", "pid": repr(kernel.self()), "app": config.app},
            )
            if not cycle.accepted:
                await self.respond_and_close(500, b"Internal Server Error\n")
                return
            await cycle.close(1011)
        else:
            if not cycle.accepted and not cycle.closed:  # returned without accepting: 403
                await cycle.send({"type": "websocket.close"})
            await cycle.close(1000)
        self.current = None
        await self.close()

    async def next_event(
        self, timeout: float, *, idle: bool = False
    ) -> Request | Data | EndOfMessage | None:
        """The next parser event, reading as needed; None when the connection is over."""
        while True:
            try:
                event = self.http.next_event()
            except BadRequest as error:
                await self.refuse(error)
                return None
            if isinstance(event, NeedData):
                if not await self.read(timeout, idle=idle):
                    return None
                continue
            if isinstance(event, Closed):
                return None
            return event

    async def read(self, timeout: float, *, idle: bool = False) -> bool:
        """Feed the parser one read; False when the client is gone or silent too long."""
        try:
            data = await self.io.receive(self.config.read_size, timeout=timeout)
        except TimeoutError:
            if not idle or not self.http.idle:
                await self.respond_and_close(408, b"Request Timeout\n")
            return False
        except OSError:
            self.gone = True
            return False
        if not data:
            self.gone = True
        self.http.receive_data(data)
        return bool(data)

    async def refuse(self, error: BadRequest) -> None:
        status = error.status
        logger.info("asgi: refused a request: %s", error, extra={"status": status})
        await self.respond_and_close(status, f"{error}\n".encode())

    async def respond_and_close(self, status: int, body: bytes) -> None:
        await self.respond(status, body)
        await self.close()

    async def respond(self, status: int, body: bytes) -> None:
        """Answer ``status`` (the connection is closed after), unless an answer started."""
        http = self.http
        if not http.can_respond:
            return
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (b"date", _date()),
        ]
        try:
            data = http.send_response(status, headers) + http.send_data(body) + http.send_end()
        except ResponseError:
            data = b""
        if data and not self.gone:
            await self.io.send(data, timeout=self.config.send_timeout)

    async def close(self) -> None:
        self.io.send_eof()
        with anyio.move_on_after(2.0):  # a lingering close: let the client read the answer
            for _ in range(64):
                try:
                    if not await self.io.receive(self.config.read_size):
                        return
                except OSError:
                    return


class _Cycle:
    """One request and its response: the ASGI ``receive`` and ``send`` of one call."""

    def __init__(self, connection: _Connection, request: Request) -> None:
        self.c = connection
        self.request = request
        self.body_done = False
        self.body_read = 0
        self.started = False  # http.response.start given
        self.head = b""  # the response head, written with the first body message
        self.complete = False  # the whole response sent
        self.broken = False  # the response cannot be completed: close the connection
        self.done = False  # the application returned, or the response is complete
        self.finished: anyio.Event | None = None  # made only when someone waits for done

    def scope(self) -> Scope:
        request = self.request
        target = request.target
        raw_path, _, query = target.partition(b"?")
        return {
            "type": "http",
            "asgi": dict(_ASGI),
            "http_version": request.http_version.decode("ascii"),
            "method": request.method.decode("ascii"),
            "scheme": "http",
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": self.c.config.root_path,
            "headers": request.headers,  # made for this request by the parser
            "client": self.c.client,
            "server": self.c.server,
            "state": dict(self.c.config.lifespan_state or {}),
        }

    async def run(self) -> bool:
        """Serve the request; True when the connection may serve another one."""
        config = self.c.config
        try:
            app = resolve_app(config.app)
            await app(self.scope(), self.receive, self.send)
        except Exception:
            logger.exception(
                "asgi: application %s failed on %s %s",
                config.app,
                self.request.method.decode("ascii", "replace"),
                self.request.target.decode("latin-1"),
                extra={"report": "asgi_app_error", "pid": repr(kernel.self()), "app": config.app},
            )
            if not self.started and not self.c.gone:
                await self.c.respond_and_close(500, b"Internal Server Error\n")
                return False
            self.broken = True
        finally:
            self._finish()
        if not self.complete:
            if not self.started and not self.c.gone and not self.broken:
                logger.error("asgi: application %s returned without a response", config.app)
                await self.c.respond_and_close(500, b"Internal Server Error\n")
                return False
            await self.c.close()
            return False
        if self.c.gone:
            return False
        return await self._drain_body()

    def _finish(self) -> None:
        self.done = True
        if self.finished is not None:
            self.finished.set()

    async def _until_finished(self) -> None:
        if self.done:
            return
        if self.finished is None:
            self.finished = anyio.Event()
        await self.finished.wait()

    async def purged(self) -> None:
        """The code this request runs is purged: a 503 if no answer started (then closed)."""
        c = self.c
        self.broken = True
        if self.started or c.gone or not c.http.can_respond:
            return
        body = b"Service Unavailable: the code serving this request was replaced\n"
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (b"retry-after", b"0"),
            (b"date", _date()),
        ]
        http = c.http
        data = http.send_response(503, headers) + http.send_data(body) + http.send_end()
        self.started = self.complete = True
        await c.io.send(data, timeout=c.config.send_timeout)

    async def _drain_body(self) -> bool:
        """Read what is left of the request body, so the next request can be parsed."""
        while not self.body_done:
            message = await self._body_event()
            if message["type"] == "http.disconnect":
                return False
        return True

    # -- receive --------------------------------------------------------------------------

    async def receive(self) -> Message:
        if not self.body_done and not self.c.gone:
            return await self._body_event()
        if self.complete or self.c.gone:
            return {"type": "http.disconnect"}
        await self._until_disconnect_or_done()
        return {"type": "http.disconnect"}

    async def _body_event(self) -> Message:
        c = self.c
        if not self.started and c.http.waiting_for_continue:
            await c.io.send(c.http.send_continue(), timeout=c.config.send_timeout)
        event = await c.next_event(c.config.idle_timeout)
        if event is None:
            return {"type": "http.disconnect"}
        if isinstance(event, Data):
            self.body_read += len(event.data)
            if self.body_read > c.config.limits.max_body_bytes:
                if not self.started:
                    await c.respond_and_close(413, b"Payload Too Large\n")
                c.gone = True  # this connection is over, whatever the application does
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": bytes(event.data), "more_body": True}
        if isinstance(event, EndOfMessage):
            self.body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def _until_disconnect_or_done(self) -> None:
        """Wait until the response is complete or the client is seen going away."""
        c = self.c
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                await self._until_finished()
                group.cancel_scope.cancel()

            group.start_soon(watch)
            buffered = 0
            while not c.gone and buffered < c.config.read_size:
                try:
                    data = await c.io.receive(c.config.read_size)
                except OSError:
                    c.gone = True
                    break
                if not data:
                    c.gone = True
                    break
                buffered += len(data)
                c.http.receive_data(data)  # a pipelined request: kept for the next cycle
            if not c.gone:
                await self._until_finished()
            group.cancel_scope.cancel()

    # -- send -----------------------------------------------------------------------------

    async def send(self, message: MutableMapping[str, Any]) -> None:
        c = self.c
        kind = message.get("type")
        if c.gone:
            raise ClientDisconnected("the client has gone away")
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            status = int(message["status"])
            # the head waits for the first body message: one write for a small answer
            self.head = c.http.send_response(status, message.get("headers", ()), _date())
            self.started = True
            return
        elif kind == "http.response.body":
            if not self.started:
                raise RuntimeError("http.response.body before http.response.start")
            if self.complete:
                raise RuntimeError("http.response.body after the response was complete")
            body = bytes(message.get("body", b""))
            data = self.head + c.http.send_data(body) if body else self.head
            self.head = b""
            if not message.get("more_body", False):
                data += c.http.send_end()
                self.complete = True
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in the http scope")
        try:
            if data:
                await c.io.send(data, timeout=c.config.send_timeout)
        except OSError:
            c.gone = True
            raise ClientDisconnected("the client has gone away") from None
        if self.complete:
            self._finish()
