"""The supervisor callback contract: child specs and supervisor flags.

A supervisor's callback module defines one function, ``init(args)``, returning a
``SupervisorSpec`` (flags and child specs) or ``Ignore()``. ``init`` runs again when the
supervisor is upgraded (appup ``update ... supervisor``): existing children get their new
specs without being restarted, new ids are added but not started, missing ids are kept.

Defaults follow OTP: strategy ``one_for_one``, intensity 1 restart per period of 5 s;
children ``permanent``, shutdown 5 s for workers and ``math.inf`` for supervisors.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, final

from server.kernel import Pid

if TYPE_CHECKING:
    from types import ModuleType

    from server.behaviours.gen_server_callbacks import Ignore

__all__ = [
    "AutoShutdown",
    "ChildSpec",
    "RestartType",
    "Shutdown",
    "Strategy",
    "SupervisorCallbacks",
    "SupervisorSpec",
    "supervisor_child",
    "worker",
]

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"]
RestartType = Literal["permanent", "transient", "temporary"]
AutoShutdown = Literal["never", "any_significant", "all_significant"]
#: Seconds to wait after ``shutdown`` before ``kill``, ``math.inf``, or ``"brutal_kill"``.
Shutdown = float | Literal["brutal_kill"]

StartFunction = Callable[..., Awaitable[Pid | None]]

_STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one")
_RESTARTS = ("permanent", "transient", "temporary")
_AUTO_SHUTDOWNS = ("never", "any_significant", "all_significant")


@final
@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start, restart and stop one child.

    ``start`` is ``(async_fn, *args)``; the function returns the child's pid (linked to
    the supervisor, which calls it), or None to be ignored, and raises ``StartError`` when
    the child fails to start.

    Raises:
        ValueError: a field has a value OTP would reject (the message names it).
    """

    id: str
    start: tuple[Any, ...]
    restart: RestartType = "permanent"
    shutdown: Shutdown | None = None
    type: Literal["worker", "supervisor"] = "worker"
    modules: tuple[str, ...] | Literal["dynamic"] = ()
    significant: bool = False

    def __post_init__(self) -> None:
        if not self.start or not callable(self.start[0]):  # untyped callers get a clear error
            raise ValueError(
                f"child {self.id!r}: start must be (async_fn, *args), got {self.start!r}"
            )
        if self.restart not in _RESTARTS:
            raise ValueError(f"child {self.id!r}: invalid restart {self.restart!r}")
        if self.type not in ("worker", "supervisor"):
            raise ValueError(f"child {self.id!r}: invalid type {self.type!r}")
        shutdown = self.shutdown
        if shutdown is None:
            object.__setattr__(self, "shutdown", math.inf if self.type == "supervisor" else 5.0)
        elif shutdown != "brutal_kill" and not _is_seconds(shutdown, allow_zero=True):
            raise ValueError(f"child {self.id!r}: invalid shutdown {shutdown!r}")
        if self.modules != "dynamic" and not isinstance(self.modules, tuple):
            raise ValueError(f"child {self.id!r}: modules must be a tuple of names or 'dynamic'")

    @property
    def shutdown_value(self) -> Shutdown:
        """The shutdown, defaults applied."""
        assert self.shutdown is not None
        return self.shutdown


@final
@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    """What ``init`` returns: the flags and the children, in start order.

    Raises:
        ValueError: invalid flags, duplicate child ids, or a ``significant`` child that
            OTP would refuse.
    """

    children: Sequence[ChildSpec] = ()
    strategy: Strategy = "one_for_one"
    intensity: int = 1
    period: float = 5.0
    auto_shutdown: AutoShutdown = "never"

    def __post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise ValueError(f"invalid strategy {self.strategy!r}")
        if not _is_count(self.intensity):
            raise ValueError(f"invalid intensity {self.intensity!r}: a count >= 0")
        if not _is_seconds(self.period, allow_zero=False):
            raise ValueError(f"invalid period {self.period!r}: seconds > 0")
        if self.auto_shutdown not in _AUTO_SHUTDOWNS:
            raise ValueError(f"invalid auto_shutdown {self.auto_shutdown!r}")
        object.__setattr__(self, "children", tuple(self.children))
        seen: set[str] = set()
        for child in self.children:
            if not isinstance(child, ChildSpec):
                raise ValueError(f"not a ChildSpec: {child!r}")
            if child.id in seen:
                raise ValueError(f"duplicate child id {child.id!r}")
            seen.add(child.id)
            if child.significant and (
                child.restart == "permanent" or self.auto_shutdown == "never"
            ):
                raise ValueError(
                    f"child {child.id!r}: significant children must be transient or temporary "
                    "under an auto_shutdown other than 'never'"
                )
        if self.strategy == "simple_one_for_one":
            if len(self.children) != 1:
                raise ValueError("simple_one_for_one takes exactly one child spec (the template)")
            if self.auto_shutdown != "never":
                raise ValueError("simple_one_for_one does not support auto_shutdown")


def _is_seconds(value: object, *, allow_zero: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value >= 0 if allow_zero else value > 0


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class SupervisorCallbacks(Protocol):
    """What a supervisor callback module provides."""

    def init(self, args: Any) -> SupervisorSpec | Ignore: ...


def _name(module: ModuleType | str) -> str:
    return module if isinstance(module, str) else module.__name__


def worker(
    id: str,  # noqa: A002 - OTP's field name
    module: ModuleType | str,
    args: object = None,
    *,
    restart: RestartType = "permanent",
    shutdown: Shutdown | None = None,
    significant: bool = False,
    name: str | None = None,
) -> ChildSpec:
    """A child spec for a gen_server worker started with ``gen_server.start_link``."""
    from server.behaviours.gen_server import start_link

    return ChildSpec(
        id=id,
        start=(_start_gen_server, start_link, _name(module), args, name),
        restart=restart,
        shutdown=shutdown,
        type="worker",
        modules=(_name(module),),
        significant=significant,
    )


def supervisor_child(
    id: str,  # noqa: A002 - OTP's field name
    module: ModuleType | str,
    args: object = None,
    *,
    restart: RestartType = "permanent",
    shutdown: Shutdown | None = None,
    name: str | None = None,
) -> ChildSpec:
    """A child spec for a nested supervisor started with ``supervisor.start_link``."""
    from server.behaviours.supervisor import start_link

    return ChildSpec(
        id=id,
        start=(_start_gen_server, start_link, _name(module), args, name),
        restart=restart,
        shutdown=math.inf if shutdown is None else shutdown,
        type="supervisor",
        modules=(_name(module),),
    )


async def _start_gen_server(
    start_link: Callable[..., Awaitable[Pid | None]],
    module: str,
    args: object,
    name: str | None,
    *extra: object,
) -> Pid | None:
    if extra:  # simple_one_for_one: start_child's arguments are appended
        args = (args, *extra) if args is not None else extra if len(extra) > 1 else extra[0]
    return await start_link(module, args, name=name)
