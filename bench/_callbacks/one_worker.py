"""A one_for_one supervisor over a single ``notify`` worker.

``args`` is ``(listener, intensity)``: the name the worker notifies and how many restarts
the supervisor allows (within an hour) before it gives up.
"""

from __future__ import annotations

from typing import Any

from server.behaviours.supervisor_callbacks import SupervisorSpec, worker


def init(args: Any) -> SupervisorSpec:
    listener, intensity = args
    return SupervisorSpec(
        children=[worker("worker", "bench._callbacks.notify", listener)],
        strategy="one_for_one",
        intensity=intensity,
        period=3600.0,
    )
