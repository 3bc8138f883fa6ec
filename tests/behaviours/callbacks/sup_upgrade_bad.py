"""A broken version of ``sup_upgrade``: the shutdown of ``a`` is misspelled ``brutal_kil``
(release_handler_SUITE's ``upgrade_supervisor_fail``), so building the spec fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server import kernel
from server.behaviours.supervisor_callbacks import SupervisorSpec
from tests.behaviours.callbacks import worker_probe

if TYPE_CHECKING:
    from server.kernel import Pid


def init(collector: Pid) -> SupervisorSpec:
    kernel.send(collector, ("init", "bad"))
    misspelled: Any = "brutal_kil"
    return SupervisorSpec(
        children=[worker_probe.child("a", collector, shutdown=misspelled)],
        strategy="one_for_all",
    )
