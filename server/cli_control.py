"""The ``server`` commands that talk to a running node over its control socket.

Every command takes ``--root DIR`` (the node's root; default the current directory) and
``--config FILE`` (default ``<root>/sys.config``, where the socket's path is set). Read-only
commands take ``--json`` for scripts. Long operations show progress; listings are tables;
a failure prints one line saying what went wrong and exits non-zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from server.control.client import request_sync
from server.spec.sys_config import read_sys_config

if TYPE_CHECKING:
    import argparse

    from server.control.protocol import ProgressInfo

__all__ = ["COMMANDS", "add_control_commands", "run_control_command"]

#: command -> (help, positional argument or None, read-only, timeout in seconds)
COMMANDS: dict[str, tuple[str, str | None, bool, float]] = {
    "ping": ("check that the node answers", None, True, 10.0),
    "status": ("release, OS pid, uptime, applications, process count", None, True, 10.0),
    "releases": ("the releases of the node and their status", None, True, 10.0),
    "processes": ("every process: name, behaviour, module, vsn, mailbox", None, True, 30.0),
    "code": ("every application module version in memory: current and old", None, True, 10.0),
    "tree": ("the supervision trees of the running applications", None, True, 30.0),
    "env": ("the env of an application", "app", True, 10.0),
    "unpack": ("verify and unpack a release package", "package", False, 120.0),
    "check": (
        "check an install without changing anything (dry-runs code_change)",
        "vsn",
        False,
        120.0,
    ),
    "install": ("install an unpacked release (upgrade or downgrade)", "vsn", False, 120.0),
    "permanent": ("make the running release the one the node boots", "vsn", False, 30.0),
    "remove": ("remove a release that is neither permanent nor running", "vsn", False, 30.0),
    "upgrade": ("unpack, install and make permanent a release package", "package", False, 120.0),
    "rollback": ("go back to the release permanent before this one", None, False, 120.0),
    "stop": ("stop the node (its applications in reverse order)", None, False, 30.0),
}


def add_control_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add one sub-command per control command to the ``server`` parser."""
    for name, (text, positional, read_only, _) in COMMANDS.items():
        sub = commands.add_parser(name, help=text, description=text)
        if positional is not None:
            sub.add_argument(positional, help=f"the {positional}")
        sub.add_argument("--root", type=Path, default=Path.cwd(), help="the node's root")
        sub.add_argument("--config", type=Path, help="sys.config (default <root>/sys.config)")
        if read_only:
            sub.add_argument("--json", action="store_true", help="print JSON, for scripts")


def run_control_command(args: argparse.Namespace) -> int:
    """Send the command to the node and print the answer for people (or as JSON).

    Raises:
        ControlError: the node is not running or refused (``RemoteError``).
        SpecError: ``sys.config`` is malformed.
    """
    name = args.command
    _, positional, _, timeout = COMMANDS[name]
    config = read_sys_config(args.config or args.root / "sys.config")
    socket = (args.root / config.node.control_socket).resolve()
    payload: dict[str, Any] = {}
    if positional is not None:
        value = getattr(args, positional)
        payload[positional] = str(Path(value).resolve()) if positional == "package" else value
    console = Console()
    if name in ("install", "upgrade", "rollback", "unpack", "check"):
        result = _with_progress(console, socket, name, payload, timeout)
    else:
        result = request_sync(socket, name, payload, timeout=timeout)
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
        return 0
    _show(console, name, result)
    return 0


def _with_progress(
    console: Console, socket: Path, name: str, payload: dict[str, Any], timeout: float
) -> Any:
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[step]}"))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(name, total=None, step="")

        def on_progress(info: ProgressInfo) -> None:
            bar.update(task, total=info.total, completed=info.done, step=info.step)

        return request_sync(socket, name, payload, on_progress=on_progress, timeout=timeout)


def _show(console: Console, name: str, result: Any) -> None:
    if name == "releases":
        table = Table(title="releases")
        for column in ("name", "vsn", "status", "applications"):
            table.add_column(column)
        for row in result:
            table.add_row(row["name"], row["vsn"], row["status"], ", ".join(row["applications"]))
        console.print(table)
    elif name == "processes":
        table = Table(title=f"{len(result)} processes")
        for column in ("pid", "name", "behaviour", "module", "vsn", "mailbox", "status"):
            table.add_column(column)
        for row in result:
            table.add_row(
                *(
                    str(row[c]) if row[c] is not None else ""
                    for c in ("pid", "name", "behaviour", "module", "vsn", "mailbox", "status")
                )
            )
        console.print(table)
    elif name == "code":
        table = Table(title=f"{len(result)} module versions")
        for column in ("module", "slot", "vsn", "path"):
            table.add_column(column)
        for row in result:
            table.add_row(row["module"], row["slot"], str(row["vsn"]), row["path"])
        console.print(table)
    elif name == "tree":
        for app in result:
            tree = Tree(f"[bold]{app['application']}[/bold]")
            _branch(tree, app["tree"])
            console.print(tree)
    elif name == "status":
        release = result["release"]
        console.print(
            f"release {release['name']} {release['vsn']}" if release else "no release",
            f"· OS pid {result['os_pid']} · up {result['uptime']:.0f} s · "
            f"{result['processes']} processes",
        )
        for app in result["applications"]:
            console.print(f"  {app['name']} {app['vsn']}  {app['description']}")
    elif name in ("install", "upgrade", "rollback"):
        report = result.get("report", result)
        console.print(
            f"{report['direction']} {report['from_vsn']} -> {report['to_vsn']} in "
            f"{report['seconds'] * 1000:.1f} ms: {len(report['modules_loaded'])} modules "
            f"loaded, {len(report['processes'])} processes migrated"
        )
        for key in ("applications_added", "applications_removed"):
            if report[key]:
                console.print(f"  {key.replace('_', ' ')}: {', '.join(report[key])}")
        if name == "upgrade":
            console.print(f"release {result['vsn']} is now permanent")
        if name == "rollback":
            console.print(f"rolled back to {result['vsn']}")
    elif name == "check":
        console.print(
            f"install {result['from_vsn']} -> {result['to_vsn']} ({result['direction']}) "
            f"would load {len(result['modules'])} modules and migrate "
            f"{len(result['processes'])} processes; every code_change passed on a copy"
        )
    elif name == "stop":
        console.print("node stopping")
    elif name in ("permanent", "remove", "unpack"):
        done = {"permanent": "is now permanent", "remove": "removed", "unpack": "unpacked"}
        console.print(f"release {result['vsn']} {done[name]}")
    elif name == "ping":
        console.print(f"pong (release {result['release']})")
    else:
        console.print(json.dumps(result) if not isinstance(result, str) else result)


def _branch(parent: Tree, node: dict[str, Any]) -> None:
    label = f"{node['id']} {node['pid']}" + (f" ({node['name']})" if node["name"] else "")
    child = parent.add(label + (" [dim]supervisor[/dim]" if node["type"] == "supervisor" else ""))
    for grandchild in node.get("children", []):
        _branch(child, grandchild)
