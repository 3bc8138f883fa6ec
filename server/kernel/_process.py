"""The process record and its mailbox.

How this works:

1. A process is one asyncio task plus this record. The record is reached from its ``Pid``
   (``pid._process``), so ``send`` is an attribute read and an append, never a lookup.
2. The mailbox is a deque created on the first message that has to wait; a process that
   receives while blocked never allocates one (the sender hands the message straight to the
   waiting receiver's future).
3. A blocked ``receive`` parks one future and its match predicate on the record. ``deliver``
   runs the predicate on the sender's side: a match resolves the future at once, anything
   else is queued in arrival order. So the queue never holds a message that a parked receive
   would take, and selective receive stays a scan of the queue plus one predicate call per
   new message.
4. ``exit_reason`` is set the moment the process is doomed (killed, or an untrapped exit
   signal). From then on it is not alive, its mailbox takes nothing, and it is finalised
   when its task has really finished, so links and monitors see the end only after the
   process's own cleanup (``finally`` blocks, sockets closed) is done.
"""

from __future__ import annotations

import contextvars
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, final

from server.kernel._types import Pid, Ref

if TYPE_CHECKING:
    import asyncio

    from server.kernel._node import Node

__all__ = ["Matcher", "Process", "current"]

Matcher = Callable[[object], bool]

#: The process whose code is running (set in each process task's own context).
current: contextvars.ContextVar[Process] = contextvars.ContextVar("server_current_process")

#: Messages a process may take from its queue in a row before it yields to the loop, so a
#: long queue cannot starve other processes.
RECEIVE_BUDGET = 200


@final
class Process:
    """The kernel's record of one process. Internal: users hold ``Pid`` values."""

    __slots__ = (
        "budget",
        "context",
        "exit_reason",
        "info",
        "links",
        "mailbox",
        "matcher",
        "monitored_by",
        "monitors",
        "name",
        "node",
        "pid",
        "task",
        "timer",
        "trap_exit",
        "waiter",
    )

    def __init__(self, node: Node, number: int) -> None:
        self.node = node
        self.pid = Pid(number, self)
        self.task: asyncio.Task[Any] | None = None
        self.context: contextvars.Context | None = None
        self.mailbox: deque[object] | None = None
        self.waiter: asyncio.Future[object] | None = None
        self.matcher: Matcher | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.links: set[Process] | None = None
        self.monitors: dict[Ref, Process] | None = None
        self.monitored_by: dict[Ref, Process] | None = None
        self.trap_exit = False
        self.name: str | None = None
        self.exit_reason: object = None
        self.info: dict[str, Any] | None = None
        self.budget = RECEIVE_BUDGET

    @property
    def alive(self) -> bool:
        """False from the moment the process is doomed."""
        return self.exit_reason is None and self.task is not None

    def deliver(self, message: object) -> None:
        """Hand ``message`` to a parked receive that wants it, else queue it."""
        if self.exit_reason is not None:
            return
        waiter = self.waiter
        if waiter is not None:
            matcher = self.matcher
            try:
                matched = matcher is None or matcher(message)
            except Exception as exc:  # a broken predicate fails the receiver, not the sender
                self._wake(waiter)
                if not waiter.done():
                    waiter.set_exception(exc)
                matched = False
            if matched:
                self._wake(waiter)
                if not waiter.done():
                    waiter.set_result(message)
                    return
        box = self.mailbox
        if box is None:
            box = self.mailbox = deque()
        box.append(message)

    def _wake(self, waiter: asyncio.Future[object]) -> None:
        self.waiter = None
        self.matcher = None
        timer = self.timer
        if timer is not None:
            timer.cancel()
            self.timer = None

    def take(self, matcher: Matcher | None) -> tuple[bool, object]:
        """Remove and return the first queued message that matches, if any."""
        box = self.mailbox
        if box:
            if matcher is None:
                return True, box.popleft()
            for index, message in enumerate(box):
                if matcher(message):
                    del box[index]
                    return True, message
        return False, None

    def park(self, matcher: Matcher | None, timeout: float | None) -> asyncio.Future[object]:
        """Park a future that the next matching message (or the timeout) resolves."""
        loop = self.node.loop
        waiter: asyncio.Future[object] = loop.create_future()
        self.waiter = waiter
        self.matcher = matcher
        if timeout is not None and timeout != math.inf:
            self.timer = loop.call_later(timeout, self._expire, waiter)
        return waiter

    def _expire(self, waiter: asyncio.Future[object]) -> None:
        if self.waiter is waiter:
            self.waiter = None
            self.matcher = None
            self.timer = None
        if not waiter.done():
            waiter.set_exception(TimeoutError("receive timed out"))

    def message_queue_len(self) -> int:
        """How many messages wait in the mailbox."""
        return len(self.mailbox) if self.mailbox else 0

    def __repr__(self) -> str:
        return f"<Process {self.pid!r}{' ' + self.name if self.name else ''}>"
