"""The client side of the control socket: one request, its progress, its reply.

Plain anyio, no node needed: this is what the ``server`` CLI runs. Each ``request`` opens
a connection, sends one ``Request``, passes each ``Progress`` line to ``on_progress`` and
returns the ``Reply``'s result, or raises the error the node answered.
"""

from __future__ import annotations

import functools
import os
import time
from typing import TYPE_CHECKING, Final

import anyio
from pydantic import ValidationError

from server.control._socket import MAX_PATH_BYTES
from server.control.protocol import (
    ErrorReply,
    LineDecoder,
    LineTooLong,
    Progress,
    Reply,
    Request,
    encode,
    parse_reply,
)
from server.errors import (
    ConnectionLost,
    ControlSocketError,
    ControlTimeout,
    NodeNotRunning,
    ProtocolViolation,
    RemoteError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from anyio.abc import SocketStream
    from pydantic import JsonValue

    from server.control.protocol import ProgressInfo

__all__ = ["MAX_REPLY_LINE", "request", "request_sync"]

#: The longest line the client takes from the node (a big result is one line).
MAX_REPLY_LINE: Final = 64 * 1024 * 1024

_REQUEST_ID: Final = 1  # one request per connection


async def request(
    path: Path,
    command: str,
    args: Mapping[str, JsonValue] | None = None,
    *,
    on_progress: Callable[[ProgressInfo], None] | None = None,
    timeout: float = 30.0,
) -> JsonValue:
    """Send ``command`` to the node listening at ``path`` and return its result.

    ``timeout`` bounds each wait (connecting, sending, and the gap before each line the
    node sends), so a long command that keeps sending progress is not cut short.

    Raises:
        NodeNotRunning: no socket file at ``path``, or a stale one (nobody listens).
        ControlSocketError: the path cannot be used (too long, no permission, ...).
        ControlTimeout: the node did not answer within ``timeout``.
        ConnectionLost: the node closed the connection before its reply.
        ProtocolViolation: the node sent something that is not a valid message.
        RemoteError: the node answered with an error (its ``type`` and ``message``).
        ValueError: ``command`` or ``args`` cannot be sent (not a command name, not JSON).
    """
    try:
        Request(id=_REQUEST_ID, command=command, args=dict(args or {}))
    except ValidationError as exc:
        raise ValueError(f"cannot send {command!r}: {exc}") from None
    where = str(path)
    stream = await _connect(path, command, timeout)
    async with stream:
        # the node must read it before the client stops waiting, or it will not run it
        message = Request(
            id=_REQUEST_ID,
            command=command,
            args=dict(args or {}),
            not_after=time.time() + timeout,
        )
        try:
            with anyio.fail_after(timeout):
                await stream.send(encode(message))
        except TimeoutError:
            raise ControlTimeout(where, command, timeout, sent=True) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            raise ConnectionLost(where, command) from None
        return await _await_reply(stream, where, command, on_progress, timeout)


async def _connect(path: Path, command: str, timeout: float) -> SocketStream:
    where = str(path)
    if len(os.fsencode(path)) > MAX_PATH_BYTES:
        raise ControlSocketError(
            where, f"the path is longer than the {MAX_PATH_BYTES} bytes a Unix socket allows"
        )
    try:
        with anyio.fail_after(timeout):
            return await anyio.connect_unix(path)
    except TimeoutError:
        raise ControlTimeout(where, command, timeout, sent=False) from None
    except FileNotFoundError:
        raise NodeNotRunning(where, "no socket file") from None
    except ConnectionRefusedError:
        raise NodeNotRunning(where, "the socket file is stale: its node is gone") from None
    except PermissionError:
        raise ControlSocketError(
            where, "permission denied: the node runs as another user"
        ) from None
    except OSError as exc:
        raise ControlSocketError(where, f"cannot connect: {exc.strerror or exc}") from None


async def _await_reply(
    stream: SocketStream,
    where: str,
    command: str,
    on_progress: Callable[[ProgressInfo], None] | None,
    timeout: float,
) -> JsonValue:
    decoder = LineDecoder(MAX_REPLY_LINE)
    while True:
        try:
            with anyio.fail_after(timeout):
                chunk = await stream.receive()
        except TimeoutError:
            raise ControlTimeout(where, command, timeout, sent=True) from None
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise ConnectionLost(where, command) from None
        except OSError:
            raise ConnectionLost(where, command) from None
        for line in decoder.feed(chunk):
            if isinstance(line, LineTooLong):
                raise ProtocolViolation(where, f"a line longer than {line.limit} bytes")
            if not line.strip():
                continue
            try:
                reply = parse_reply(line)
            except ValueError as exc:
                raise ProtocolViolation(where, str(exc)) from None
            if reply.id is None or reply.id == _REQUEST_ID:
                if isinstance(reply, Progress):
                    if on_progress is not None:
                        on_progress(reply.progress)
                    continue
                if isinstance(reply, Reply):
                    return reply.result
                if isinstance(reply, ErrorReply):
                    raise RemoteError(reply.error.type, reply.error.message)
            raise ProtocolViolation(where, f"a message for another request: {reply!r}")


def request_sync(
    path: Path,
    command: str,
    args: Mapping[str, JsonValue] | None = None,
    *,
    on_progress: Callable[[ProgressInfo], None] | None = None,
    timeout: float = 30.0,
) -> JsonValue:
    """``request`` for synchronous code (the CLI): runs its own event loop.

    Raises:
        RuntimeError: called from a thread that already runs an event loop.
        ControlError: as ``request`` (``NodeNotRunning``, ``RemoteError``, ...).
        ValueError: as ``request``.
    """
    call = functools.partial(request, path, command, args, on_progress=on_progress, timeout=timeout)
    return anyio.run(call, backend="asyncio")
