"""One control connection: a kernel process reading requests and writing replies.

How this works:

1. Each accepted connection runs in its own process (``serve_connection``). A handler may
   wait on other processes (a ``gen_server.call`` to the release handler receives on the
   current process's mailbox), and a process has one mailbox: so handlers of different
   connections must not share a process. Within a connection requests are read, handled
   and answered one after the other, in order.
2. Two tasks: the reader (parses lines, runs handlers, queues replies) and the writer
   (sends queued lines). They meet at a bounded queue of ``outbox`` lines. Every send is
   bounded by ``write_timeout``: a peer that stops reading gets its connection closed, and
   from then on the writer drops what is queued, so nothing ever waits on that peer again.
3. Progress events are queued without waiting: when the queue is full (a slow reader),
   the event is dropped; progress is advisory. The final reply is never dropped: the
   reader waits for room, which the writer makes within ``write_timeout``.
4. A peer that closes, breaks or stops sending ends the connection: no complete request
   within ``idle_timeout`` closes it (after a best-effort ``idle_timeout`` error line); blank,
   malformed and over-long lines are not requests and do not move that deadline.
   A handler that is running when its peer goes away runs to its end; its reply is then
   dropped. A client leaving never cancels a half-done command.
5. Peer credentials: on Linux the peer's uid (``SO_PEERCRED``) must be in
   ``allowed_uids``, by default the node's own effective uid and root (root can read the
   socket anyway); any other gets a ``forbidden`` error line, then the connection closes.
   Elsewhere the socket's mode (0600) and its folder's (0700) are the only gate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias, final

import anyio
from pydantic import JsonValue, ValidationError

from server.control.protocol import (
    DEFAULT_MAX_LINE,
    EXPIRED,
    FORBIDDEN,
    IDLE_TIMEOUT,
    INTERNAL,
    LINE_TOO_LONG,
    UNKNOWN_COMMAND,
    ErrorReply,
    LineDecoder,
    LineTooLong,
    Progress,
    ProgressInfo,
    Reply,
    Request,
    encode,
    error_reply,
    parse_request,
)
from server.errors import ServerError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from server.behaviours.socket_io import SocketIO

__all__ = ["CommandHandler", "ControlOptions", "ProgressCallback", "serve_connection"]

logger = logging.getLogger("server.control")

#: How a handler reports progress: call it with each step; it never waits.
ProgressCallback: TypeAlias = Callable[[ProgressInfo], None]
#: ``async def handler(args, progress) -> JsonValue`` (see ``server.control.server``).
CommandHandler: TypeAlias = Callable[[dict[str, Any], ProgressCallback], Awaitable[JsonValue]]

_READ_SIZE: Final = 64 * 1024


@final
@dataclass(frozen=True, slots=True)
class ControlOptions:
    """How the control server treats its clients (durations in seconds).

    Attributes:
        idle_timeout: a connection with no complete request for this long is closed.
        write_timeout: a reply (or progress line) not taken by the peer within this is
            the end of the connection.
        max_line: the longest request line, in bytes; a longer one is dropped and answered
            ``line_too_long``.
        max_connections: connections served at once. When full, a new connection closes
            the one idle longest (no command running), so the operator always gets in;
            only when every connection runs a command is it answered ``busy``.
        outbox: lines queued for one peer; progress beyond it is dropped.
        allowed_uids: peer uids accepted (Linux); None means the node's effective uid and
            root.
    """

    idle_timeout: float = 300.0
    write_timeout: float = 10.0
    max_line: int = DEFAULT_MAX_LINE
    max_connections: int = 64
    outbox: int = 64
    allowed_uids: frozenset[int] | None = None


def peer_uid(io: SocketIO) -> int | None:
    """The uid of the process at the other end, where the system tells it (Linux)."""
    credentials = io.peer_credentials()
    return None if credentials is None else credentials[1]


def peer_allowed(uid: int | None, allowed: frozenset[int] | None) -> bool:
    """Whether a peer running as ``uid`` may use the socket (unknown uid: yes)."""
    if uid is None:
        return True
    if allowed is None:
        allowed = frozenset({os.geteuid(), 0})
    return uid in allowed


@final
@dataclass(slots=True)
class ConnectionActivity:
    """What the server knows of one connection, to pick whom to close when it is full.

    Written only by the connection's own process, read by the control server's acceptor
    (both run inside the control server's subsystem, on one event loop).
    """

    last_request: float
    running: bool = False


async def serve_connection(
    io: SocketIO,
    commands: Mapping[str, CommandHandler],
    options: ControlOptions,
    activity: ConnectionActivity | None = None,
) -> None:
    """The body of one connection's process: serve ``io`` until it ends."""
    await _Connection(io, commands, options, activity).run()


async def refuse_connection(io: SocketIO, reply: ErrorReply, timeout: float) -> None:
    """The body of a process that answers one error line and closes (server busy)."""
    try:
        with contextlib.suppress(TimeoutError, OSError):
            await io.send(encode(reply), timeout=timeout)
    finally:
        io.close()


@final
class _Connection:
    __slots__ = (
        "_activity",
        "_broken",
        "_commands",
        "_dropped",
        "_inbox",
        "_io",
        "_options",
        "_outbox",
        "_reading",
    )

    def __init__(
        self,
        io: SocketIO,
        commands: Mapping[str, CommandHandler],
        options: ControlOptions,
        activity: ConnectionActivity | None,
    ) -> None:
        self._activity = activity if activity is not None else ConnectionActivity(0.0)
        self._io = io
        self._commands = commands
        self._options = options
        self._outbox, self._inbox = anyio.create_memory_object_stream[bytes](options.outbox)
        self._broken = False
        self._reading: anyio.CancelScope | None = None
        self._dropped = 0

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._write_loop)
                await self._converse()
        finally:
            self._io.close()

    async def _converse(self) -> None:
        try:
            try:
                uid = peer_uid(self._io)
            except OSError:  # credentials that cannot be read are not the right ones
                uid = -1
            if peer_allowed(uid, self._options.allowed_uids):
                await self._read_loop()
            else:
                logger.warning(
                    "control: refused a peer running as uid %s",
                    uid,
                    extra={"peer_uid": uid, "node_uid": os.geteuid()},
                )
                await self._send(
                    error_reply(
                        None,
                        FORBIDDEN,
                        f"uid {uid} may not control this node (it runs as uid {os.geteuid()})",
                    )
                )
        finally:
            self._outbox.close()  # the writer sends what is queued, then ends

    # -- reading ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        decoder = LineDecoder(self._options.max_line)
        pending: deque[bytes | LineTooLong] = deque()
        # only a completed request moves the deadline: blank, partial, malformed and
        # over-long lines are not activity, so a peer cannot hold a connection with them
        deadline = anyio.current_time() + self._options.idle_timeout
        while not self._broken:
            if not pending:
                while not pending:
                    chunk = await self._receive(deadline)
                    if chunk is None:
                        return
                    if not chunk:  # the deadline passed: an idle peer
                        await self._send(
                            error_reply(
                                None,
                                IDLE_TIMEOUT,
                                f"no request for {self._options.idle_timeout:g} s: closing",
                            )
                        )
                        return
                    pending.extend(decoder.feed(chunk))
            item = pending.popleft()
            if isinstance(item, LineTooLong):
                await self._send(error_reply(None, LINE_TOO_LONG, item.message))
            elif item.strip():  # blank lines are ignored
                parsed = parse_request(item)
                if isinstance(parsed, Request):
                    self._activity.running = True
                    try:
                        await self._send(await self._dispatch(parsed))
                    finally:
                        self._activity.running = False
                    deadline = anyio.current_time() + self._options.idle_timeout
                    self._activity.last_request = anyio.current_time()
                else:
                    await self._send(parsed)

    async def _receive(self, deadline: float) -> bytes | None:
        """The next chunk; ``b""`` once ``deadline`` passed, None when the peer is gone."""
        with anyio.CancelScope(deadline=deadline) as scope:
            self._reading = scope
            try:
                return await self._io.receive(_READ_SIZE) or None  # b"": the peer closed
            except OSError:
                return None
            finally:
                self._reading = None
        return None if self._broken else b""

    # -- handling --------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Reply | ErrorReply:
        if request.not_after is not None and time.time() > request.not_after:
            logger.warning(
                "control: %s arrived after its client stopped waiting; not run",
                request.command,
                extra={"command": request.command, "request_id": request.id},
            )
            return error_reply(
                request.id,
                EXPIRED,
                f"{request.command} was read after the client stopped waiting; it was not run",
            )
        handler = self._commands.get(request.command)
        if handler is None:
            known = ", ".join(sorted(self._commands)) or "none"
            return error_reply(
                request.id,
                UNKNOWN_COMMAND,
                f"unknown command {request.command!r}; known commands: {known}",
            )
        live = True

        def progress(info: ProgressInfo) -> None:
            if not isinstance(info, ProgressInfo):
                raise TypeError(f"progress takes a ProgressInfo, got {info!r}")
            if live:
                self._send_nowait(encode(Progress(id=request.id, progress=info)))

        facts = {"command": request.command, "request_id": request.id}
        try:
            result = await handler(dict(request.args), progress)
        except ServerError as exc:
            return error_reply(request.id, type(exc).__name__, str(exc))
        except Exception as exc:
            logger.exception("control: command %s failed", request.command, extra=facts)
            return error_reply(
                request.id,
                INTERNAL,
                f"command {request.command} failed: {type(exc).__name__}: {exc} "
                "(the node's log has the traceback)",
            )
        finally:
            live = False
        try:
            return Reply(id=request.id, result=result)
        except ValidationError:
            logger.error(
                "control: command %s returned a %s, which is not JSON",
                request.command,
                type(result).__name__,
                extra=facts,
            )
            return error_reply(
                request.id,
                INTERNAL,
                f"command {request.command} returned a {type(result).__name__}, "
                "which is not a JSON value",
            )

    # -- writing ---------------------------------------------------------------------------

    async def _send(self, message: Reply | ErrorReply) -> None:
        try:
            await self._outbox.send(encode(message))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._broken = True

    def _send_nowait(self, line: bytes) -> None:
        try:
            self._outbox.send_nowait(line)
        except anyio.WouldBlock:
            self._dropped += 1
            if self._dropped == 1:
                logger.info("control: peer reads slowly; dropping progress events")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def _write_loop(self) -> None:
        async with self._inbox:
            async for line in self._inbox:
                if self._broken:
                    continue  # drain: nobody waits on a dead peer
                try:
                    await self._io.send(line, timeout=self._options.write_timeout)
                except TimeoutError:
                    logger.info(
                        "control: peer took nothing for %g s: closing",
                        self._options.write_timeout,
                    )
                    self._break()
                except OSError:
                    self._break()

    def _break(self) -> None:
        self._broken = True
        if self._reading is not None:
            self._reading.cancel()
