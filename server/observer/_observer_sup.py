"""The observer's supervisor: one child, the observer, restarted whenever it crashes.

The boot starts it (``observer.start_supervisor``) when sys.config has a
``[node.observer]`` table, so a bug in a page's code or a listener that fails no longer
leaves the node without its view until it restarts: the observer is started again at
once, with the same settings and token (a page open in a browser reconnects to the URL it
has; on ``port = 0`` the port may change, and the new URL is logged). Strategy
``one_for_one``, the child ``permanent``; more than ``INTENSITY`` restarts within
``PERIOD`` seconds is an observer that cannot run: the supervisor gives up, and the node
serves on without its view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.behaviours.supervisor_callbacks import ChildSpec, SupervisorSpec
from server.observer._service import NAME, start_link

if TYPE_CHECKING:
    from server.kernel import Pid
    from server.spec.sys_config import ObserverSettings

__all__ = ["CHILD_ID", "INTENSITY", "PERIOD", "init"]

CHILD_ID = NAME
INTENSITY = 3
PERIOD = 60.0


def init(args: tuple[ObserverSettings, Pid, str]) -> SupervisorSpec:
    """One child: the observer, started with the boot's settings and token."""
    settings, boot, token = args
    child = ChildSpec(
        id=CHILD_ID,
        start=(start_link, settings, boot, token),
        restart="permanent",
        modules=("server.observer._service",),
    )
    return SupervisorSpec(
        children=[child], strategy="one_for_one", intensity=INTENSITY, period=PERIOD
    )
