"""Version 2 of ``sup_upgrade``: ``one_for_all``, ``a`` now ``brutal_kill``, ``b`` dropped
from the specs, and a new child ``c``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import kernel
from server.behaviours.supervisor_callbacks import SupervisorSpec
from tests.behaviours.callbacks import worker_probe

if TYPE_CHECKING:
    from server.kernel import Pid


def init(collector: Pid) -> SupervisorSpec:
    kernel.send(collector, ("init", "v2"))
    return SupervisorSpec(
        children=[
            worker_probe.child("a", collector, shutdown="brutal_kill"),
            worker_probe.child("c", collector),
        ],
        strategy="one_for_all",
        intensity=3,
        period=5,
    )
