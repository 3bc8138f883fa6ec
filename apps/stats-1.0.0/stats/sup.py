"""The stats supervisor."""

from __future__ import annotations

from server.behaviours.supervisor_callbacks import SupervisorSpec, worker

__vsn__ = "1.0.0"


def init(args: object) -> SupervisorSpec:
    return SupervisorSpec(children=[worker("server", "stats.server", None, name="stats_server")])
