"""The release handler's supervisor: one child, restarted whenever it ends.

The boot starts it (``handler.start_supervisor``) instead of the bare handler, so a crash of
the handler (a bug, an error it did not expect) no longer leaves the node without one until
the node restarts: the supervisor starts it again at once, with the same ``HandlerConfig``,
and the new handler reads RELEASES again (``_handler.init``). Strategy ``one_for_one``, the
child ``permanent``. More than ``INTENSITY`` restarts within ``PERIOD`` seconds is a handler
that cannot run on this root: the supervisor gives up and ends with ``shutdown`` (the node
serves on without a release handler until it restarts).
"""

from __future__ import annotations

from server.behaviours.supervisor_callbacks import ChildSpec, SupervisorSpec
from server.release.handler import ENGINE, HandlerConfig, start_link

__all__ = ["CHILD_ID", "INTENSITY", "PERIOD", "init"]

CHILD_ID = "release_handler"
INTENSITY = 3
PERIOD = 60.0


def init(config: HandlerConfig) -> SupervisorSpec:
    """One child: the release handler, started with ``config`` (again after a crash)."""
    child = ChildSpec(
        id=CHILD_ID, start=(start_link, config), restart="permanent", modules=(ENGINE,)
    )
    return SupervisorSpec(
        children=[child], strategy="one_for_one", intensity=INTENSITY, period=PERIOD
    )
