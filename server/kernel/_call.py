"""Request and reply with a monitor: the one way to wait for another process's answer.

How this works (OTP's ``gen:call`` with process aliases):

1. The caller monitors the target and sends it a message carrying ``From(caller, ref)``,
   where ``ref`` is the monitor's reference.
2. The answerer calls ``reply(from_, value)``. A reply is delivered only while that monitor
   is still active, and delivering it ends the monitor. So a reply that comes after the
   caller gave up (timeout) is dropped, and so is a second reply to the same request: no
   stray message ever lands in the caller's mailbox.
3. The caller waits for the reply or the ``DownMessage`` of its monitor, whichever comes
   first: a dead server (or one that dies before replying) fails the call at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from server.errors import CalleeExited, CallTimeout, NoProcessError
from server.kernel._node import current_node
from server.kernel._process import current
from server.kernel._types import NOPROC, DownMessage, Pid, Ref

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["From", "ReplyMessage", "reply", "request"]


@final
@dataclass(frozen=True, slots=True)
class From:
    """Who to answer: the caller and the tag of its request (opaque to the answerer)."""

    pid: Pid
    ref: Ref


@final
@dataclass(frozen=True, slots=True)
class ReplyMessage:
    """An answer to the request tagged ``ref``."""

    ref: Ref
    value: object


def reply(from_: From, value: object) -> None:
    """Answer a request. Dropped if the caller is gone, gave up, or was already answered."""
    caller = from_.pid._process
    if caller is None or not caller.monitors:
        return
    target = caller.monitors.pop(from_.ref, None)
    if target is None:
        return
    if target.monitored_by is not None:
        target.monitored_by.pop(from_.ref, None)
    caller.deliver(ReplyMessage(from_.ref, value))


async def request(
    dest: Pid | str,
    make_message: Callable[[From], object],
    timeout: float | None,
    *,
    what: object = None,
) -> object:
    """Send ``make_message(from_)`` to ``dest`` and wait for the reply.

    Args:
        dest: a pid or a registered name.
        make_message: builds the message from the caller's ``From``.
        timeout: seconds to wait, or None for no limit.
        what: the request, for error messages.

    Raises:
        CalleeExited: ``dest`` does not exist (reason ``noproc``) or ended before replying.
        CallTimeout: no reply within ``timeout``; a late reply is dropped.
        NoProcessError: called outside a process.
    """
    try:
        me = current.get()
    except LookupError:
        raise NoProcessError("call") from None
    node = current_node()
    target = dest._process if type(dest) is Pid else node.registry.get(dest)
    if target is None or not target.alive:
        raise CalleeExited(dest, what, NOPROC)
    ref = Ref()
    if me.monitors is None:
        me.monitors = {}
    me.monitors[ref] = target
    if target.monitored_by is None:
        target.monitored_by = {}
    target.monitored_by[ref] = me
    target.deliver(make_message(From(me.pid, ref)))
    if me.mailbox:
        found, answer = me.take(lambda m: _answers(m, ref))
        if found:
            return _unwrap(dest, what, answer)
    try:
        answer = await me.park(lambda m: _answers(m, ref), timeout)
    except TimeoutError:
        node.demonitor(me, ref, flush=True)
        # a reply delivered in the same loop step as the timeout is queued: take it (OTP)
        found, answer = me.take(lambda m: type(m) is ReplyMessage and m.ref is ref)
        if found:
            return _unwrap(dest, what, answer)
        raise CallTimeout(dest, what, timeout if timeout is not None else 0.0) from None
    except BaseException:
        node.demonitor(me, ref, flush=True)
        me.take(lambda m: type(m) is ReplyMessage and m.ref is ref)
        raise
    return _unwrap(dest, what, answer)


def _answers(message: object, ref: Ref) -> bool:
    kind = type(message)
    return (kind is ReplyMessage or kind is DownMessage) and message.ref is ref  # type: ignore[attr-defined]


def _unwrap(dest: object, what: object, answer: object) -> object:
    if type(answer) is ReplyMessage:
        return answer.value
    assert type(answer) is DownMessage
    raise CalleeExited(dest, what, answer.reason)
