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

from server.cli._output import exit_status, live_table, progress_bar, show
from server.control import request_sync
from server.node import COMMANDS, node_config

if TYPE_CHECKING:
    import argparse

    from server.node import Command

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
    payload = _payload(command, args)
    console = Console()
    as_json = bool(getattr(args, "json", False))
    if command.progress and not as_json:  # JSON output stays one document
        live = live_table if command.name == "cluster" else progress_bar
        with live(console, command.name) as on_progress:
            result = request_sync(
                socket, command.name, payload, on_progress=on_progress, timeout=command.timeout
            )
    else:
        result = request_sync(socket, command.name, payload, timeout=command.timeout)
    if as_json:
        print(json.dumps(result, indent=2))
        return exit_status(command.name, result)
    show(console, command.name, result)
    pid = result.get("pid") if command.name == "stop" and isinstance(result, dict) else None
    if isinstance(pid, int):
        return _wait_stopped(console, pid, command.timeout)
    return exit_status(command.name, result)


def _payload(command: Command, args: argparse.Namespace) -> dict[str, Any]:
    """The request's ``args``: its positional arguments, switches and options as given."""
    payload: dict[str, Any] = {}
    for name in (command.argument, command.extra_argument):
        if name is not None and getattr(args, name, None) is not None:
            payload[name] = getattr(args, name)
    for option, _metavar, _help in command.options:
        value = getattr(args, f"option_{option}", None)
        if value is not None:
            payload.setdefault(option, value)
    if isinstance(payload.get("package"), str):  # the node may not share this working dir
        payload["package"] = str(Path(payload["package"]).resolve())
    for flag, _help in command.flags:
        if getattr(args, flag, False):
            payload[flag] = True
    return payload


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
