"""The process primitives users call: spawn, send, receive, links, monitors, names, timers.

Every function here acts for the *current* process (the one whose code is running) on the
node running in this OS process. Those that need a current process raise
``NoProcessError`` when called from elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio

from server.errors import NoProcessError, NotRegisteredError, RegistrationError
from server.kernel._node import current_node
from server.kernel._process import Matcher, Process, Receipt, current
from server.kernel._remote import RemoteProcess
from server.kernel._types import KILLED, Pid, ProcessExit, Ref, TimerRef

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

__all__ = [
    "cancel_timer",
    "demonitor",
    "exit",
    "flush",
    "is_alive",
    "link",
    "monitor",
    "monitor_node",
    "node",
    "nodes",
    "receive",
    "receive_nowait",
    "register",
    "registered",
    "self",
    "send",
    "send_after",
    "spawn",
    "spawn_link",
    "spawn_monitor",
    "trap_exit",
    "unlink",
    "unregister",
    "wait_ended",
    "whereis",
]

T = TypeVar("T")


def _me(operation: str) -> Process:
    try:
        return current.get()
    except LookupError:
        raise NoProcessError(operation) from None


def self() -> Pid:
    """The pid of the current process.

    Raises:
        NoProcessError: called outside a process.
    """
    return _me("self").pid


def spawn(fn: Callable[..., Awaitable[Any]], *args: Any) -> Pid:
    """Start a process running ``fn(*args)`` and return its pid.

    ``fn`` is an async function. The process ends ``normal`` when it returns, with the
    exception when one escapes, or with ``reason`` on ``raise ProcessExit(reason)``. A body
    may also return ``Continue(target, *args)`` to go on in ``target`` with a fresh stack.
    """
    return current_node().spawn(fn, args).pid


def spawn_link(fn: Callable[..., Awaitable[Any]], *args: Any) -> Pid:
    """Like ``spawn``, atomically linked to the current process.

    Raises:
        NoProcessError: called outside a process.
    """
    return current_node().spawn(fn, args, link_to=_me("spawn_link")).pid


def spawn_monitor(fn: Callable[..., Awaitable[Any]], *args: Any) -> tuple[Pid, Ref]:
    """Like ``spawn``, atomically monitored by the current process.

    Raises:
        NoProcessError: called outside a process.
    """
    me = _me("spawn_monitor")
    node = current_node()
    pid = node.spawn(fn, args).pid
    return pid, node.monitor(me, pid)


def send(dest: Pid | str | tuple[str, str], message: object) -> None:
    """Send ``message`` to a pid, a registered name or ``(name, node)``. Never blocks.

    Sending to a dead pid does nothing (as in OTP), nor does sending to a name on another
    node that nobody holds there. A message to another node must be a term (see
    ``server.dist``).

    Raises:
        NotRegisteredError: ``dest`` is a local name nobody holds.
        TypeError: the message for another node cannot be encoded as a term.
    """
    if type(dest) is Pid:
        proc = dest._process
        if proc is not None:
            proc.deliver(message)
        return
    node = current_node()
    if type(dest) is tuple:
        name, node_name = dest
        if node_name != node.node_name:
            node.remote_node(node_name).send_named(name, message)
            return
        dest = name
    target = node.registry.get(dest)  # type: ignore[arg-type]
    if target is None:
        raise NotRegisteredError(str(dest))
    target.deliver(message)


def receive(match: Matcher | None = None, *, timeout: float | None = None) -> Awaitable[object]:
    """Wait for the first message (that ``match`` accepts); the others stay queued in order.

    Use as ``message = await receive(...)``. ``timeout`` is in seconds; ``0`` only polls.

    Raises:
        TimeoutError: no matching message arrived within ``timeout``.
        NoProcessError: called outside a process.
    """
    try:  # _me, inlined: receive is the kernel's hottest call
        proc = current.get()
    except LookupError:
        raise NoProcessError("receive") from None
    if proc.mailbox:
        index = proc.find(match)
        if index >= 0:
            box = proc.mailbox
            message = box[index]
            del box[index]
            return _ready(proc, message, index)
    if timeout is not None and timeout <= 0:
        return _failed(proc)
    return proc.park(match, timeout)


def receive_nowait(match: Matcher | None = None) -> object:
    """Take the first queued message (that ``match`` accepts) without waiting.

    Raises:
        anyio.WouldBlock: no such message is queued.
        NoProcessError: called outside a process.
    """
    found, message = _me("receive_nowait").take(match)
    if not found:
        raise anyio.WouldBlock
    return message


def flush(match: Matcher | None = None) -> int:
    """Drop every queued message (that ``match`` accepts); returns how many.

    Raises:
        NoProcessError: called outside a process.
    """
    proc = _me("flush")
    box = proc.mailbox
    if not box:
        return 0
    if match is None:
        count = len(box)
        box.clear()
        return count
    kept = [m for m in box if not match(m)]
    count = len(box) - len(kept)
    box.clear()
    box.extend(kept)
    return count


def _ready(proc: Process, message: object, index: int) -> Receipt:
    loop = proc.loop
    done = Receipt(loop=loop)
    done.process = proc
    done.index = index
    proc.budget -= 1
    if proc.budget > 0:
        done.set_result(message)
    else:  # a long queue: let the other processes run before going on
        proc.budget = 200
        loop.call_soon(_resolve, done, message)
    return done


def _resolve(future: asyncio.Future[object], value: object) -> None:
    if not future.done():
        future.set_result(value)


def _failed(proc: Process) -> asyncio.Future[object]:
    done: asyncio.Future[object] = proc.loop.create_future()
    done.set_exception(TimeoutError("receive timed out"))
    return done


def exit(pid: Pid, reason: object) -> None:  # noqa: A001 - OTP's exit/2
    """Send an exit signal with ``reason`` to ``pid`` (OTP's ``exit/2``).

    ``"kill"`` cannot be trapped and ends the target with ``"killed"``. ``"normal"`` is
    ignored by a process that does not trap exits, except when it sends it to itself.
    A process that is killed stops at its next ``await``.

    Raises:
        ProcessExit: the signal ends the calling process itself.
    """
    target = pid._process
    if target is None:
        return
    node = current_node()
    if type(target) is RemoteProcess:
        try:
            sender = current.get().pid
        except LookupError:
            return  # an exit signal needs a sending process across nodes
        target.node.exit(sender, target, reason)
        return
    try:
        me: Process | None = current.get()
    except LookupError:
        me = None
    sender = me.pid if me is not None else pid
    if target is me and (reason == "kill" or not target.trap_exit):
        raise ProcessExit(KILLED if reason == "kill" else reason)
    node.exit_signal(target, sender, reason, from_link=False)


def link(pid: Pid) -> None:
    """Link the current process and ``pid``, both ways; linking twice is linking once.

    Raises:
        NoProcError: ``pid`` is dead and the current process does not trap exits (a
            trapping process gets ``ExitMessage(pid, "noproc")`` instead).
        NoProcessError: called outside a process.
    """
    current_node().link(_me("link"), pid)


def unlink(pid: Pid) -> None:
    """Remove the link with ``pid``, both ways (no error if there is none)."""
    current_node().unlink(_me("unlink"), pid)


def trap_exit(flag: bool) -> bool:
    """Set whether exit signals become ``ExitMessage`` messages; returns the previous flag."""
    proc = _me("trap_exit")
    previous = proc.trap_exit
    proc.trap_exit = flag
    return previous


def monitor(target: Pid | str | tuple[str, str]) -> Ref:
    """Watch ``target`` (a pid, a registered name or ``(name, node)``): ``DownMessage``.

    ``DownMessage`` comes when the target ends, or with ``noconnection`` when its node is
    lost; for ``(name, node)`` its ``pid`` is that tuple.

    A target that does not exist gives ``DownMessage(ref, target, "noproc")`` at once.
    """
    return current_node().monitor(_me("monitor"), target)


def demonitor(ref: Ref, *, flush: bool = False) -> bool:
    """Stop the monitor ``ref``; ``flush`` also drops its queued ``DownMessage``.

    Returns:
        True if the monitor was still active.
    """
    return current_node().demonitor(_me("demonitor"), ref, flush=flush)


async def wait_ended(pids: Iterable[Pid]) -> None:
    """Wait until every process in ``pids`` has ended (callable from outside processes too).

    A process has ended once its task has unwound and its links and monitors were told.
    """
    node = current_node()
    pending: list[Process] = []
    for pid in pids:
        proc = pid._process
        if type(proc) is RemoteProcess:
            raise ValueError(f"wait_ended takes local pids; {pid!r} is on another node")
        if proc is not None:
            pending.append(proc)
    if not pending:
        return
    left = len(pending)
    done = asyncio.Event()

    def ended(reason: object) -> None:
        nonlocal left
        left -= 1
        if left == 0:
            done.set()

    for proc in pending:
        node.add_exit_callback(proc, ended)
    await done.wait()


def is_alive(pid: Pid) -> bool:
    """True while the process runs and has not been doomed by an exit signal.

    Raises:
        ValueError: ``pid`` is on another node (OTP's ``badarg``): monitor it instead.
    """
    proc = pid._process
    if type(proc) is RemoteProcess:
        raise ValueError(f"is_alive takes a local pid; {pid!r} is on another node")
    return proc is not None and proc.alive


def node(of: Pid | None = None) -> str:
    """The name of this node (``nonode@nohost`` when not distributed), or of ``of``'s node."""
    if of is not None:
        proc = of._process
        if type(proc) is RemoteProcess:
            return proc.node.name
    return current_node().node_name


def nodes(kind: Literal["visible", "hidden", "connected"] = "visible") -> list[str]:
    """The nodes connected to this one: visible ones (OTP's ``nodes()``), hidden, or all."""
    return sorted(
        remote.name
        for remote in current_node().remote_nodes.values()
        if remote.connected and (kind == "connected" or (kind == "hidden") == remote.hidden)
    )


def monitor_node(name: str, flag: bool = True) -> None:
    """Get ``NodeDownMessage(name)`` when the node ``name`` is lost (``flag=False`` ends it).

    Monitoring a node that cannot be reached delivers ``NodeDownMessage`` at once; each
    call with ``True`` adds one monitor (and one message at the end).

    Raises:
        NoProcessError: called outside a process.
    """
    me = _me("monitor_node")
    node = current_node()
    if name == node.node_name:
        return
    node.remote_node(name).monitor_node(me, flag)


def register(name: str, pid: Pid) -> None:
    """Give ``pid`` the name ``name`` until it ends.

    Raises:
        RegistrationError: the name is taken, the pid already has a name, or it is dead.
    """
    if not name:
        raise RegistrationError(repr(name), "a name is a non-empty string")
    node = current_node()
    holder = node.registry.get(name)
    if holder is not None:
        raise RegistrationError(name, f"the name is taken by {holder.pid}")
    proc = pid._process
    if type(proc) is RemoteProcess:
        raise RegistrationError(name, f"{pid} is on another node: register names locally")
    if proc is None or not proc.alive:
        raise RegistrationError(name, f"{pid} is not alive")
    if proc.name is not None:
        raise RegistrationError(name, f"{pid} is already registered as {proc.name!r}")
    node.registry[name] = proc
    proc.name = name


def unregister(name: str) -> None:
    """Remove the name.

    Raises:
        NotRegisteredError: nobody holds it.
    """
    proc = current_node().registry.pop(name, None)
    if proc is None:
        raise NotRegisteredError(name)
    proc.name = None


def whereis(name: str) -> Pid | None:
    """The pid registered as ``name``, or None."""
    proc = current_node().registry.get(name)
    return proc.pid if proc is not None else None


def registered() -> list[str]:
    """All registered names."""
    return sorted(current_node().registry)


def send_after(delay: float, dest: Pid | str, message: object) -> TimerRef:
    """Send ``message`` to ``dest`` after ``delay`` seconds (dropped if ``dest`` is gone)."""
    holder: list[TimerRef] = []

    def fire() -> None:
        holder[0]._handle = None
        with contextlib.suppress(NotRegisteredError):
            send(dest, message)

    timer = TimerRef(current_node().loop.call_later(delay, fire))
    holder.append(timer)
    return timer


def cancel_timer(timer: TimerRef) -> bool:
    """Cancel a timer. Returns True if it had not fired yet."""
    handle = timer._handle
    if handle is None:
        return False
    timer._handle = None
    handle.cancel()
    return True
