"""The node's side of its control commands: the function each row of ``COMMANDS`` names.

The table itself is data (``server.node._command_table``: names, help, arguments, waits),
shared with the CLI. The node serves these handlers (``node_commands``, through
``control_service``), each bound to the row naming it.

A handler runs in the control server's connection process (see ``server.control.server``
for the contract): it gets the node's boot process, the request's ``args`` and a progress
callback, and returns JSON. Release operations go to the release handler; the rest read the
node (applications, processes, trees, env). ``stop`` answers first, then asks the boot
process to stop the node.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from server import cluster, dist, kernel, observer
from server.app import controller, get_all_env
from server.control import ProgressInfo
from server.control import start_link as start_control
from server.errors import (
    ControlError,
    DistributionError,
    InstallRefused,
    ReleaseError,
    RolloutError,
)
from server.node._command_table import COMMANDS
from server.node._env_layers import ENV_LAYERS_LABEL, NodeEnv, reload_config
from server.observer.metrics import render_metrics
from server.observer.top import DEFAULT_LIMIT, top_view
from server.release import current_release, handler
from server.release.boot import parse_release_name

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from server.control import CommandHandler, ProgressCallback
    from server.kernel import Pid

__all__ = ["NodeCommandHandler", "control_service", "node_commands"]

#: ``async def handler(boot, args, progress) -> JSON``: a command as the node runs it.
NodeCommandHandler: TypeAlias = "Callable[[Pid, dict[str, Any], ProgressCallback], Awaitable[Any]]"

_STARTED = time.time()


def node_commands(boot: Pid) -> dict[str, CommandHandler]:
    """Every command's handler for the control server, bound to the node's boot process.

    Raises:
        AttributeError: a row of ``COMMANDS`` names no handler of this module (a bug).
    """
    handlers: dict[str, NodeCommandHandler] = {
        command.handler: getattr(sys.modules[__name__], command.handler)
        for command in COMMANDS.values()
    }
    return {
        name: functools.partial(handlers[command.handler], boot)
        for name, command in COMMANDS.items()
    }


def control_service(socket: str) -> Callable[[Path], Awaitable[Pid]]:
    """A boot service that starts the control server at ``<root>/<socket>``."""

    async def start(root: Path) -> Pid:
        return await start_control(root / socket, node_commands(kernel.self()))

    return start


def _vsn(args: dict[str, Any]) -> str:
    vsn = args.get("vsn")
    if not isinstance(vsn, str) or not vsn:
        raise InstallRefused("give the release version: vsn (a string)")
    return vsn


def _package(args: dict[str, Any]) -> str:
    package = args.get("package")
    if not isinstance(package, str) or not package:
        raise InstallRefused("give the package file: package (a path)")
    return str(Path(package).resolve())


def _progress_of(progress: ProgressCallback) -> Callable[[str, int, int], None]:
    def report(step: str, done: int, total: int) -> None:
        progress(ProgressInfo(step=step, done=done, total=total))

    return report


async def _ping(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    release = current_release()
    return {"pong": True, "release": release[1] if release else None}


async def _status(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    release = current_release()
    apps = await controller.which_applications()
    return {
        "release": {"name": release[0], "vsn": release[1]} if release else None,
        "os_pid": os.getpid(),
        "uptime": round(time.time() - _STARTED, 3),
        "applications": [
            {"name": a.name, "vsn": a.vsn, "description": a.description} for a in apps
        ],
        "processes": len(kernel.processes()),
    }


async def _releases(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    return await handler.which_releases()


async def _unpack(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    return {"vsn": await handler.unpack(_package(args))}


async def _check(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    return await handler.check_install(_vsn(args))


async def _install(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    if args.get("restart") is True:
        return {"restarting": await handler.install_by_restart(_vsn(args))}
    timeout = args.get("code_change_timeout", 5.0)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise InstallRefused("code_change_timeout must be a number of seconds > 0")
    report = await handler.install(
        _vsn(args), code_change_timeout=float(timeout), progress=_progress_of(progress)
    )
    return report.as_json()


async def _permanent(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    return {"vsn": await handler.make_permanent(_vsn(args))}


async def _remove(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    return {"vsn": await handler.remove(_vsn(args))}


async def _upgrade(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    package = _package(args)
    known = {row["vsn"]: row["status"] for row in await handler.which_releases()}
    vsn = _package_vsn(package)
    if vsn in known and known[vsn] in ("current", "permanent"):
        raise InstallRefused(f"release {vsn} is already running: nothing to upgrade")
    if vsn in known:
        raise InstallRefused(
            f"release {vsn} is already unpacked ({known[vsn]}): run `server install {vsn}` "
            f"(then `server permanent {vsn}`), or remove it first to unpack this package"
        )
    progress(ProgressInfo(step="unpack", done=0, total=3))
    vsn = await handler.unpack(package)
    progress(ProgressInfo(step="install", done=1, total=3, detail=vsn))
    report = await handler.install(vsn, progress=_progress_of(progress))
    progress(ProgressInfo(step="make permanent", done=2, total=3, detail=vsn))
    await handler.make_permanent(vsn)
    return {"vsn": vsn, "report": report.as_json()}


def _package_vsn(package: str) -> str | None:
    """The vsn a package's file name gives (``demo-1.1.0.tar.gz``), or None."""
    try:
        return parse_release_name(Path(package).name.removesuffix(".tar.gz"))[1]
    except ReleaseError:
        return None  # unpack says what is wrong with the name


async def _reload_config(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    return await reload_config(boot)


async def _rollback(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    return await handler.rollback()


async def _processes(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    return await observer.process_rows(statuses=True)


async def _code(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    return observer.code_rows()


async def _tree(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    return await observer.supervision_trees()


async def _top(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    return await top_view(sort=args.get("sort", "mailbox"), limit=args.get("limit", DEFAULT_LIMIT))


async def _metrics(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    return render_metrics().decode()


async def _observer(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    url = observer.observer_url()
    if url is None:
        raise ControlError(
            "this node serves no observer: add a [node.observer] table to sys.config "
            "(port = 0 picks a free port) and restart it"
        )
    return {"url": url}


async def _env(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    app = args.get("app")
    if not isinstance(app, str):
        raise InstallRefused("give the application: app (a name)")
    loaded = await controller.loaded_applications()
    if app not in loaded:
        raise InstallRefused(f"application {app} is not loaded (loaded: {', '.join(loaded)})")
    node_env = kernel.get_label(boot, ENV_LAYERS_LABEL)
    layers = node_env.layers if isinstance(node_env, NodeEnv) else []
    booted: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for where, tables in layers:
        for key, value in tables.get(app, {}).items():
            booted[key] = value
            origin[key] = where
    rows = []
    for key, value in sorted(get_all_env(app).items()):
        if key not in origin:
            source = "set while running"
        elif booted[key] != value:
            source = f"set while running (was {booted[key]!r} from {origin[key]})"
        else:
            source = origin[key]
        rows.append({"key": key, "value": value, "source": source})
    return rows


async def _nodes(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    return await dist.node_report()


async def _cluster(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    action = args.get("action")
    if action not in ("releases", "upgrade", "reconcile"):
        raise DistributionError(
            f"server cluster takes releases, upgrade or reconcile, not {action!r}"
        )
    if not dist.is_distributed():
        raise DistributionError(
            "this node is not distributed: add a [node.dist] table to sys.config"
        )
    if action == "releases":
        return (await cluster.cluster_releases()).to_json()
    package = args.get("package")
    if action == "reconcile":
        report = await cluster.reconcile(
            Path(package) if isinstance(package, str) else None,
            on_progress=lambda text: progress(ProgressInfo(step=text, done=0)),
        )
        return report.to_json()
    if not isinstance(package, str):
        raise RolloutError("give the package: server cluster upgrade PKG (<name>-<vsn>.tar.gz)")
    options = _rollout_options(args)

    def report_progress(moment: cluster.RolloutProgress) -> None:
        rows: list[dict[str, Any]] = [dict(row) for row in moment.rows]
        progress(ProgressInfo(step=moment.phase, done=moment.done, total=moment.total, rows=rows))

    return (await cluster.rollout(Path(package), options, on_progress=report_progress)).to_json()


def _rollout_options(args: dict[str, Any]) -> cluster.RolloutOptions:
    """The rollout's options from the command's ``--canary/--batch/--health`` text."""
    try:
        batch = _whole(args, "batch", 1)
        status = _whole(args, "health_status", 200)
        health = args.get("health")
        if health is None and args.get("health_status") is not None:
            raise ValueError("--health-status needs --health (the check whose status it is)")
        check = cluster.parse_check(health, status) if isinstance(health, str) else None
        canary = args.get("canary")
        return cluster.RolloutOptions(canary if isinstance(canary, str) else None, batch, check)
    except ValueError as exc:
        raise RolloutError(str(exc)) from None


def _whole(args: dict[str, Any], name: str, default: int) -> int:
    value = args.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        flag = "--" + name.replace("_", "-")
        raise ValueError(f"{flag} takes a whole number, not {value!r}") from None


async def _connect(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    node = args.get("node")
    if not isinstance(node, str) or "@" not in node:
        raise DistributionError(f"connect takes a node name such as b@localhost, not {node!r}")
    if not dist.is_distributed():
        raise DistributionError(
            "this node is not distributed: add a [node.dist] table to sys.config"
        )
    return {"node": node, "connected": await dist.ping(node)}


async def _stop(boot: Pid, args: dict[str, Any], progress: ProgressCallback) -> Any:
    # the boot stops the control server last, after the applications: the reply leaves
    kernel.send(boot, ("stop",))
    return {"stopping": True, "pid": os.getpid()}
