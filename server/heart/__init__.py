"""The heart: OTP's watchdog behind ``server start``, restarting its node when it dies.

``run_heart`` is the loop (see ``server.heart._run`` for how it decides); ``start_detached``
starts one in the background; the files it keeps under the root are described in
``server.heart._files``.
"""

from __future__ import annotations

from server.heart._detach import DetachedHeart, start_detached
from server.heart._run import (
    HEART_ENV,
    RESTARTS_ENV,
    node_command,
    run_heart,
    run_heart_on_root,
)

__all__ = [
    "HEART_ENV",
    "RESTARTS_ENV",
    "DetachedHeart",
    "node_command",
    "run_heart",
    "run_heart_on_root",
    "start_detached",
]
