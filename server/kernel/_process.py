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
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, final

from server.kernel._types import Pid, Ref

if TYPE_CHECKING:
    import asyncio

    from server.kernel._node import Node

__all__ = ["Matcher", "Process", "Receipt", "current"]

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
        "handed_at",
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
        self.handed_at = 0

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
                    box = self.mailbox
                    self.handed_at = len(box) if box else 0
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
        index = self.find(matcher)
        if index < 0:
            return False, None
        box = self.mailbox
        assert box is not None
        message = box[index]
        del box[index]
        return True, message

    def find(self, matcher: Matcher | None) -> int:
        """The queue position of the first message that matches, or -1."""
        box = self.mailbox
        if box:
            if matcher is None:
                return 0
            for index, message in enumerate(box):
                if matcher(message):
                    return index
        return -1

    def requeue(self, message: object, index: int) -> None:
        """Put back a message a cancelled receive was handed, where it was in arrival order."""
        if self.exit_reason is not None:
            return
        box = self.mailbox
        if box is None:
            box = self.mailbox = deque()
        box.insert(min(index, len(box)), message)

    def park(self, matcher: Matcher | None, timeout: float | None) -> Receipt:
        """Park a future that the next matching message (or the timeout) resolves."""
        loop = self.node.loop
        waiter: asyncio.Future[object] = loop.create_future()
        self.waiter = waiter
        self.matcher = matcher
        if timeout is not None and timeout != math.inf:
            self.timer = loop.call_later(timeout, self._expire, waiter)
        return Receipt(self, waiter, -1)

    def unpark(self, waiter: asyncio.Future[object]) -> None:
        """Forget a parked receive that was cancelled before anything resolved it."""
        if self.waiter is waiter:
            self._wake(waiter)

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


@final
class Receipt:
    """The awaitable a ``receive`` returns: a future that never loses its message.

    A receive can be cancelled (a cancel scope, a kill) after a sender handed it a message
    but before the receiving task resumed. Then the message goes back into the mailbox at
    its place in arrival order (``index``, or where it was when handed), so it is not lost.
    """

    __slots__ = ("future", "index", "process")

    def __init__(self, process: Process, future: asyncio.Future[object], index: int) -> None:
        self.process = process
        self.future = future
        self.index = index

    def __await__(self) -> Generator[Any, None, object]:
        future = self.future
        try:
            return (yield from future.__await__())
        except BaseException:  # cancellation: give the message back, then go on cancelling
            if future.done() and not future.cancelled() and future.exception() is None:
                index = self.index if self.index >= 0 else self.process.handed_at
                self.process.requeue(future.result(), index)
            else:
                self.process.unpark(future)
            raise
