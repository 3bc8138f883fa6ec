"""The node's control commands: what ``server <command>`` asks a running node over its socket.

Each command is a handler of the control server (``server.control.server``): it gets the
request's ``args`` and a progress callback, and returns JSON. Release operations go to the
release handler; the rest read the node (applications, processes, trees, env). ``stop``
answers first, then asks the boot process to stop the node.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server import kernel
from server.app import controller, get_all_env
from server.behaviours import supervisor, system_messages
from server.control.protocol import ProgressInfo
from server.control.server import start_link as start_control
from server.errors import CallError, InstallRefused, ServerError
from server.release import current_release, handler

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from server.control.server import CommandHandler, ProgressCallback
    from server.kernel import Pid

__all__ = ["control_service", "node_commands"]

_STARTED = time.time()


def node_commands(boot: Pid) -> dict[str, CommandHandler]:
    """Every command, bound to the node's boot process (for ``stop``)."""

    async def stop(args: dict[str, Any], progress: ProgressCallback) -> Any:
        # the boot stops the control server last, after the applications: the reply leaves
        kernel.send(boot, ("stop",))
        return {"stopping": True}

    return {
        "ping": _ping,
        "status": _status,
        "releases": _releases,
        "unpack": _unpack,
        "check": _check,
        "install": _install,
        "permanent": _permanent,
        "remove": _remove,
        "upgrade": _upgrade,
        "rollback": _rollback,
        "processes": _processes,
        "code": _code,
        "tree": _tree,
        "env": _env,
        "stop": stop,
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


async def _ping(args: dict[str, Any], progress: ProgressCallback) -> Any:
    release = current_release()
    return {"pong": True, "release": release[1] if release else None}


async def _status(args: dict[str, Any], progress: ProgressCallback) -> Any:
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


async def _releases(args: dict[str, Any], progress: ProgressCallback) -> Any:
    return await handler.which_releases()


async def _unpack(args: dict[str, Any], progress: ProgressCallback) -> Any:
    return {"vsn": await handler.unpack(_package(args))}


async def _check(args: dict[str, Any], progress: ProgressCallback) -> Any:
    return await handler.check_install(_vsn(args))


async def _install(args: dict[str, Any], progress: ProgressCallback) -> Any:
    timeout = args.get("code_change_timeout", 5.0)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise InstallRefused("code_change_timeout must be a number of seconds > 0")
    report = await handler.install(
        _vsn(args), code_change_timeout=float(timeout), progress=_progress_of(progress)
    )
    return report.as_json()


async def _permanent(args: dict[str, Any], progress: ProgressCallback) -> Any:
    return {"vsn": await handler.make_permanent(_vsn(args))}


async def _remove(args: dict[str, Any], progress: ProgressCallback) -> Any:
    return {"vsn": await handler.remove(_vsn(args))}


async def _upgrade(args: dict[str, Any], progress: ProgressCallback) -> Any:
    package = _package(args)
    progress(ProgressInfo(step="unpack", done=0, total=3))
    vsn = await handler.unpack(package)
    progress(ProgressInfo(step="install", done=1, total=3, detail=vsn))
    report = await handler.install(vsn, progress=_progress_of(progress))
    progress(ProgressInfo(step="make permanent", done=2, total=3, detail=vsn))
    await handler.make_permanent(vsn)
    return {"vsn": vsn, "report": report.as_json()}


async def _rollback(args: dict[str, Any], progress: ProgressCallback) -> Any:
    return await handler.rollback()


async def _processes(args: dict[str, Any], progress: ProgressCallback) -> Any:
    rows: list[dict[str, Any]] = []
    for pid in kernel.processes():
        info = kernel.process_info(pid)
        if info is None:
            continue
        labels = dict(info.labels)
        row: dict[str, Any] = {
            "pid": repr(pid),
            "name": info.registered_name,
            "behaviour": labels.get("behaviour"),
            "module": labels.get("module"),
            "vsn": None,
            "mailbox": info.message_queue_len,
            "status": "running",
        }
        if labels.get("behaviour") == "gen_server":
            try:
                status = await system_messages.get_status(pid, timeout=1.0)
            except CallError:
                continue  # ended meanwhile
            row["status"] = status.status
            row["vsn"] = _module_vsn(status.module)
        rows.append(row)
    return rows


async def _code(args: dict[str, Any], progress: ProgressCallback) -> Any:
    from server import code_server

    return [
        {
            "module": info.module,
            "slot": info.slot,
            "vsn": info.vsn if isinstance(info.vsn, str | int | float) else repr(info.vsn),
            "path": info.path,
            "loaded_at": info.loaded_at,
        }
        for info in code_server.all_loaded()
    ]


def _module_vsn(module: str) -> Any:
    from server import code_server

    try:
        vsn = code_server.get_vsn(module)
    except ServerError:
        return None
    return vsn if isinstance(vsn, str | int | float) else repr(vsn)


async def _tree(args: dict[str, Any], progress: ProgressCallback) -> Any:
    trees = []
    for app, top in (await controller.top_supervisors()).items():
        trees.append({"application": app, "tree": await _node(top, "top", "supervisor")})
    return trees


async def _node(pid: Pid, child_id: str | None, kind: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "pid": repr(pid),
        "id": child_id,
        "type": kind,
        "name": info.registered_name if (info := kernel.process_info(pid)) else None,
    }
    if kind == "supervisor":
        try:
            rows = await supervisor.which_children(pid)
        except CallError:
            rows = []
        entry["children"] = [
            await _node(row.pid, row.id, row.type)
            if isinstance(row.pid, kernel.Pid)
            else {"pid": str(row.pid), "id": row.id, "type": row.type, "name": None}
            for row in rows
        ]
    return entry


async def _env(args: dict[str, Any], progress: ProgressCallback) -> Any:
    app = args.get("app")
    if not isinstance(app, str):
        raise InstallRefused("give the application: app (a name)")
    loaded = await controller.loaded_applications()
    if app not in loaded:
        raise InstallRefused(f"application {app} is not loaded (loaded: {', '.join(loaded)})")
    return get_all_env(app)
