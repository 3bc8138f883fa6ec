"""The ASGI ``websocket`` scope over a connection h11 has parsed the upgrade request of.

The framing is wsproto's (a maintained sans-IO WebSocket implementation), started from the
request h11 parsed (``initiate_upgrade_connection``); this module moves bytes between it
and the socket and speaks ASGI's ``websocket`` messages to the application.

How this works:

1. The first ``receive`` answers ``websocket.connect``. The application answers with
   ``websocket.accept`` (the 101 goes out) or ``websocket.close`` before accepting (a 403).
2. Frames are read from the socket only when the application calls ``receive``: a client
   that floods a connection whose application does not read is pushed back by TCP, and
   the connection holds at most ``read_size`` unread bytes and one message being
   assembled, of at most ``max_message`` bytes (beyond: closed with 1009).
3. Pings are answered as they are read; a close from the client is answered and the
   application's ``receive`` gets ``websocket.disconnect`` with the client's code.
4. ``send`` writes each frame whole before it returns (back-pressure on the application);
   a ``send`` after the connection closed raises ``ClientDisconnected``.
5. ``close(code)`` closes from the server side: the node uses it with 1012 (service
   restart) when the application's old version must go. A write cancelled in the middle
   of a frame leaves nothing more to send (the close is then the TCP connection's).
6. The connection process's label ``websocket_io`` holds its counters
   (``WebSocketCounters``): bytes read and written, and the most bytes it held at once
   (the message being assembled plus one read).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final
from urllib.parse import unquote

import anyio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from server import kernel

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    import h11

    from server.behaviours.socket_io import SocketIO

__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "SERVICE_RESTART",
    "ClientDisconnected",
    "WebSocketCounters",
    "WebSocketCycle",
    "is_websocket_upgrade",
]

logger = logging.getLogger("server.net.asgi")

DEFAULT_MAX_MESSAGE: Final = 1024 * 1024
SERVICE_RESTART: Final = 1012
_ASGI: Final = {"version": "3.0", "spec_version": "2.3"}


def is_websocket_upgrade(request: h11.Request) -> bool:
    """The request asks to switch to the WebSocket protocol."""
    for name, value in request.headers:
        if name == b"upgrade" and value.lower() == b"websocket":
            return True
    return False


def _bytes(part: bytes | str) -> bytes:
    return part if isinstance(part, bytes) else part.encode()


@final
@dataclass(slots=True)
class WebSocketCounters:
    """What one WebSocket moved, in bytes on the wire (its process's ``websocket_io``)."""

    bytes_in: int = 0
    bytes_out: int = 0
    #: the most bytes held at once: the message being assembled and one read (at most
    #: ``max_message + read_size``)
    most_held: int = 0


class ClientDisconnected(OSError):
    """``send`` to a client that has gone away, or on a closed WebSocket (ASGI: an OSError)."""


class WebSocketCycle:
    """One WebSocket: its wsproto state, the ASGI ``receive`` and ``send`` of the application."""

    def __init__(
        self,
        io: SocketIO,
        request: h11.Request,
        pending: bytes,
        *,
        client: list[Any] | None,
        server: list[Any] | None,
        root_path: str,
        state: dict[str, Any] | None = None,
        read_size: int,
        send_timeout: float,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        self.io = io
        self.request = request
        self.read_size = read_size
        self.send_timeout = send_timeout
        self.max_message = max_message
        self.ws = WSConnection(ConnectionType.SERVER)
        self.ws.initiate_upgrade_connection(list(request.headers), request.target)
        if pending:
            self.ws.receive_data(pending)
        self.client, self.server, self.root_path = client, server, root_path
        self.state = state
        self.connected = False  # websocket.connect handed to the application
        self.accepted = False
        self.closed = False  # a close was sent or received, or the socket is gone
        self.close_code: int | None = None
        self.parts: list[bytes | str] = []
        self.size = 0
        self.lock = anyio.Lock()  # one writer at a time on the socket
        self.torn = False  # a write was cut off mid-frame: nothing more can be sent
        self.counters = WebSocketCounters(bytes_in=len(pending))
        kernel.set_label("websocket_io", self.counters)

    def scope(self) -> dict[str, Any]:
        raw_path, _, query = self.request.target.partition(b"?")
        protocols = [
            part.strip().decode("latin-1")
            for name, value in self.request.headers
            if name == b"sec-websocket-protocol"
            for part in value.split(b",")
        ]
        return {
            "type": "websocket",
            "asgi": dict(_ASGI),
            "http_version": self.request.http_version.decode("ascii"),
            "scheme": "ws",
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": self.root_path,
            "headers": list(self.request.headers),
            "client": self.client,
            "server": self.server,
            "subprotocols": protocols,
            "state": dict(self.state or {}),
        }

    # -- receive --------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        while True:
            for event in self.ws.events():
                message = await self._event(event)
                if message is not None:
                    return message
            if self.closed:
                return {"type": "websocket.disconnect", "code": self.close_code or 1006}
            if not await self._read():
                self.closed = True
                return {"type": "websocket.disconnect", "code": self.close_code or 1006}

    async def _read(self) -> bool:
        try:
            data = await self.io.receive(self.read_size)
        except OSError:
            return False
        if not data:
            return False
        counters = self.counters
        counters.bytes_in += len(data)
        counters.most_held = max(counters.most_held, self.size + len(data))
        try:
            self.ws.receive_data(data)
        except RemoteProtocolError as error:
            logger.info("asgi: websocket protocol error: %s", error)
            await self.close(1002)
            return False
        return True

    async def _event(self, event: object) -> dict[str, Any] | None:
        if isinstance(event, TextMessage | BytesMessage):
            self.size += len(event.data)
            if self.size > self.max_message:
                await self.close(1009)
                return {"type": "websocket.disconnect", "code": 1009}
            self.parts.append(event.data if isinstance(event.data, str) else bytes(event.data))
            if not event.message_finished:
                return None
            parts, self.parts, self.size = self.parts, [], 0
            if isinstance(event, TextMessage):
                return {"type": "websocket.receive", "text": "".join(str(p) for p in parts)}
            return {"type": "websocket.receive", "bytes": b"".join(_bytes(p) for p in parts)}
        if isinstance(event, Ping):
            await self._write(self.ws.send(event.response()))
            return None
        if isinstance(event, CloseConnection):
            self.close_code = event.code
            if self.ws.state is not ConnectionState.CLOSED:
                with contextlib.suppress(OSError):
                    await self._write(self.ws.send(event.response()))
            self.closed = True
            return {"type": "websocket.disconnect", "code": event.code}
        return None

    # -- send -----------------------------------------------------------------------------

    async def send(self, message: MutableMapping[str, Any]) -> None:
        kind = message.get("type")
        if kind == "websocket.accept":
            if self.accepted:
                raise RuntimeError("websocket.accept sent twice")
            self.accepted = True
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
            accept = AcceptConnection(subprotocol=message.get("subprotocol"), extra_headers=headers)
            await self._write(self.ws.send(accept))
        elif kind == "websocket.send":
            if not self.accepted:
                raise RuntimeError("websocket.send before websocket.accept")
            if self.closed:
                raise ClientDisconnected("the websocket is closed")
            text, data = message.get("text"), message.get("bytes")
            event = TextMessage(data=text) if text is not None else BytesMessage(data=data or b"")
            await self._write(self.ws.send(event))
        elif kind == "websocket.close":
            if not self.accepted:
                reject = RejectConnection(status_code=403, headers=[(b"content-length", b"0")])
                await self._write(self.ws.send(reject))
                self.closed = True
                return
            await self.close(int(message.get("code", 1000)), message.get("reason"))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in the websocket scope")

    async def close(self, code: int, reason: str | None = None) -> None:
        """Close the WebSocket from this side with ``code`` (no-op once closed)."""
        if self.closed or not self.accepted:
            return
        self.closed = True
        self.close_code = code
        with contextlib.suppress(OSError, LocalProtocolError):
            await self._write(self.ws.send(CloseConnection(code=code, reason=reason)))

    async def _write(self, data: bytes) -> None:
        async with self.lock:
            if self.torn:
                raise ClientDisconnected("the websocket is closed")
            self.torn = True  # until the write completes: cancelled in it, a frame is torn
            try:
                await self.io.send(data, timeout=self.send_timeout)
                self.torn = False
                self.counters.bytes_out += len(data)
            except OSError:
                self.closed = True
                raise ClientDisconnected("the client has gone away") from None
