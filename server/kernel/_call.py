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

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from server.errors import CalleeExited, CallingSelf, CallTimeout, NoProcessError
from server.kernel._api import send
from server.kernel._process import Process, current
from server.kernel._remote import RemoteProcess, RemoteTag
from server.kernel._types import NOPROC, DownMessage, Pid, Ref, ReplyMessage, ref_numbers

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["From", "ReplyMessage", "reply", "request"]


@final
@dataclass(frozen=True, slots=True)
class From:
    """Who to answer: the caller and the tag of its request (opaque to the answerer)."""

    pid: Pid
    ref: Ref | RemoteTag


def reply(from_: From, value: object) -> None:
    """Answer a request. Dropped if the caller is gone, gave up, or was already answered.

    Raises:
        TypeError: the caller is on another node and ``value`` cannot be encoded as a term.
    """
    caller = from_.pid._process
    if caller is None:
        return
    if type(caller) is RemoteProcess:
        tag = from_.ref
        if type(tag) is RemoteTag:
            caller.node.reply(caller, tag, value)
        return
    assert type(caller) is Process
    monitors = caller.monitors
    if not monitors:
        return
    ref: Ref = from_.ref  # type: ignore[assignment]  # a local caller's tag: its monitor's ref
    target = monitors.pop(ref, None)
    if type(target) is not Process:  # none, or a call to another node (answered there)
        return
    watchers = target.monitored_by
    if watchers is not None:
        watchers.pop(ref, None)
    message: ReplyMessage = _new(ReplyMessage)  # reply_message, inlined
    _set_reply_ref(message, ref)
    _set_reply_value(message, value)
    waiter = caller.waiter
    if waiter is not None and caller.matcher is ref and not waiter.done():
        # Process.deliver, inlined for the caller parked for this very answer
        caller.delivered += 1
        caller.waiter = caller.matcher = None
        waiter.set_result(message)
        box = caller.mailbox
        caller.handed_at = len(box) if box else 0
    else:
        caller.deliver(message)


async def request(
    dest: Pid | str | tuple[str, str],
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
        CallingSelf: ``dest`` is the caller itself (OTP's ``calling_self``), at once.
        CallTimeout: no reply within ``timeout``; a late reply is dropped.
        NoProcessError: called outside a process.
    """
    try:
        me = current.get()
    except LookupError:
        raise NoProcessError("call") from None
    target: Process | RemoteProcess | None
    if type(dest) is Pid:
        target = dest._process
    elif type(dest) is tuple:
        if dest[1] != me.node.node_name:
            return await _remote_request(me, dest, make_message, timeout, what)
        target = me.node.registry.get(dest[0])
    else:
        target = me.node.registry.get(dest)  # type: ignore[arg-type]
    if type(target) is not Process:
        if type(target) is RemoteProcess:
            return await _remote_request(me, target.pid, make_message, timeout, what)
        raise CalleeExited(dest, what, NOPROC)
    if target.exit_reason is not None or target.task is None:  # not alive, inlined
        raise CalleeExited(dest, what, NOPROC)
    if target is me:
        raise CallingSelf(dest, what)
    ref: Ref = _new(Ref)  # Ref(), inlined (as are _from and Process.alive: the hot path)
    _set_ref_number(ref, next(ref_numbers))
    monitors = me.monitors
    if monitors is None:
        monitors = me.monitors = {}
    monitors[ref] = target
    watchers = target.monitored_by
    if watchers is None:
        watchers = target.monitored_by = {}
    watchers[ref] = me
    from_: From = _new(From)
    _set_from_pid(from_, me.pid)
    _set_from_ref(from_, ref)
    message = make_message(from_)
    waiter = target.waiter
    if waiter is not None and target.matcher is None and not waiter.done():
        # Process.deliver, inlined for a server parked in a receive that takes anything
        target.delivered += 1
        target.waiter = None
        waiter.set_result(message)
        box = target.mailbox
        target.handed_at = len(box) if box else 0
    else:
        target.deliver(message)
    if me.mailbox:
        found, answer = me.take(_answers(ref))
        if found:
            return _unwrap(dest, what, answer)
    # Process.wait(ref, timeout), inlined. The bare future, not a Receipt: a cancelled
    # call drops a reply it was handed anyway (below), so there is nothing to give back to
    # the mailbox. The ref is the matcher: ``deliver`` takes the reply or the monitor's
    # DOWN with that ref without calling a predicate.
    loop = me.loop
    node = me.node
    waiter = _Future(loop=loop) if node.plain_futures else loop.create_future()
    me.waiter = waiter
    me.matcher = ref
    if timeout is None or timeout == _INF:
        me.deadline = _INF
    else:
        deadline = me.deadline = node.clock() + timeout
        timer = me.timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            me.timer = loop.call_at(deadline, me.expire, deadline)
    try:
        answer = await waiter
    except TimeoutError:
        me.node.demonitor(me, ref, flush=True)
        # a reply delivered in the same loop step as the timeout is queued: take it (OTP)
        found, answer = me.take(lambda m: type(m) is ReplyMessage and m.ref is ref)
        if found:
            return _unwrap(dest, what, answer)
        raise CallTimeout(dest, what, timeout if timeout is not None else 0.0) from None
    except BaseException:
        me.unpark(waiter)
        me.node.demonitor(me, ref, flush=True)
        me.take(lambda m: type(m) is ReplyMessage and m.ref is ref)
        raise
    if type(answer) is ReplyMessage:
        return answer.value
    return _unwrap(dest, what, answer)


async def _remote_request(
    me: Process,
    dest: Pid | tuple[str, str],
    make_message: Callable[[From], object],
    timeout: float | None,
    what: object,
) -> object:
    """``request`` to a process on another node: a remote monitor whose ref is the tag."""
    node = me.node
    ref = node.monitor(me, dest)
    channel = node.remote_node(node_of(dest)).channel
    if channel is not None and channel.busy:  # back-pressure: wait for the writer
        await channel.drained()
    if me.mailbox:  # an unreachable node answers the monitor at once with noconnection
        found, answer = me.take(lambda m: type(m) is DownMessage and m.ref is ref)
        if found:
            return _unwrap(dest, what, answer)
    try:
        send(dest, make_message(_from(me.pid, ref)))
    except BaseException:
        node.demonitor(me, ref, flush=True)
        raise

    waiter = me.wait(ref, timeout)
    try:
        answer = await waiter
    except TimeoutError:
        node.demonitor(me, ref, flush=True)
        found, answer = me.take(lambda m: type(m) is ReplyMessage and m.ref is ref)
        if found:
            return _unwrap(dest, what, answer)
        raise CallTimeout(dest, what, timeout if timeout is not None else 0.0) from None
    except BaseException:
        me.unpark(waiter)
        node.demonitor(me, ref, flush=True)
        me.take(lambda m: type(m) is ReplyMessage and m.ref is ref)
        raise
    return _unwrap(dest, what, answer)


def _answers(ref: Ref) -> Callable[[object], bool]:
    """The matcher of the reply tagged ``ref`` or its monitor's ``DownMessage``."""

    def answers(message: object) -> bool:
        kind = type(message)
        return (kind is ReplyMessage or kind is DownMessage) and message.ref is ref  # type: ignore[attr-defined]

    return answers


def node_of(dest: Pid | tuple[str, str]) -> str:
    """The node a remote destination is on."""
    if type(dest) is tuple:
        return dest[1]
    proc = dest._process  # type: ignore[union-attr]
    assert type(proc) is RemoteProcess
    return proc.node.name


def _unwrap(dest: object, what: object, answer: object) -> object:
    if type(answer) is ReplyMessage:
        return answer.value
    assert type(answer) is DownMessage
    raise CalleeExited(dest, what, answer.reason)


# Every call builds one ``From`` and one ``ReplyMessage``. A frozen dataclass's ``__init__``
# sets each field through ``object.__setattr__``; these build the same instances by
# writing the slots directly, at about half the cost. The values are equal to what the
# dataclass constructor makes (``__eq__``, ``__hash__``, ``__repr__`` see the same fields).
_new = object.__new__
_Future = asyncio.Future
_INF = math.inf
_set_from_pid = From.__dict__["pid"].__set__
_set_from_ref = From.__dict__["ref"].__set__
_set_reply_ref = ReplyMessage.__dict__["ref"].__set__
_set_reply_value = ReplyMessage.__dict__["value"].__set__
_set_ref_number = Ref.__dict__["number"].__set__


def _from(pid: Pid, ref: Ref) -> From:
    from_: From = _new(From)
    _set_from_pid(from_, pid)
    _set_from_ref(from_, ref)
    return from_


def reply_message(ref: Ref, value: object) -> ReplyMessage:
    """A ``ReplyMessage``, built at half the dataclass constructor's cost."""
    message: ReplyMessage = _new(ReplyMessage)
    _set_reply_ref(message, ref)
    _set_reply_value(message, value)
    return message
