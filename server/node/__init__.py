"""The node: its boot (``run_node``) and the control commands it serves.

This package sits above ``release`` and ``control``: the boot runs the release handler and
the node's services, and the command set (``COMMANDS``, one table for the node and the CLI)
drives the release handler through the control server. ``release`` itself never reaches
the control socket.
"""

from __future__ import annotations

from server.node._boot import (
    RESTART_NEW_PROCESS,
    install_embedded,
    install_package,
    node_config,
    run_node,
    stop_in_reverse,
)
from server.node._commands import (
    COMMANDS,
    Command,
    NodeCommandHandler,
    control_service,
    node_commands,
)
from server.node._lock import NodeLock
from server.node._notify import NOTIFY_ENV, notify

__all__ = [
    "COMMANDS",
    "NOTIFY_ENV",
    "RESTART_NEW_PROCESS",
    "Command",
    "NodeCommandHandler",
    "NodeLock",
    "control_service",
    "install_embedded",
    "install_package",
    "node_commands",
    "node_config",
    "notify",
    "run_node",
    "stop_in_reverse",
]
