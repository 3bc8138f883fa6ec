"""The acceptor: one special process that owns listening sockets and one process per connection.

HTTP listeners, the control socket and the distribution listener are all this process
with a different ``AcceptorSpec``: what to open, what each connection's process runs, how
many connections it may hold and what to do with one over the cap.

How this works:

1. ``start_link`` opens the listening sockets *in the caller* (``spec.open``), so a port in
   use or a bad path raises the opener's own error there, with nothing left open; then
   it starts the acceptor with an acknowledgement (``_start``), which registers its name
   (a name taken fails the start and closes the sockets).
2. The acceptor traps exits. Its main task is the only one that receives: exit signals,
   system messages (``sys`` get_state / get_status / suspend / resume) and the accept
   tasks' reports. One accept task per listening socket waits until the socket is
   readable and accepts without blocking; ``ECONNABORTED`` and the like are retried at
   once; ``EMFILE``, ``ENFILE``, ``ENOBUFS`` and ``ENOMEM`` are logged and retried after
   ``BACK_OFF_SECONDS`` (the connection waits in the backlog meanwhile); any other error
   ends the acceptor with ``("accept_failed", why)``.
3. An accepted socket gets a connection process (``spawn_link(spec.serve, io)``) when the
   ``ConnectionBudget`` has room, or when ``spec.make_room`` frees a slot (the control
   socket closes its longest-idle connection: the operator always gets in). Otherwise it
   goes to one of at most ``MAX_REFUSERS`` short processes that run ``spec.refuse`` (an
   HTTP 503, a ``busy`` line), and beyond those it is closed at once: a flood costs
   bounded memory and descriptors.
4. The acceptor owns every accepted socket: it closes it when that connection's process
   ends (whatever the process did), and, however the acceptor itself ends (its parent's
   ``shutdown``, ``kill``, a failed accept), it closes its listening sockets first, then
   sends ``shutdown`` to every connection and closes their sockets.
5. Suspended (``sys.suspend``), the acceptor accepts nothing: new connections wait in the
   backlog until it is resumed.
"""

from __future__ import annotations

import errno
import logging
import resource
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, final

import anyio
import anyio.lowlevel

from server import kernel
from server.behaviours._start import Starter, register_or_fail, start_process
from server.behaviours.socket_io import SocketIO
from server.behaviours.system_messages import (
    ProcessStatus,
    Suspend,
    SystemMessage,
    handle_system,
)
from server.kernel import ExitMessage, Pid, ProcessExit

if TYPE_CHECKING:
    import socket
    from collections.abc import Awaitable, Callable, Mapping, Sequence

__all__ = [
    "BACK_OFF_SECONDS",
    "CONNECTIONS_LABEL",
    "MAX_REFUSERS",
    "AcceptorSpec",
    "AcceptorState",
    "ConnectionBudget",
    "Listening",
    "descriptor_budget",
    "start_link",
    "which_connections",
]

logger = logging.getLogger("server.acceptor")

#: accept() errors about one connection that went away first: take the next one.
_RETRY_AT_ONCE: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EINTR})
#: accept() errors that mean "out of descriptors or memory for now", not "broken".
_BACK_OFF: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: How long the acceptor waits after running out of descriptors or memory (seconds).
BACK_OFF_SECONDS: Final = 0.1
#: Processes refusing connections over the cap at once; beyond them a socket is closed.
MAX_REFUSERS: Final = 16
#: The label holding a live view of the acceptor's connection pids.
CONNECTIONS_LABEL: Final = "_acceptor_connections"
#: Descriptors kept out of ``descriptor_budget`` for the node's own files and sockets.
DESCRIPTOR_RESERVE: Final = 256


class Listening(Protocol):
    """What ``AcceptorSpec.open`` returns: listening sockets, and how to close them."""

    @property
    def sockets(self) -> Sequence[socket.socket]:
        """The listening sockets (one per address a host name resolves to, ...)."""
        ...

    def close(self) -> None:
        """Close the sockets (and remove what they leave behind); idempotent."""
        ...


@final
class ConnectionBudget:
    """How many connections may be open at once, shared by every acceptor given it.

    Several HTTP listeners of a node share one budget, so that together they can never
    take the descriptors the control socket and the node's own files need.
    """

    __slots__ = ("in_use", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a connection budget must be >= 1, got {limit!r}")
        self.limit = limit
        self.in_use = 0

    def take(self) -> bool:
        """Take one slot; False when every slot is in use."""
        if self.in_use >= self.limit:
            return False
        self.in_use += 1
        return True

    def give_back(self) -> None:
        """Give one slot back."""
        self.in_use -= 1


def descriptor_budget(reserve: int = DESCRIPTOR_RESERVE) -> int:
    """The soft descriptor limit less ``reserve`` (at least 1): a default connection cap."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(1, soft - reserve)


@final
@dataclass(frozen=True, slots=True)
class AcceptorSpec:
    """What an acceptor opens and what runs for each connection.

    Attributes:
        what: names the acceptor in errors and logs (``"http listener on 127.0.0.1:80"``).
        behaviour: its ``behaviour`` label and ``get_status`` behaviour.
        open: opens the listening sockets (called in the starter; its errors are the
            start's errors).
        serve: the body of each connection's process, given the connection's socket.
        budget: the cap on connections open at once (may be shared).
        refuse: the body of a process that answers a connection over the cap (then the
            acceptor closes it); None closes such a connection at once.
        make_room: asked when the cap is reached; returns a connection it has told to
            end (that one then no longer counts), or None.
        name: a name to register the acceptor under.
        labels: labels the acceptor sets on itself (``http_port``, ...).
    """

    what: str
    behaviour: str
    open: Callable[[], Listening]
    serve: Callable[[SocketIO], Awaitable[None]]
    budget: ConnectionBudget
    refuse: Callable[[SocketIO], Awaitable[None]] | None = None
    make_room: Callable[[], Pid | None] | None = None
    name: str | None = None
    labels: Mapping[str, object] = field(default_factory=dict)


@final
@dataclass(frozen=True, slots=True)
class AcceptorState:
    """What ``sys.get_state`` reports of an acceptor (plain data)."""

    what: str
    addresses: tuple[str, ...]
    connections: int
    max_connections: int
    refusing: int
    accepting: bool


@final
@dataclass(frozen=True, slots=True)
class _AcceptFailed:
    token: object
    reason: str


async def start_link(spec: AcceptorSpec, *, timeout: float = 5.0) -> Pid:
    """Open ``spec``'s sockets and start the acceptor linked to the caller.

    Returns:
        The acceptor's pid, once it accepts connections.

    Raises:
        Whatever ``spec.open`` raises (nothing is left open).
        AlreadyStarted: ``spec.name`` is held by a live process.
        StartError: the acceptor crashed or did not start within ``timeout``.
    """
    listening = spec.open()
    try:
        pid = await start_process(
            _acceptor_main, (spec, listening), link=True, timeout=timeout, what=spec.what
        )
    except BaseException:
        listening.close()
        raise
    assert pid is not None
    return pid


async def _acceptor_main(starter: Starter, spec: AcceptorSpec, listening: Listening) -> None:
    acceptor = _Acceptor(spec, listening, starter.parent)
    try:
        kernel.trap_exit(True)
        register_or_fail(starter, spec.name)
        kernel.set_label("behaviour", spec.behaviour)
        for key, value in spec.labels.items():
            kernel.set_label(key, value)
        kernel.set_label(CONNECTIONS_LABEL, acceptor.connections.keys())
        starter.started()
        reason = await acceptor.run()
    finally:
        acceptor.close_all()
    raise ProcessExit(reason)


@final
class _Acceptor:
    """The state of one acceptor process; also its ``SystemHost``."""

    __slots__ = (
        "_closing",
        "_listening",
        "_refusers",
        "_resumed",
        "_spec",
        "_token",
        "connections",
        "parent",
    )

    def __init__(self, spec: AcceptorSpec, listening: Listening, parent: Pid) -> None:
        self._spec = spec
        self._listening = listening
        self.parent = parent
        #: connection pid -> its socket, for connections that count against the budget
        self.connections: dict[Pid, SocketIO] = {}
        #: connections told to end to make room: no longer counted, still owned
        self._closing: dict[Pid, SocketIO] = {}
        self._refusers: dict[Pid, SocketIO] = {}
        self._resumed: anyio.Event | None = None  # set while suspended
        self._token = object()

    async def run(self) -> object:
        """Accept and watch until the acceptor must end; returns its exit reason."""
        async with anyio.create_task_group() as tasks:
            for sock in self._listening.sockets:
                tasks.start_soon(self._accept_loop, sock)
            reason = await self._watch()
            tasks.cancel_scope.cancel()
        return reason

    async def _watch(self) -> object:
        token = self._token
        parent = self.parent
        while True:
            message = await kernel.receive()
            if type(message) is ExitMessage:
                if self._ended(message.pid):
                    continue
                if message.pid == parent or not kernel.is_normal_exit(message.reason):
                    return message.reason
            elif type(message) is SystemMessage:
                await self._system(message)
            elif type(message) is _AcceptFailed and message.token is token:
                return ("accept_failed", message.reason)
            else:
                logger.debug("%s: unexpected message %r", self._spec.what, message)

    def _ended(self, pid: Pid) -> bool:
        io = self.connections.pop(pid, None)
        if io is not None:
            self._spec.budget.give_back()
        else:
            io = self._closing.pop(pid, None) or self._refusers.pop(pid, None)
            if io is None:
                return False
        io.close()
        return True

    async def _system(self, message: SystemMessage) -> None:
        if type(message.request) is Suspend:
            self._resumed = anyio.Event()
        try:
            await handle_system(self, message, self.parent)
        finally:
            resumed, self._resumed = self._resumed, None
            if resumed is not None:
                resumed.set()

    # -- accepting -------------------------------------------------------------------------

    async def _accept_loop(self, listening: socket.socket) -> None:
        what = self._spec.what
        starved = False  # in a run of accept failures for want of descriptors or memory
        while True:
            resumed = self._resumed
            if resumed is not None:
                await resumed.wait()
                continue
            try:
                sock, _address = listening.accept()
            except BlockingIOError:
                try:
                    await anyio.wait_readable(listening)
                except anyio.ClosedResourceError as exc:  # closed under the wait
                    kernel.send(kernel.self(), _AcceptFailed(self._token, repr(exc)))
                    return
                continue
            except OSError as exc:
                if exc.errno in _RETRY_AT_ONCE:
                    continue
                if exc.errno in _BACK_OFF:
                    if not starved:  # once per run of failures, not ten times a second
                        starved = True
                        logger.warning(
                            "%s: accept failed, retrying every %g s: %s",
                            what,
                            BACK_OFF_SECONDS,
                            exc,
                            extra={"errno": exc.errno, "acceptor": what},
                        )
                    await anyio.sleep(BACK_OFF_SECONDS)
                    continue
                kernel.send(kernel.self(), _AcceptFailed(self._token, repr(exc)))
                return
            if starved:
                starved = False
                logger.info("%s: accepting again", what, extra={"acceptor": what})
            self._admit(SocketIO(sock))
            await anyio.lowlevel.checkpoint()

    def _admit(self, io: SocketIO) -> None:
        spec = self._spec
        if not spec.budget.take():
            evicted = spec.make_room() if spec.make_room is not None else None
            moved = self.connections.pop(evicted, None) if evicted is not None else None
            if moved is None:
                self._refuse(io)
                return
            assert evicted is not None
            self._closing[evicted] = moved  # its slot goes to the new connection
        self.connections[kernel.spawn_link(spec.serve, io)] = io

    def _refuse(self, io: SocketIO) -> None:
        refuse = self._spec.refuse
        if refuse is None or len(self._refusers) >= MAX_REFUSERS:
            io.close()
            return
        self._refusers[kernel.spawn_link(refuse, io)] = io

    # -- ending ----------------------------------------------------------------------------

    def close_all(self) -> None:
        """Close the listening sockets, then end every connection and close its socket."""
        self._listening.close()
        for group in (self.connections, self._closing, self._refusers):
            for pid, io in group.items():
                kernel.exit(pid, kernel.SHUTDOWN)
                io.close()
        for _ in self.connections:
            self._spec.budget.give_back()
        self.connections.clear()
        self._closing.clear()
        self._refusers.clear()

    # -- SystemHost ------------------------------------------------------------------------

    def system_get_state(self) -> AcceptorState:
        return AcceptorState(
            what=self._spec.what,
            addresses=tuple(_address(sock) for sock in self._listening.sockets),
            connections=len(self.connections),
            max_connections=self._spec.budget.limit,
            refusing=len(self._refusers),
            accepting=self._resumed is None,
        )

    def system_replace_state(self, fn: Callable[[Any], Any]) -> object:
        raise TypeError(f"the state of {self._spec.what} cannot be replaced")

    async def system_code_change(self, module: str, old_vsn: object, extra: object) -> None:
        """Library code: nothing to migrate."""

    def system_status(self, status: str) -> ProcessStatus:
        return ProcessStatus.of_self(
            status,
            behaviour=self._spec.behaviour,
            module=__name__,
            registered_name=self._spec.name,
            parent=self.parent,
            state=self.system_get_state(),
        )

    async def system_terminate(self, reason: object) -> None:
        raise ProcessExit(reason)


def which_connections(acceptor: Pid) -> list[Pid]:
    """The acceptor's connection processes (those counted against its cap), alive.

    Raises:
        LookupError: ``acceptor`` is not a live acceptor.
    """
    connections = (
        kernel.get_label(acceptor, CONNECTIONS_LABEL) if kernel.is_alive(acceptor) else None
    )
    if connections is None:
        raise LookupError(f"{acceptor} is not a live acceptor")
    return [pid for pid in list(connections) if kernel.is_alive(pid)]


def _address(sock: socket.socket) -> str:
    try:
        name = sock.getsockname()
    except OSError:
        return "closed"
    if isinstance(name, tuple):
        return f"{name[0]}:{name[1]}"
    return str(name)
