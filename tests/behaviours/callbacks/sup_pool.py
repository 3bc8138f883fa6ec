"""Version 1 of a ``simple_one_for_one`` pool of ``worker_dynamic`` children (shutdown 5 s).

``sup_pool_v2`` replaces the template (shutdown ``brutal_kill``, transient);
``sup_upgrade_v2`` is a ``one_for_all`` spec a pool cannot change to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.behaviours.supervisor_callbacks import SupervisorSpec, worker
from tests.behaviours.callbacks import worker_dynamic

if TYPE_CHECKING:
    from server.kernel import Pid


def init(collector: Pid) -> SupervisorSpec:
    return SupervisorSpec(
        children=[worker("pooled", worker_dynamic, collector, shutdown=5.0)],
        strategy="simple_one_for_one",
        intensity=3,
        period=5,
    )
