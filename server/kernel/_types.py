"""Value types of the process runtime: pids, refs, exit reasons and the kernel's messages."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.kernel._process import Process
    from server.kernel._remote import RemoteProcess

__all__ = [
    "KILL",
    "KILLED",
    "NOPROC",
    "NORMAL",
    "SHUTDOWN",
    "Continue",
    "DownMessage",
    "ExitMessage",
    "ExitReason",
    "Pid",
    "ProcessExit",
    "Ref",
    "ReplyMessage",
    "TimerRef",
    "is_normal_exit",
]

#: An exit reason is any value: one of the strings below, a ``("shutdown", detail)`` tuple,
#: or the exception that ended the process (its traceback removed).
ExitReason = object

NORMAL: Final = "normal"
SHUTDOWN: Final = "shutdown"
KILL: Final = "kill"
KILLED: Final = "killed"
NOPROC: Final = "noproc"


def is_normal_exit(reason: object) -> bool:
    """True for ``normal``, ``shutdown`` and ``("shutdown", _)``: exits that are not crashes."""
    if reason in (NORMAL, SHUTDOWN):
        return True
    return type(reason) is tuple and len(reason) == 2 and reason[0] == SHUTDOWN


@final
class Pid:
    """A process identifier: unique for the life of the node, never reused.

    Pids compare by identity (each process has exactly one ``Pid`` object, and the pids of
    another node are interned); copying one, deep or shallow, returns the same object, so
    state that holds pids survives ``copy.deepcopy``. A pid of a process on another node
    shows as ``<node@host.id.serial>``.
    """

    __slots__ = ("_process", "number")

    number: int
    _process: Process | RemoteProcess | None

    def __init__(self, _number: int, _process: Process | RemoteProcess | None) -> None:
        self.number = _number
        self._process = _process

    def __repr__(self) -> str:
        proc = self._process
        if proc is not None and proc.is_remote:
            return repr(proc)
        return f"<0.{self.number}.0>"

    def __copy__(self) -> Pid:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Pid:
        return self

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("a Pid is only meaningful inside its node and cannot be pickled")


#: The numbers of refs (and timer refs), in creation order.
ref_numbers = itertools.count(1)


@final
class Ref:
    """A unique reference (monitor, call tag, timer), compared by identity."""

    __slots__ = ("__weakref__", "number")

    def __init__(self) -> None:
        self.number = next(ref_numbers)

    def __repr__(self) -> str:
        return f"#Ref<{self.number}>"

    def __copy__(self) -> Ref:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Ref:
        return self


@final
class TimerRef:
    """A handle on a timer started with ``send_after``; cancel it with ``cancel_timer``."""

    __slots__ = ("_handle", "number")

    def __init__(self, handle: Any) -> None:
        self.number = next(ref_numbers)
        self._handle = handle

    def __repr__(self) -> str:
        return f"#TimerRef<{self.number}>"


@final
@dataclass(frozen=True, slots=True)
class ExitMessage:
    """An exit signal turned into a message, for a process that traps exits (OTP's ``'EXIT'``)."""

    pid: Pid
    reason: ExitReason


@final
@dataclass(frozen=True, slots=True)
class DownMessage:
    """Sent to the owner of a monitor when the monitored process ends (OTP's ``'DOWN'``)."""

    ref: Ref
    pid: Pid | str | tuple[str, str]
    reason: ExitReason


@final
@dataclass(frozen=True, slots=True)
class ReplyMessage:
    """An answer to the request tagged ``ref``."""

    ref: Ref
    value: object


class ProcessExit(BaseException):
    """Raise inside a process to end it with ``reason`` (OTP's ``exit/1``).

    It derives from ``BaseException`` so that ``except Exception`` in user code does not
    swallow a deliberate exit.
    """

    def __init__(self, reason: ExitReason, *, report: bool = True) -> None:
        self.reason = reason
        #: False: an abnormal reason that is the process's answer, not a crash (an rpc's
        #: result travels as its exit reason): no crash report is written.
        self.report = report
        super().__init__(reason)


@final
class Continue:
    """Returned by a process body: "continue by calling ``target(*args)``" (a trampoline).

    The kernel drops the returning coroutine (and its whole stack) and calls ``target``
    afresh. When ``target`` is resolved through a module proxy, the process moves to the
    module's newest code at that point, which is how a plain process follows an upgrade.
    """

    __slots__ = ("args", "target")

    def __init__(self, target: Callable[..., Any], *args: Any) -> None:
        self.target = target
        self.args = args

    def __repr__(self) -> str:
        return f"Continue({self.target!r}, *{self.args!r})"
