"""The control server: a node's Unix socket, serving whatever commands it is given.

The server knows no command of its own: the caller hands it a mapping from command names
to handlers (the release handler plugs its own in). The wire format is
``server.control.protocol``; the client side is ``server.control.client``.

The handler contract::

    async def handler(args: dict[str, Any], progress: ProgressCallback) -> JsonValue

- ``args`` is the request's ``args`` object (decoded JSON, a fresh dict per request).
- ``progress(ProgressInfo(step=..., done=..., total=...))`` streams a progress line to the
  client before the final reply. It never waits: when the client reads too slowly for the
  queue, events are dropped (never the final reply). Calls after the handler has returned
  are ignored. Call it from the handler's own task (not from a worker thread).
- The return value (a JSON value: dict, list, str, int, float, bool or None) becomes the
  ``Reply``'s ``result``; anything else is answered ``internal`` and logged.
- Raising a ``ServerError`` answers an ``ErrorReply`` whose type is the class name
  (``NotPurged``, ``InstallRefused``, ...) and whose message is the error's; raising any
  other exception answers type ``internal`` and logs the traceback. Either way the
  connection and the server go on serving.
- A handler runs in its connection's own process (``kernel.self()`` is that process), so
  it may ``call`` other processes; requests of one connection run one at a time, in order;
  different connections run concurrently. A client that goes away does not cancel a
  running handler; the node stopping does.

How this works:

1. ``serve`` binds the socket (see ``_socket``: folder 0700, socket 0600 before ``listen``,
   stale file replaced, live one refused) and only then calls ``ready``; a problem with the
   socket raises before that, with nothing left behind.
2. An accept task spawns one monitored process per connection (``_connection``); the
   server's own task receives their ``DownMessage`` and forgets them. The server does not
   trap exits: an exit signal from its parent (a supervisor's ``shutdown``) ends it as it
   would end any worker.
3. However the server ends, its ``finally`` first unlinks the socket file (so no client
   reaches a closing server), then sends ``shutdown`` to each open connection and closes
   the listening socket.
"""

from __future__ import annotations

import errno
import logging
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NoReturn, final

import anyio
from anyio.abc import SocketListener

from server import kernel
from server.control._connection import (
    CommandHandler,
    ConnectionActivity,
    ControlOptions,
    ProgressCallback,
    refuse_connection,
    serve_connection,
)
from server.control._socket import bind_control_socket
from server.control.protocol import BUSY, COMMAND_PATTERN, error_reply
from server.errors import ControlError, StartError
from server.kernel import DownMessage, ExitMessage, Pid, ProcessExit, Ref

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

__all__ = [
    "CommandHandler",
    "ControlOptions",
    "ProgressCallback",
    "serve",
    "start_link",
]

logger = logging.getLogger("server.control")

#: ``accept`` errors that mean "out of descriptors or memory for now", not "broken": the
#: server waits a little and goes on (the connection stays in the backlog meanwhile).
_OUT_OF_RESOURCES: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: ``accept`` errors about one connection (it went away first): take the next one.
_RETRY_AT_ONCE: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EINTR})
_BACK_OFF_SECONDS: Final = 0.1

_DEFAULT_OPTIONS: Final = ControlOptions()


@final
@dataclass(frozen=True, slots=True)
class _AcceptFailed:
    token: object
    reason: str


@final
@dataclass(frozen=True, slots=True)
class _Started:
    pid: Pid


@final
@dataclass(frozen=True, slots=True)
class _Failed:
    pid: Pid
    error: Exception


async def serve(
    path: Path,
    commands: Mapping[str, CommandHandler],
    *,
    ready: Callable[[], object] | None = None,
    options: ControlOptions = _DEFAULT_OPTIONS,
) -> NoReturn:
    """Serve the control socket at ``path`` in the current process, until the process ends.

    Args:
        path: the socket file (its folder is created, mode 0700, when missing).
        commands: command name -> handler (see the module docstring for the contract).
        ready: called once the socket accepts connections.
        options: timeouts and limits.

    Raises:
        SocketInUse: another node answers on ``path``; it was left alone.
        ControlSocketError: the socket cannot be made (path too long, folder writable by
            every user, something else in the way, ...); raised before ``ready``.
        ValueError: a command name is not one a request can name (``COMMAND_PATTERN``).
        ProcessExit: the listening socket broke (reason ``("accept_failed", why)``).
    """
    _check_names(commands)
    bound = bind_control_socket(path)
    try:
        listener = await SocketListener.from_socket(bound.socket)
    except BaseException:
        bound.socket.close()
        bound.remove()
        raise
    connections: dict[Ref, Pid] = {}
    token = object()
    kernel.set_label("control_socket", str(path))
    logger.info("control: listening on %s", path, extra={"path": str(path)})
    if ready is not None:
        ready()
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_accept_loop, listener, commands, options, connections, token)
            reason = await _watch(connections, token)
            tasks.cancel_scope.cancel()
    finally:
        bound.remove()
        for pid in connections.values():
            kernel.exit(pid, kernel.SHUTDOWN)
        with anyio.CancelScope(shield=True):
            await listener.aclose()
    raise ProcessExit(reason)


def _check_names(commands: Mapping[str, CommandHandler]) -> None:
    bad = sorted(name for name in commands if not re.fullmatch(COMMAND_PATTERN, name))
    if bad:
        raise ValueError(f"command names must match {COMMAND_PATTERN}, these do not: {bad}")


async def _watch(connections: dict[Ref, Pid], token: object) -> object:
    """Forget connections as they end; returns the server's exit reason on accept failure."""

    def ours(message: object) -> bool:
        if type(message) is DownMessage:
            return message.ref in connections
        return type(message) is _AcceptFailed and message.token is token

    while True:
        message = await kernel.receive(ours)
        if type(message) is DownMessage:
            del connections[message.ref]
        else:
            assert type(message) is _AcceptFailed
            return ("accept_failed", message.reason)


async def _accept_loop(
    listener: SocketListener,
    commands: Mapping[str, CommandHandler],
    options: ControlOptions,
    connections: dict[Ref, Pid],
    token: object,
) -> None:
    me = kernel.self()
    activities: dict[Ref, ConnectionActivity] = {}
    while True:
        try:
            stream = await listener.accept()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.errno in _RETRY_AT_ONCE:
                continue
            if isinstance(cause, OSError) and cause.errno in _OUT_OF_RESOURCES:
                logger.warning("control: accept failed, retrying: %s", cause)
                await anyio.sleep(_BACK_OFF_SECONDS)
                continue
            kernel.send(me, _AcceptFailed(token, repr(cause or exc)))
            return
        for gone in activities.keys() - connections.keys():
            del activities[gone]
        if len(connections) >= options.max_connections and not _close_longest_idle(
            connections, activities
        ):
            busy = error_reply(
                None, BUSY, f"{options.max_connections} control connections are busy; retry"
            )
            kernel.spawn(refuse_connection, stream, busy, options.write_timeout)
            continue
        activity = ConnectionActivity(anyio.current_time())
        pid, ref = kernel.spawn_monitor(serve_connection, stream, commands, options, activity)
        connections[ref] = pid
        activities[ref] = activity


def _close_longest_idle(
    connections: dict[Ref, Pid], activities: dict[Ref, ConnectionActivity]
) -> bool:
    """Close the connection idle longest (no command running); False if all are running."""
    idle = [(a.last_request, ref) for ref, a in activities.items() if not a.running]
    if not idle:
        return False
    _, ref = min(idle, key=lambda item: item[0])
    kernel.demonitor(ref, flush=True)
    kernel.exit(connections.pop(ref), kernel.SHUTDOWN)
    del activities[ref]
    logger.warning("control: full; closed the connection idle longest to let a new one in")
    return True


async def start_link(
    path: Path,
    commands: Mapping[str, CommandHandler],
    *,
    options: ControlOptions = _DEFAULT_OPTIONS,
    timeout: float = 5.0,
) -> Pid:
    """Start the control server as a process linked to the caller (a supervisor child).

    Returns once the socket accepts connections.

    Raises:
        SocketInUse: another node answers on ``path``.
        ControlSocketError: the socket cannot be made (see ``serve``).
        ValueError: a command name is not one a request can name (``COMMAND_PATTERN``).
        StartError: the server crashed or did not start within ``timeout``.
    """
    _check_names(commands)
    what = f"control server on {path}"
    parent = kernel.self()
    pid = kernel.spawn_link(_server_main, parent, path, commands, options, what)
    mref = kernel.monitor(pid)

    def answer(message: object) -> bool:
        if type(message) is _Started or type(message) is _Failed:
            return message.pid is pid
        return type(message) is DownMessage and message.ref is mref

    try:
        message = await kernel.receive(answer, timeout=None if timeout == math.inf else timeout)
    except TimeoutError:
        kernel.unlink(pid)
        kernel.exit(pid, kernel.KILL)
        await _ended(pid, mref)
        raise StartError(what, "timeout") from None
    if type(message) is _Started:
        kernel.demonitor(mref, flush=True)
        return pid
    if type(message) is _Failed:
        await _ended(pid, mref)
        raise message.error
    assert type(message) is DownMessage
    await _ended(pid, mref, down=message)
    raise StartError(what, message.reason)


async def _ended(pid: Pid, mref: Ref, *, down: DownMessage | None = None) -> None:
    """Wait for the server's end and drop the exit signal its link may have sent."""
    if down is None:
        await kernel.receive(lambda m: type(m) is DownMessage and m.ref is mref)
    kernel.flush(lambda m: type(m) is ExitMessage and m.pid is pid)


async def _server_main(
    parent: Pid,
    path: Path,
    commands: Mapping[str, CommandHandler],
    options: ControlOptions,
    what: str,
) -> None:
    me = kernel.self()
    kernel.set_label("behaviour", "control_server")
    started = False

    def ready() -> None:
        nonlocal started
        started = True
        kernel.send(parent, _Started(me))

    try:
        await serve(path, commands, ready=ready, options=options)
    except Exception as exc:
        if started:
            raise
        # A failed start is an error for the starter, never an exit signal to it.
        kernel.unlink(parent)
        error = exc if isinstance(exc, ControlError) else StartError(what, exc)
        kernel.send(parent, _Failed(me, error))
