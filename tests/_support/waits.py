"""Bounded waits and mailbox checks for tests that run inside a process.

Everything here runs inside a process (``node.run_process(body)``). Each wait is bounded by
``anyio.fail_after`` so that a hang fails at once and names the step that hung (on virtual
time the bound is in virtual seconds and costs no real time). Every waiting helper takes the
step's name as ``step=``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Final, TypeVar

import anyio

from server import kernel
from server.kernel import DownMessage, ExitMessage, Pid, Ref

__all__ = [
    "STEP",
    "Matcher",
    "down",
    "down_of",
    "drain",
    "exit_from",
    "idle",
    "queue_len",
    "reason_of",
    "recv",
    "step",
    "tagged",
    "trapped",
    "within",
]

T = TypeVar("T")
Matcher = Callable[[object], bool]

#: The longest any single waiting step may take (seconds; virtual seconds on virtual time).
STEP: Final = 5.0


@contextmanager
def step(name: str, limit: float = STEP) -> Iterator[None]:
    """Bound the waits inside the block; a hang fails the test naming ``name``."""
    try:
        with anyio.fail_after(limit):
            yield
    except TimeoutError as exc:
        if type(exc) is TimeoutError:  # fail_after's, not a CallTimeout the block expects
            raise AssertionError(f"step {name!r}: still waiting after {limit} s") from None
        raise


async def within(awaitable: Awaitable[T], name: str, limit: float = STEP) -> T:
    """Await ``awaitable`` as one bounded step."""
    with step(name, limit):
        return await awaitable


async def recv(match: Matcher | None = None, *, step: str, limit: float = STEP) -> object:
    """The next (matching) message; fails the test, naming ``step``, if none comes in time."""
    return await within(kernel.receive(match), step, limit)


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


def tagged(tag: str, pid: Pid | None = None) -> Matcher:
    """Matches a tuple message whose first item is ``tag`` (and second, if given, ``pid``)."""

    def match(m: object) -> bool:
        return type(m) is tuple and len(m) >= 2 and m[0] == tag and (pid is None or m[1] is pid)

    return match


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
