"""The heart: OTP's watchdog behind ``server start``, restarting its node when it dies.

``run_heart`` is the loop (see ``server.heart._run`` for how it decides); ``start_detached``
starts one in the background; the files it keeps under the root are described in
``server.heart._files``. ``start_nodes`` starts N nodes of one machine, each under its
heart, as one cluster sharing an HTTP port (``server start --nodes N``).
"""

from __future__ import annotations

from server.heart._detach import DetachedHeart, start_detached
from server.heart._multi import (
    MANIFEST,
    LocalNode,
    StoppedNode,
    local_node_roots,
    start_nodes,
    stop_nodes,
)
from server.heart._run import (
    HEART_ENV,
    RESTARTS_ENV,
    node_command,
    run_heart,
    run_heart_on_root,
)

__all__ = [
    "HEART_ENV",
    "MANIFEST",
    "RESTARTS_ENV",
    "DetachedHeart",
    "LocalNode",
    "StoppedNode",
    "local_node_roots",
    "node_command",
    "run_heart",
    "run_heart_on_root",
    "start_detached",
    "start_nodes",
    "stop_nodes",
]
