"""The system-message protocol every behaviour answers (OTP's ``sys``).

How this works:

1. A system request is a call: ``SystemMessage(from_, request)`` sent with a monitor, so a
   dead process fails the caller at once and a late answer is dropped.
2. A running behaviour hands each ``SystemMessage`` to ``handle_system``. ``Suspend`` puts
   it in ``_suspended``: a selective receive that takes only system messages (and, for a
   process that traps exits, an ``ExitMessage`` from its parent). Every other message stays
   queued in arrival order and is handled after ``Resume``: none is lost.
3. ``ChangeCode`` is accepted only while suspended (OTP answers a running process with
   ``unknown_system_msg``). The behaviour calls the *new* version's ``code_change``; if it
   raises, the state is left as it was and the process stays suspended.
4. Suspending a suspended process, and resuming a running one, are no-ops that succeed.

The behaviour supplies the specific part through ``SystemHost``.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, final

import anyio

from server import kernel
from server.errors import CalleeExited, CallTimeout, CodeChangeFailed, SystemCallError
from server.kernel import ExitMessage, From, Pid

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "ProcessStatus",
    "SystemHost",
    "SystemMessage",
    "change_code",
    "get_state",
    "get_status",
    "handle_system",
    "replace_state",
    "resume",
    "suspend",
    "terminate",
]

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
class _Ok:
    value: object


@final
@dataclass(frozen=True, slots=True)
class _Failed:
    reason: object
    traceback_text: str = ""


@final
@dataclass(frozen=True, slots=True)
class _Refused:
    """Not accepted in the current status (OTP's ``unknown_system_msg``); nothing changed."""

    reason: object


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
    request = message.request
    if type(request) is Suspend:
        kernel.reply(message.from_, _Ok(None))
        await _suspended(host, parent)
    elif type(request) is ChangeCode:
        kernel.reply(message.from_, _Refused(("unknown_system_msg", "change_code while running")))
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
        request = message.request
        if type(request) is Resume:
            kernel.reply(message.from_, _Ok(None))
            return
        if type(request) is ChangeCode:
            limit = None if request.timeout == math.inf else request.timeout
            try:
                with anyio.fail_after(limit):
                    await host.system_code_change(request.module, request.old_vsn, request.extra)
            except TimeoutError:
                exc = TimeoutError(f"code_change did not finish within {request.timeout} s")
                kernel.reply(message.from_, _Failed(exc, repr(exc)))
            except Exception as exc:
                text = "".join(traceback.format_exception(exc))
                kernel.reply(message.from_, _Failed(exc, text))
                exc.__traceback__ = None
            else:
                kernel.reply(message.from_, _Ok(None))
        else:
            await _answer(host, message, "suspended")


async def _answer(host: SystemHost, message: SystemMessage, status: str) -> None:
    request = message.request
    from_ = message.from_
    if type(request) is Suspend or type(request) is Resume:
        kernel.reply(from_, _Ok(None))
    elif type(request) is GetState:
        kernel.reply(from_, _Ok(host.system_get_state()))
    elif type(request) is GetStatus:
        kernel.reply(from_, _Ok(host.system_status(status)))
    elif type(request) is ReplaceState:
        try:
            new_state = host.system_replace_state(request.fn)
        except Exception as exc:
            kernel.reply(from_, _Failed(exc, "".join(traceback.format_exception(exc))))
            exc.__traceback__ = None
        else:
            kernel.reply(from_, _Ok(new_state))
    elif type(request) is Terminate:
        kernel.reply(from_, _Ok(None))
        await host.system_terminate(request.reason)


# -- the caller's side ---------------------------------------------------------------------


async def _system_call(
    pid: Pid | str, request: SystemRequest, timeout: float, operation: str
) -> object:
    answer = await kernel.request(
        pid,
        lambda from_: SystemMessage(from_, request),
        None if timeout == math.inf else timeout,
        what=request,
    )
    if isinstance(answer, _Ok):
        return answer.value
    if isinstance(answer, _Refused):
        raise SystemCallError(pid, operation, answer.reason)
    assert isinstance(answer, _Failed)
    if isinstance(request, ChangeCode):
        raise CodeChangeFailed(pid, request.module, answer.reason, answer.traceback_text)
    raise SystemCallError(pid, operation, answer.reason)


async def suspend(pid: Pid | str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Suspend a behaviour process: it answers system messages only until ``resume``.

    Raises:
        CalleeExited: the process does not exist or ended.
        CallTimeout: it did not answer in time.
    """
    await _system_call(pid, Suspend(), timeout, "suspend")


async def resume(pid: Pid | str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Resume a suspended process; its queued messages are then handled in order.

    Raises:
        CalleeExited: the process does not exist or ended.
        CallTimeout: it did not answer in time.
    """
    await _system_call(pid, Resume(), timeout, "resume")


async def get_state(pid: Pid | str, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
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


async def get_status(pid: Pid | str, *, timeout: float = DEFAULT_TIMEOUT) -> ProcessStatus:
    """Status, module, parent and state of a behaviour process.

    Raises:
        CalleeExited: the process does not exist or ended.
        CallTimeout: it did not answer in time.
    """
    status = await _system_call(pid, GetStatus(), timeout, "get_status")
    assert isinstance(status, ProcessStatus)
    return status


async def change_code(
    pid: Pid | str,
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
