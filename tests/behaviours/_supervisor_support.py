"""Helpers for the supervisor tests: bounded waits, child events and supervisor reports.

Everything here runs inside a test process (``node.run_process(body)``), which is also the
collector the ``worker_probe`` children report to. Each wait is bounded by
``anyio.fail_after`` so that a hang fails at once and names the step (on virtual time the
bound is in virtual seconds and costs no real time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeVar

from server import kernel
from server.behaviours import gen_server, supervisor
from server.kernel import DownMessage, Pid, Ref
from tests.behaviours._helpers import drain, recv, step, within
from tests.behaviours.callbacks import sup_given

if TYPE_CHECKING:
    import logging

    import pytest

    from server.behaviours.supervisor_callbacks import SupervisorSpec

T = TypeVar("T")
Matcher = Callable[[object], bool]

#: The longest any single waiting step may take (seconds; virtual seconds on virtual time).
STEP: Final = 3.0

__all__ = ["drain", "recv", "step", "within"]  # the house waiting helpers, re-exported

#: The logger supervisor reports are written to.
SUPERVISOR_LOGGER: Final = "server.behaviours.supervisor"


def is_event(message: object) -> bool:
    """A report of a probe child: ``("started", id, pid)`` or ``("terminated", id, reason)``."""
    return type(message) is tuple and len(message) == 3 and message[0] in ("started", "terminated")


async def started(child_id: object) -> Pid:
    """Wait for ``("started", child_id, pid)`` and return the pid."""
    message = await recv(
        lambda m: is_event(m) and m[0] == "started" and m[1] == child_id,  # type: ignore[index]
        step=f"{child_id!r} started",
    )
    assert type(message) is tuple
    pid = message[2]
    assert isinstance(pid, Pid)
    return pid


async def terminated(child_id: object) -> object:
    """Wait for ``("terminated", child_id, reason)`` and return the reason."""
    message = await recv(
        lambda m: is_event(m) and m[0] == "terminated" and m[1] == child_id,  # type: ignore[index]
        step=f"{child_id!r} terminated",
    )
    assert type(message) is tuple
    return message[2]


async def events(count: int, *, name: str) -> list[tuple[str, object]]:
    """The next ``count`` child events, as ``(kind, id)`` in the order they were sent."""
    taken: list[tuple[str, object]] = []
    for _ in range(count):
        message = await recv(is_event, step=f"{name} (event {len(taken) + 1} of {count})")
        assert type(message) is tuple
        taken.append((message[0], message[1]))
    return taken


def pending_events() -> list[object]:
    """Child events already queued (without waiting): after a sync point, there must be none."""
    return [m for m in drain() if is_event(m)]


async def down(ref: Ref, *, name: str = "DOWN", limit: float = STEP) -> DownMessage:
    """Wait for the ``DownMessage`` of monitor ``ref``."""
    message = await recv(lambda m: type(m) is DownMessage and m.ref is ref, step=name, limit=limit)
    assert isinstance(message, DownMessage)
    return message


async def reason_of(ref: Ref, *, name: str = "DOWN", limit: float = STEP) -> object:
    """Wait for the ``DownMessage`` of monitor ``ref`` and return its reason."""
    return (await down(ref, name=name, limit=limit)).reason


async def start_sup(spec: SupervisorSpec, *, name: str | None = None) -> Pid:
    """Start a ``sup_given`` supervisor linked to the test process."""
    sup = await within(supervisor.start_link(sup_given, spec, name=name), "start supervisor")
    assert isinstance(sup, Pid)
    return sup


async def children(sup: Pid) -> dict[str | None, Pid | str | None]:
    """``which_children`` as ``{id: pid}``, in start order."""
    rows = await within(supervisor.which_children(sup), "which_children")
    return {row.id: row.pid for row in rows}


async def pid_of(sup: Pid, child_id: str) -> Pid:
    """The pid of a running child."""
    pid = (await children(sup))[child_id]
    assert isinstance(pid, Pid), f"{child_id} is not running: {pid!r}"
    return pid


async def kill_and_wait(pid: Pid, reason: object = kernel.KILL) -> object:
    """Send ``pid`` an exit signal and wait until it has ended; returns its exit reason."""
    ref = kernel.monitor(pid)
    kernel.exit(pid, reason)
    return await reason_of(ref, name=f"{pid} ended")


async def stop_child(pid: Pid, reason: object) -> object:
    """Make a probe worker end with ``reason`` (a cast) and wait until it has ended."""
    ref = kernel.monitor(pid)
    gen_server.cast(pid, ("stop", reason))
    return await reason_of(ref, name=f"{pid} stopped with {reason!r}")


def reports(
    caplog: pytest.LogCaptureFixture, context: str | None = None
) -> list[logging.LogRecord]:
    """Supervisor reports (``error_context`` equal to ``context``, if given), oldest first."""
    return [
        r
        for r in caplog.records
        if r.name == SUPERVISOR_LOGGER
        and getattr(r, "report", None) == "supervisor_report"
        and (context is None or getattr(r, "error_context", None) == context)
    ]
