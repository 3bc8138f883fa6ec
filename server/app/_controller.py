"""The application controller: a gen_server (registered ``application_controller``).

How this works:

1. It keeps the loaded applications (spec, lib directory, env) and the running ones (their
   masters and start types), in start order. Env tables are written here only.
2. ``start`` needs every dependency running (else it is refused and nothing happens); it
   starts an application master, which calls the application's ``start``. A permanent
   application that fails to start takes the node down (OTP's
   ``application_start_failure``), so does a transient one unless its start ended
   ``normal``; a temporary one only returns the error.
3. When an application's top supervisor ends by itself, its master says so (a master that
   ends any other way counts as its application's end). Permanent: the other applications
   are stopped (reverse order) and the controller ends with
   ``("application_terminated", app, reason)``, which ends the node. Transient: the same
   unless the reason is exactly ``normal``. Temporary: a report only.
4. ``stop`` forgets the application *before* stopping it, so its start type is not applied.
5. On the node's way down, every running application is stopped in reverse start order,
   and the env tables are dropped (a new controller starts from empty tables).
6. ``config_diff`` only computes what changed; ``controller.config_change`` calls the
   callbacks in the caller's process, so a callback may use the controller's API.
7. Calls are the request records of ``controller`` (the API module), answered with a
   ``replies`` record: ``Ok``; ``Refused`` (not loaded, already started, a dependency not
   running...: nothing changed); ``Failed`` (the application's start failed).
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import TYPE_CHECKING, Any

from server import code_server, kernel
from server.app import _master
from server.app import env as env_tables
from server.app.controller import (
    ChangeApplicationData,
    ConfigDiff,
    EnvChange,
    GetStartType,
    LoadApplication,
    LoadedApplications,
    RunningApplication,
    StartApplication,
    StopApplication,
    TopSupervisors,
    UnloadApplication,
    WhichApplications,
)
from server.behaviours import gen_server, replies
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply, Stop
from server.errors import CalleeExited, StartError
from server.kernel import ExitMessage, From, Pid

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from server.spec.app_spec import AppSpec

logger = logging.getLogger("server.app")

MASTER = "server.app._master"


class _Loaded:
    __slots__ = ("env", "lib_dir", "spec")

    def __init__(self, spec: AppSpec, lib_dir: Path | None, env: dict[str, Any]) -> None:
        self.spec = spec
        self.lib_dir = lib_dir
        self.env = env


class _Running:
    __slots__ = ("master", "top", "type")

    def __init__(self, master: Pid | None, top: Pid | None, start_type: str) -> None:
        self.master = master
        self.top = top
        self.type = start_type


class ControllerState:
    """Loaded and running applications (running ones in start order)."""

    __slots__ = ("loaded", "running", "sys_env")

    def __init__(self, sys_env: dict[str, dict[str, Any]]) -> None:
        self.sys_env = sys_env
        self.loaded: dict[str, _Loaded] = {}
        self.running: dict[str, _Running] = {}

    def __repr__(self) -> str:
        return f"ControllerState(loaded={sorted(self.loaded)}, running={list(self.running)})"


def init(args: dict[str, dict[str, Any]] | None) -> object:
    kernel.trap_exit(True)
    kernel.set_label("behaviour", "application_controller")
    env_tables._clear()  # what an earlier controller (an earlier node) left is not ours
    return Ok(ControllerState(dict(args or {})))


async def handle_call(request: object, from_: From, state: ControllerState) -> object:
    match request:
        case LoadApplication(spec=spec, lib_dir=lib_dir):
            return Reply(_load(state, spec, lib_dir), state)
        case UnloadApplication(application=name):
            return Reply(_unload(state, name), state)
        case StartApplication(application=name, start_type=start_type):
            refusal = _refuse_start(state, name)
            if refusal is not None:  # nothing was tried: nothing failed
                return Reply(replies.Refused(refusal), state)
            answer = await _start(state, name, start_type)
            if isinstance(answer, replies.Failed) and _start_failure_is_fatal(
                answer.reason, start_type
            ):
                reason = ("application_start_failure", name, answer.reason)
                logger.error(
                    "application %s failed to start: %r; the node stops", name, answer.reason
                )
                return Stop(reason, state, reply=answer)
            return Reply(answer, state)
        case StopApplication(application=name):
            return Reply(await _stop(state, name), state)
        case WhichApplications():
            rows = tuple(
                RunningApplication(
                    name, state.loaded[name].spec.description, state.loaded[name].spec.vsn
                )
                for name in state.running
            )
            return Reply(replies.Ok(rows), state)
        case LoadedApplications():
            loaded = {n: (app.spec, app.lib_dir) for n, app in state.loaded.items()}
            return Reply(replies.Ok(loaded), state)
        case TopSupervisors():
            tops = {n: r.top for n, r in state.running.items() if r.top is not None}
            return Reply(replies.Ok(tops), state)
        case GetStartType(application=name):
            running = state.running.get(name)
            return Reply(replies.Ok(running.type if running else None), state)
        case ChangeApplicationData(apps=apps, sys_env=sys_env):
            return Reply(replies.Ok(_change_data(state, apps, sys_env)), state)
        case ConfigDiff(snapshot=snapshot):
            return Reply(replies.Ok(_config_diff(state, snapshot)), state)
    return Reply(replies.Refused(("unknown_request", repr(request))), state)


def _start_failure_is_fatal(reason: object, start_type: str) -> bool:
    """OTP: a permanent app's failed start stops the node; a transient one's unless normal."""
    return start_type == "permanent" or (start_type == "transient" and reason != kernel.NORMAL)


async def handle_info(message: object, state: ControllerState) -> object:
    if isinstance(message, _master.ApplicationTerminated):
        return _terminated(state, message.application, message.reason)
    if isinstance(message, ExitMessage):
        # A master ends normally right after reporting its tree's end (or after a stop);
        # any other end of a running application's master is that application's end.
        name = next((n for n, r in state.running.items() if r.master is message.pid), None)
        if name is not None:
            return _terminated(state, name, message.reason)
    return NoReply(state)


def _terminated(state: ControllerState, name: str, reason: object) -> object:
    running = state.running.pop(name, None)
    if running is None:
        return NoReply(state)  # stopped on request meanwhile: the start type does not apply
    fatal = running.type == "permanent" or (running.type == "transient" and reason != kernel.NORMAL)
    logger.log(
        logging.ERROR if fatal else logging.INFO,
        "application %s exited: %r (type %s)",
        name,
        reason,
        running.type,
        extra={"report": "application_exit", "application": name, "reason": repr(reason)},
    )
    if fatal:
        return Stop(("application_terminated", name, reason), state)
    return NoReply(state)


async def terminate(reason: object, state: ControllerState) -> None:
    for name in reversed(list(state.running)):
        await _stop(state, name)
    for name in state.loaded:
        env_tables._drop_table(name)


# -- operations ----------------------------------------------------------------------------


def _load(state: ControllerState, spec: AppSpec, lib_dir: Path | None) -> replies.ServerReply:
    known = state.loaded.get(spec.name)
    if known is not None:
        return replies.Refused(("already_loaded", spec.name, known.spec.vsn))
    if lib_dir is not None:
        try:
            code_server.add_path(lib_dir)
        except Exception as exc:  # nothing was added: a refusal
            return replies.Refused(("bad_lib_dir", str(exc)))
    app_env = env_tables.merge_env(spec.env, state.sys_env.get(spec.name, {}))
    state.loaded[spec.name] = _Loaded(spec, lib_dir, app_env)
    env_tables._set_table(spec.name, app_env)
    return replies.Ok(None)


def _unload(state: ControllerState, name: str) -> replies.ServerReply:
    if name in state.running:
        return replies.Refused(("running", name))
    loaded = state.loaded.pop(name, None)
    if loaded is None:
        return replies.Refused(("not_loaded", name))
    env_tables._drop_table(name)
    if loaded.lib_dir is not None:
        code_server.remove_path(loaded.lib_dir)
    return replies.Ok(None)


def _refuse_start(state: ControllerState, name: str) -> tuple[str, str] | None:
    """Why ``name`` cannot be started now (None: it can)."""
    if name in state.running:
        return ("already_started", name)
    loaded = state.loaded.get(name)
    if loaded is None:
        return ("not_loaded", name)
    for dependency in loaded.spec.applications:
        if dependency not in state.running:
            return ("not_started", dependency)
    return None


async def _start(state: ControllerState, name: str, start_type: str) -> replies.ServerReply:
    mod = state.loaded[name].spec.start_callback
    master: Pid | None = None
    top: Pid | None = None
    if mod is not None:
        try:
            master = await gen_server.start_link(
                MASTER, (name, mod.module, mod.args, kernel.self()), timeout=math.inf
            )
        except StartError as exc:
            return replies.Failed(exc.reason)
        assert master is not None
        with contextlib.suppress(CalleeExited):  # ended already: its end is on its way here
            top = await _master.get_top(master)
    state.running[name] = _Running(master, top, start_type)
    logger.info("application %s started (type %s)", name, start_type)
    return replies.Ok(None)


async def _stop(state: ControllerState, name: str) -> replies.ServerReply:
    running = state.running.pop(name, None)  # forgotten first: its start type no longer applies
    if running is None:
        return replies.Refused(("not_running", name))
    if running.master is not None:
        with contextlib.suppress(CalleeExited):
            await _master.stop(running.master)
        kernel.flush(lambda m: type(m) is ExitMessage and m.pid is running.master)
    logger.info("application %s stopped", name)
    return replies.Ok(None)


def _change_data(
    state: ControllerState,
    apps: Sequence[tuple[AppSpec, Path | None]],
    sys_env: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Install new specs and envs (release install); returns the old envs of running apps."""
    snapshot = {name: dict(state.loaded[name].env) for name in state.running}
    state.sys_env = dict(sys_env)
    for spec, lib_dir in apps:
        loaded = state.loaded.get(spec.name)
        if loaded is None:
            continue
        loaded.spec = spec
        if lib_dir is not None:
            loaded.lib_dir = lib_dir
        loaded.env = env_tables.merge_env(spec.env, sys_env.get(spec.name, {}))
        env_tables._set_table(spec.name, loaded.env)
    return snapshot


def _config_diff(
    state: ControllerState, snapshot: dict[str, dict[str, Any]]
) -> tuple[EnvChange, ...]:
    """How the env of each running application changed since ``snapshot`` (changed ones only)."""
    diffs = []
    for name, old_env in snapshot.items():
        loaded = state.loaded.get(name)
        if loaded is None or name not in state.running:
            continue
        callback = loaded.spec.mod or loaded.spec.start_callback  # [asgi]: the app's own mod
        if callback is None:
            continue
        changed, added, removed = env_tables.env_diff(old_env, loaded.env)
        if changed or added or removed:
            diffs.append(EnvChange(name, callback.module, changed, added, tuple(removed)))
    return tuple(diffs)
