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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, final

from server.behaviours import gen_server
from server.behaviours._dispatch import module_name
from server.errors import StartError, SupervisorError

if TYPE_CHECKING:
    from types import ModuleType

    from server.behaviours.supervisor_callbacks import ChildSpec
    from server.kernel import Pid

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "count_children",
    "delete_child",
    "get_childspec",
    "restart_child",
    "start_child",
    "start_link",
    "terminate_child",
    "which_children",
]

ENGINE = "server.behaviours._supervisor_engine"


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


async def _request(sup: Pid | str, request: tuple[Any, ...]) -> Any:
    return await gen_server.call(sup, request, timeout=math.inf)


def _ok(sup: Pid | str, answer: Any) -> Any:
    status, value = answer
    if status == "ok":
        return value
    raise SupervisorError(sup, str(value))


async def start_child(
    sup: Pid | str, spec_or_args: ChildSpec | tuple[Any, ...] | object
) -> Pid | None:
    """Add and start a child (a ``ChildSpec``; for simple_one_for_one, extra start arguments).

    Raises:
        StartError: the child failed to start.
        SupervisorError: the id is already present or running.
    """
    status, value = await _request(sup, ("start_child", spec_or_args))
    if status == "ok":
        return value  # type: ignore[no-any-return]
    if _is_refusal(value):
        raise SupervisorError(sup, f"start_child refused: {value!r}")
    raise StartError(getattr(spec_or_args, "id", spec_or_args), value)


def _is_refusal(reason: object) -> bool:
    """A start_child the supervisor refused, as opposed to a child that failed to start."""
    if reason == "already_present":
        return True
    return isinstance(reason, tuple) and reason[:1] in (("already_started",), ("not_a_child_spec",))


async def terminate_child(sup: Pid | str, key: str | Pid) -> None:
    """Stop a child (by id, or by pid for simple_one_for_one); its spec stays (not temporary).

    Raises:
        SupervisorError: no such child.
    """
    _ok(sup, await _request(sup, ("terminate_child", key)))


async def restart_child(sup: Pid | str, child_id: str) -> Pid | None:
    """Start a stopped child again.

    Raises:
        SupervisorError: no such child, it is running, or the start failed.
    """
    return _ok(sup, await _request(sup, ("restart_child", child_id)))  # type: ignore[no-any-return]


async def delete_child(sup: Pid | str, child_id: str) -> None:
    """Remove a stopped child's spec.

    Raises:
        SupervisorError: no such child, or it is running.
    """
    _ok(sup, await _request(sup, ("delete_child", child_id)))


async def get_childspec(sup: Pid | str, key: str | Pid) -> ChildSpec:
    """The spec of a child.

    Raises:
        SupervisorError: no such child.
    """
    return _ok(sup, await _request(sup, ("get_childspec", key)))  # type: ignore[no-any-return]


async def which_children(sup: Pid | str) -> list[ChildInfo]:
    """Every child, in start order."""
    rows = await _request(sup, ("which_children",))
    return [ChildInfo(*row) for row in rows]


async def count_children(sup: Pid | str) -> ChildCounts:
    """How many specs, running children, supervisors and workers."""
    return ChildCounts(**await _request(sup, ("count_children",)))
