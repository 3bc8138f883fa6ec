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

import asyncio
import contextvars
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, final

from server.kernel._types import DownMessage, Pid, Ref, ReplyMessage

if TYPE_CHECKING:
    from server.kernel._node import Node
    from server.kernel._remote import RemoteNode, RemoteProcess

__all__ = ["Matcher", "Process", "Receipt", "current"]

Matcher = Callable[[object], bool]

_new = object.__new__

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
        pid = self.pid = _new(Pid)  # Pid(number, self) without its __init__'s frame
        pid.number = number
        pid._process = self
        self.task: asyncio.Task[Any] | None = None
        self.context: contextvars.Context | None = None
        self.mailbox: deque[object] | None = None
        self.waiter: asyncio.Future[object] | None = None
        self.matcher: Matcher | Ref | None = None
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
            elif type(matcher) is Ref:  # a call parked for the answer tagged with this ref
                kind = type(message)
                matched = (kind is ReplyMessage or kind is DownMessage) and message.ref is matcher  # type: ignore[attr-defined]
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
        receipt = Receipt(loop=self.loop)
        receipt.process = self
        receipt.index = -1
        self.waiter = receipt
        self.matcher = matcher
        if timeout is None or timeout == math.inf:
            self.deadline = math.inf
        else:
            self.arm(timeout)
        return receipt

    def wait(self, matcher: Matcher | Ref | None, timeout: float | None) -> asyncio.Future[object]:
        """``park`` without the ``Receipt``: the caller gives a handed message back itself.

        For a waiter whose cancellation discards the message anyway (a call's reply), so it
        can await the bare future. The caller must ``unpark`` it when cancelled. A ``Ref``
        as the matcher takes the ``ReplyMessage`` or ``DownMessage`` tagged with it.
        """
        loop = self.loop
        waiter = asyncio.Future(loop=loop) if self.node.plain_futures else loop.create_future()
        self.waiter = waiter
        self.matcher = matcher
        if timeout is None or timeout == math.inf:
            self.deadline = math.inf
        else:
            self.arm(timeout)
        return waiter

    def arm(self, timeout: float) -> None:
        """Set the parked receive's deadline, ``timeout`` seconds from now (see 5. above)."""
        deadline = self.deadline = self.node.clock() + timeout
        timer = self.timer
        # an armed timer that fires no later than this deadline will re-arm for it
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_at(deadline, self.expire, deadline)

    def unpark(self, waiter: asyncio.Future[object]) -> None:
        """Forget a parked receive that was cancelled before anything resolved it."""
        if self.waiter is waiter:
            self.waiter = self.matcher = None

    def expire(self, when: float) -> None:
        """The receive timer fired: time out the parked receive if its deadline has come."""
        self.timer = None
        waiter = self.waiter
        if waiter is None:  # the receive this timer was armed for was woken
            return
        deadline = self.deadline
        if deadline > when:  # armed for an earlier receive: wait on for this one's deadline
            if deadline != math.inf:
                self.timer = self.loop.call_at(deadline, self.expire, deadline)
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
class Receipt(asyncio.Future[object]):
    """The future a ``receive`` returns, that never loses its message.

    A receive can be cancelled (a cancel scope, a kill) after a sender handed it a message
    but before the receiving task resumed. Then the message goes back into the mailbox at
    its place in arrival order (``index``, or where it was when handed), so it is not lost.

    It is an ``asyncio.Future`` (awaited by the C future's own iterator, with no Python
    frame per step), and a task cancels what it awaits through the future's ``cancel``: so
    that is where the message is given back. A task whose future is already done cannot
    cancel it (``cancel`` returns False); it throws ``CancelledError`` in when it resumes,
    and the result it was handed is never read.
    """

    __slots__ = ("index", "process")

    process: Process
    index: int  # where the message was in the mailbox; -1: handed on delivery; -2: given back

    def cancel(self, msg: Any = None) -> bool:
        """Cancel the receive: give back a message it was handed, or stop waiting."""
        if self.done():
            self._give_back()
            return False
        self.process.unpark(self)
        return super().cancel(msg)

    def _give_back(self) -> None:
        index = self.index
        if index == -2 or self.cancelled() or self.exception() is not None:
            return
        self.index = -2  # a task may be cancelled again before it resumes: give back once
        process = self.process
        process.requeue(self.result(), index if index >= 0 else process.handed_at)
