"""The net kernel: this node's name in the cluster, its connections, and who may connect.

A gen_server registered as ``net_kernel`` (so an Erlang node's ``net_adm:ping`` gets its
``{is_auth, Node}`` answered ``yes``). How this works:

1. ``init`` resolves the node name and the cookie, makes sure an EPMD runs (starting one as
   ``erl`` does), opens the listening socket, registers the name and port with EPMD (which
   hands out this incarnation's *creation*) and starts the acceptor on that socket. From
   then on the kernel's ``Distribution`` hook is set: a signal to another node connects.
2. The connection table maps a node name to the one process that owns its connection (or
   the attempt to make one). Each connection process is linked to the net kernel, which
   traps exits: a connection that ends leaves the table.
3. Both directions meet in ``arbitrate`` (the acceptor's side of the handshake): no entry,
   ``ok``; our own attempt to that node pending, the greater name wins (``nok`` to the
   peer when ours is greater, else ``ok_simultaneous`` and our attempt steps aside); a
   connection up, ``alive`` (the peer says whether its old connection is dead, and then
   ours is dropped, its links and monitors fired with ``noconnection``).
4. A dialing attempt that loses a simultaneous connect waits, up to the setup time, for the
   peer's connection to take its place; the signals queued meanwhile go out on that one.
   An attempt whose place the peer's connection took before the peer answered it (the
   peer then says ``alive``) answers ``false``: the live connection is that one.
   An attempt that fails fires ``noconnection`` for what was queued.
5. Subscribers of ``monitor_nodes`` get ``NodeUpMessage`` and ``NodeDownMessage``.
"""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, final

import anyio
from anyio.streams.buffered import BufferedByteStream
from anyio.streams.tls import TLSStream

from server import kernel
from server.behaviours import acceptor
from server.behaviours.acceptor import AcceptorSpec, ConnectionBudget
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply
from server.dist import handshake
from server.dist._connection import Connection, ConnectionLimits
from server.dist._identities import KernelIdentities
from server.dist._tls import TlsContexts
from server.dist.cookie import load_cookie
from server.dist.epmd import EpmdClient, EpmdRegistration, ensure_epmd
from server.dist.flags import HIDDEN_FLAGS, VISIBLE_FLAGS
from server.dist.names import NodeName
from server.dist.terms import Atom
from server.errors import DistributionError, HandshakeError, SimultaneousConnect, StartError
from server.kernel import ExitMessage, NodeDownMessage, NodeUpMessage, Pid, ProcessExit

if TYPE_CHECKING:
    from server.behaviours.socket_io import SocketIO
    from server.kernel import From, RemoteNode
    from server.spec import DistSettings

__all__ = ["NAME", "ConnectionInfo", "NetKernelState"]

logger = logging.getLogger("server.dist")

NAME = "net_kernel"


@final
@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """One connected node, as ``server nodes`` shows it."""

    node: str
    state: str
    direction: str
    hidden: bool
    creation: int | None
    flags: int
    ticks_in: int
    ticks_out: int
    frames_in: int
    frames_out: int
    bytes_in: int
    bytes_out: int
    queued_bytes: int


@final
@dataclass(slots=True)
class _Entry:
    pid: Pid
    direction: Literal["in", "out"]
    state: Literal["pending", "up"] = "pending"
    connection: Connection | None = None


@final
@dataclass(slots=True)
class NetKernelState:
    """The net kernel's state (shared, read-only, with its connection processes)."""

    settings: DistSettings
    name: str
    cookie: str
    creation: int
    flags: int
    identities: KernelIdentities
    registration: EpmdRegistration
    listener: Pid
    port: int
    table: dict[str, _Entry] = field(default_factory=dict)
    subscribers: dict[Pid, kernel.Ref] = field(default_factory=dict)
    rpc_allow: frozenset[str] = frozenset()
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    tls: TlsContexts | None = None


@final
class _Hook:
    """The kernel's ``Distribution``: the node's name, and connecting on demand."""

    def __init__(self, name: str, net_kernel: Pid) -> None:
        self._name = name
        self._net_kernel = net_kernel

    @property
    def name(self) -> str:
        return self._name

    def connect(self, node: RemoteNode) -> None:
        kernel.send(self._net_kernel, _Connect(node.name))


@final
@dataclass(frozen=True, slots=True)
class _Connect:
    node: str


@final
@dataclass(frozen=True, slots=True)
class _Up:
    node: str
    pid: Pid


@final
@dataclass(frozen=True, slots=True)
class _Ended:
    node: str
    pid: Pid


@final
@dataclass(frozen=True, slots=True)
class _Superseded:
    """To a losing dialer: the peer's connection took its place."""


@final
@dataclass(frozen=True, slots=True)
class _Listening:
    sockets: list[socket.socket]

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


_state: NetKernelState | None = None


def running_state() -> NetKernelState | None:
    """The running net kernel's state, or None when this node is not distributed."""
    return _state


async def init(settings: DistSettings) -> object:
    """Name, cookie, EPMD, listener and registration; then connections can be made."""
    global _state
    kernel.trap_exit(True)
    node_name = NodeName.parse(settings.name, long=settings.longnames)
    cookie = load_cookie(settings.cookie)
    tls = TlsContexts(settings.tls) if settings.tls is not None else None
    epmd = EpmdClient(settings.epmd_host, settings.epmd_port)
    if settings.start_epmd:
        await ensure_epmd(settings.epmd_host, epmd.port)
    listening = _open_listener(settings)
    port = listening.sockets[0].getsockname()[1]
    try:
        registration = await epmd.register(node_name.alive, port, hidden=settings.hidden)
    except BaseException:
        listening.close()
        raise
    name = str(node_name)
    identities = KernelIdentities(kernel.current_node(), name, registration.creation)
    state = NetKernelState(
        settings=settings,
        name=name,
        cookie=cookie,
        creation=registration.creation,
        flags=int(HIDDEN_FLAGS if settings.hidden else VISIBLE_FLAGS),
        identities=identities,
        registration=registration,
        listener=kernel.self(),  # replaced below
        port=port,
        rpc_allow=frozenset(settings.rpc_allow),
        limits=ConnectionLimits(
            max_frame=settings.max_message,
            busy_limit=settings.busy_limit,
            max_queue=max(settings.max_message, 4 * settings.busy_limit),
        ),
        tls=tls,
    )
    _state = state
    try:
        state.listener = await acceptor.start_link(
            AcceptorSpec(
                what=f"distribution listener on {settings.listen_host}:{port}",
                behaviour="dist_listener",
                open=lambda: listening,
                serve=lambda io: _accepted(state, io),
                budget=ConnectionBudget(1024),
                name="dist_listener",
                labels={"dist_port": port},
            )
        )
    except BaseException:
        _state = None
        listening.close()
        with anyio.CancelScope(shield=True):
            await registration.aclose()
        raise
    kernel.current_node().distribution = _Hook(name, kernel.self())
    logger.info(
        "node %s is distributed (port %d, creation %d, %s)",
        name,
        port,
        registration.creation,
        "hidden" if settings.hidden else "visible",
        extra={"node": name, "port": port, "creation": registration.creation},
    )
    return Ok(state)


def _open_listener(settings: DistSettings) -> _Listening:
    family = socket.AF_INET6 if ":" in settings.listen_host else socket.AF_INET
    low, high = settings.listen_port_min, settings.listen_port_max or settings.listen_port_min
    last: OSError | None = None
    for port in range(low, high + 1):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((settings.listen_host, port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.setblocking(False)
        return _Listening([sock])
    raise StartError(
        "net_kernel",
        f"cannot listen on {settings.listen_host} ports {low}..{high}: {last}",
    )


async def handle_call(request: object, from_: From, state: NetKernelState) -> object:
    match request:
        case (Atom("is_auth"), _node):
            return Reply(Atom("yes"), state)
        case ("connections",):
            return Reply(_infos(state), state)
        case ("connect", str(node)):
            entry = state.table.get(node)
            if entry is not None and entry.state == "up":
                return Reply(True, state)
            kernel.send(kernel.self(), _Connect(node))
            return Reply(None, state)
        case ("disconnect", str(node)):
            entry = state.table.pop(node, None)
            if entry is None:
                return Reply(False, state)
            if entry.connection is not None:  # at once: what is sent next reconnects
                entry.connection.abort("disconnected by disconnect_node")
            kernel.exit(entry.pid, "kill")
            if entry.state == "up":
                _tell(state, NodeDownMessage(node))
            return Reply(True, state)
        case ("monitor_nodes", bool(flag)):
            subscriber = from_.pid
            if flag and subscriber not in state.subscribers:
                state.subscribers[subscriber] = kernel.monitor(subscriber)
            elif not flag and subscriber in state.subscribers:
                kernel.demonitor(state.subscribers.pop(subscriber), flush=True)
            return Reply(None, state)
    return Reply((Atom("error"), Atom("unknown_request")), state)


async def handle_cast(request: object, state: NetKernelState) -> object:
    return NoReply(state)


async def handle_info(message: object, state: NetKernelState) -> object:
    match message:
        case _Connect(node=node):
            _dial(state, node)
        case _Up(node=node, pid=pid):
            entry = state.table.get(node)
            if entry is not None and entry.pid is pid:
                entry.state = "up"
                _tell(state, NodeUpMessage(node))
        case _Ended(pid=pid) | ExitMessage(pid=pid):
            if type(message) is ExitMessage and pid is state.listener:
                raise ProcessExit(("dist_listener_ended", message.reason))
            for node, entry in list(state.table.items()):
                if entry.pid is pid:
                    del state.table[node]
                    remote = kernel.current_node().remote_node(node)
                    if remote.channel is not None:
                        remote.connection_lost()
                    if entry.state == "up":
                        _tell(state, NodeDownMessage(node))
        case kernel.DownMessage(pid=Pid() as pid):
            state.subscribers.pop(pid, None)
    return NoReply(state)


async def terminate(reason: object, state: NetKernelState) -> None:
    global _state
    node = kernel.current_node()
    if isinstance(node.distribution, _Hook):
        node.distribution = None
    for entry in list(state.table.values()):
        kernel.exit(entry.pid, "kill")
    with anyio.CancelScope(shield=True):
        await state.registration.aclose()
    _state = None


def _tell(state: NetKernelState, event: object) -> None:
    for subscriber in state.subscribers:
        kernel.send(subscriber, event)


def _infos(state: NetKernelState) -> list[ConnectionInfo]:
    rows = []
    for node, entry in sorted(state.table.items()):
        conn = entry.connection
        stats = conn.stats if conn is not None else None
        rows.append(
            ConnectionInfo(
                node=node,
                state=entry.state,
                direction=entry.direction,
                hidden=conn.handshake.peer_hidden if conn is not None else True,
                creation=conn.handshake.peer_creation if conn is not None else None,
                flags=int(conn.flags) if conn is not None else 0,
                ticks_in=stats.ticks_in if stats else 0,
                ticks_out=stats.ticks_out if stats else 0,
                frames_in=stats.frames_in if stats else 0,
                frames_out=stats.frames_out if stats else 0,
                bytes_in=stats.bytes_in if stats else 0,
                bytes_out=stats.bytes_out if stats else 0,
                queued_bytes=conn.queued_bytes if conn is not None else 0,
            )
        )
    return rows


# -- connection processes ------------------------------------------------------------------


def _dial(state: NetKernelState, node: str) -> None:
    if node in state.table or node == state.name:
        return
    pid = kernel.spawn_link(_dialer, state, node)
    state.table[node] = _Entry(pid, "out")


async def _dialer(state: NetKernelState, node: str) -> None:
    kernel.set_label("dist_connection", node)
    remote = kernel.current_node().remote_node(node)
    me = kernel.self()
    settings = state.settings
    try:
        with anyio.fail_after(settings.setup_timeout):
            stream = await _open(state, node)
        result = await handshake.initiate(
            stream,
            our_name=state.name,
            peer_name=node,
            our_flags=state.flags,
            our_creation=state.creation,
            cookie=state.cookie,
            alive_answer=lambda: _pending(state, node, me),
            setup_timeout=settings.setup_timeout,
            length_size=4 if state.tls is not None else 2,  # OTP's inet_tls: {packet, 4}
        )
    except SimultaneousConnect:
        # the peer's own attempt wins: wait for it to take our place in the table
        try:
            await kernel.receive(lambda m: type(m) is _Superseded, timeout=settings.setup_timeout)
            return
        except TimeoutError:
            pass
        _failed(state, remote, me, "lost a simultaneous connect and the peer never came")
        return
    except (
        OSError,
        TimeoutError,
        DistributionError,
        HandshakeError,
        anyio.BrokenResourceError,
        anyio.EndOfStream,
    ) as exc:
        _failed(state, remote, me, str(exc) or type(exc).__name__)
        return
    await _connected(state, remote, me, stream, result)


def _pending(state: NetKernelState, node: str, dialer: Pid) -> bool:
    """Whether ``dialer`` is still this node's attempt to ``node`` (Erlang's ``is_pending``).

    A dialer told ``alive`` answers true (the peer's old connection is dead: replace it)
    only then; if the peer's own connection took its place meanwhile, that is the live
    connection the peer means, and the answer is false.
    """
    entry = state.table.get(node)
    return entry is not None and entry.pid is dialer


async def _open(state: NetKernelState, node: str) -> BufferedByteStream:
    name = NodeName.parse(node, long=state.settings.longnames)
    epmd = EpmdClient(name.host, state.settings.epmd_port)
    address = await epmd.port_please(name.alive)
    if address is None:
        raise DistributionError(f"no node {name.alive} is registered with epmd on {name.host}")
    raw = await anyio.connect_tcp(name.host, address.port)
    _no_delay(raw)
    if state.tls is None:
        return BufferedByteStream(raw)
    try:
        secured = await TLSStream.wrap(
            raw,
            server_side=False,
            hostname=name.host,
            ssl_context=state.tls.client,
            standard_compatible=False,
        )
    except BaseException:
        await raw.aclose()
        raise
    return BufferedByteStream(secured)


def _no_delay(stream: anyio.abc.SocketStream) -> None:
    """No Nagle delay: a call is two small writes, the second must not wait for an ACK."""
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _failed(state: NetKernelState, remote: RemoteNode, me: Pid, why: str) -> None:
    entry = state.table.get(remote.name)
    if entry is not None and entry.pid is me:
        del state.table[remote.name]
        remote.connection_lost()
    logger.info(
        "cannot connect to %s: %s", remote.name, why, extra={"peer": remote.name, "reason": why}
    )


async def _accepted(state: NetKernelState, io: SocketIO) -> None:
    io.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw: anyio.abc.ByteStream = await anyio.abc.SocketStream.from_socket(io.socket)
    me = kernel.self()
    try:
        if state.tls is not None:
            with anyio.fail_after(state.settings.setup_timeout):
                raw = await TLSStream.wrap(
                    raw, server_side=True, ssl_context=state.tls.server, standard_compatible=False
                )
        stream = BufferedByteStream(raw)
        result = await handshake.accept(
            stream,
            our_name=state.name,
            our_flags=state.flags,
            our_creation=state.creation,
            cookie_for=lambda peer: state.cookie,
            arbitrate=lambda peer: _arbitrate(state, peer, me),
            setup_timeout=state.settings.setup_timeout,
            length_size=4 if state.tls is not None else 2,
        )
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await raw.aclose()  # the acceptor closes the socket; this closes its transport
        for peer, entry in list(state.table.items()):
            if entry.pid is me:  # arbitrated, then failed: the name is free again
                del state.table[peer]
                remote = kernel.current_node().remote_node(peer)
                if remote.channel is not None and not remote.connected:
                    remote.connection_lost()
        if isinstance(exc, ssl.SSLError | anyio.BrokenResourceError | anyio.EndOfStream):
            logger.warning(
                "an incoming distribution connection failed TLS: %s",
                exc,
                extra={"reason": str(exc)},
            )
            return
        if isinstance(exc, OSError | TimeoutError | DistributionError | HandshakeError):
            logger.debug("an incoming connection failed its handshake: %s", exc)
            return
        raise
    remote = kernel.current_node().remote_node(result.peer_name)
    current = state.table.get(result.peer_name)
    if result.status == "alive" and current is not None and current.pid is not me:
        # the peer says its old connection is dead: so is ours
        if current.connection is not None:
            current.connection.abort("replaced: the peer reconnected")
        kernel.exit(current.pid, "kill")
        state.table[result.peer_name] = _Entry(me, "in")
    await _connected(state, remote, me, stream, result)


def _arbitrate(state: NetKernelState, peer: str, me: Pid) -> handshake.Arbitration:
    entry = state.table.get(peer)
    if entry is None:
        state.table[peer] = _Entry(me, "in")
        return "ok"
    if entry.state == "up":
        return "alive"
    if entry.direction == "out":
        if state.name > peer:
            return "nok"  # our own attempt goes on
        kernel.send(entry.pid, _Superseded())
        kernel.unlink(entry.pid)  # it ends quietly; its end is not this connection's end
        state.table[peer] = _Entry(me, "in")
        return "ok_simultaneous"
    return "nok"  # another incoming attempt from the same node is under way


async def _connected(
    state: NetKernelState,
    remote: RemoteNode,
    me: Pid,
    stream: BufferedByteStream,
    result: handshake.Handshake,
) -> None:
    entry = state.table.get(remote.name)
    if entry is None or entry.pid is not me:
        entry = state.table[remote.name] = _Entry(me, "out" if entry is None else entry.direction)
    connection = Connection(
        remote,
        stream,
        result,
        state.identities,
        net_ticktime=state.settings.net_ticktime,
        limits=state.limits,
        on_spawn_request=_spawn_request_handler(state),
    )
    entry.connection = connection
    kernel.send(NAME, _Up(remote.name, me))
    logger.info(
        "node %s connected (%s%s)",
        remote.name,
        "hidden, " if result.peer_hidden else "",
        "incoming" if entry.direction == "in" else "outgoing",
        extra={"peer": remote.name, "event": "nodeup"},
    )
    try:
        why = await connection.run()
    finally:
        kernel.send(NAME, _Ended(remote.name, me))
    logger.info(
        "node %s disconnected: %s",
        remote.name,
        why,
        extra={"peer": remote.name, "event": "nodedown", "reason": why},
    )


def _spawn_request_handler(state: NetKernelState) -> Any:
    from server.dist._rpc import serve_spawn_request

    return lambda conn, req_id, from_, mfa, opts, args: serve_spawn_request(
        state.rpc_allow, conn, req_id, from_, mfa, opts, args
    )
