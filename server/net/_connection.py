"""The connection process: reads requests from one socket, answers each through the handler.

How this works:

1. One process per accepted connection, spawned and linked by the listener. This module
   is library code, never reloaded: the only application code the process runs is the
   handler, looked up with ``resolve(handler)`` afresh for each request and held by no
   frame once it has answered. So a new version of the handler module answers the next
   request on an open keep-alive connection, and between requests ``check_process_code``
   finds no frame of the application's old version in this process.
2. The loop: take every complete request the parser holds and answer it, in order; only
   then wait for more bytes (at most ``idle_timeout`` seconds per wait). So pipelined
   requests are answered in order and a slow handler pushes back on the client.
3. A handler exception becomes a 500 for that request only. A protocol error gets its
   status and the connection closes. A closing answer is followed by a *lingering close*:
   the write side is shut, and what the client still sends is read and dropped for a
   moment, so that the kernel does not reset the connection before the client has read
   the answer.
4. Every end of the process (normal, error, an exit signal) closes the socket: the stream
   is closed in a ``finally`` block, which also runs when the process is killed.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

import anyio

from server import kernel
from server.behaviours import resolve
from server.net.http import (
    CONTINUE,
    HttpLimits,
    HttpProtocolError,
    Request,
    RequestParser,
    Response,
    error_response,
    http_date,
    should_close,
    text_response,
    write_response,
)

if TYPE_CHECKING:
    from anyio.abc import SocketStream

__all__ = ["ConnectionConfig", "serve_connection"]

logger = logging.getLogger(__name__)

#: How long a closing connection keeps reading what the client still sends (seconds).
LINGER_SECONDS: Final = 2.0
#: The most a lingering close reads before it gives up (bytes).
LINGER_BYTES: Final = 256 * 1024

_INTERNAL_ERROR: Final = text_response("Internal Server Error\n", 500)
_TIMEOUT: Final = text_response("Request Timeout\n", 408)
_READ_ERRORS: Final = (anyio.EndOfStream, anyio.BrokenResourceError, OSError)


@final
@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """What every connection of one listener shares."""

    handler: str
    handler_args: object
    idle_timeout: float
    limits: HttpLimits


async def serve_connection(stream: SocketStream, config: ConnectionConfig) -> None:
    """The body of a connection process: converse, then close the socket."""
    kernel.set_label("behaviour", "http_connection")
    kernel.set_label("http_handler", config.handler)
    try:
        await _converse(stream, RequestParser(config.limits), config)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass  # the client went away while we wrote: nothing left to answer
    finally:
        await stream.aclose()


async def _converse(stream: SocketStream, parser: RequestParser, config: ConnectionConfig) -> None:
    while True:
        try:
            request = parser.next_request()
        except HttpProtocolError as error:
            logger.info(
                "http: refused a request: %s",
                error,
                extra={"pid": repr(kernel.self()), "status": error.status},
            )
            await _send_and_close(stream, error_response(error), None)
            return
        if request is not None:
            response = await _answer(request, config)
            if should_close(request, response):
                await _send_and_close(stream, response, request)
                return
            await stream.send(write_response(response, close=False, request=request, date=_now()))
            continue
        if parser.take_continue():
            await stream.send(CONTINUE)
        data = b""
        with anyio.move_on_after(config.idle_timeout):
            try:
                data = await stream.receive()
            except _READ_ERRORS:
                return  # the client closed (or reset) the connection
        if not data:  # idle for too long
            if parser.pending:
                await _send_and_close(stream, _TIMEOUT, None)
            return
        parser.feed(data)


async def _answer(request: Request, config: ConnectionConfig) -> Response:
    try:
        result: object = resolve(config.handler).handle_request(request, config.handler_args)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Response):
            raise TypeError(f"handle_request returned {result!r}, not a Response")
    except Exception:
        logger.exception(
            "http: handler %s failed on %s %s",
            config.handler,
            request.method,
            request.target,
            extra={
                "report": "http_handler_error",
                "pid": repr(kernel.self()),
                "handler": config.handler,
                "method": request.method,
                "target": request.target,
            },
        )
        return _INTERNAL_ERROR
    return result


async def _send_and_close(
    stream: SocketStream, response: Response, request: Request | None
) -> None:
    await stream.send(write_response(response, close=True, request=request, date=_now()))
    await stream.send_eof()
    read = 0
    with anyio.move_on_after(LINGER_SECONDS):
        while read < LINGER_BYTES:
            try:
                read += len(await stream.receive())
            except _READ_ERRORS:
                return


def _now() -> str:
    return http_date(time.time())
