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
5. A receive with a timeout sets ``deadline``; the timer is lazy. A receive that is woken
   leaves its timer armed instead of cancelling it, and the next receive reuses it when it
   fires no later than the new deadline: on firing it times out the parked receive only if
   that receive's deadline has come, and otherwise re-arms for it. A request loop (each
   ``call`` a receive with a 5 s timeout) thus makes one timer per 5 s, not one per call.
"""

from __future__ import annotations

import contextvars
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, final

from server.kernel._types import Pid, Ref

if TYPE_CHECKING:
    import asyncio
    from types import TracebackType

    from server.kernel._node import Node
    from server.kernel._remote import RemoteNode, RemoteProcess

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
        "deadline",
        "delivered",
        "exit_reason",
        "handed_at",
        "info",
        "links",
        "loop",
        "mailbox",
        "matcher",
        "monitored_by",
        "monitors",
        "name",
        "node",
        "pid",
        "spawned_at",
        "task",
        "timer",
        "trap_exit",
        "waiter",
    )

    #: Tells a local process from the stand-in of a remote one (``pid._process``).
    is_remote: ClassVar[bool] = False

    def __init__(self, node: Node, number: int, loop: asyncio.AbstractEventLoop) -> None:
        self.node = node
        self.loop = loop  # the node's, kept here for the receive path
        self.pid = Pid(number, self)
        self.task: asyncio.Task[Any] | None = None
        self.context: contextvars.Context | None = None
        self.mailbox: deque[object] | None = None
        self.waiter: asyncio.Future[object] | None = None
        self.matcher: Matcher | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = math.inf
        self.links: set[Process | RemoteProcess] | None = None
        self.monitors: dict[Ref, Process | RemoteNode] | None = None
        self.monitored_by: dict[object, Process | RemoteProcess] | None = None
        self.trap_exit = False
        self.name: str | None = None
        self.exit_reason: object = None
        self.info: dict[str, Any] | None = None
        self.budget = RECEIVE_BUDGET
        self.handed_at = 0
        self.delivered = 0  # messages ever delivered (for observers: handled = this - queued)
        self.spawned_at = loop.time()

    @property
    def alive(self) -> bool:
        """False from the moment the process is doomed."""
        return self.exit_reason is None and self.task is not None

    def deliver(self, message: object) -> None:
        """Hand ``message`` to a parked receive that wants it, else queue it."""
        if self.exit_reason is not None:
            return
        self.delivered += 1
        waiter = self.waiter
        if waiter is not None:
            matcher = self.matcher
            if matcher is None:
                matched = True
            else:
                try:
                    matched = matcher(message)
                except Exception as exc:  # a broken predicate fails the receiver, not the sender
                    self.waiter = self.matcher = None
                    if not waiter.done():
                        waiter.set_exception(exc)
                    matched = False
            if matched:
                # the timer (if any) stays armed: it finds no parked receive, or a later one
                self.waiter = self.matcher = None
                if not waiter.done():
                    waiter.set_result(message)
                    box = self.mailbox
                    self.handed_at = len(box) if box else 0
                    return
        box = self.mailbox
        if box is None:
            box = self.mailbox = deque()
        box.append(message)

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
        return Receipt(self, self.wait(matcher, timeout), -1)

    def wait(self, matcher: Matcher | None, timeout: float | None) -> asyncio.Future[object]:
        """``park`` without the ``Receipt``: the caller gives a handed message back itself.

        For a waiter whose cancellation discards the message anyway (a call's reply), so it
        can await the bare future. The caller must ``unpark`` it when cancelled.
        """
        loop = self.loop
        waiter: asyncio.Future[object] = loop.create_future()
        self.waiter = waiter
        self.matcher = matcher
        if timeout is None or timeout == math.inf:
            self.deadline = math.inf
        else:
            deadline = self.deadline = loop.time() + timeout
            timer = self.timer
            # an armed timer that fires no later than this deadline will re-arm for it
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self.timer = loop.call_at(deadline, self._expire, deadline)
        return waiter

    def unpark(self, waiter: asyncio.Future[object]) -> None:
        """Forget a parked receive that was cancelled before anything resolved it."""
        if self.waiter is waiter:
            self.waiter = self.matcher = None

    def _expire(self, when: float) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is None:  # the receive this timer was armed for was woken
            return
        deadline = self.deadline
        if deadline > when:  # armed for an earlier receive: wait on for this one's deadline
            if deadline != math.inf:
                self.timer = self.loop.call_at(deadline, self._expire, deadline)
            return
        self.waiter = self.matcher = None
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

    It is its own iterator, not a generator around ``future.__await__()``: a parked receive
    then keeps one object alive where it would keep three (this, the generator and the
    future's iterator), and the cyclic GC counts each. It speaks the protocol an ``await``
    drives: ``__next__`` (``send``) yields the future until it is done, then returns its
    result or raises its exception; ``throw`` and ``close`` (how an exception or
    ``GeneratorExit`` reaches a suspended await) give the message back first.
    """

    __slots__ = ("future", "index", "process")

    def __init__(self, process: Process, future: asyncio.Future[object], index: int) -> None:
        self.process = process
        self.future = future
        self.index = index

    def __await__(self) -> Receipt:
        return self

    def __iter__(self) -> Receipt:
        return self

    def __next__(self) -> asyncio.Future[object]:
        future = self.future
        if future.done():
            raise StopIteration(future.result())
        future._asyncio_future_blocking = True  # what Future.__await__ does before yielding
        return future

    def send(self, value: None) -> asyncio.Future[object]:
        """Resume the await (a task sends None)."""
        return self.__next__()

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
    ) -> NoReturn:
        """Give the message back (if one was handed), then raise what was thrown in."""
        self._give_back()
        if isinstance(typ, BaseException):
            raise typ
        exc = val if isinstance(val, BaseException) else typ() if val is None else typ(val)
        raise exc.with_traceback(tb) if tb is not None else exc

    def close(self) -> None:
        """The awaiting coroutine is closed: give the message back (if one was handed)."""
        self._give_back()

    def _give_back(self) -> None:
        future = self.future
        if future.done() and not future.cancelled() and future.exception() is None:
            index = self.index if self.index >= 0 else self.process.handed_at
            self.process.requeue(future.result(), index)
        else:
            self.process.unpark(future)
