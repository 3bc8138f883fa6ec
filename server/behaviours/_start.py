"""Start with acknowledgement (OTP's ``proc_lib:start_link``), shared by every behaviour.

How this works:

1. The starter spawns the process (linked or not), monitors it, and waits for an
   acknowledgement carrying a fresh ref, or for the process's ``DownMessage``.
2. The new process registers its name (if any), runs its ``init`` and acknowledges:
   started, ignored, or failed with a reason. On ignore or failure it first unlinks from
   its starter, so a failed start is reported as an error, never as an exit signal that
   would take the starter down; then it ends, and the starter waits for that end, so the
   name is free again by the time ``start`` returns.
3. A start that takes longer than ``timeout`` kills the process and fails with ``timeout``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final

from server import kernel
from server.errors import AlreadyStarted, StartError
from server.kernel import DownMessage, ExitMessage, Pid, ProcessExit, Ref

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Starter", "start_process"]


@final
@dataclass(frozen=True, slots=True)
class _InitAck:
    ref: Ref
    outcome: str  # "started" | "ignored" | "failed"
    reason: object = None


@final
class Starter:
    """Handed to a starting process: who started it and how to acknowledge."""

    __slots__ = ("_ref", "acked", "parent")

    def __init__(self, parent: Pid, ref: Ref) -> None:
        self.parent = parent
        self._ref = ref
        self.acked = False

    def started(self) -> None:
        """Tell the starter that ``init`` succeeded."""
        self._ack("started", None)

    def ignored(self) -> ProcessExit:
        """Tell the starter that ``init`` declined; raise the returned exit."""
        kernel.unlink(self.parent)
        self._ack("ignored", None)
        return ProcessExit(kernel.NORMAL)

    def failed(self, reason: object) -> None:
        """Tell the starter that ``init`` failed with ``reason`` (then end with it)."""
        kernel.unlink(self.parent)
        self._ack("failed", reason)

    def _ack(self, outcome: str, reason: object) -> None:
        if not self.acked:
            self.acked = True
            kernel.send(self.parent, _InitAck(self._ref, outcome, reason))


async def start_process(
    body: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    *,
    link: bool,
    timeout: float,
    what: object,
) -> Pid | None:
    """Spawn ``body(starter, *args)`` and wait for its acknowledgement.

    Returns:
        The pid once started, or None when ``init`` asked to be ignored.

    Raises:
        StartError: ``init`` failed, crashed, or did not acknowledge within ``timeout``.
        AlreadyStarted: the process's name is taken.
    """
    me = kernel.self()
    ref = Ref()
    starter = Starter(me, ref)
    pid = (kernel.spawn_link if link else kernel.spawn)(body, starter, *args)
    mref = kernel.monitor(pid)

    def answer_or_down(message: object) -> bool:
        if isinstance(message, _InitAck):
            return message.ref is ref
        return isinstance(message, DownMessage) and message.ref is mref

    try:
        message = await kernel.receive(
            answer_or_down, timeout=None if timeout == math.inf else timeout
        )
    except TimeoutError:
        kernel.unlink(pid)
        kernel.exit(pid, kernel.KILL)
        await _wait_down(mref)
        _flush_exit(pid)
        raise StartError(what, "timeout") from None
    if type(message) is _InitAck:
        if message.outcome == "started":
            kernel.demonitor(mref, flush=True)
            return pid
        await _wait_down(mref)
        _flush_exit(pid)
        if message.outcome == "ignored":
            return None
        reason = message.reason
        if type(reason) is tuple and len(reason) == 3 and reason[0] == "already_started":
            raise AlreadyStarted(what, reason[1], reason[2])
        raise StartError(what, reason)
    assert type(message) is DownMessage
    _flush_exit(pid)
    raise StartError(what, message.reason)


async def _wait_down(mref: Ref) -> None:
    await kernel.receive(lambda m: type(m) is DownMessage and m.ref is mref)


def _flush_exit(pid: Pid) -> None:
    kernel.flush(lambda m: type(m) is ExitMessage and m.pid is pid)


def register_or_fail(starter: Starter, name: str | None) -> None:
    """Register the starting process as ``name``; on a clash, fail the start and end.

    Raises:
        ProcessExit: the name is taken (the starter has been told).
    """
    if name is None:
        return
    holder = kernel.whereis(name)
    if holder is not None:
        reason = ("already_started", name, holder)
        starter.failed(reason)
        raise ProcessExit(kernel.NORMAL)
    kernel.register(name, kernel.self())
