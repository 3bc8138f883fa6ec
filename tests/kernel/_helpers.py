"""Helpers for the kernel tests: bounded waits and a scriptable peer process.

Everything here runs inside a process (``node.run_process(body)``). Each wait is bounded by
``anyio.fail_after`` so that a hang fails at once and names the step that hung.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import anyio

from server import kernel
from server.kernel import DownMessage, ExitMessage, Pid, ProcessExit, Ref

Matcher = Callable[[object], bool]

#: The longest any single waiting step may take (seconds; virtual seconds on virtual time).
STEP: Final = 2.0


async def recv(match: Matcher | None = None, *, step: str, limit: float = STEP) -> object:
    """The next (matching) message; fails the test, naming ``step``, if none comes in time."""
    try:
        with anyio.fail_after(limit):
            return await kernel.receive(match)
    except TimeoutError:
        raise AssertionError(f"step {step!r}: no message within {limit} s") from None


def drain() -> list[object]:
    """Take every queued message of the current process, in order, without waiting."""
    taken: list[object] = []
    while True:
        try:
            taken.append(kernel.receive_nowait())
        except anyio.WouldBlock:
            return taken


def queue_len(pid: Pid | None = None) -> int:
    """How many messages wait in the mailbox of ``pid`` (default: the current process)."""
    info = kernel.process_info(pid if pid is not None else kernel.self())
    assert info is not None, f"{pid} is not alive"
    return info.message_queue_len


def down_of(ref: Ref) -> Matcher:
    """Matches the ``DownMessage`` of monitor ``ref``."""
    return lambda m: type(m) is DownMessage and m.ref is ref


def exit_from(pid: Pid) -> Matcher:
    """Matches an ``ExitMessage`` from ``pid``."""
    return lambda m: type(m) is ExitMessage and m.pid is pid


async def down(ref: Ref, *, step: str = "DOWN") -> DownMessage:
    """Wait for the ``DownMessage`` of monitor ``ref``."""
    message = await recv(down_of(ref), step=step)
    assert isinstance(message, DownMessage)
    return message


async def reason_of(ref: Ref, *, step: str = "DOWN") -> object:
    """Wait for the ``DownMessage`` of monitor ``ref`` and return its exit reason."""
    return (await down(ref, step=step)).reason


async def trapped(pid: Pid, *, step: str = "ExitMessage") -> ExitMessage:
    """Wait for the ``ExitMessage`` from ``pid`` (the current process traps exits)."""
    message = await recv(exit_from(pid), step=step)
    assert isinstance(message, ExitMessage)
    return message


async def idle() -> None:
    """A process body that waits for ever and takes no message."""
    await kernel.receive(lambda _: False)


async def peer(owner: Pid, trap: bool) -> None:
    """A process that obeys simple commands and reports to ``owner``.

    It sets ``trap_exit(trap)``, then tells ``owner`` ``("ready", self)``. Commands:
    ``("ping", sender)`` answers ``("pong", self)``; ``("link", pid)`` links and answers
    ``("linked", self)``; ``("unlink", pid)`` unlinks and answers ``("unlinked", self)``;
    ``("trap", flag)`` sets ``trap_exit``; ``("stop", reason)`` ends with ``reason``. An
    ``ExitMessage`` is forwarded to ``owner`` as ``("trapped", self, message)``.
    """
    me = kernel.self()
    kernel.trap_exit(trap)
    kernel.send(owner, ("ready", me))
    while True:
        message = await kernel.receive()
        match message:
            case ("ping", Pid() as sender):
                kernel.send(sender, ("pong", me))
            case ("link", Pid() as other):
                kernel.link(other)
                kernel.send(owner, ("linked", me))
            case ("unlink", Pid() as other):
                kernel.unlink(other)
                kernel.send(owner, ("unlinked", me))
            case ("trap", bool() as flag):
                kernel.trap_exit(flag)
            case ("stop", reason):
                raise ProcessExit(reason)
            case ExitMessage():
                kernel.send(owner, ("trapped", me, message))
            case _:
                pass


async def start_peer(*, trap: bool = False, link: bool = False) -> Pid:
    """Spawn a ``peer`` owned by the current process and wait until it is ready."""
    spawn = kernel.spawn_link if link else kernel.spawn
    pid = spawn(peer, kernel.self(), trap)
    await recv(lambda m: m == ("ready", pid), step=f"{pid} ready")
    return pid


async def link_peers(a: Pid, b: Pid) -> None:
    """Make peer ``a`` link itself to ``b`` and wait until it has."""
    kernel.send(a, ("link", b))
    await recv(lambda m: m == ("linked", a), step=f"{a} linked to {b}")


async def unlink_peers(a: Pid, b: Pid) -> None:
    """Make peer ``a`` unlink itself from ``b`` and wait until it has."""
    kernel.send(a, ("unlink", b))
    await recv(lambda m: m == ("unlinked", a), step=f"{a} unlinked from {b}")


async def ping(pid: Pid) -> None:
    """Ping a peer and wait for its pong: it is alive and has handled what came before."""
    kernel.send(pid, ("ping", kernel.self()))
    await recv(lambda m: m == ("pong", pid), step=f"pong from {pid}")


async def trapped_by(pid: Pid, *, step: str = "trapped report") -> ExitMessage:
    """Wait for peer ``pid``'s report of an ``ExitMessage`` it received."""
    message = await recv(
        lambda m: type(m) is tuple and len(m) == 3 and m[0] == "trapped" and m[1] is pid,
        step=step,
    )
    assert type(message) is tuple
    exit_message = message[2]
    assert isinstance(exit_message, ExitMessage)
    return exit_message
