"""Version 1 of an upgradable supervisor (the module the supervisor is started with).

``init`` tells the collector ``("init", "v1")`` (a side effect that runs again on every
code change) and supervises ``a`` (shutdown 5 s) and ``b`` under ``one_for_one``. The
versions that replace it in the code-change tests are ``sup_upgrade_v2`` (valid),
``sup_upgrade_bad`` (a misspelled shutdown) and ``sup_upgrade_ignore`` (``Ignore()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import kernel
from server.behaviours.supervisor_callbacks import SupervisorSpec
from tests.behaviours.callbacks import worker_probe

if TYPE_CHECKING:
    from server.kernel import Pid


def init(collector: Pid) -> SupervisorSpec:
    kernel.send(collector, ("init", "v1"))
    return SupervisorSpec(
        children=[
            worker_probe.child("a", collector, shutdown=5.0),
            worker_probe.child("b", collector),
        ],
        strategy="one_for_one",
        intensity=3,
        period=5,
    )
