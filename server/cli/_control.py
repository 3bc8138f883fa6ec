"""The ``server`` commands that talk to a running node over its control socket.

Each command is a row of the node's one command table (``server.node.COMMANDS``): its
argument, its wait and whether it streams progress come from there. Long operations show
progress; listings are tables; ``--json`` (read-only commands) prints the answer for
scripts; a failure prints one line saying what went wrong and exits non-zero.
"""

from __future__ import annotations

import json
import os
import select
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
    for flag, _help in command.flags:
        if getattr(args, flag, False):
            payload[flag] = True
    console = Console()
    as_json = bool(getattr(args, "json", False))
    if command.progress and not as_json:  # JSON output stays one document
        with progress_bar(console, command.name) as on_progress:
            result = request_sync(
                socket, command.name, payload, on_progress=on_progress, timeout=command.timeout
            )
    else:
        result = request_sync(socket, command.name, payload, timeout=command.timeout)
    if as_json:
        print(json.dumps(result, indent=2))
        return 0
    show(console, command.name, result)
    pid = result.get("pid") if command.name == "stop" and isinstance(result, dict) else None
    if isinstance(pid, int):
        return _wait_stopped(console, pid, command.timeout)
    return 0


def _wait_stopped(console: Console, pid: int, timeout: float) -> int:
    """Wait until the node's OS process ``pid`` has ended (its applications stopped)."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        console.print("node stopped")
        return 0
    try:
        with console.status("waiting for the node to exit"):
            ended = select.select([handle], [], [], timeout)[0]
    finally:
        os.close(handle)
    if not ended:
        console.print(f"[red]the node (pid {pid}) still runs {timeout:g} s later[/red]")
        return 1
    console.print("node stopped")
    return 0
