"""Serve HTTP/1.1 from processes: a listener process and one process per connection.

The socket-facing code is library code and is never reloaded; the application's handler
module is found by name at every request (see ``http_callbacks`` for its contract), so a
newly loaded version of it answers the next request, keep-alive connections included,
and no connection process ever counts as running the handler's old code between requests.

Process tree::

    parent (a supervisor, or whoever called start_link)
      └── listener           the shared acceptor: traps exits, owns every socket
            ├── connection   one per accepted socket, linked to the listener
            └── ...

- The listener ends with its parent's exit signal (``shutdown`` from a supervisor) and
  with ``kill``; either way its sockets close and its connections end.
- A connection that crashes or is killed ends alone; the listener goes on.
- A handler that raises gets its request a 500; the connection goes on.
- A client that sends without reading is pushed back (the kernel holds its bytes, not
  the node), and all the node's listeners together hold at most ``max_connections``
  connections (``[node.http]`` in sys.config; by default the descriptor limit less
  256); a client over the cap gets ``503`` and is closed.
- The listener answers ``sys`` (``get_status``, ``get_state``, ``suspend``, ``resume``).

Use it under a supervisor with ``child_spec``, or call ``start_link`` from any process.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, final

from server import kernel
from server.behaviours import acceptor
from server.behaviours.acceptor import ConnectionBudget, descriptor_budget
from server.behaviours.socket_io import DEFAULT_READ_SIZE
from server.behaviours.supervisor_callbacks import ChildSpec
from server.net._connection import ConnectionConfig
from server.net._listener import PORT_LABEL, start_listener
from server.net.http import DEFAULT_LIMITS, HttpLimits

if TYPE_CHECKING:
    from server.behaviours.supervisor_callbacks import RestartType, Shutdown
    from server.kernel import Pid

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "HttpDefaults",
    "child_spec",
    "configure",
    "count_connections",
    "listening_port",
    "node_defaults",
    "shared_budget",
    "start_link",
    "which_connections",
]

#: Seconds a keep-alive connection may wait for its next request before it is closed.
DEFAULT_IDLE_TIMEOUT = 60.0


@final
@dataclass(frozen=True, slots=True)
class HttpDefaults:
    """The node's defaults for every listener (``[node.http]`` in sys.config).

    Attributes:
        max_connections: HTTP connections open at once, over all the node's listeners
            together; None: the soft descriptor limit less a reserve of 256, so that HTTP
            clients never take the descriptors the control socket and the node need.
        read_size: the most one read of a connection takes (bytes).
        send_timeout: a client that takes none of an answer for this long is cut off (s).
        reuse_port: set ``SO_REUSEPORT`` on every listening socket before it is bound (the
            nodes of one machine share a port; the kernel spreads connections among them).
        parser: the HTTP/1.1 parser of ASGI connections, ``"httptools"`` or ``"h11"``;
            None: httptools when it is installed, else h11.
    """

    max_connections: int | None = None
    read_size: int = DEFAULT_READ_SIZE
    send_timeout: float = 30.0
    reuse_port: bool = False
    parser: Literal["httptools", "h11"] | None = None

    def __post_init__(self) -> None:
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {self.max_connections!r}")
        if self.read_size < 1:
            raise ValueError(f"read_size must be >= 1 byte, got {self.read_size!r}")
        if not self.send_timeout > 0:
            raise ValueError(f"send_timeout must be seconds > 0, got {self.send_timeout!r}")
        if self.parser not in (None, "httptools", "h11"):
            raise ValueError(f"parser must be httptools or h11, got {self.parser!r}")


_defaults = HttpDefaults()
_budget: ConnectionBudget | None = None


def configure(defaults: HttpDefaults) -> None:
    """Set the node's HTTP defaults (the boot does, from sys.config); later starts use them.

    The shared connection budget takes the new limit at once; connections already open
    beyond it are left alone, and new ones wait until enough have closed.
    """
    global _defaults
    _defaults = defaults
    if _budget is not None:
        _budget.limit = _shared_limit()


def shared_budget() -> ConnectionBudget:
    """The node's HTTP connection budget, shared by every listener that has no cap of its own."""
    return _shared_budget()


def node_defaults() -> HttpDefaults:
    """The node's ``[node.http]`` defaults, as ``configure`` set them."""
    return _defaults


def _shared_budget() -> ConnectionBudget:
    global _budget
    if _budget is None:
        _budget = ConnectionBudget(_shared_limit())
    return _budget


def _shared_limit() -> int:
    limit = _defaults.max_connections
    return descriptor_budget() if limit is None else limit


async def start_link(
    host: str,
    port: int,
    handler: str,
    handler_args: object = None,
    *,
    backlog: int = 128,
    name: str | None = None,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    limits: HttpLimits = DEFAULT_LIMITS,
    max_connections: int | None = None,
    read_size: int | None = None,
    send_timeout: float | None = None,
    reuse_port: bool | None = None,
) -> Pid:
    """Start a listener on ``host:port``, linked to the caller; return once it listens.

    Args:
        host: the address to bind (``"127.0.0.1"``, ``"0.0.0.0"``, ``"::"``, a name).
        port: the TCP port; 0 picks a free one (see ``listening_port``).
        handler: the dotted name of the handler module (see ``http_callbacks``).
        handler_args: passed as ``args`` to every ``handle_request`` call.
        backlog: the listen queue length.
        name: a name to register the listener under.
        idle_timeout: seconds a connection may stay silent (between requests, or inside
            one) before it is closed; ``math.inf`` never closes it.
        limits: the largest request head and body accepted.
        max_connections: this listener's own cap on open connections; None shares the
            node's (``HttpDefaults.max_connections``). Over the cap a client gets 503.
        read_size: the most one read takes (bytes); None: the node's default.
        send_timeout: a client that takes none of an answer for this long is cut off
            (seconds); None: the node's default.
        reuse_port: share the port with other sockets that set it too (``SO_REUSEPORT``);
            None: the node's default.

    Returns:
        The listener's pid. Usable as a supervisor child start function.

    Raises:
        StartError: the socket could not be opened (the port is in use, the address is
            not local, ...); the message names host, port and the system's reason.
        AlreadyStarted: ``name`` is held by a live process.
        ValueError: ``handler`` is not a dotted module name, or ``idle_timeout``,
            ``backlog``, ``max_connections``, ``read_size`` or ``send_timeout`` is not
            positive.
    """
    if not handler or not all(part.isidentifier() for part in handler.split(".")):
        raise ValueError(f"handler must be a dotted module name, got {handler!r}")
    if not idle_timeout > 0:
        raise ValueError(f"idle_timeout must be seconds > 0, got {idle_timeout!r}")
    if backlog < 1:
        raise ValueError(f"backlog must be >= 1, got {backlog!r}")
    own = HttpDefaults(
        max_connections=max_connections,
        read_size=_defaults.read_size if read_size is None else read_size,
        send_timeout=_defaults.send_timeout if send_timeout is None else send_timeout,
    )
    config = ConnectionConfig(
        handler=handler,
        handler_args=handler_args,
        idle_timeout=math.inf if idle_timeout == math.inf else float(idle_timeout),
        limits=limits,
        read_size=own.read_size,
        send_timeout=own.send_timeout,
    )
    budget = _shared_budget() if max_connections is None else ConnectionBudget(max_connections)
    return await start_listener(
        host,
        port,
        config,
        backlog=backlog,
        name=name,
        budget=budget,
        reuse_port=_defaults.reuse_port if reuse_port is None else reuse_port,
    )


def child_spec(
    id: str,  # noqa: A002 - OTP's field name
    host: str,
    port: int,
    handler: str,
    handler_args: object = None,
    *,
    restart: RestartType = "permanent",
    shutdown: Shutdown | None = None,
    backlog: int = 128,
    name: str | None = None,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    limits: HttpLimits = DEFAULT_LIMITS,
    max_connections: int | None = None,
    read_size: int | None = None,
    send_timeout: float | None = None,
    reuse_port: bool | None = None,
) -> ChildSpec:
    """A supervisor child spec starting ``start_link(host, port, handler, handler_args)``.

    The keyword arguments after ``shutdown`` are passed on to ``start_link``.

    Raises:
        ValueError: the spec is invalid (see ``ChildSpec``).
    """
    start = functools.partial(
        start_link,
        backlog=backlog,
        name=name,
        idle_timeout=idle_timeout,
        limits=limits,
        max_connections=max_connections,
        read_size=read_size,
        send_timeout=send_timeout,
        reuse_port=reuse_port,
    )
    return ChildSpec(
        id=id,
        start=(start, host, port, handler, handler_args),
        restart=restart,
        shutdown=shutdown,
        type="worker",
    )


def listening_port(listener: Pid | str) -> int:
    """The TCP port the listener is bound to (the real one when started with port 0).

    Raises:
        LookupError: ``listener`` is not a live HTTP listener.
    """
    port = kernel.get_label(_pid_of(listener), PORT_LABEL)
    if not isinstance(port, int):
        raise LookupError(f"{listener} is not an HTTP listener")
    return port


def count_connections(listener: Pid | str) -> int:
    """How many connection processes of the listener are alive.

    Raises:
        LookupError: ``listener`` is not a live HTTP listener.
    """
    return len(which_connections(listener))


def which_connections(listener: Pid | str) -> list[Pid]:
    """The connection processes of the listener, in no particular order.

    Raises:
        LookupError: ``listener`` is not a live HTTP listener.
    """
    pid = _pid_of(listener)
    if kernel.get_label(pid, "behaviour") != "http_listener":
        raise LookupError(f"{listener} is not an HTTP listener")
    return acceptor.which_connections(pid)


def _pid_of(listener: Pid | str) -> Pid:
    if isinstance(listener, str):
        pid = kernel.whereis(listener)
        if pid is None:
            raise LookupError(f"no process is registered as {listener!r}")
        return pid
    if not kernel.is_alive(listener):
        raise LookupError(f"{listener} is not alive")
    return listener
