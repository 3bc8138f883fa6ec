"""The top supervisor of the test applications: one worker, restart intensity from args.

``args["intensity"]`` (default 1) is how many restarts it allows; with 0 one crash of
its worker makes it give up with ``shutdown``.
"""

from __future__ import annotations

from typing import Any

from server.behaviours.supervisor_callbacks import SupervisorSpec, worker


def init(args: Any) -> SupervisorSpec:
    return SupervisorSpec(
        children=[worker("worker", "tests.app.callbacks.app_worker", args["id"])],
        strategy="one_for_one",
        intensity=args.get("intensity", 1),
        period=5,
    )
