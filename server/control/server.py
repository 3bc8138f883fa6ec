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

1. ``start_link`` binds the socket (see ``_socket``: folder 0700, socket 0600 before
   ``listen``, stale file replaced, live one refused) in the caller, so a problem with the
   socket raises there, with nothing left behind; then it starts the shared acceptor
   (``server.behaviours.acceptor``): one linked process per connection, ``sys`` answered,
   connections closed on every exit.
2. The cap (``max_connections``) never locks the operator out: a new connection over it
   closes the connection idle longest (no command running); only when every connection
   runs a command is it answered ``busy``, by one of a few short refusing processes.
3. However the server ends, the socket file is unlinked first (no client reaches a
   closing server), then each open connection gets ``shutdown``.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Final

import anyio

from server import kernel
from server.behaviours import acceptor
from server.behaviours.acceptor import AcceptorSpec, ConnectionBudget
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

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from server.behaviours.socket_io import SocketIO
    from server.kernel import Pid

__all__ = [
    "CommandHandler",
    "ControlOptions",
    "ProgressCallback",
    "start_link",
]

logger = logging.getLogger("server.control")

_DEFAULT_OPTIONS: Final = ControlOptions()


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
        SocketInUse: another node answers on ``path``; it was left alone.
        ControlSocketError: the socket cannot be made (path too long, folder writable by
            every user, something else in the way, ...).
        ValueError: a command name is not one a request can name (``COMMAND_PATTERN``).
        StartError: the server crashed or did not start within ``timeout``.
    """
    bad = sorted(name for name in commands if not re.fullmatch(COMMAND_PATTERN, name))
    if bad:
        raise ValueError(f"command names must match {COMMAND_PATTERN}, these do not: {bad}")
    activities: dict[Pid, ConnectionActivity] = {}

    async def serve(io: SocketIO) -> None:
        me = kernel.self()
        activity = activities[me] = ConnectionActivity(anyio.current_time())
        try:
            await serve_connection(io, commands, options, activity)
        finally:
            activities.pop(me, None)  # gone already when closed to make room

    busy = error_reply(None, BUSY, f"{options.max_connections} control connections are busy; retry")
    spec = AcceptorSpec(
        what=f"control server on {path}",
        behaviour="control_server",
        open=lambda: _opened(path),
        serve=serve,
        budget=ConnectionBudget(options.max_connections),
        refuse=lambda io: refuse_connection(io, busy, options.write_timeout),
        make_room=lambda: _close_longest_idle(activities),
        labels={"control_socket": str(path)},
    )
    return await acceptor.start_link(spec, timeout=timeout)


def _opened(path: Path) -> acceptor.Listening:
    bound = bind_control_socket(path)
    logger.info("control: listening on %s", path, extra={"path": str(path)})
    return bound


def _close_longest_idle(activities: dict[Pid, ConnectionActivity]) -> Pid | None:
    """Tell the connection idle longest (no command running) to end; None if all run."""
    idle = [(a.last_request, pid) for pid, a in activities.items() if not a.running]
    if not idle:
        return None
    _, pid = min(idle, key=lambda item: item[0])
    del activities[pid]
    kernel.exit(pid, kernel.SHUTDOWN)
    logger.warning("control: full; closed the connection idle longest to let a new one in")
    return pid
