"""Helpers for the kernel tests: bounded waits and a scriptable peer process.

Everything here runs inside a process (``node.run_process(body)``). Each wait is bounded by
``anyio.fail_after`` so that a hang fails at once and names the step that hung.
"""

from __future__ import annotations

from server import kernel
from server.kernel import ExitMessage, Pid, ProcessExit
from tests._support.waits import STEP as STEP
from tests._support.waits import Matcher as Matcher
from tests._support.waits import down as down
from tests._support.waits import down_of as down_of
from tests._support.waits import drain as drain
from tests._support.waits import exit_from as exit_from
from tests._support.waits import idle as idle
from tests._support.waits import queue_len as queue_len
from tests._support.waits import reason_of as reason_of
from tests._support.waits import recv as recv
from tests._support.waits import trapped as trapped


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
