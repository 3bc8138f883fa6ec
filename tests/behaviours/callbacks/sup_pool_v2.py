"""Version 2 of ``sup_pool``: the template becomes transient with ``brutal_kill``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.behaviours.supervisor_callbacks import SupervisorSpec, worker
from tests.behaviours.callbacks import worker_dynamic

if TYPE_CHECKING:
    from server.kernel import Pid


def init(collector: Pid) -> SupervisorSpec:
    return SupervisorSpec(
        children=[
            worker("pooled", worker_dynamic, collector, restart="transient", shutdown="brutal_kill")
        ],
        strategy="simple_one_for_one",
        intensity=3,
        period=5,
    )
