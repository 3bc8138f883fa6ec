"""The listener process: owns the listening socket and one linked process per connection.

How this works:

1. ``start_listener`` spawns ``_listener_main`` linked to the caller (its *parent*) and
   monitors it, then waits for the ``_Ack`` carrying the listener's pid, or its ``DOWN``.
   The listener registers its name and opens the socket *before* it acknowledges, so a
   port in use (or a name taken) fails the start at once, and the bound port (useful with
   port 0) is known when ``start_listener`` returns. On failure the listener unlinks from
   its parent first: a failed start is an error for the caller, never an exit signal.
2. The listener traps exits and ``spawn_link``s every connection. A connection that ends,
   for any reason, is only an ``ExitMessage`` here: a crashing connection never takes the
   listener down. An exit signal from the parent (a supervisor's ``shutdown``) ends the
   listener with that reason, as a gen_server ends on its parent's signal; an abnormal one
   from any other linked process ends it as an untrapped signal would.
3. Two tasks in one process: the main task receives messages (the only one that does);
   an anyio child task accepts connections. Both see the listener as ``kernel.self()``,
   so the connections are linked to the listener process itself.
4. However the listener ends (its parent's signal, a failed accept, ``kill``: ``finally``
   blocks run while a killed task unwinds), it closes its socket and sends ``shutdown`` to
   each connection still open. The links would carry an abnormal reason to them anyway;
   the explicit signal also ends them when the listener's own reason is ``normal``.
5. The connections are kept in a set that the listener alone changes; it is published as
   a private label, so ``count_connections`` and ``which_connections`` read it without a
   message round trip.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from typing import Final, final

import anyio
from anyio.abc import SocketAttribute, SocketListener

from server import kernel
from server.errors import AlreadyStarted, StartError
from server.kernel import DownMessage, ExitMessage, Pid, ProcessExit
from server.net._connection import ConnectionConfig, serve_connection

__all__ = ["CONNECTIONS_LABEL", "PORT_LABEL", "start_listener"]

logger = logging.getLogger(__name__)

PORT_LABEL: Final = "http_port"
CONNECTIONS_LABEL: Final = "_http_connections"

#: accept() errors that say "not now" rather than "this socket is broken".
_RETRY_AT_ONCE: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EINTR})
_BACK_OFF: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_BACK_OFF_SECONDS: Final = 0.1


@final
@dataclass(frozen=True, slots=True)
class _Ack:
    pid: Pid
    reason: object = None  # None: listening
    failed: bool = False


@final
@dataclass(frozen=True, slots=True)
class _AcceptFailed:
    reason: str


async def start_listener(
    host: str,
    port: int,
    config: ConnectionConfig,
    *,
    backlog: int,
    name: str | None,
) -> Pid:
    """Spawn a listener linked to the caller and wait until it listens.

    Raises:
        StartError: the socket could not be opened (port in use, bad address, ...).
        AlreadyStarted: ``name`` is held by a live process.
    """
    what = f"http listener {name or ''}{' ' if name else ''}on {host}:{port}"
    parent = kernel.self()
    pid = kernel.spawn_link(_listener_main, parent, host, port, config, backlog, name)
    mref = kernel.monitor(pid)

    def ack_or_down(message: object) -> bool:
        if type(message) is _Ack:
            return message.pid is pid
        return type(message) is DownMessage and message.ref is mref

    message = await kernel.receive(ack_or_down)
    if type(message) is _Ack and not message.failed:
        kernel.demonitor(mref, flush=True)
        return pid
    if type(message) is _Ack:  # failed: wait for its end, so the name and port are free
        await kernel.receive(lambda m: type(m) is DownMessage and m.ref is mref)
        reason = message.reason
    else:
        assert type(message) is DownMessage
        reason = message.reason
    kernel.flush(lambda m: type(m) is ExitMessage and m.pid is pid)
    if type(reason) is tuple and len(reason) == 3 and reason[0] == "already_started":
        raise AlreadyStarted(what, reason[1], reason[2])
    raise StartError(what, reason)


async def _listener_main(
    parent: Pid,
    host: str,
    port: int,
    config: ConnectionConfig,
    backlog: int,
    name: str | None,
) -> None:
    me = kernel.self()
    kernel.trap_exit(True)
    if name is not None:
        holder = kernel.whereis(name)
        if holder is not None:
            _fail(parent, ("already_started", name, holder))
            return
        kernel.register(name, me)
    try:
        listener = await anyio.create_tcp_listener(
            local_host=host, local_port=port, backlog=backlog
        )
    except OSError as exc:
        _fail(parent, f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        return
    connections: set[Pid] = set()
    kernel.set_label("behaviour", "http_listener")
    kernel.set_label("http_handler", config.handler)
    kernel.set_label(PORT_LABEL, listener.extra(SocketAttribute.local_port))
    kernel.set_label(CONNECTIONS_LABEL, connections)
    kernel.send(parent, _Ack(me))
    try:
        async with listener, anyio.create_task_group() as tasks:
            for socket in listener.listeners:  # one per address the host resolves to
                assert isinstance(socket, SocketListener)
                tasks.start_soon(_accept_loop, socket, connections, config)
            reason = await _watch(parent, connections)
            tasks.cancel_scope.cancel()
    finally:
        for pid in connections:
            kernel.exit(pid, kernel.SHUTDOWN)
    raise ProcessExit(reason)


def _fail(parent: Pid, reason: object) -> None:
    kernel.unlink(parent)
    kernel.send(parent, _Ack(kernel.self(), reason, failed=True))


async def _watch(parent: Pid, connections: set[Pid]) -> object:
    """Receive until the listener must end; returns its exit reason."""
    while True:
        message = await kernel.receive()
        match message:
            case ExitMessage(pid=pid) if pid in connections:
                connections.discard(pid)
            case ExitMessage(pid=pid, reason=reason) if pid is parent:
                return reason
            case ExitMessage(reason=reason) if not kernel.is_normal_exit(reason):
                return reason
            case _AcceptFailed(reason=reason):
                return ("accept_failed", reason)
            case _:
                logger.debug("http listener: unexpected message %r", message)


async def _accept_loop(
    listener: SocketListener, connections: set[Pid], config: ConnectionConfig
) -> None:
    me = kernel.self()
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            if exc.errno in _RETRY_AT_ONCE:
                continue
            if exc.errno in _BACK_OFF:
                logger.warning(
                    "http listener: accept failed, retrying: %s",
                    exc,
                    extra={"pid": repr(me), "errno": exc.errno},
                )
                await anyio.sleep(_BACK_OFF_SECONDS)
                continue
            kernel.send(me, _AcceptFailed(repr(exc)))
            return
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            kernel.send(me, _AcceptFailed(repr(exc)))
            return
        connections.add(kernel.spawn_link(serve_connection, stream, config))
