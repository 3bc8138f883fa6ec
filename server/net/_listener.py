"""The HTTP listener: an acceptor on TCP sockets whose connections speak HTTP/1.1.

How this works:

1. The host name is resolved first (without blocking the node), then one socket per
   address is bound and listens, in the caller: a port in use fails the start with the
   system's reason, and the bound port (useful with port 0) is known when it returns.
   With ``reuse_port`` every socket sets ``SO_REUSEPORT`` before ``bind``: sockets of
   several processes that all set it share the port, and the kernel hashes each new
   connection to one of them; a port held by a socket without it stays refused (with a
   message that names the setting when this listener asked to share).
2. The rest is the shared acceptor (``server.behaviours.acceptor``): one linked process
   per connection, the node's HTTP connection budget (every listener of the node shares
   it, so HTTP clients cannot take the descriptors the control socket needs), connections
   closed on every exit, ``sys`` answered.
3. A connection over the budget gets ``503 Service Unavailable`` with ``Connection:
   close`` from one of a few short refusing processes, or is closed at once when those are
   all busy.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, final

import anyio

from server.behaviours import acceptor
from server.behaviours.acceptor import AcceptorSpec, ConnectionBudget
from server.errors import StartError
from server.net._connection import ConnectionConfig, refuse_connection, serve_connection

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from server.behaviours.socket_io import SocketIO
    from server.kernel import Pid

__all__ = ["PORT_LABEL", "open_tcp", "start_listener", "start_tcp_acceptor"]

PORT_LABEL: Final = "http_port"


@final
@dataclass(slots=True)
class _TcpListening:
    """Listening TCP sockets (one per address the host resolved to)."""

    sockets: list[socket.socket] = field(default_factory=list)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


async def start_listener(
    host: str,
    port: int,
    config: ConnectionConfig,
    *,
    backlog: int,
    name: str | None,
    budget: ConnectionBudget,
    reuse_port: bool = False,
) -> Pid:
    """Start an HTTP acceptor on ``host:port`` linked to the caller; return once it listens.

    Raises:
        StartError: the socket could not be opened (port in use, bad address, ...).
        AlreadyStarted: ``name`` is held by a live process.
    """
    what = f"http listener {name or ''}{' ' if name else ''}on {host}:{port}"
    return await start_tcp_acceptor(
        host,
        port,
        what=what,
        behaviour="http_listener",
        serve=lambda io: serve_connection(io, config),
        refuse=refuse_connection,
        budget=budget,
        backlog=backlog,
        name=name,
        labels={"http_handler": config.handler},
        reuse_port=reuse_port,
    )


def open_tcp(
    addresses: Sequence[tuple[socket.AddressFamily, tuple[Any, ...]]],
    port: int,
    backlog: int,
    *,
    reuse_port: bool = False,
) -> list[socket.socket]:
    """Bind and listen on each address; with port 0, every one gets the first one's port.

    ``reuse_port`` sets ``SO_REUSEPORT`` on each socket before it is bound.

    Raises:
        OSError: an address cannot be bound (every socket opened so far is closed).
    """
    opened: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()  # getaddrinfo repeats an address per protocol
    try:
        for family, sockaddr in addresses:
            if (family, sockaddr[0]) in seen:
                continue
            seen.add((family, sockaddr[0]))
            sock = socket.socket(family, socket.SOCK_STREAM)
            opened.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            bound_port = opened[0].getsockname()[1] if port == 0 and len(opened) > 1 else port
            sock.bind((sockaddr[0], bound_port, *sockaddr[2:]))
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in opened:
            sock.close()
        raise
    return opened


async def start_tcp_acceptor(
    host: str,
    port: int,
    *,
    what: str,
    behaviour: str,
    serve: Callable[[SocketIO], Awaitable[None]],
    refuse: Callable[[SocketIO], Awaitable[None]] | None,
    budget: ConnectionBudget,
    backlog: int,
    name: str | None,
    labels: Mapping[str, object],
    reuse_port: bool = False,
) -> Pid:
    """An acceptor on ``host:port`` whose connections run ``serve``; returns once it listens.

    Raises:
        StartError: the socket could not be opened (port in use, bad address, ...).
        AlreadyStarted: ``name`` is held by a live process.
    """
    try:
        addresses = await anyio.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise StartError(what, f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        listening = _TcpListening(
            open_tcp([(a[0], a[4]) for a in addresses], port, backlog, reuse_port=reuse_port)
        )
    except OSError as exc:
        reason = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        if exc.errno == errno.EADDRINUSE and reuse_port:  # held by a socket that did not ask
            reason += " (a port is shared only when every node sets [node.http] reuse_port)"
        raise StartError(what, reason) from None
    spec = AcceptorSpec(
        what=what,
        behaviour=behaviour,
        open=lambda: listening,
        serve=serve,
        budget=budget,
        refuse=refuse,
        name=name,
        labels={PORT_LABEL: listening.sockets[0].getsockname()[1], **labels},
    )
    return await acceptor.start_link(spec)
