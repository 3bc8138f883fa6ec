"""The system-message protocol every behaviour answers (OTP's ``sys``).

How this works:

1. A system request is a call: ``SystemMessage(from_, request)`` sent with a monitor, so a
   dead process fails the caller at once and a late answer is dropped. The answer is one of
   the typed replies every gen_server-based server gives (``replies``: ``Ok``, ``Refused``
   for ``unknown_system_msg``, ``Failed`` when ``code_change`` or ``fn`` raised).
2. A running behaviour hands each ``SystemMessage`` to ``handle_system``. ``Suspend`` puts
   it in ``_suspended``: a selective receive that takes only system messages (and, for a
   process that traps exits, an ``ExitMessage`` from its parent). Every other message stays
   queued in arrival order and is handled after ``Resume``: none is lost.
3. ``ChangeCode`` is accepted only while suspended (OTP answers a running process with
   ``unknown_system_msg``). The behaviour calls the *new* version's ``code_change``; if it
   raises (or overruns its timeout), the state is left as it was and the process stays
   suspended: the process deep-copies its state first (``copy_state``) and puts a state
   that the failing ``code_change`` mutated right from the copy. With ``backup``, it also
   answers with that copy (the caller's undo): one round trip instead of ``get_state``
   then ``change_code``.
4. Suspending a suspended process, and resuming a running one, are no-ops that succeed.
5. The ``*_many`` functions send one request to each of many processes at once and then
   collect the answers in one receive loop (a call each, in one process: a process has one
   parked receive, so tasks of one process must not wait for replies concurrently). The
   caller bounds how many it asks at once: each batch wakes that many processes in one
   turn of the event loop, which every other process waits for.
6. A process parked in its main loop can also be suspended *in place*, without a message
   (``suspend_in_place``, ``change_code_in_place``, ``resume_in_place``: the last section).

The behaviour supplies the specific part through ``SystemHost`` (``ParkedHost`` for the
suspension in place, kept under the process label ``HOST_LABEL``).
"""

from __future__ import annotations

import copy
import logging
import math
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, final

import anyio

from server import kernel
from server.behaviours.replies import Failed, Ok, Refused
from server.errors import (
    CalleeExited,
    CallError,
    CallTimeout,
    CodeChangeFailed,
    SystemCallError,
)
from server.kernel import DownMessage, ExitMessage, From, Pid, ProcessExit, ReplyMessage

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Generator, Sequence
    from types import CodeType

    from server.kernel import Ref

__all__ = [
    "HOST_LABEL",
    "NOT_IN_PLACE",
    "ParkedHost",
    "ProcessStatus",
    "SystemHost",
    "SystemMessage",
    "change_code",
    "change_code_in_place",
    "change_code_many",
    "copy_state",
    "get_state",
    "get_status",
    "handle_system",
    "is_suspended_in_place",
    "replace_state",
    "replace_state_in_place",
    "replace_state_many",
    "resume",
    "resume_in_place",
    "resume_many",
    "suspend",
    "suspend_in_place",
    "suspend_many",
    "terminate",
]

logger = logging.getLogger("server.behaviours")

DEFAULT_TIMEOUT = 5.0


@final
@dataclass(frozen=True, slots=True)
class Suspend:
    """Stop handling ordinary messages until ``Resume``."""


@final
@dataclass(frozen=True, slots=True)
class Resume:
    """Handle ordinary messages again."""


@final
@dataclass(frozen=True, slots=True)
class GetState:
    """Answer with the behaviour's state."""


@final
@dataclass(frozen=True, slots=True)
class ReplaceState:
    """Replace the state with ``fn(state)``; answer with the new state."""

    fn: Callable[[Any], Any]


@final
@dataclass(frozen=True, slots=True)
class GetStatus:
    """Answer with a ``ProcessStatus``."""


@final
@dataclass(frozen=True, slots=True)
class ChangeCode:
    """Migrate the state with the callback module's current ``code_change``."""

    module: str
    old_vsn: object
    extra: object
    timeout: float = math.inf  # enforced inside the process: a hang is cancelled there
    backup: bool = False  # answer with a deep copy of the state taken before the change


@final
@dataclass(frozen=True, slots=True)
class Terminate:
    """Run ``terminate`` and end with ``reason``."""

    reason: object


SystemRequest = Suspend | Resume | GetState | ReplaceState | GetStatus | ChangeCode | Terminate


@final
@dataclass(frozen=True, slots=True)
class SystemMessage:
    """A system request, answered through ``from_``."""

    from_: From
    request: SystemRequest


@final
@dataclass(frozen=True, slots=True)
class ProcessStatus:
    """What ``get_status`` reports about a behaviour process."""

    pid: Pid
    status: str  # "running" | "suspended"
    behaviour: str
    module: str
    registered_name: str | None
    parent: Pid | None
    state: object
    message_queue_len: int

    @classmethod
    def of_self(
        cls,
        status: str,
        *,
        behaviour: str,
        module: str,
        registered_name: str | None,
        parent: Pid | None,
        state: object,
    ) -> ProcessStatus:
        """The status of the calling process (its pid and mailbox length filled in)."""
        me = kernel.self()
        info = kernel.process_info(me)
        return cls(
            pid=me,
            status=status,
            behaviour=behaviour,
            module=module,
            registered_name=registered_name,
            parent=parent,
            state=state,
            message_queue_len=info.message_queue_len if info else 0,
        )


class SystemHost(Protocol):
    """The specific part a behaviour gives the system-message protocol."""

    def system_get_state(self) -> object:
        """The state ``get_state`` reports."""
        ...

    def system_replace_state(self, fn: Callable[[Any], Any]) -> object:
        """Apply ``fn`` to the state, keep and return the result."""
        ...

    async def system_code_change(self, module: str, old_vsn: object, extra: object) -> None:
        """Migrate the state with the current ``code_change``; raise and keep it on failure."""
        ...

    def system_status(self, status: str) -> ProcessStatus:
        """A status record (``status`` is ``"running"`` or ``"suspended"``)."""
        ...

    async def system_terminate(self, reason: object) -> None:
        """Run ``terminate`` and end the process with ``reason`` (raises ``ProcessExit``)."""
        ...


async def handle_system(host: SystemHost, message: SystemMessage, parent: Pid | None) -> None:
    """Answer one system message received while running (may suspend until resumed)."""
    if _in_place and kernel.self() in _in_place:
        # suspended in place (``suspend_in_place``), woken by this message: from here on
        # suspended as if by a ``Suspend`` message
        _forget(kernel.self())
        if await _answer_suspended(host, message):
            await _suspended(host, parent)
        return
    request = message.request
    if type(request) is Suspend:
        kernel.reply(message.from_, Ok(None))
        await _suspended(host, parent)
    elif type(request) is ChangeCode:
        kernel.reply(message.from_, Refused(("unknown_system_msg", "change_code while running")))
    else:
        await _answer(host, message, "running")


async def _suspended(host: SystemHost, parent: Pid | None) -> None:
    def wanted(m: object) -> bool:
        return type(m) is SystemMessage or (type(m) is ExitMessage and m.pid == parent)

    while True:
        message = await kernel.receive(wanted)
        if isinstance(message, ExitMessage):
            await host.system_terminate(message.reason)
            return
        assert isinstance(message, SystemMessage)
        if not await _answer_suspended(host, message):
            return


async def _answer_suspended(host: SystemHost, message: SystemMessage) -> bool:
    """Answer one system message while suspended; False once it was ``Resume``."""
    request = message.request
    if type(request) is Resume:
        kernel.reply(message.from_, Ok(None))
        return False
    if type(request) is ChangeCode:
        await _change_code(host, message.from_, request)
    else:
        await _answer(host, message, "suspended")
    return True


async def _change_code(host: SystemHost, from_: From, request: ChangeCode) -> None:
    # the state before, so that a code_change that mutates its input and then raises (or
    # overruns) leaves the state as it was: always, not only when the caller asks for it
    saved = copy_state(host.system_get_state())
    try:
        await _run_within(
            host.system_code_change(request.module, request.old_vsn, request.extra),
            request.timeout,
        )
    except TimeoutError:
        host.system_replace_state(lambda _: saved)
        exc = TimeoutError(f"code_change did not finish within {request.timeout} s")
        kernel.reply(from_, Failed(exc, repr(exc)))
    except Exception as exc:
        host.system_replace_state(lambda _: saved)
        text = "".join(traceback.format_exception(exc))
        kernel.reply(from_, Failed(exc, text))
        exc.__traceback__ = None
    else:
        kernel.reply(from_, Ok(saved if request.backup else None))


async def _run_within(coro: Coroutine[Any, Any, None], timeout: float) -> None:
    """Await ``coro``, cancelled after ``timeout`` seconds (``TimeoutError``).

    Most ``code_change`` callbacks never wait: their first step runs them to the end, and
    no step that does not wait can be cancelled anyway. So the first step runs bare and
    only a coroutine that then waits runs on under a deadline (from the start): a cancel
    scope and a timer for each of 10,000 processes were a third of an install's time.
    """
    began = anyio.current_time()
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return
    if timeout == math.inf:
        await _Rest(coro, waiting_on)
        return
    with anyio.fail_at(began + timeout):
        await _Rest(coro, waiting_on)


@final
class _Rest:
    """The rest of a coroutine whose first step ran: hand the loop what it waits on."""

    __slots__ = ("coro", "waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_on: object) -> None:
        self.coro = coro
        self.waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        coro = self.coro
        waiting_on = self.waiting_on
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # passed on, never kept: what `yield from` does
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration:
                    return
                continue
            try:
                waiting_on = coro.send(sent)
            except StopIteration:
                return


# immutable values: a dict of them is deep-copied by a shallow copy (``copy.deepcopy``
# returns each of them as it is), at a tenth of the cost
_ATOMIC = frozenset({int, float, str, bytes, bool, type(None), complex})


def copy_state(state: object) -> object:
    """A deep copy of ``state`` (a state that cannot be copied, e.g. a socket: itself).

    A dict whose keys and values are all ints, strings and the like is copied shallowly,
    which is a deep copy for such values; anything else goes through ``copy.deepcopy``.
    """
    if type(state) is dict:
        atomic = _ATOMIC
        for key, value in state.items():
            if type(key) not in atomic or type(value) not in atomic:
                break
        else:
            return state.copy()
    try:
        return copy.deepcopy(state)
    except Exception:  # a state holding a socket or a lock: keep the reference
        logger.warning("state of type %s cannot be deep-copied", type(state).__name__)
        return state


async def _answer(host: SystemHost, message: SystemMessage, status: str) -> None:
    request = message.request
    from_ = message.from_
    if type(request) is Suspend or type(request) is Resume:
        kernel.reply(from_, Ok(None))
    elif type(request) is GetState:
        kernel.reply(from_, Ok(host.system_get_state()))
    elif type(request) is GetStatus:
        kernel.reply(from_, Ok(host.system_status(status)))
    elif type(request) is ReplaceState:
        try:
            new_state = host.system_replace_state(request.fn)
        except Exception as exc:
            kernel.reply(from_, Failed(exc, "".join(traceback.format_exception(exc))))
            exc.__traceback__ = None
        else:
            kernel.reply(from_, Ok(new_state))
    elif type(request) is Terminate:
        kernel.reply(from_, Ok(None))
        await host.system_terminate(request.reason)


# -- the caller's side ---------------------------------------------------------------------


async def _system_call(
    pid: Pid | str | tuple[str, str], request: SystemRequest, timeout: float, operation: str
) -> object:
    answer = await kernel.request(
        pid,
        lambda from_: SystemMessage(from_, request),
        None if timeout == math.inf else timeout,
        what=request,
    )
    if isinstance(answer, Ok):
        return answer.value
    if isinstance(answer, Refused):
        raise SystemCallError(pid, operation, answer.reason)
    if not isinstance(answer, Failed):
        # a process of another node answers as OTP's sys does: the value, ``ok``, or
        # ``{error, Reason}`` (a state that is itself such a tuple reads as one, as in OTP)
        if type(answer) is tuple and len(answer) == 2 and answer[0] == "error":
            raise SystemCallError(pid, operation, answer[1])
        if answer == "ok" and not isinstance(request, GetState | GetStatus):
            return None
        return answer
    if isinstance(request, ChangeCode):
        raise CodeChangeFailed(pid, request.module, answer.reason, answer.traceback_text)
    raise SystemCallError(pid, operation, answer.reason)


def _outcome(pid: Pid, request: SystemRequest, operation: str, answer: object) -> object:
    """What ``_system_call`` would return, or the exception it would raise (not raised)."""
    if type(answer) is DownMessage:
        return CalleeExited(pid, request, answer.reason)
    assert type(answer) is ReplyMessage
    value = answer.value
    if type(value) is Ok:
        return value.value
    if type(value) is Refused:
        return SystemCallError(pid, operation, value.reason)
    assert type(value) is Failed
    if type(request) is ChangeCode:
        return CodeChangeFailed(pid, request.module, value.reason, value.traceback_text)
    return SystemCallError(pid, operation, value.reason)


async def _system_call_many(
    pids: Sequence[Pid], requests: Sequence[SystemRequest], timeout: float, operation: str
) -> list[object]:
    """Send ``requests[i]`` to ``pids[i]``, all at once; collect every answer (in order).

    Each outcome is the answer's value, or the ``CallError`` / ``SystemCallError`` the
    single call would have raised (returned, not raised).
    """
    me = kernel.self()
    pending: dict[Ref, int] = {}
    outcomes: list[object] = [None] * len(pids)
    monitor, send = kernel.monitor, kernel.send
    for index, pid in enumerate(pids):
        ref = monitor(pid)
        pending[ref] = index
        send(pid, SystemMessage(From(me, ref), requests[index]))

    def answers(m: object) -> bool:
        kind = type(m)
        return (kind is ReplyMessage or kind is DownMessage) and m.ref in pending  # type: ignore[attr-defined]

    deadline = math.inf if timeout == math.inf else anyio.current_time() + timeout
    while pending:
        try:
            left = None if deadline == math.inf else max(deadline - anyio.current_time(), 0.0)
            message = await kernel.receive(answers, timeout=left)
        except TimeoutError:
            for ref, index in pending.items():
                kernel.demonitor(ref, flush=True)  # a late answer is dropped
                outcomes[index] = CallTimeout(pids[index], requests[index], timeout)
            break
        while True:  # every answer already queued, without waiting again
            assert type(message) is ReplyMessage or type(message) is DownMessage
            index = pending.pop(message.ref)
            outcomes[index] = _outcome(pids[index], requests[index], operation, message)
            if not pending:
                break
            try:
                message = kernel.receive_nowait(answers)
            except anyio.WouldBlock:
                break
    return outcomes


async def suspend_many(
    pids: Sequence[Pid], *, timeout: float = DEFAULT_TIMEOUT
) -> list[CallError | None]:
    """Suspend every process of ``pids`` at once (see ``suspend``).

    Returns:
        For each pid in order, None once suspended, else the ``CallError`` that
        ``suspend`` would have raised (it ended, or did not answer within ``timeout``).
    """
    request = Suspend()
    outcomes = await _system_call_many(pids, [request] * len(pids), timeout, "suspend")
    return [o if isinstance(o, CallError) else None for o in outcomes]


async def resume_many(
    pids: Sequence[Pid], *, timeout: float = DEFAULT_TIMEOUT
) -> list[CallError | None]:
    """Resume every process of ``pids`` at once (see ``resume``); outcomes as ``suspend_many``."""
    request = Resume()
    outcomes = await _system_call_many(pids, [request] * len(pids), timeout, "resume")
    return [o if isinstance(o, CallError) else None for o in outcomes]


async def replace_state_many(
    pids: Sequence[Pid], fns: Sequence[Callable[[Any], Any]], *, timeout: float = DEFAULT_TIMEOUT
) -> list[object]:
    """Replace the state of ``pids[i]`` with ``fns[i](state)``, all at once.

    Returns:
        For each pid in order, the new state, or the error ``replace_state`` would have
        raised (``SystemCallError`` when ``fn`` raised, a ``CallError``).
    """
    requests = [ReplaceState(fn) for fn in fns]
    return await _system_call_many(pids, requests, timeout, "replace_state")


async def change_code_many(
    pids: Sequence[Pid],
    module: str,
    old_vsn: object,
    extra: object = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[object]:
    """Migrate every *suspended* process of ``pids`` at once, each keeping a backup.

    Each process deep-copies its state (``copy_state``), runs ``code_change`` on it (see
    ``change_code``: ``timeout`` is enforced inside the process) and answers with the copy
    it took, which the caller keeps to undo the change. A ``code_change`` that fails leaves
    the state as the copy was.

    Returns:
        For each pid in order, its state from before the change, or the error
        ``change_code`` would have raised (``CodeChangeFailed``, ``SystemCallError`` when
        not suspended, a ``CallError``).
    """
    wait = timeout if timeout == math.inf else timeout + 1.0
    request = ChangeCode(module, old_vsn, extra, timeout, backup=True)
    return await _system_call_many(pids, [request] * len(pids), wait, "change_code")


async def suspend(pid: Pid | str | tuple[str, str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Suspend a behaviour process: it answers system messages only until ``resume``.

    Raises:
        CalleeExited: the process does not exist or ended.
        CallTimeout: it did not answer in time.
    """
    await _system_call(pid, Suspend(), timeout, "suspend")


async def resume(pid: Pid | str | tuple[str, str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Resume a suspended process; its queued messages are then handled in order.

    Raises:
        CalleeExited: the process does not exist or ended.
        CallTimeout: it did not answer in time.
    """
    await _system_call(pid, Resume(), timeout, "resume")


async def get_state(pid: Pid | str | tuple[str, str], *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """The behaviour's state.

    Raises:
        CalleeExited: the process does not exist or ended.
        CallTimeout: it did not answer in time.
    """
    return await _system_call(pid, GetState(), timeout, "get_state")


async def replace_state(
    pid: Pid | str, fn: Callable[[Any], Any], *, timeout: float = DEFAULT_TIMEOUT
) -> Any:
    """Replace the state with ``fn(state)``, run inside the process; returns the new state.

    Raises:
        SystemCallError: ``fn`` raised; the state is unchanged.
        CalleeExited: the process does not exist or ended.
        CallTimeout: it did not answer in time.
    """
    return await _system_call(pid, ReplaceState(fn), timeout, "replace_state")


async def get_status(
    pid: Pid | str | tuple[str, str], *, timeout: float = DEFAULT_TIMEOUT
) -> ProcessStatus:
    """Status, module, parent and state of a behaviour process.

    Raises:
        CalleeExited: the process does not exist or ended.
        CallTimeout: it did not answer in time.
    """
    status = await _system_call(pid, GetStatus(), timeout, "get_status")
    assert isinstance(status, ProcessStatus)
    return status


async def change_code(
    pid: Pid | str | tuple[str, str],
    module: str,
    old_vsn: object,
    extra: object = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Migrate a *suspended* process's state with its callback module's ``code_change``.

    ``old_vsn`` is the version upgraded from, or ``("down", vsn)`` for a downgrade.

    Raises:
        CodeChangeFailed: ``code_change`` raised, or ran past ``timeout`` and was cancelled
            inside the process; either way the state is unchanged, still suspended.
        SystemCallError: the process is not suspended (``unknown_system_msg``).
        CalleeExited: the process does not exist or ended.
        CallTimeout: it did not answer in time.
    """
    # the process cancels a code_change that overruns ``timeout`` itself (its state stays
    # as it was); the caller waits a little longer, to hear that answer
    wait = timeout if timeout == math.inf else timeout + 1.0
    await _system_call(pid, ChangeCode(module, old_vsn, extra, timeout), wait, "change_code")


async def terminate(
    pid: Pid | str, reason: object = kernel.NORMAL, *, timeout: float = math.inf
) -> None:
    """Ask a behaviour process to run ``terminate`` and end with ``reason``; wait for its end.

    Raises:
        CalleeExited: the process does not exist, or ended with another reason.
        CallTimeout: it did not end in time.
    """
    target = kernel.whereis(pid) if isinstance(pid, str) else pid
    if target is None:
        raise CalleeExited(pid, Terminate(reason), kernel.NOPROC)
    # The process answers before it runs ``terminate``: ``timeout`` bounds both waits.
    deadline = anyio.current_time() + timeout
    ref = kernel.monitor(target)
    try:
        await _system_call(target, Terminate(reason), timeout, "terminate")
        left = deadline - anyio.current_time()
        down = await kernel.receive(
            lambda m: type(m) is kernel.DownMessage and m.ref is ref,
            timeout=None if left == math.inf else max(left, 0.0),
        )
    except CallTimeout:
        kernel.demonitor(ref, flush=True)
        raise
    except TimeoutError:  # answered, but still running ``terminate`` at the deadline
        kernel.demonitor(ref, flush=True)
        raise CallTimeout(pid, Terminate(reason), timeout) from None
    except BaseException:
        kernel.demonitor(ref, flush=True)
        raise
    assert isinstance(down, kernel.DownMessage)
    if down.reason != reason:
        raise CalleeExited(pid, Terminate(reason), down.reason)


# -- suspended in place --------------------------------------------------------------------
#
# All of a node's processes share one event loop, so a behaviour process parked in the
# receive of its main loop can be suspended, migrated and resumed by the caller directly,
# without a message round trip: its receive is narrowed to what ``_suspended`` takes
# (system messages, its parent's exit), so every other message queues in arrival order;
# its ``code_change`` runs with ``kernel.self()`` being the process (``kernel.run_as``);
# resuming widens the receive again. A process anywhere else (busy in a callback, waiting
# with a timeout, in a receive of its own) is not touched: the caller sends it the
# messages instead. A system message that reaches a process suspended in place wakes it
# into ``_suspended``, as if a ``Suspend`` message had come first.

#: The label under which a behaviour process keeps its ``ParkedHost``.
HOST_LABEL = "_system_host"


class ParkedHost(SystemHost, Protocol):
    """A ``SystemHost`` whose main loop may be suspended in place (see above)."""

    def system_parent(self) -> Pid | None:
        """The parent: its exit ends a suspended process."""
        ...

    def system_loop_code(self) -> CodeType:
        """The code of the main loop, whose receive of every message is where it parks."""
        ...

    def system_code_change_now(self, module: str, old_vsn: object, extra: object) -> bool:
        """Migrate now when ``code_change`` is a plain function; False if it cannot.

        False: nothing ran (a coroutine function), or a plain function returned a
        coroutine, which the host keeps for the ``ChangeCode`` that follows (the
        function is not called twice). Raises what ``code_change`` raises (the caller
        puts the state back).
        """
        ...


@final
class _SuspendedOnly:
    """What a process suspended in place takes: as the receive of ``_suspended``."""

    __slots__ = ("parent",)

    def __init__(self, parent: Pid | None) -> None:
        self.parent = parent

    def __call__(self, m: object) -> bool:
        return type(m) is SystemMessage or (type(m) is ExitMessage and m.pid == self.parent)


#: the processes suspended in place, with their host
_in_place: dict[Pid, ParkedHost] = {}
#: the matcher of their receives, one per parent (few objects for the cyclic GC to see)
_matchers: dict[Pid | None, _SuspendedOnly] = {}


def _matcher(parent: Pid | None) -> _SuspendedOnly:
    matcher = _matchers.get(parent)
    if matcher is None:
        matcher = _matchers[parent] = _SuspendedOnly(parent)
    return matcher


def _forget(pid: Pid) -> ParkedHost | None:
    host = _in_place.pop(pid, None)
    if not _in_place:
        _matchers.clear()
    return host


@final
class _NotInPlace:
    """The type of ``NOT_IN_PLACE``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_IN_PLACE"


#: What ``change_code_in_place`` returns when the process needs a ``ChangeCode`` message.
NOT_IN_PLACE = _NotInPlace()


def suspend_in_place(pid: Pid) -> bool:
    """Suspend ``pid`` without a message if it is parked in its behaviour's main loop.

    Returns:
        True once suspended (it was, or is now, suspended in place); False, changing
        nothing, when it is anywhere else: ``suspend`` it with a message then.
    """
    host = _in_place.get(pid)
    if host is not None:
        if kernel.is_narrowed(pid, _matcher(host.system_parent())):
            return True
        _forget(pid)
    host = kernel.get_label(pid, HOST_LABEL)
    if host is None:
        return False
    if not kernel.narrow_receive(pid, host.system_loop_code(), _matcher(host.system_parent())):
        return False
    _in_place[pid] = host
    return True


def _host_in_place(pid: Pid) -> ParkedHost | None:
    host = _in_place.get(pid)
    if host is None or not kernel.is_narrowed(pid, _matcher(host.system_parent())):
        return None
    return host


def is_suspended_in_place(pid: Pid) -> bool:
    """Whether ``pid`` is still suspended in place (no message woke it, it did not end)."""
    return _host_in_place(pid) is not None


def change_code_in_place(pid: Pid, module: str, old_vsn: object, extra: object) -> object:
    """Migrate a process suspended in place, as ``ChangeCode`` with a backup would.

    Returns:
        The deep copy of its state taken before the change (the caller's undo), or
        ``NOT_IN_PLACE``, having changed nothing, when the process is not suspended in
        place or its ``code_change`` is a coroutine function: send it ``ChangeCode`` then.

    Raises:
        CodeChangeFailed: ``code_change`` raised (also ``ProcessExit``: the process does
            not end); the state is as it was, still suspended.
    """
    host = _host_in_place(pid)
    if host is None:
        return NOT_IN_PLACE
    saved = copy_state(host.system_get_state())
    try:
        done = kernel.run_as(pid, host.system_code_change_now, module, old_vsn, extra)
    except (Exception, ProcessExit) as exc:
        # an exit asked for from code_change (``ProcessExit``) runs here, in the caller's
        # task: it is a failure like any other, and the process stays as it was
        host.system_replace_state(lambda _: saved)
        text = "".join(traceback.format_exception(exc))
        exc.__traceback__ = None
        raise CodeChangeFailed(pid, module, exc, text) from None
    return saved if done else NOT_IN_PLACE


def replace_state_in_place(pid: Pid, state: object) -> bool:
    """Set the state of a process suspended in place; False (nothing done) if it is not."""
    host = _host_in_place(pid)
    if host is None:
        return False
    host.system_replace_state(lambda _: state)
    return True


def resume_in_place(pid: Pid) -> bool:
    """Resume a process suspended in place: the messages queued meanwhile come in order.

    Returns:
        True once resumed; False when it was not suspended in place any more (a system
        message woke it into a suspension by message: ``resume`` it with one; or it ended).
    """
    host = _in_place.get(pid)
    if host is None:
        return False
    matcher = _matcher(host.system_parent())
    _forget(pid)
    return kernel.widen_receive(pid, matcher)
