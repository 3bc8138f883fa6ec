"""The node as plain data: what the observer's pages and the CLI's views show.

Every function returns JSON-able dicts and lists, built on the kernel's public
introspection (``processes``, ``process_info``, ``process_frames``), the supervisors'
``which_children`` and ``sys`` calls, the code server's version table and the release
handler's ``which_releases``. The control commands ``processes``, ``tree`` and ``code`` are
these functions; the observer's pages are these plus the overview, a process's detail and
the nodes of the cluster.

Costs, for a page open all day: ``process_rows`` reads each process's record and walks
its suspended stack (no message is sent); ``statuses=True`` adds one ``sys`` call per
behaviour process, so the pushed view leaves it out. ``supervision_trees`` makes one
``which_children`` call per supervisor.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import TYPE_CHECKING, Any

import anyio

from server import cluster, code_server, dist, kernel
from server.app import controller
from server.behaviours import supervisor, system_messages
from server.errors import CallError, ServerError
from server.release import current_release, handler

if TYPE_CHECKING:
    from server.kernel import Pid

__all__ = [
    "code_rows",
    "find_process",
    "memory_bytes",
    "node_rows",
    "overview",
    "process_detail",
    "process_rows",
    "release_rows",
    "supervision_trees",
]

#: How long one ``sys`` call of a snapshot may take before that process is skipped.
SYS_TIMEOUT = 1.0

#: The longest text a process's state is shown as (its ``repr``, cut).
STATE_TEXT_LIMIT = 4000


def memory_bytes() -> int:
    """The node's resident memory (RSS, from ``/proc``; the peak where there is no ``/proc``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _stack_bytes(pid: Pid) -> int:
    """A rough size of what a process holds: its suspended frames and their locals, shallow.

    Python has no per-process heap to measure (Erlang's ``memory``); what a process's own
    stack references is the nearest figure. Objects shared with others count in each.
    """
    total = 0
    for frame in kernel.process_frames(pid):
        total += sys.getsizeof(frame)
        for value in frame.f_locals.values():
            total += sys.getsizeof(value)
    return total


def _vsn_text(vsn: object) -> str | int | float | None:
    return vsn if vsn is None or isinstance(vsn, str | int | float) else repr(vsn)


def _module_vsn(module: str | None) -> str | int | float | None:
    if module is None:
        return None
    try:
        return _vsn_text(code_server.get_vsn(module))
    except ServerError:
        return None


async def process_rows(*, statuses: bool = False) -> list[dict[str, Any]]:
    """Every process: pid, name, behaviour, module, mailbox, messages handled, memory, age.

    ``statuses`` asks each gen_server and gen_statem for its ``sys`` status (running or
    suspended) and its module's vsn, one call each; without it they read ``None``.
    """
    rows: list[dict[str, Any]] = []
    here = kernel.node()
    now = anyio.current_time()
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
            "handled": info.messages_delivered - info.message_queue_len,
            "memory": _stack_bytes(pid),
            "age": round(now - info.spawned_at, 3),
            "status": "running" if statuses else None,
            # links and monitors that cross to other nodes (the local ones are the tree)
            "remote": [f"link {other!r}" for other in info.links if kernel.node(other) != here]
            + [
                f"monitor {target!r}"
                for target in info.monitors
                if (type(target) is tuple)
                or (isinstance(target, kernel.Pid) and kernel.node(target) != here)
            ],
        }
        if statuses and labels.get("behaviour") in ("gen_server", "gen_statem"):
            try:
                status = await system_messages.get_status(pid, timeout=SYS_TIMEOUT)
            except CallError:
                continue  # ended meanwhile
            row["status"] = status.status
            row["vsn"] = _module_vsn(status.module)
        rows.append(row)
    return rows


def find_process(text: str) -> Pid | None:
    """The live local process whose ``repr`` (or registered name) is ``text``, or None."""
    named = kernel.whereis(text)
    if named is not None:
        return named
    return next((pid for pid in kernel.processes() if repr(pid) == text), None)


async def process_detail(pid: Pid, *, state: bool = False) -> dict[str, Any] | None:
    """One process in full: links, monitors, name, labels, its callback module and vsn.

    ``state`` (opt-in: it is a ``sys`` call into the process, and shows its data) adds its
    state through ``sys.get_state``, as text. None when the process is not alive.
    """
    info = kernel.process_info(pid)
    if info is None:
        return None
    labels = dict(info.labels)
    detail: dict[str, Any] = {
        "pid": repr(pid),
        "name": info.registered_name,
        "links": [repr(other) for other in info.links],
        "monitors": [repr(target) for target in info.monitors],
        "monitored_by": info.monitored_by,
        "trap_exit": info.trap_exit,
        "mailbox": info.message_queue_len,
        "handled": info.messages_delivered - info.message_queue_len,
        "memory": _stack_bytes(pid),
        "age": round(anyio.current_time() - info.spawned_at, 3),
        "labels": {key: repr(value) for key, value in labels.items()},
        "module": labels.get("module"),
        "vsn": None,
        "status": None,
        "old_code": [],
    }
    if labels.get("behaviour") in ("gen_server", "gen_statem", "supervisor", "gen_event"):
        try:
            status = await system_messages.get_status(pid, timeout=SYS_TIMEOUT)
        except CallError:
            return None
        detail["module"] = status.module
        detail["vsn"] = _module_vsn(status.module)
        detail["status"] = status.status
    detail["old_code"] = [
        info.module
        for info in code_server.all_loaded()
        if info.slot == "old" and code_server.check_process_code(pid, info.module)
    ]
    if state:
        try:
            value = await system_messages.get_state(pid, timeout=SYS_TIMEOUT)
        except CallError as exc:
            detail["state"] = f"(no state: {exc})"
        else:
            text = repr(value)
            cut = len(text) > STATE_TEXT_LIMIT
            detail["state"] = text[:STATE_TEXT_LIMIT] + (" ..." if cut else "")
    return detail


async def supervision_trees() -> list[dict[str, Any]]:
    """Each running application's supervision tree, children nested under supervisors.

    A supervisor's entry has ``restarts``: how many children it restarted since it started
    (``supervisor.restart_count``); a child's ``status`` is ``running``, ``restarting`` or
    ``undefined`` (not running).
    """
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
        "status": "running",
    }
    if kind == "supervisor":
        try:
            rows = await supervisor.which_children(pid)
        except CallError:
            rows = []
        entry["restarts"] = supervisor.restart_count(pid) or 0
        entry["children"] = [
            await _node(row.pid, row.id, row.type)
            if isinstance(row.pid, kernel.Pid)
            else {
                "pid": str(row.pid),
                "id": row.id,
                "type": row.type,
                "name": None,
                "status": "restarting" if row.pid == "restarting" else "undefined",
            }
            for row in rows
        ]
    return entry


def code_rows(*, users: bool = False) -> list[dict[str, Any]]:
    """Every version of every application module in memory: current and old.

    ``users`` adds, to each old version, the processes still running it
    (``check_process_code`` over every process: a frame walk each).
    """
    rows = []
    for info in code_server.all_loaded():
        row: dict[str, Any] = {
            "module": info.module,
            "slot": info.slot,
            "vsn": _vsn_text(info.vsn),
            "path": info.path,
            "loaded_at": info.loaded_at,
        }
        if users and info.slot == "old":
            row["running"] = [
                repr(pid)
                for pid in kernel.processes()
                if code_server.check_process_code(pid, info.module)
            ]
        rows.append(row)
    return rows


async def release_rows() -> list[dict[str, Any]]:
    """Every release of the node: name, vsn, status and applications."""
    return await handler.which_releases()


async def node_rows(*, timeout: float = 5.0) -> list[dict[str, Any]]:
    """This node and every node connected to it, each with its releases.

    A node that is not distributed lists itself alone. Every node is asked at once; one
    that has not answered within ``timeout`` seconds is listed with that error.
    """
    if not dist.is_distributed():
        releases = await handler.which_releases()
        running = next(
            (r["vsn"] for r in releases if r["status"] == "current"),
            next((r["vsn"] for r in releases if r["status"] == "permanent"), None),
        )
        return [
            {
                "node": "(not distributed)",
                "running": running,
                "permanent": next((r["vsn"] for r in releases if r["status"] == "permanent"), None),
                "releases": releases,
                "error": None,
            }
        ]
    view = await cluster.cluster_releases(timeout=timeout)
    nodes: list[dict[str, Any]] = view.to_json()["nodes"]
    return nodes


async def overview(boot: Pid | None = None) -> dict[str, Any]:
    """The node at a glance: release, uptime, memory, processes, messages in flight.

    ``boot`` is the node's boot process: the uptime counts from its spawn.
    """
    release = current_release()
    releases = await handler.which_releases()
    status = next((row["status"] for row in releases if release and row["vsn"] == release[1]), None)
    info = kernel.process_info(boot) if boot is not None else None
    pids = kernel.processes()
    in_flight = 0
    for pid in pids:
        described = kernel.process_info(pid)
        if described is not None:
            in_flight += described.message_queue_len
    return {
        "release": {"name": release[0], "vsn": release[1], "status": status} if release else None,
        "node": kernel.node(),
        "os_pid": os.getpid(),
        "uptime": round(anyio.current_time() - info.spawned_at, 3) if info else None,
        "memory": memory_bytes(),
        "processes": len(pids),
        "in_flight": in_flight,
        "applications": [
            {"name": a.name, "vsn": a.vsn} for a in await controller.which_applications()
        ],
    }
