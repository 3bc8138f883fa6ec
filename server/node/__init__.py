"""The node: its boot (``run_node``) and the control commands it serves.

This package sits above ``release`` and ``control``: the boot runs the release handler and
the node's services, and the command set (``COMMANDS``, one table for the node and the CLI)
drives the release handler through the control server. ``release`` itself never reaches
the control socket.

The boot and the command handlers are re-exported lazily (on first use): a command line
that only talks to a running node reads ``COMMANDS`` and ``node_config`` and never loads
the node itself (what a CLI process costs to start, every command).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from server.node._command_table import COMMANDS, Command
from server.node._config import node_config
from server.node._lock import NodeLock
from server.node._notify import NOTIFY_ENV, notify

if TYPE_CHECKING:
    from server.node._boot import (
        RESTART_NEW_PROCESS,
        install_embedded,
        install_package,
        run_node,
        stop_in_reverse,
    )
    from server.node._commands import NodeCommandHandler, control_service, node_commands

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

#: the names re-exported on first use, and the module each comes from
_LAZY = {
    "RESTART_NEW_PROCESS": "server.node._boot",
    "install_embedded": "server.node._boot",
    "install_package": "server.node._boot",
    "run_node": "server.node._boot",
    "stop_in_reverse": "server.node._boot",
    "NodeCommandHandler": "server.node._commands",
    "control_service": "server.node._commands",
    "node_commands": "server.node._commands",
}


def __getattr__(name: str) -> Any:
    """A lazy re-export (PEP 562): import its module, then keep the name here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
