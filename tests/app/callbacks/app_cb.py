"""An application callback module that reports each callback to the test's collector.

``start(start_type, args)`` does what ``args["start"]`` says (``"ok"`` by default: start the
top supervisor ``top_sup`` registered as ``<id>_sup``), after sending
``("app_event", "start", id, start_type, master_pid)``. ``prep_stop`` and ``stop`` report
too, so a test sees the order of every stop. ``args`` is JSON (it comes from a spec).
"""

from __future__ import annotations

import contextlib
from typing import Any

from server import kernel
from server.app import get_env
from server.behaviours import supervisor
from server.kernel import Pid, ProcessExit

#: The registered name of the test process that collects the events.
COLLECTOR = "app_test_collector"


def report(*event: object) -> None:
    """Send ``("app_event", *event)`` to the collector (if it still runs)."""
    with contextlib.suppress(LookupError):
        kernel.send(COLLECTOR, ("app_event", *event))


async def start(start_type: str, args: Any) -> object:
    app_id = args["id"]
    report("start", app_id, start_type, kernel.self())
    match args.get("start", "ok"):
        case "ok":
            top = await supervisor.start_link(
                "tests.app.callbacks.top_sup", args, name=f"{app_id}_sup"
            )
            return (top, {"id": app_id, "env": get_env(app_id, "greeting")})
        case "pid_only":
            return await supervisor.start_link("tests.app.callbacks.top_sup", args)
        case "raise":
            raise RuntimeError(f"{app_id} cannot start")
        case "exit_normal":
            raise ProcessExit(kernel.NORMAL)
        case "junk":
            return "not a pid"
    raise AssertionError(f"unknown start outcome {args!r}")


def prep_stop(state: Any) -> object:
    report("prep_stop", state["id"])
    return {**state, "prepped": True}


def stop(state: Any) -> None:
    report("stop", state["id"], state.get("prepped", False))


def top_of(app_id: str) -> Pid:
    """The top supervisor of the running application ``app_id``."""
    pid = kernel.whereis(f"{app_id}_sup")
    assert pid is not None, f"{app_id} has no top supervisor"
    return pid
