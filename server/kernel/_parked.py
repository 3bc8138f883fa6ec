"""A receive parked in a known loop, narrowed and widened from outside the process.

How this works:

1. Every process of a node runs on one event loop, so while another process runs, a
   process parked in ``receive`` is at a known point: its future and match predicate sit
   on its record (``Process.waiter``, ``Process.matcher``) and its code is suspended in the
   coroutine that awaits that receive.
2. ``narrow_receive`` checks that the process is parked in a receive of *every* message
   without a deadline, awaited directly by a coroutine running a given code object (a
   behaviour's main loop, not a receive inside a callback), and then swaps the predicate
   for a narrower one: from then on only what it accepts wakes the process, and every
   other message queues in arrival order, as ``deliver`` queues what a predicate rejects.
3. ``widen_receive`` puts the receive back to every message; when messages queued
   meanwhile, the first is handed to it at once (as ``deliver`` would have), the others
   stay queued in order.
4. ``parked_on`` names the receive a process waits in: while it returns the same token,
   the process has not run (its stack, hence the code it runs, is as it was).
5. ``run_as`` runs a plain function with ``kernel.self()`` being another, parked process
   (its own context), so the function acts as that process would.

The caller is the library's system-message protocol (a suspension without a message round
trip); nothing here waits.
"""

from __future__ import annotations

import math
from types import CoroutineType
from typing import TYPE_CHECKING, Any, TypeVar

from server.kernel._process import Process, Receipt

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import CodeType

    from server.kernel._process import Matcher
    from server.kernel._types import Pid

__all__ = [
    "is_narrowed",
    "narrow_receive",
    "parked_on",
    "parked_tokens",
    "run_as",
    "widen_receive",
]

T = TypeVar("T")

# a process stack deeper than this is not parked in a behaviour's main loop
_MAX_DEPTH = 64


def narrow_receive(pid: Pid, code: CodeType, matcher: Matcher) -> bool:
    """Make ``pid``'s parked receive take only what ``matcher`` accepts, if it is parked so.

    Parked so means: alive, local, waiting in a receive of any message with no deadline,
    and that receive awaited directly by a coroutine running ``code``.

    Returns:
        True once narrowed; False, changing nothing, when the process is anywhere else.
    """
    proc = pid._process
    if type(proc) is not Process or proc.exit_reason is not None or proc.task is None:
        return False
    waiter = proc.waiter
    if waiter is None or proc.matcher is not None or proc.deadline != math.inf:
        return False
    if waiter.done() or type(waiter) is not Receipt:
        return False
    obj: Any = proc.task.get_coro()
    for _ in range(_MAX_DEPTH):
        if type(obj) is not CoroutineType:
            return False
        awaited = obj.cr_await
        if type(awaited) is not CoroutineType:
            # the innermost await: the receipt's own iterator (a future's ``__await__``,
            # which names no future), in a coroutine running ``code``, while the process
            # is parked on that receipt
            if type(awaited) is not _future_iterator(waiter) or obj.cr_code is not code:
                return False
            proc.matcher = matcher
            return True
        obj = awaited
    return False


def _future_iterator(waiter: Receipt) -> type:
    """The type of a receipt's ``__await__`` iterator (asyncio's C ``FutureIter``), made once."""
    global _FUTURE_ITERATOR
    if _FUTURE_ITERATOR is None:
        _FUTURE_ITERATOR = type(waiter.__await__())
    return _FUTURE_ITERATOR


_FUTURE_ITERATOR: type | None = None


def is_narrowed(pid: Pid, matcher: Matcher) -> bool:
    """Whether ``pid`` still waits in the receive narrowed with ``matcher``."""
    proc = pid._process
    if type(proc) is not Process or proc.exit_reason is not None:
        return False
    waiter = proc.waiter
    return waiter is not None and proc.matcher is matcher and not waiter.done()


def widen_receive(pid: Pid, matcher: Matcher) -> bool:
    """Put a receive narrowed with ``matcher`` back to every message.

    The first message queued meanwhile (if any) is handed to it at once; the others stay
    queued in arrival order.

    Returns:
        True once widened; False, changing nothing, when ``pid`` no longer waits there
        (it ended, or a message ``matcher`` accepts woke it).
    """
    if not is_narrowed(pid, matcher):
        return False
    proc = pid._process
    assert type(proc) is Process
    box = proc.mailbox
    if not box:
        proc.matcher = None
        return True
    waiter = proc.waiter
    assert waiter is not None
    proc.waiter = proc.matcher = None
    proc.handed_at = 0  # given back (a cancelled receive) at the head, where it was
    waiter.set_result(box.popleft())
    return True


def parked_on(pid: Pid) -> object | None:
    """A token of the receive ``pid`` waits in, or None when it is not waiting in one.

    The same token twice means the process did not run in between: a receive's token is
    its own, and a process that woke (or was cancelled, or ended) has another or none.
    """
    proc = pid._process
    if type(proc) is not Process or proc.exit_reason is not None:
        return None
    waiter = proc.waiter
    if waiter is None or waiter.done():
        return None
    return waiter


def parked_tokens(pids: Sequence[Pid]) -> list[object | None]:
    """``parked_on`` of each of ``pids``, in order (one call for many processes).

    A token is the receive's own future while it sits on the process's record: a process
    that resumed (woken, timed out, cancelled) has cleared it there, so the same token
    means it did not run in between.
    """
    tokens: list[object | None] = []
    append = tokens.append
    for pid in pids:
        proc = pid._process
        if type(proc) is Process and proc.exit_reason is None:
            append(proc.waiter)
        else:
            append(None)
    return tokens


def run_as(pid: Pid, fn: Callable[..., T], *args: object) -> T:
    """Run the plain function ``fn(*args)`` with ``kernel.self()`` being ``pid``.

    Raises:
        ValueError: ``pid`` is not a live local process.
    """
    proc = pid._process
    if type(proc) is not Process or proc.context is None or proc.exit_reason is not None:
        raise ValueError(f"run_as: {pid!r} is not a live process of this node")
    return proc.context.run(fn, *args)
