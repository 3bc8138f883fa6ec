"""Processes on other nodes: remote pids, and links, monitors and exits across a connection.

The kernel owns the *semantics* of signals between nodes; the distribution layer
(``server.dist``) owns the wire. They meet here:

- A remote ``Pid`` points, where a local one points at its ``Process``, at a
  ``RemoteProcess``: the kernel's stand-in for a process of another node. So ``send`` to a
  remote pid is the same attribute read as a local send, and the local path pays nothing
  for distribution.
- A ``RemoteNode`` is the kernel's record of one other node: its pids (interned, so the
  same remote process is always the same ``Pid`` object), the links and monitors that cross
  to it, and the ``Channel`` (the outgoing half of its connection) while one is up. The
  distribution layer calls its ``incoming_*`` methods with decoded signals, in arrival
  order, and ``connection_lost`` when the connection goes.

How this works (OTP's rules, ``erl_dist_protocol`` and the reference notes §1.6):

1. A link across nodes is recorded on the local process (``proc.links`` holds the
   ``RemoteProcess``) and in ``RemoteNode.links``. The link protocol with unlink ids: an
   ``unlink`` deactivates the link at once (the local process is no longer linked) and
   remembers the id until the peer's ``UNLINK_ID_ACK``; meanwhile a ``LINK`` from the peer
   is ignored and an exit over the link is not acted upon.
2. A monitor of a remote process (or name) is kept in the watcher's ``monitors`` and in
   ``RemoteNode.watching``; a remote watcher of a local process sits in the target's
   ``monitored_by`` and in ``RemoteNode.watched``. A monitor on a missing process answers
   ``noproc`` at once, for a name too, which is what makes a call fail fast.
3. A call to a remote process is a remote monitor whose reference is also the caller's
   alias: the reply arrives as ``incoming_reply(ref, value)`` and ends the monitor, so a
   reply after the caller gave up finds no monitor and is dropped.
4. When the connection is lost, every link across it fires with ``noconnection``, every
   monitor delivers ``DOWN`` with ``noconnection``, every ``monitor_node`` gets its
   ``NodeDown``, and the node's pids of that incarnation stay dead: a later connection has
   a new creation, and signals to the old pids are dropped.
5. Every outgoing signal is queued on the channel in the order the kernel issues it; the
   channel never blocks and never raises for a lost connection. When no connection is up,
   the first signal asks the distribution layer to connect (OTP's auto-connect), and a
   failed connection fires rule 4.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final, Protocol, final

from server.kernel._process import current
from server.kernel._types import NOPROC, DownMessage, Pid, Ref

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.kernel._node import Node
    from server.kernel._process import Process

__all__ = [
    "NOCONNECTION",
    "Channel",
    "Distribution",
    "NodeDownMessage",
    "NodeUpMessage",
    "RemoteNode",
    "RemoteProcess",
    "RemoteTag",
]

NOCONNECTION: Final = "noconnection"

logger = logging.getLogger("server.kernel")


@final
@dataclass(frozen=True, slots=True)
class NodeDownMessage:
    """Sent to a process that monitors a node (``monitor_node``) when it is lost."""

    node: str


@final
@dataclass(frozen=True, slots=True)
class NodeUpMessage:
    """Sent to subscribers of node events (``monitor_nodes``) when a node connects."""

    node: str


@final
@dataclass(frozen=True, slots=True)
class RemoteTag:
    """The tag of a request made by a remote caller, as it came over the wire.

    A ``From`` whose pid is remote carries one; ``reply`` hands it back to the channel,
    which answers in the form the tag asks for (an alias, or a plain message to the pid).
    """

    term: object
    #: For a ``sys`` request from another node: how OTP's caller expects the answer
    #: (``"ok"``: the atom ``ok``; ``"value"``: the value itself). None for other calls.
    system: str | None = None


class Channel(Protocol):
    """The outgoing half of a connection to one node (implemented by ``server.dist``).

    Each method queues one signal, in call order, and returns at once. None raises when the
    connection is lost: the kernel learns that through ``RemoteNode.connection_lost``.
    """

    def send(self, sender: Pid | None, to: Pid, message: object) -> None:
        """A message to a remote pid."""

    def send_named(self, sender: Pid | None, name: str, message: object) -> None:
        """A message to a name registered on the remote node."""

    def reply(self, sender: Pid | None, to: Pid, tag: RemoteTag, value: object) -> None:
        """The reply to a remote caller's request tagged ``tag``."""

    def link(self, sender: Pid, to: Pid) -> None:
        """``sender`` links to the remote ``to``."""

    def unlink(self, unlink_id: int, sender: Pid, to: Pid) -> None:
        """``sender`` removes its link to ``to`` (acknowledged with ``unlink_id``)."""

    def unlink_ack(self, unlink_id: int, sender: Pid, to: Pid) -> None:
        """``sender`` acknowledges the unlink ``unlink_id`` that ``to`` sent."""

    def exit(self, sender: Pid, to: Pid, reason: object, *, from_link: bool) -> None:
        """An exit signal: over a link (the sender ended) or ``exit/2``."""

    def monitor(self, watcher: Pid, target: Pid | str, ref: Ref) -> None:
        """``watcher`` starts monitoring ``target`` (a pid, or a name on the remote node)."""

    def demonitor(self, watcher: Pid, target: Pid | str, ref: Ref) -> None:
        """``watcher`` ends its monitor ``ref``."""

    def monitor_exit(self, target: Pid | str, watcher: Pid, ref: object, reason: object) -> None:
        """A monitor held by a remote ``watcher`` fired: ``target`` ended with ``reason``."""

    @property
    def busy(self) -> bool:
        """More is queued than the connection's busy limit (the peer reads slowly)."""

    async def drained(self) -> None:
        """Wait until the queue is back under the busy limit, or the connection is gone."""


class Distribution(Protocol):
    """The distribution layer as the kernel sees it (the net kernel of ``server.dist``)."""

    @property
    def name(self) -> str:
        """This node's full name (``alive@host``)."""

    def connect(self, node: RemoteNode) -> None:
        """Start connecting to ``node`` in the background (its channel is attached when up)."""


@final
class RemoteProcess:
    """The kernel's stand-in for a process on another node (what a remote ``Pid`` points at).

    Sending to it queues the message on its node's channel; a pid of an incarnation of the
    node that is gone (another ``creation``) takes nothing.
    """

    __slots__ = ("__weakref__", "creation", "id", "node", "pid", "serial")

    is_remote: ClassVar[bool] = True

    def __init__(self, node: RemoteNode, id: int, serial: int, creation: int) -> None:  # noqa: A002
        self.node = node
        self.id = id
        self.serial = serial
        self.creation = creation
        self.pid = Pid(id | serial << 32, self)

    def deliver(self, message: object) -> None:
        """Send ``message`` to the remote process (``send`` reaches this)."""
        channel = self.node.channel_for(self)
        if channel is not None:
            channel.send(_sender(), self.pid, message)

    def __repr__(self) -> str:
        return f"<{self.node.name}.{self.id}.{self.serial}>"


@final
class RemoteNode:
    """The kernel's record of another node: its pids, and what crosses to it.

    One per node name for the life of the local node. ``channel`` is set while a connection
    is up (``attach``) and cleared when it goes (``connection_lost``).
    """

    def __init__(self, kernel_node: Node, name: str) -> None:
        self.kernel_node = kernel_node
        self.name = name
        self.channel: Channel | None = None
        self.creation: int | None = None
        self.hidden = True
        self.connecting = False
        self._pids: weakref.WeakValueDictionary[tuple[int, int, int], RemoteProcess] = (
            weakref.WeakValueDictionary()
        )
        self.links: set[tuple[Process, RemoteProcess]] = set()
        self.unlinking: dict[tuple[Process, RemoteProcess], int] = {}
        self.watching: dict[Ref, tuple[Process, Pid | str]] = {}
        self.watched: dict[object, tuple[RemoteProcess, Process, str | None]] = {}
        self.node_monitors: dict[Process, int] = {}
        self._unlink_ids = itertools.count(1)

    def __repr__(self) -> str:
        state = "connected" if self.channel is not None else "not connected"
        return f"<RemoteNode {self.name} {state}>"

    # -- pids ------------------------------------------------------------------------------

    def pid(self, id: int, serial: int, creation: int) -> Pid:  # noqa: A002
        """The pid of process ``id.serial`` of this node's incarnation ``creation``."""
        key = (id, serial, creation)
        proxy = self._pids.get(key)
        if proxy is None:
            proxy = RemoteProcess(self, id, serial, creation)
            self._pids[key] = proxy
        return proxy.pid

    @property
    def connected(self) -> bool:
        """True while a connection to the node is up."""
        channel = self.channel
        return channel is not None and type(channel) is not _PendingChannel

    def attach(self, channel: Channel, creation: int, *, hidden: bool) -> None:
        """A connection is up: signals go out through ``channel`` from now on.

        The signals issued while it was being made go out first, in their order.
        """
        pending = self.channel
        self.channel = channel
        self.creation = creation
        self.hidden = hidden
        self.connecting = False
        if type(pending) is _PendingChannel:
            pending.replay(channel)

    def channel_for(self, target: RemoteProcess | None) -> Channel | None:
        """The channel for a signal to ``target`` (None: the signal is dropped).

        With no connection up, this starts one (OTP's auto-connect) and returns a pending
        channel that keeps the signals, in order, until the connection is up; if it cannot
        be made, they are dropped and the links and monitors made meanwhile fire
        ``noconnection``. None when this node is not distributed, or for a pid of an
        earlier incarnation of the node.
        """
        channel = self.channel
        if channel is None:
            if not self._connect():
                return None
            channel = self.channel
        if target is not None and target.creation != self.creation and self.creation is not None:
            return None  # a pid of an earlier incarnation of the node: gone
        return channel

    def _connect(self) -> bool:
        distribution = self.kernel_node.distribution
        if distribution is None:
            return False
        if self.channel is None:
            self.channel = _PendingChannel()
            self.connecting = True
            distribution.connect(self)
        return True

    # -- outgoing signals, from the kernel's API -------------------------------------------

    def stale(self, remote: RemoteProcess) -> bool:
        """True for a pid of an earlier incarnation of the node: that process is gone."""
        return self.creation is not None and remote.creation != self.creation

    def link(self, proc: Process, remote: RemoteProcess) -> None:
        """``proc`` links to ``remote``: a LINK, or ``noconnection`` at once if unreachable."""
        pair = (proc, remote)
        self.unlinking.pop(pair, None)
        if self.stale(remote):
            proc.node.exit_signal(proc, remote.pid, NOPROC, from_link=True)
            return
        channel = self.channel_for(remote)
        if channel is None:
            proc.node.exit_signal(proc, remote.pid, NOCONNECTION, from_link=True)
            return
        if pair not in self.links:
            self.links.add(pair)
            if proc.links is None:
                proc.links = set()
            proc.links.add(remote)
        channel.link(proc.pid, remote.pid)

    def unlink(self, proc: Process, remote: RemoteProcess) -> None:
        """``proc`` removes its link to ``remote`` (the unlink-id protocol)."""
        pair = (proc, remote)
        if pair not in self.links:
            return
        self.links.discard(pair)
        if proc.links is not None:
            proc.links.discard(remote)
        channel = self.channel_for(remote)
        if channel is not None:
            unlink_id = next(self._unlink_ids)
            self.unlinking[pair] = unlink_id
            channel.unlink(unlink_id, proc.pid, remote.pid)

    def exit(self, sender: Pid, remote: RemoteProcess, reason: object) -> None:
        """``exit(remote_pid, reason)``: an exit signal that needs no link."""
        channel = self.channel_for(remote)
        if channel is not None:
            channel.exit(sender, remote.pid, reason, from_link=False)

    def monitor(self, proc: Process, target: Pid | str, ref: Ref) -> None:
        """``proc`` monitors a remote pid or a name on this node."""
        remote = target._process if type(target) is Pid else None
        shown: Pid | tuple[str, str] = target if type(target) is Pid else (str(target), self.name)
        if type(remote) is RemoteProcess and self.stale(remote):
            proc.deliver(DownMessage(ref, shown, NOPROC))
            return
        channel = self.channel_for(remote if type(remote) is RemoteProcess else None)
        if channel is None:
            proc.deliver(DownMessage(ref, shown, NOCONNECTION))
            return
        self.watching[ref] = (proc, target)
        if proc.monitors is None:
            proc.monitors = {}
        proc.monitors[ref] = self
        channel.monitor(proc.pid, target, ref)

    def demonitor(self, proc: Process, ref: Ref) -> None:
        """``proc`` ends its monitor ``ref`` of something on this node."""
        entry = self.watching.pop(ref, None)
        if entry is not None and self.channel is not None:
            self.channel.demonitor(proc.pid, entry[1], ref)

    def send_named(self, name: str, message: object) -> None:
        """``send((name, node), message)``."""
        channel = self.channel_for(None)
        if channel is not None:
            channel.send_named(_sender(), name, message)

    def reply(self, remote: RemoteProcess, tag: RemoteTag, value: object) -> None:
        """Answer a remote caller."""
        channel = self.channel_for(remote)
        if channel is not None:
            channel.reply(_sender(), remote.pid, tag, value)

    def monitor_node(self, proc: Process, flag: bool) -> None:
        """``monitor_node(node, flag)``: ``NodeDownMessage`` when the node is lost."""
        if not flag:
            count = self.node_monitors.get(proc, 0)
            if count <= 1:
                self.node_monitors.pop(proc, None)
            else:
                self.node_monitors[proc] = count - 1
            return
        if self.channel is None and not self._connect():
            proc.deliver(NodeDownMessage(self.name))
            return
        self.node_monitors[proc] = self.node_monitors.get(proc, 0) + 1

    # -- the end of a local process --------------------------------------------------------

    def process_ended(self, proc: Process, remote: RemoteProcess, reason: object) -> None:
        """A local process linked to ``remote`` ended: the link carries its reason."""
        pair = (proc, remote)
        self.links.discard(pair)
        channel = self.channel_for(remote)
        if channel is not None:
            channel.exit(proc.pid, remote.pid, reason, from_link=True)

    def target_ended(self, ref: object, proc: Process, reason: object) -> None:
        """A local process that a remote process monitored ended."""
        entry = self.watched.pop(ref, None)
        if entry is None:
            return
        watcher, _target, name = entry
        channel = self.channel_for(watcher)
        if channel is not None:
            channel.monitor_exit(name if name is not None else proc.pid, watcher.pid, ref, reason)

    def watcher_ended(self, proc: Process, ref: Ref) -> None:
        """A local process that monitored something on this node ended."""
        entry = self.watching.pop(ref, None)
        if entry is not None and self.channel is not None:
            self.channel.demonitor(proc.pid, entry[1], ref)

    def forget(self, proc: Process) -> None:
        """Drop the bookkeeping of an ended local process (pending unlinks, node monitors)."""
        self.node_monitors.pop(proc, None)
        if self.unlinking:
            for pair in [pair for pair in self.unlinking if pair[0] is proc]:
                del self.unlinking[pair]

    # -- incoming signals, from the distribution layer (in arrival order) ------------------

    def incoming_send(self, to: Pid, message: object) -> None:
        """A message for a local pid."""
        proc = to._process
        if proc is not None and type(proc) is not RemoteProcess:
            proc.deliver(message)

    def incoming_send_named(self, name: str, message: object) -> None:
        """A message for a local registered name (unknown names drop it, as in OTP)."""
        proc = self.kernel_node.registry.get(name)
        if proc is not None:
            proc.deliver(message)

    def incoming_reply(self, ref: Ref, value: object) -> bool:
        """A reply to a call: delivered while its monitor is active, which it ends.

        Returns:
            False when ``ref`` is no active call of ours (the reply is then not a reply).
        """
        entry = self.watching.get(ref)
        if entry is None:
            return False
        proc, target = entry
        if proc.monitors is None or proc.monitors.pop(ref, None) is None:
            return False
        del self.watching[ref]
        if self.channel is not None:
            self.channel.demonitor(proc.pid, target, ref)
        from server.kernel._call import reply_message

        proc.deliver(reply_message(ref, value))
        return True

    def incoming_link(self, sender: Pid, to: Pid) -> None:
        """LINK from a remote process to a local one."""
        remote = sender._process
        if type(remote) is not RemoteProcess:
            return
        proc = _local(to)
        if proc is None:
            if self.channel is not None:
                self.channel.exit(to, sender, NOPROC, from_link=True)
            return
        pair = (proc, remote)
        if pair in self.links or pair in self.unlinking:
            return  # an existing link, even one being unlinked, ignores a LINK
        self.links.add(pair)
        if proc.links is None:
            proc.links = set()
        proc.links.add(remote)

    def incoming_unlink(self, unlink_id: int, sender: Pid, to: Pid) -> None:
        """UNLINK_ID: remove an active link; always acknowledged, before anything else."""
        remote = sender._process
        if type(remote) is not RemoteProcess:
            return
        proc = _local(to)
        if proc is not None:
            pair = (proc, remote)
            if pair in self.links:
                self.links.discard(pair)
                if proc.links is not None:
                    proc.links.discard(remote)
        if self.channel is not None:
            self.channel.unlink_ack(unlink_id, to, sender)

    def incoming_unlink_ack(self, unlink_id: int, sender: Pid, to: Pid) -> None:
        """UNLINK_ID_ACK: our unlink ``unlink_id`` is done on the peer's side."""
        remote = sender._process
        proc = _local(to)
        if type(remote) is not RemoteProcess or proc is None:
            return
        pair = (proc, remote)
        if self.unlinking.get(pair) == unlink_id:
            del self.unlinking[pair]

    def incoming_exit(self, sender: Pid, to: Pid, reason: object, *, from_link: bool) -> None:
        """An exit signal from a remote process (over a link, or ``exit/2``)."""
        remote = sender._process
        proc = _local(to)
        if type(remote) is not RemoteProcess or proc is None:
            return
        if from_link:
            pair = (proc, remote)
            if pair not in self.links:
                return  # inactive (being unlinked) or no link: not acted upon
            self.links.discard(pair)
            if proc.links is not None:
                proc.links.discard(remote)
        proc.node.exit_signal(proc, sender, reason, from_link=from_link)

    def incoming_monitor(self, watcher: Pid, target: Pid | str, ref: object) -> None:
        """MONITOR_P: a remote process monitors a local pid or name (noproc at once if none)."""
        remote = watcher._process
        if type(remote) is not RemoteProcess:
            return
        if type(target) is Pid:
            proc = _local(target)
            name = None
        else:
            name = str(target)
            proc = self.kernel_node.registry.get(name)
            if proc is not None and not proc.alive:
                proc = None
        if proc is None:
            if self.channel is not None:
                self.channel.monitor_exit(target, watcher, ref, NOPROC)
            return
        self.watched[ref] = (remote, proc, name)
        if proc.monitored_by is None:
            proc.monitored_by = {}
        proc.monitored_by[ref] = remote

    def incoming_demonitor(self, ref: object) -> None:
        """DEMONITOR_P: a remote watcher ends its monitor ``ref``."""
        entry = self.watched.pop(ref, None)
        if entry is not None and entry[1].monitored_by is not None:
            entry[1].monitored_by.pop(ref, None)

    def incoming_monitor_exit(self, target: Pid | str, to: Pid, ref: Ref, reason: object) -> None:
        """MONITOR_P_EXIT: what a local process monitored on this node ended."""
        entry = self.watching.pop(ref, None)
        if entry is None:
            return
        proc = entry[0]
        if proc.monitors is not None:
            proc.monitors.pop(ref, None)
        shown = target if type(target) is Pid else (str(target), self.name)
        proc.deliver(DownMessage(ref, shown, reason))

    # -- the connection's end --------------------------------------------------------------

    def connection_lost(self) -> None:
        """The connection is gone (or could not be made): fire everything with noconnection."""
        self.channel = None
        self.connecting = False
        kernel_node = self.kernel_node
        links, self.links = self.links, set()
        self.unlinking.clear()
        for proc, remote in links:
            if proc.links is not None:
                proc.links.discard(remote)
            kernel_node.exit_signal(proc, remote.pid, NOCONNECTION, from_link=True)
        watching, self.watching = self.watching, {}
        for ref, (proc, target) in watching.items():
            if proc.monitors is not None:
                proc.monitors.pop(ref, None)
            shown = target if type(target) is Pid else (str(target), self.name)
            proc.deliver(DownMessage(ref, shown, NOCONNECTION))
        watched, self.watched = self.watched, {}
        for key, (_watcher, proc, _name) in watched.items():
            if proc.monitored_by is not None:
                proc.monitored_by.pop(key, None)
        monitors, self.node_monitors = self.node_monitors, {}
        for proc, count in monitors.items():
            for _ in range(count):
                proc.deliver(NodeDownMessage(self.name))


@final
class _PendingChannel:
    """The signals issued while a connection is being made, replayed once it is up."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []

    busy = False

    async def drained(self) -> None:
        return

    def replay(self, channel: Channel) -> None:
        calls, self.calls = self.calls, []
        for method, args, kwargs in calls:
            try:
                getattr(channel, method)(*args, **kwargs)
            except (TypeError, ValueError) as exc:  # a message that is not a term
                logger.warning("a signal to %s could not be sent: %s", channel, exc)

    def __getattr__(self, method: str) -> Callable[..., None]:
        if method.startswith("_"):
            raise AttributeError(method)

        def record(*args: object, **kwargs: object) -> None:
            self.calls.append((method, args, kwargs))

        return record


def _local(pid: Pid) -> Process | None:
    proc = pid._process
    if proc is None or type(proc) is RemoteProcess or not proc.alive:
        return None
    return proc


def _sender() -> Pid | None:
    try:
        return current.get().pid
    except LookupError:
        return None
