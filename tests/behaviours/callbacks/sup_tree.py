"""A two-level supervision tree: ``top`` supervises ``w1``, the supervisor ``sub`` and ``w2``;
``sub`` supervises ``a`` and ``b``. Every worker is a trapping ``worker_probe`` reporting to
the collector, so stopping the tree shows the order of every ``terminate``.

``sub`` allows no restart at all (intensity 0): one crash of ``a`` or ``b`` makes it give
up with ``shutdown``, and ``top`` then decides by ``sub``'s restart type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.behaviours.supervisor_callbacks import (
    RestartType,
    SupervisorSpec,
    supervisor_child,
)
from tests.behaviours.callbacks import worker_probe

if TYPE_CHECKING:
    from server.kernel import Pid


@dataclass(frozen=True, slots=True)
class Tree:
    """Which level to build, who to report to, and ``sub``'s restart type."""

    level: str
    collector: Pid
    sub_restart: RestartType = "permanent"


def init(args: Tree) -> SupervisorSpec:
    collector = args.collector
    if args.level == "top":
        return SupervisorSpec(
            children=[
                worker_probe.child("w1", collector, trap_exit=True),
                supervisor_child("sub", __name__, Tree("sub", collector), restart=args.sub_restart),
                worker_probe.child("w2", collector, trap_exit=True),
            ],
            strategy="one_for_one",
            intensity=1,
            period=5,
        )
    return SupervisorSpec(
        children=[
            worker_probe.child("a", collector, trap_exit=True),
            worker_probe.child("b", collector, trap_exit=True),
        ],
        strategy="one_for_one",
        intensity=0,
        period=5,
    )
