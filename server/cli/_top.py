"""``server top``: the node's busiest processes in a live terminal table (no browser needed).

Every second the CLI asks the node's control socket for ``top`` (one connection each time:
the node sorts and cuts, so the answer stays small however many processes it runs) and
redraws the table in place (``rich.live.Live``). ``--once`` prints one table and exits
(for scripts and tests); ``--json`` prints one answer as JSON. Ctrl-C ends it, exit status 0.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Final

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from server.control import request_sync
from server.node import COMMANDS, node_config

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

__all__ = ["run_top"]

#: Seconds between two refreshes of the live table.
REFRESH: Final = 1.0


def size_text(n: int) -> str:
    """Bytes as people read them: ``512 B``, ``3.4 KiB``, ``12.0 MiB``, ``1.2 GiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def age_text(seconds: float) -> str:
    """An age as people read it: ``4.2s``, ``3m05s``, ``2h07m``, ``3d04h``."""
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _header(view: dict[str, Any]) -> Text:
    release = view["release"]
    parts = [
        f"release {release['name']} {release['vsn']}" if release else "no release",
        f"{view['processes']} processes",
        f"{view['mailbox']} messages waiting",
        f"memory {size_text(view['memory'])}",
    ]
    lag = view["lag"]
    if lag is not None:
        parts.append(
            f"loop lag p50 {lag['p50'] * 1000:.1f} ms, p99 {lag['p99'] * 1000:.1f} ms, "
            f"max {lag['max'] * 1000:.1f} ms (last {lag['window']:g} s)"
        )
    return Text("  ".join(parts))


def top_table(view: dict[str, Any]) -> Group:
    """The header line and the table of one ``top`` answer."""
    shown = len(view["rows"])
    table = Table(
        title=f"{shown} of {view['processes']} processes by {view['sort']}",
        title_justify="left",
    )
    for column in view["columns"]:
        numeric = column in ("mailbox", "memory", "handled", "age")
        style = "bold underline" if column == view["sort"] else ""
        table.add_column(
            column, justify="right" if numeric else "left", no_wrap=True, header_style=style
        )
    for row in view["rows"]:
        table.add_row(
            row["pid"],
            row["name"] or "",
            row["module"] or "",
            str(row["mailbox"]),
            size_text(row["memory"]),
            str(row["handled"]),
            age_text(row["age"]),
        )
    return Group(_header(view), table)


def run_top(args: argparse.Namespace) -> int:
    """Show the node's ``top`` view: once, as JSON, or live until Ctrl-C.

    Raises:
        ControlError: the node is not running, or refused the request (a bad ``--sort``).
        SpecError: ``sys.config`` is malformed.
    """
    command = COMMANDS["top"]
    root: Path = args.root.resolve()
    config = node_config(root, args.config)
    socket = (args.root / config.node.control_socket).resolve()
    payload: dict[str, Any] = {"sort": args.option_sort or "mailbox"}
    if args.option_limit is not None:
        payload["limit"] = args.option_limit
    console = Console()
    if not console.is_terminal:  # a pipe or a file: whole cells, not cut to 80 columns
        console = Console(width=max(console.width, 160))

    def ask() -> dict[str, Any]:
        answer = request_sync(socket, "top", payload, timeout=command.timeout)
        assert isinstance(answer, dict), answer
        return answer

    view = ask()  # a refusal (bad --sort) fails here, before any screen is drawn
    if args.json:
        print(json.dumps(view, indent=2))
        return 0
    if args.once:
        console.print(top_table(view))
        return 0
    try:
        with Live(top_table(view), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(REFRESH)  # the refresh cadence of a screen people watch
                live.update(top_table(ask()), refresh=True)
    except KeyboardInterrupt:
        return 0
