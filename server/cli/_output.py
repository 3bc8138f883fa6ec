"""What the ``server`` command prints: tables, trees, progress bars and one-line answers.

Everything is printed through a ``rich`` console for people; ``--json`` output does not
come here.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from rich.console import Console

    from server.control import ProgressInfo
    from server.release.package import BuiltPackage

__all__ = [
    "add_package_row",
    "exit_status",
    "live_table",
    "packages_table",
    "progress_bar",
    "show",
]

#: The columns of a rollout's per-node table, live and at the end.
_ROLLOUT_COLUMNS = ("node", "before", "state", "steps", "after", "error")


@contextlib.contextmanager
def progress_bar(console: Console, name: str) -> Iterator[Callable[[ProgressInfo], None]]:
    """A transient progress bar for command ``name``; yields the callback that moves it."""
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[step]}"))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(name, total=None, step="")

        def on_progress(info: ProgressInfo) -> None:
            bar.update(task, total=info.total, completed=info.done, step=info.step)

        yield on_progress


@contextlib.contextmanager
def live_table(console: Console, name: str) -> Iterator[Callable[[ProgressInfo], None]]:
    """A table redrawn at each progress event that carries rows (one per node), else a line."""
    with Live(console=console, transient=True, refresh_per_second=8) as live:

        def on_progress(info: ProgressInfo) -> None:
            if info.rows is None:
                live.update(Text(f"{name}: {info.step}"))
                return
            table = Table(title=f"{name}: {info.step} ({info.done}/{info.total} nodes done)")
            for column in _ROLLOUT_COLUMNS[:4]:
                table.add_column(column)
            for row in info.rows:
                table.add_row(*_rollout_cells(row)[:4])
            live.update(table)

        yield on_progress


def exit_status(name: str, result: Any) -> int:
    """1 for a halted rollout or a failed reconcile (their reports still print), else 0."""
    if name != "cluster" or not isinstance(result, dict):
        return 0
    if result.get("outcome") == "halted":
        return 1
    nodes = result.get("nodes", [])
    if "disagreeing" not in result and any(node.get("action") == "failed" for node in nodes):
        return 1
    return 0


def _rollout_cells(row: dict[str, Any]) -> list[str]:
    steps = row.get("steps") or []
    return [
        str(row.get("node")),
        str(row.get("before") or "-"),
        str(row.get("state")),
        " > ".join(str(step) for step in steps) or "-",
        str(row.get("after") or "-"),
        str(row.get("error") or ""),
    ]


def _rollout_report(console: Console, result: Any) -> None:
    """``server cluster upgrade``: each node's steps and end state, then the outcome."""
    table = Table(
        title=f"rollout of {result['vsn']}: {result['outcome']} in {result['seconds']:.1f} s"
    )
    for column in _ROLLOUT_COLUMNS:
        table.add_column(column)
    for row in result["nodes"]:
        table.add_row(*_rollout_cells(row))
    console.print(table)
    failure = result["failure"]
    if failure is None:
        console.print(f"{result['vsn']} runs on every node and is permanent everywhere")
        return
    console.print(
        f"[red]halted[/red]: {failure['step']} on {failure['node']} failed: {failure['error']}; "
        "every node upgraded was rolled back, nothing was made permanent "
        "(`server cluster reconcile` brings a node that was lost in line when it is back)",
        highlight=False,
    )


def _reconcile_report(console: Console, result: Any) -> None:
    """``server cluster reconcile``: what was done on each node."""
    table = Table(title=f"reconcile to the cluster's permanent release {result['permanent']}")
    for column in ("node", "before", "action", "error"):
        table.add_column(column)
    for row in result["nodes"]:
        table.add_row(
            row["node"], str(row["before"] or "-"), row["action"], str(row["error"] or "")
        )
    console.print(table)


def packages_table(out: Path) -> Table:
    """The empty table of ``server build``'s packages."""
    table = Table(title=f"release packages in {out}")
    for column in ("package", "sha256", "size", "relup up from", "relup down to"):
        table.add_column(column)
    return table


def add_package_row(table: Table, built: BuiltPackage) -> None:
    """One built package's row of ``packages_table``."""
    table.add_row(
        built.path.name,
        built.sha256[:16],
        f"{built.size:,} B",
        ", ".join(e.vsn for e in built.relup.up) or "-",
        ", ".join(e.vsn for e in built.relup.down) or "-",
    )


def show(console: Console, name: str, result: Any) -> None:
    """Print the answer of control command ``name`` for people."""
    if name == "releases":
        table = Table(title="releases")
        for column in ("name", "vsn", "status", "applications"):
            table.add_column(column)
        for row in result:
            table.add_row(row["name"], row["vsn"], row["status"], ", ".join(row["applications"]))
        console.print(table)
    elif name == "processes":
        table = Table(title=f"{len(result)} processes")
        columns = ("pid", "name", "behaviour", "module", "vsn", "mailbox", "status")
        remote = any(row.get("remote") for row in result)
        for column in columns:
            table.add_column(column)
        if remote:
            table.add_column("other nodes")
        for row in result:
            cells = [str(row[c]) if row[c] is not None else "" for c in columns]
            if remote:
                cells.append(", ".join(row.get("remote") or ()))
            table.add_row(*cells)
        console.print(table)
    elif name == "nodes":
        _nodes_table(console, result)
    elif name == "cluster" and "outcome" in result:
        _rollout_report(console, result)
    elif name == "cluster" and "nodes" in result and "disagreeing" not in result:
        _reconcile_report(console, result)
    elif name == "cluster":
        _cluster_table(console, result)
    elif name == "connect":
        if result["connected"]:
            console.print(f"connected to {result['node']} (pong)")
        else:
            console.print(
                f"[red]cannot connect to {result['node']} (pang)[/red]: is it running, with the "
                "same cookie, and reachable (its epmd, its listen_host)?"
            )
    elif name == "env":
        table = Table(title="env")
        for column in ("key", "value", "source"):
            table.add_column(column)
        for row in result:
            table.add_row(row["key"], json.dumps(row["value"]), row["source"])
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
    elif name == "install" and "restarting" in result:
        console.print(
            f"node restarting into release {result['restarting']} (every process's state is "
            f"lost); `server ping` answers once it serves, `server permanent "
            f"{result['restarting']}` keeps it"
        )
    elif name in ("install", "upgrade", "rollback"):
        report = result.get("report", result)
        console.print(
            f"{report['direction']} {report['from_vsn']} -> {report['to_vsn']} in "
            f"{report['seconds'] * 1000:.1f} ms: {len(report['modules_loaded'])} modules "
            f"loaded, {len(report['processes'])} processes migrated"
        )
        for key in ("applications_added", "applications_removed", "applications_restarted"):
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
    elif name == "reload_config":
        changed = result["changed"]
        console.print(
            f"config reloaded for release {result['vsn']}: "
            + (
                ", ".join(f"{app} config_change -> {out}" for app, out in changed.items())
                or "no env changed"
            )
        )
    elif name == "stop":
        console.print("node stopping")
    elif name in ("permanent", "remove", "unpack"):
        done = {"permanent": "is now permanent", "remove": "removed", "unpack": "unpacked"}
        console.print(f"release {result['vsn']} {done[name]}")
    elif name == "ping":
        console.print(f"pong (release {result['release']})")
    elif name == "observer":
        console.print(result["url"], soft_wrap=True, highlight=False)  # one line to copy
    elif name == "metrics":  # the exposition text as it is: no markup, no wrapping
        print(result, end="")
    else:
        console.print(json.dumps(result) if not isinstance(result, str) else result)


def _branch(parent: Tree, node: dict[str, Any]) -> None:
    label = f"{node['id']} {node['pid']}" + (f" ({node['name']})" if node["name"] else "")
    child = parent.add(label + (" [dim]supervisor[/dim]" if node["type"] == "supervisor" else ""))
    for grandchild in node.get("children", []):
        _branch(child, grandchild)


def _nodes_table(console: Console, result: Any) -> None:
    """``server nodes``: this node's name and its connections."""
    if not result["name"]:
        console.print(
            "this node is not distributed: add a [node.dist] table to sys.config", markup=False
        )
        return
    rows = result["connections"]
    table = Table(title=f"{result['name']} ({result['mode']}): {len(rows)} connected nodes")
    for column in ("node", "state", "type", "direction", "ticks in/out", "frames in/out", "queued"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["node"],
            row["state"],
            "hidden" if row["hidden"] else "visible",
            row["direction"],
            f"{row['ticks_in']}/{row['ticks_out']}",
            f"{row['frames_in']}/{row['frames_out']}",
            f"{row['queued_bytes']:,} B",
        )
    console.print(table)


def _cluster_table(console: Console, result: Any) -> None:
    """``server cluster releases``: releases (rows) by node (columns), disagreements flagged."""
    nodes = result["nodes"]
    vsns = sorted({row["vsn"] for entry in nodes for row in entry["releases"]})
    table = Table(title=f"releases of {len(nodes)} nodes")
    table.add_column("release")
    for entry in nodes:
        flag = " (!)" if entry["node"] in result["disagreeing"] else ""
        table.add_column(entry["node"] + flag)
    for vsn in vsns:
        cells = []
        for entry in nodes:
            statuses = [row["status"] for row in entry["releases"] if row["vsn"] == vsn]
            cells.append(statuses[0] if statuses else ("?" if entry["error"] else "-"))
        table.add_row(vsn, *cells)
    console.print(table)
    for entry in nodes:
        if entry["error"]:
            console.print(f"{entry['node']}: no answer ({entry['error']})", markup=False)
    if result["disagreeing"]:
        console.print(
            f"nodes that disagree with the cluster (running {result['running']}, permanent "
            f"{result['permanent']}): {', '.join(result['disagreeing'])}",
            markup=False,
        )
    else:
        console.print(f"every node runs {result['running']} (permanent {result['permanent']})")
