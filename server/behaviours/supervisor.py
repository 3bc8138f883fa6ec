"""supervisor: start, watch and restart children (the API; the engine is a gen_server).

==============================  =================================================
generic function                callback it triggers
==============================  =================================================
``start_link(module, args)``    ``init(args)`` -> ``SupervisorSpec`` or ``Ignore()``
``system_messages.change_code`` ``init(args)`` again (the appup ``update ... supervisor``)
==============================  =================================================

``init`` results: ``SupervisorSpec`` starts the children in order (a child that fails to
start fails the whole start with ``StartError(("shutdown", ("failed_to_start_child", id,
reason)))``); ``Ignore()`` makes ``start_link`` return None. The administrative calls below
never count towards restart intensity.

Each call sends one of the request records below; the engine answers with a typed reply
(``replies.Ok``, ``Refused`` when the request is not accepted and nothing changed,
``Failed`` when a child it tried to start did not start), and the function here raises the
matching exception in the caller's process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, final

from server import kernel
from server.behaviours import gen_server
from server.behaviours._dispatch import module_name
from server.behaviours.replies import Failed, Ok, Refused
from server.behaviours.system_messages import DEFAULT_TIMEOUT
from server.errors import StartError, SupervisorError
from server.kernel import Pid

if TYPE_CHECKING:
    from types import ModuleType

    from server.behaviours.supervisor_callbacks import AutoShutdown, ChildSpec, Strategy

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "SpecInfo",
    "count_children",
    "delete_child",
    "get_callback_module",
    "get_childspec",
    "get_spec_info",
    "restart_child",
    "restart_count",
    "start_child",
    "start_link",
    "terminate_child",
    "which_children",
]

ENGINE = "server.behaviours._supervisor_engine"

#: The supervisor's own label counting its restarts (private: hidden from process_info).
RESTARTS_LABEL = "_restarts_total"


@final
@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of ``which_children``: ``pid`` is a Pid, None, or ``"restarting"``."""

    id: str | None
    pid: Pid | Literal["restarting"] | None
    type: str
    modules: tuple[str, ...] | Literal["dynamic"]


@final
@dataclass(frozen=True, slots=True)
class ChildCounts:
    """What ``count_children`` reports."""

    specs: int
    active: int
    supervisors: int
    workers: int


@final
@dataclass(frozen=True, slots=True)
class SpecInfo:
    """What ``get_spec_info`` reports: the flags and child ids of the supervisor's spec.

    The spec is what the callback's ``init`` last returned (at start, or at the latest
    ``code_change``): after an upgrade ``child_ids`` may name children not started yet, and
    ``which_children`` may still list children the new spec dropped. For
    simple_one_for_one, ``child_ids`` is the template's id.
    """

    strategy: Strategy
    intensity: int
    period: float
    auto_shutdown: AutoShutdown
    child_ids: tuple[str, ...]


# -- the requests (answered by the engine with a ``replies`` record) ----------------------


@final
@dataclass(frozen=True, slots=True)
class WhichChildren:
    """Answer with every child as ``ChildInfo`` rows, in start order."""


@final
@dataclass(frozen=True, slots=True)
class CountChildren:
    """Answer with ``ChildCounts``."""


@final
@dataclass(frozen=True, slots=True)
class StartChild:
    """Add and start a child (a ``ChildSpec``, or extra arguments for simple_one_for_one)."""

    spec_or_args: object


@final
@dataclass(frozen=True, slots=True)
class TerminateChild:
    """Stop a child, by id or (simple_one_for_one) by pid."""

    key: str | Pid


@final
@dataclass(frozen=True, slots=True)
class RestartChild:
    """Start a stopped child again."""

    child_id: str


@final
@dataclass(frozen=True, slots=True)
class DeleteChild:
    """Remove a stopped child's spec."""

    child_id: str


@final
@dataclass(frozen=True, slots=True)
class GetChildspec:
    """Answer with a child's ``ChildSpec``, by id or by pid."""

    key: str | Pid


@final
@dataclass(frozen=True, slots=True)
class GetCallbackModule:
    """Answer with the name of the supervisor's callback module."""


@final
@dataclass(frozen=True, slots=True)
class GetSpecInfo:
    """Answer with ``SpecInfo``."""


SupervisorRequest = (
    WhichChildren
    | CountChildren
    | StartChild
    | TerminateChild
    | RestartChild
    | DeleteChild
    | GetChildspec
    | GetCallbackModule
    | GetSpecInfo
)


async def start_link(
    module: ModuleType | str,
    args: object = None,
    *,
    name: str | None = None,
    timeout: float = math.inf,
) -> Pid | None:
    """Start a supervisor linked to the caller; returns None if ``init`` returned ``Ignore()``.

    Raises:
        StartError: ``init`` failed or a child failed to start (the reason says which).
        AlreadyStarted: ``name`` is held by a live process.
    """
    return await gen_server.start_link(
        ENGINE, (module_name(module), args, name), name=name, timeout=timeout
    )


async def _call(sup: Pid | str, request: SupervisorRequest, timeout: float = math.inf) -> Any:
    return await gen_server.call(sup, request, timeout=timeout)


def _value(sup: Pid | str, answer: object) -> Any:
    """The value of an ``Ok``; a refusal or failure becomes ``SupervisorError``."""
    match answer:
        case Ok(value=value):
            return value
        case Refused(reason=reason) | Failed(reason=reason):
            raise SupervisorError(sup, str(reason))
    raise TypeError(f"supervisor {sup} answered {answer!r}")


async def start_child(
    sup: Pid | str, spec_or_args: ChildSpec | tuple[Any, ...] | object
) -> Pid | None:
    """Add and start a child (a ``ChildSpec``; for simple_one_for_one, extra start arguments).

    Raises:
        StartError: the child failed to start.
        SupervisorError: the id is already present or running, or not a child spec.
        CalleeExited: the supervisor does not exist or ended (reason ``noproc`` if absent).
    """
    match await _call(sup, StartChild(spec_or_args)):
        case Ok(value=pid):
            assert pid is None or isinstance(pid, Pid)
            return pid
        case Refused(reason=("not_a_child_spec", _)):  # the caller's own value, not a copy
            raise SupervisorError(
                sup, f"start_child refused: {('not_a_child_spec', spec_or_args)!r}"
            )
        case Refused(reason=reason):
            raise SupervisorError(sup, f"start_child refused: {reason!r}")
        case Failed(reason=reason):
            raise StartError(getattr(spec_or_args, "id", spec_or_args), reason)
        case answer:
            raise TypeError(f"supervisor {sup} answered {answer!r}")


async def terminate_child(sup: Pid | str, key: str | Pid) -> None:
    """Stop a child (by id, or by pid for simple_one_for_one); its spec stays (not temporary).

    Raises:
        SupervisorError: no such child.
        CalleeExited: the supervisor does not exist or ended.
    """
    _value(sup, await _call(sup, TerminateChild(key)))


async def restart_child(sup: Pid | str, child_id: str) -> Pid | None:
    """Start a stopped child again.

    Raises:
        SupervisorError: no such child, it is running, or the start failed.
        CalleeExited: the supervisor does not exist or ended.
    """
    return _value(sup, await _call(sup, RestartChild(child_id)))  # type: ignore[no-any-return]


async def delete_child(sup: Pid | str, child_id: str) -> None:
    """Remove a stopped child's spec.

    Raises:
        SupervisorError: no such child, or it is running.
        CalleeExited: the supervisor does not exist or ended.
    """
    _value(sup, await _call(sup, DeleteChild(child_id)))


async def get_childspec(sup: Pid | str, key: str | Pid) -> ChildSpec:
    """The spec of a child, by id or by pid (the one object the supervisor holds).

    Raises:
        SupervisorError: no such child.
        CalleeExited: the supervisor does not exist or ended.
    """
    return _value(sup, await _call(sup, GetChildspec(key)))  # type: ignore[no-any-return]


async def get_callback_module(sup: Pid | str, *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The name of the supervisor's callback module (what its appup ``update`` names).

    The release handler asks each top supervisor this (as OTP's does): a supervisor runs
    the generic engine, what an upgrade changes is its callback module.

    Raises:
        CalleeExited: the supervisor does not exist or ended.
        CallTimeout: no answer within ``timeout`` (a busy, suspended or foreign process).
    """
    module = _value(sup, await _call(sup, GetCallbackModule(), timeout))
    assert isinstance(module, str)
    return module


async def get_spec_info(sup: Pid | str) -> SpecInfo:
    """The flags and child ids of the spec the supervisor runs (see ``SpecInfo``).

    Raises:
        CalleeExited: the supervisor does not exist or ended.
    """
    info = _value(sup, await _call(sup, GetSpecInfo()))
    assert isinstance(info, SpecInfo)
    return info


async def which_children(sup: Pid | str) -> list[ChildInfo]:
    """Every child, in start order.

    Raises:
        CalleeExited: the supervisor does not exist or ended.
    """
    return list(_value(sup, await _call(sup, WhichChildren())))


async def count_children(sup: Pid | str) -> ChildCounts:
    """How many specs, running children, supervisors and workers.

    Raises:
        CalleeExited: the supervisor does not exist or ended.
    """
    counts = _value(sup, await _call(sup, CountChildren()))
    assert isinstance(counts, ChildCounts)
    return counts


def restart_count(sup: Pid) -> int | None:
    """How many children ``sup`` has restarted since it started, or None if not a supervisor.

    Read from the supervisor's label, without a message (for metrics and observers): each
    restart of a child counts, a group restart (one_for_all, rest_for_one) once, and a
    restart retried after a failed start once per try. The intensity window
    (``intensity``/``period``) is another count: it forgets old restarts.
    """
    count = kernel.get_label(sup, RESTARTS_LABEL)
    return count if type(count) is int else None
