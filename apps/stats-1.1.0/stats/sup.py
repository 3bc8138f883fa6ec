"""The stats supervisor: the event manager, the activity machine, the route counter.

``rest_for_one``: a restarted ``stats_events`` restarts ``stats_activity`` after it (which
adds its handler again at init), and a restarted activity restarts the counter.
"""

from __future__ import annotations

from server.behaviours import gen_event, gen_statem
from server.behaviours.supervisor_callbacks import SupervisorSpec, worker

__vsn__ = "1.0.0"


def init(args: object) -> SupervisorSpec:
    return SupervisorSpec(
        strategy="rest_for_one",
        children=[
            gen_event.child_spec("events", "stats_events"),
            gen_statem.child_spec("activity", "stats.activity", name="stats_activity"),
            worker("server", "stats.server", None, name="stats_server"),
        ],
    )
