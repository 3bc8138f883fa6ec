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
4. Back-pressure: the socket is read only when every request read so far has been
   answered, at most ``read_size`` bytes at a time, and each answer is sent whole (the
   kernel's buffer, then waiting for the peer to take more) before the next is worked on.
   A client that sends without reading fills its own TCP window: the connection holds at
   most ``read_size`` unparsed bytes (plus one request within ``HttpLimits``) and one
   answer. A peer that takes nothing for ``send_timeout`` seconds is cut off.
5. Every end of the process (normal, error, an exit signal) closes the socket: in a
   ``finally`` block, which also runs when the process is killed; the listener closes it
   too when the process has ended, whatever it did.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass
from typing import Final, final

import anyio

from server import kernel
from server.behaviours import resolve
from server.behaviours.socket_io import DEFAULT_READ_SIZE, SocketIO
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

__all__ = ["ConnectionConfig", "refuse_connection", "serve_connection"]

logger = logging.getLogger(__name__)

#: How long a closing connection keeps reading what the client still sends (seconds).
LINGER_SECONDS: Final = 2.0
#: The most a lingering close reads before it gives up (bytes).
LINGER_BYTES: Final = 256 * 1024

_INTERNAL_ERROR: Final = text_response("Internal Server Error\n", 500)
_TIMEOUT: Final = text_response("Request Timeout\n", 408)
_UNAVAILABLE: Final = text_response("Service Unavailable: too many connections\n", 503)
#: How long a refused connection may take to read its 503 (seconds).
REFUSE_SECONDS: Final = 5.0


@final
@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """What every connection of one listener shares (sizes in bytes, durations in seconds).

    Attributes:
        read_size: the most one read takes from the socket; with the request limits, it
            bounds the unparsed input a connection holds.
        send_timeout: a peer that takes none of an answer for this long is cut off.
    """

    handler: str
    handler_args: object
    idle_timeout: float
    limits: HttpLimits
    read_size: int = DEFAULT_READ_SIZE
    send_timeout: float = 30.0


async def serve_connection(io: SocketIO, config: ConnectionConfig) -> None:
    """The body of a connection process: converse, then close the socket."""
    kernel.set_label("behaviour", "http_connection")
    kernel.set_label("http_handler", config.handler)
    try:
        await _converse(io, RequestParser(config.limits), config)
    except (TimeoutError, OSError):
        pass  # the client went away, or took nothing, while we wrote: nothing left to do
    finally:
        io.close()


async def refuse_connection(io: SocketIO) -> None:
    """The body of a process that answers a connection over the cap with 503, then closes."""
    try:
        await _send_and_close(io, _UNAVAILABLE, None, REFUSE_SECONDS)
    except (TimeoutError, OSError):
        pass
    finally:
        io.close()


async def _converse(io: SocketIO, parser: RequestParser, config: ConnectionConfig) -> None:
    # Reads only when every request already read has been answered, and each answer is
    # sent whole before the next is worked on: a client that does not read its answers
    # fills its own window, not this process's memory.
    send_timeout = config.send_timeout
    while True:
        try:
            request = parser.next_request()
        except HttpProtocolError as error:
            logger.info(
                "http: refused a request: %s",
                error,
                extra={"pid": repr(kernel.self()), "status": error.status},
            )
            await _send_and_close(io, error_response(error), None, send_timeout)
            return
        if request is not None:
            response = await _answer(request, config)
            if should_close(request, response):
                await _send_and_close(io, response, request, send_timeout)
                return
            data = write_response(response, close=False, request=request, date=_now())
            await io.send(data, timeout=send_timeout)
            continue
        if parser.take_continue():
            await io.send(CONTINUE, timeout=send_timeout)
        try:
            data = await io.receive(config.read_size, timeout=config.idle_timeout)
        except TimeoutError:  # idle for too long
            if parser.pending:
                await _send_and_close(io, _TIMEOUT, None, send_timeout)
            return
        except OSError:
            return  # the connection was reset
        if not data:
            return  # the client closed its side
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
    io: SocketIO, response: Response, request: Request | None, send_timeout: float
) -> None:
    await io.send(
        write_response(response, close=True, request=request, date=_now()), timeout=send_timeout
    )
    io.send_eof()
    read = 0
    with anyio.move_on_after(LINGER_SECONDS):
        while read < LINGER_BYTES:
            try:
                chunk = await io.receive()
            except OSError:
                return
            if not chunk:
                return
            read += len(chunk)


def _now() -> str:
    return http_date(time.time())
