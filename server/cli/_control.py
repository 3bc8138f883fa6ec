"""The ``server`` commands that talk to a running node over its control socket.

Each command is a row of the node's one command table (``server.node.COMMANDS``): its
argument, its wait and whether it streams progress come from there. Long operations show
progress; listings are tables; ``--json`` (read-only commands) prints the answer for
scripts; a failure prints one line saying what went wrong and exits non-zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from server.cli._output import progress_bar, show
from server.control import request_sync
from server.node import COMMANDS, node_config

if TYPE_CHECKING:
    import argparse

__all__ = ["run_control_command"]


def run_control_command(args: argparse.Namespace) -> int:
    """Send the command to the node and print the answer for people (or as JSON).

    Raises:
        ControlError: the node is not running or refused (``RemoteError``).
        SpecError: ``sys.config`` is malformed.
    """
    command = COMMANDS[args.command]
    config = node_config(args.root.resolve(), args.config)  # the root's, or its release's
    socket = (args.root / config.node.control_socket).resolve()
    payload: dict[str, Any] = {}
    if command.argument is not None:
        value = getattr(args, command.argument)
        payload[command.argument] = (
            str(Path(value).resolve()) if command.argument == "package" else value
        )
    console = Console()
    if command.progress:
        with progress_bar(console, command.name) as on_progress:
            result = request_sync(
                socket, command.name, payload, on_progress=on_progress, timeout=command.timeout
            )
    else:
        result = request_sync(socket, command.name, payload, timeout=command.timeout)
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
        return 0
    show(console, command.name, result)
    return 0
