"""A gen_server worker for ``simple_one_for_one`` supervisors.

The template's argument is the collector pid; ``start_child(sup, extra)`` appends its
arguments, so ``init`` gets ``(collector, *extra)``. It reports ``("started", extra, pid)``
and, from ``terminate`` (it traps exits), ``("terminated", extra, reason)``. A cast
``("stop", reason)`` ends it with that reason.
"""

from __future__ import annotations

from typing import Any

from server import kernel
from server.behaviours.gen_server_callbacks import NoReply, Ok, Stop
from server.kernel import Pid

State = tuple[Pid, tuple[object, ...]]


def init(args: tuple[Any, ...]) -> object:
    collector, *extra = args
    kernel.trap_exit(True)
    kernel.send(collector, ("started", tuple(extra), kernel.self()))
    return Ok((collector, tuple(extra)))


def handle_cast(request: Any, state: State) -> object:
    if isinstance(request, tuple) and request[0] == "stop":
        return Stop(request[1], state)
    return NoReply(state)


def terminate(reason: Any, state: State) -> None:
    collector, extra = state
    kernel.send(collector, ("terminated", extra, reason))
