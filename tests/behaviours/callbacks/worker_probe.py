"""A gen_server worker that reports its life to a collector process.

``init`` sends ``("started", id, pid)`` to the collector and ``terminate`` sends
``("terminated", id, reason)``, so a test sees the order in which a supervisor starts and
stops its children. The test makes it end with a cast: ``("stop", reason)`` returns
``Stop(reason)``, ``("raise", text)`` raises ``RuntimeError(text)``.

``plan`` scripts the outcome of successive starts, one item per ``init``: ``"start"``,
``"ignore"`` (``Ignore()``) or ``"refuse"`` (``Stop(("refused", id))``); once it is empty
every start succeeds. ``terminate_delay`` makes ``terminate`` take that long (after
sending ``("terminating", id, pid)``), like a worker with slow clean-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from server import kernel
from server.behaviours.gen_server_callbacks import Ignore, NoReply, Ok, Reply, Stop
from server.behaviours.supervisor_callbacks import (
    ChildSpec,
    RestartType,
    Shutdown,
    worker,
)

if TYPE_CHECKING:
    from server.kernel import From, Pid


@dataclass(frozen=True, slots=True)
class Probe:
    """The worker's arguments (and its state)."""

    id: str
    collector: Pid
    trap_exit: bool = False
    plan: list[str] = field(default_factory=list)
    terminate_delay: float = 0.0


def child(
    child_id: str,
    collector: Pid,
    *,
    trap_exit: bool = False,
    plan: list[str] | None = None,
    terminate_delay: float = 0.0,
    restart: RestartType = "permanent",
    shutdown: Shutdown | None = None,
    significant: bool = False,
) -> ChildSpec:
    """The child spec of a probe worker."""
    probe = Probe(child_id, collector, trap_exit, plan if plan is not None else [], terminate_delay)
    return worker(
        child_id,
        __name__,
        probe,
        restart=restart,
        shutdown=shutdown,
        significant=significant,
    )


def init(args: Probe) -> object:
    outcome = args.plan.pop(0) if args.plan else "start"
    if outcome == "ignore":
        kernel.send(args.collector, ("ignored", args.id))
        return Ignore()
    if outcome == "refuse":
        kernel.send(args.collector, ("refused", args.id))
        return Stop(("refused", args.id))
    if args.trap_exit:
        kernel.trap_exit(True)
    kernel.send(args.collector, ("started", args.id, kernel.self()))
    return Ok(args)


def handle_call(request: Any, from_: From, state: Probe) -> object:
    if request == "ping":
        return Reply("pong", state)
    return Reply(("unknown", request), state)


def handle_cast(request: Any, state: Probe) -> object:
    match request:
        case ("stop", reason):
            return Stop(reason, state)
        case ("raise", text):
            raise RuntimeError(text)
    return NoReply(state)


async def terminate(reason: Any, state: Probe) -> None:
    if state.terminate_delay:
        kernel.send(state.collector, ("terminating", state.id, kernel.self()))
        await anyio.sleep(state.terminate_delay)
    kernel.send(state.collector, ("terminated", state.id, reason))
