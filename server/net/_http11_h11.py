"""The HTTP/1.1 server side of a connection on h11's state machine (``_http11.Http11``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import h11

from server.net._http11 import (
    CLOSED,
    END,
    NEED_DATA,
    BadRequest,
    Data,
    Event,
    Request,
    ResponseError,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["H11Http11"]


@final
class H11Http11:
    """One connection's h11 ``Connection`` (server role) behind the ``Http11`` interface."""

    def __init__(self, max_head_bytes: int) -> None:
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head_bytes)

    def receive_data(self, data: bytes) -> None:
        self._h11.receive_data(data)

    def next_event(self) -> Event:
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as error:
            status = error.error_status_hint
            if status == 400 and "exceeds" in str(error).lower():
                status = 431
            raise BadRequest(status, str(error)) from None
        if event is h11.NEED_DATA:
            return NEED_DATA
        if isinstance(event, h11.Request):
            headers = list(event.headers)
            line = len(event.method) + len(event.target) + 11
            size = line + sum(len(name) + len(value) + 4 for name, value in headers) + 2
            upgrade = any(name == b"upgrade" for name, _ in headers)
            return Request(event.method, event.target, event.http_version, headers, size, upgrade)
        if isinstance(event, h11.Data):
            return Data(bytes(event.data))
        if isinstance(event, h11.EndOfMessage):
            return END
        return CLOSED  # PAUSED, ConnectionClosed

    @property
    def idle(self) -> bool:
        return self._h11.their_state is h11.IDLE

    @property
    def can_respond(self) -> bool:
        return self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE)

    @property
    def waiting_for_continue(self) -> bool:
        return self._h11.they_are_waiting_for_100_continue

    @property
    def reusable(self) -> bool:
        states = {self._h11.our_state, self._h11.their_state}
        return not states & {h11.MUST_CLOSE, h11.CLOSED, h11.ERROR}

    @property
    def trailing_data(self) -> bytes:
        return bytes(self._h11.trailing_data[0])

    def send_continue(self) -> bytes:
        return self._send(h11.InformationalResponse(status_code=100, headers=[]))

    def send_response(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], date: bytes | None = None
    ) -> bytes:
        pairs = list(headers)
        if date is not None and not any(name.lower() == b"date" for name, _ in pairs):
            pairs.append((b"date", date))
        try:
            response = h11.Response(status_code=status, headers=pairs)
        except h11.LocalProtocolError as error:
            raise ResponseError(str(error)) from None
        return self._send(response)

    def send_data(self, data: bytes) -> bytes:
        return self._send(h11.Data(data=data)) if data else b""

    def send_end(self) -> bytes:
        return self._send(h11.EndOfMessage())

    def start_next_cycle(self) -> bool:
        try:
            self._h11.start_next_cycle()
        except h11.LocalProtocolError:
            return False
        return True

    def _send(self, event: h11.Event) -> bytes:
        try:
            return self._h11.send(event) or b""
        except h11.LocalProtocolError as error:
            raise ResponseError(str(error)) from None
