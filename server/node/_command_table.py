"""The node's control commands as data: what ``server <command>`` asks a running node.

``COMMANDS`` is the one table. Each ``Command`` row names the command, the function the node
runs for it (by name: the node binds it, ``server.node._commands``), its help line, its
positional argument, whether it only reads the node, how long the CLI waits for it and
whether it streams progress. The CLI builds its sub-commands, their arguments and their
waits from the same rows (``server.cli``). This module imports nothing of the node's own,
so a command line that only talks to a node starts without loading one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["COMMANDS", "Command"]


@final
@dataclass(frozen=True, slots=True)
class Command:
    """One control command: everything the node and the CLI know about it.

    Attributes:
        name: the command's name on the wire and on the command line.
        help: one line for ``server --help``.
        handler: the name of the function the node runs for it, in
            ``server.node._commands`` (resolved there, so this table imports nothing).
        argument: the name of its one positional argument (also its key in the request's
            ``args``), or None.
        read_only: it changes nothing in the node (the CLI offers ``--json`` for it).
        timeout: seconds the CLI waits for the answer.
        progress: it streams progress while it runs (the CLI shows a bar).
        flags: its on/off switches (``--restart``), sent as ``true`` in ``args``.
        extra_argument: the name of an optional second positional argument, or None.
        options: its ``--name VALUE`` options, as (name, metavar, help), sent as text.
    """

    name: str
    help: str
    handler: str
    argument: str | None = None
    read_only: bool = False
    timeout: float = 30.0
    progress: bool = False
    flags: tuple[tuple[str, str], ...] = ()  # (name, help) of its --name switches
    extra_argument: str | None = None
    options: tuple[tuple[str, str, str], ...] = ()


_TABLE: Final = (
    Command("ping", "check that the node answers", "_ping", read_only=True, timeout=10.0),
    Command(
        "status",
        "release, OS pid, uptime, applications, process count",
        "_status",
        read_only=True,
        timeout=10.0,
    ),
    Command(
        "releases",
        "the releases of the node and their status",
        "_releases",
        read_only=True,
        timeout=10.0,
    ),
    Command(
        "processes",
        "every process: name, behaviour, module, vsn, mailbox",
        "_processes",
        read_only=True,
        timeout=30.0,
    ),
    Command(
        "nodes",
        "this node's name in the cluster and the nodes connected to it",
        "_nodes",
        read_only=True,
        timeout=10.0,
    ),
    Command(
        "cluster",
        "the cluster: `releases` side by side; `upgrade PKG` rolls a release out to every "
        "node (canary, batches, rolled back on failure); `reconcile` brings every node to "
        "the cluster's permanent release",
        "_cluster",
        argument="action",
        extra_argument="package",
        timeout=600.0,
        progress=True,
        options=(
            ("canary", "NODE", "upgrade: the node installed and checked first"),
            ("batch", "N", "upgrade: how many nodes are installed at once after it (1)"),
            (
                "health",
                "CHECK",
                "upgrade: after each install, http://HOST:PORT/PATH (a GET made by the node "
                "itself) or MODULE:FUNCTION of the release",
            ),
            ("health_status", "CODE", "upgrade: the HTTP status --health expects (200)"),
            (
                "package",
                "PKG",
                "reconcile: the package of the permanent release, for nodes lacking it",
            ),
        ),
    ),
    Command(
        "connect",
        "connect to another node and check it answers (Erlang's net_adm:ping)",
        "_connect",
        argument="node",
        timeout=15.0,
    ),
    Command(
        "code",
        "every application module version in memory: current and old",
        "_code",
        read_only=True,
        timeout=10.0,
    ),
    Command(
        "tree",
        "the supervision trees of the running applications",
        "_tree",
        read_only=True,
        timeout=30.0,
    ),
    Command(
        "top",
        "the busiest processes, refreshed every second (pid, name, module, mailbox, memory, "
        "messages handled, age)",
        "_top",
        read_only=True,
        timeout=10.0,
        flags=(("once", "print one table and exit"),),
        options=(
            # server.observer.top's SORT_KEYS and DEFAULT_LIMIT (a test checks they agree)
            ("sort", "COLUMN", "sort by mailbox, memory, handled, age (default mailbox)"),
            ("limit", "N", "show the first N processes (default 30)"),
        ),
    ),
    Command(
        "metrics",
        "the node's metrics in Prometheus's text format (as the observer's /metrics)",
        "_metrics",
        read_only=True,
        timeout=10.0,
    ),
    Command(
        "observer",
        "the URL of the node's observer web view, with its token",
        "_observer",
        read_only=True,
        timeout=10.0,
    ),
    Command(
        "env",
        "the env of an application: each value and where it came from",
        "_env",
        argument="app",
        read_only=True,
        timeout=10.0,
    ),
    Command(
        "unpack",
        "verify and unpack a release package",
        "_unpack",
        argument="package",
        timeout=120.0,
        progress=True,
    ),
    Command(
        "check",
        "check an install without changing anything (dry-runs code_change)",
        "_check",
        argument="vsn",
        timeout=120.0,
        progress=True,
    ),
    Command(
        "install",
        "install an unpacked release (upgrade or downgrade)",
        "_install",
        argument="vsn",
        timeout=120.0,
        progress=True,
        flags=(
            (
                "restart",
                "install it by restarting the node into it, for a release that cannot be "
                "installed module by module (other Python requirements): state is lost",
            ),
        ),
    ),
    Command(
        "permanent",
        "make the running release the one the node boots",
        "_permanent",
        argument="vsn",
        timeout=30.0,
    ),
    Command(
        "remove",
        "remove a release that is neither permanent nor running",
        "_remove",
        argument="vsn",
        timeout=30.0,
    ),
    Command(
        "upgrade",
        "unpack, install and make permanent a release package",
        "_upgrade",
        argument="package",
        timeout=120.0,
        progress=True,
    ),
    Command(
        "rollback",
        "go back to the release permanent before this one",
        "_rollback",
        timeout=120.0,
        progress=True,
    ),
    Command(
        "reload_config",
        "re-read the node's sys.config and apply its env (config_change, as an install does)",
        "_reload_config",
        timeout=60.0,
    ),
    Command("stop", "stop the node (its applications in reverse order)", "_stop", timeout=30.0),
)

COMMANDS: Final[Mapping[str, Command]] = {command.name: command for command in _TABLE}
"""Every control command by name, in the order ``server --help`` lists them."""
