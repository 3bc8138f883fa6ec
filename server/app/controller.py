"""The application controller's API: load, start, stop and inspect applications.

Each function is a call to the ``application_controller`` process (start it with
``start_link``). Start types follow OTP: ``permanent`` (its end, for any reason, stops the
other applications and ends the controller), ``transient`` (the same unless the reason is
exactly ``normal``), ``temporary`` (its end is only reported). A permanent or transient
application that fails to start also ends the controller (``application_start_failure``).
``stop_application`` never applies the start type.

Each function sends one of the request records below; the controller answers with a typed
reply (``replies.Ok``; ``Refused`` when the request is not accepted as things stand and
nothing changed; ``Failed`` when an application's start failed), and the function raises
``ApplicationError`` in the caller's process from the reason it carries.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final

from server.behaviours import gen_server, resolve
from server.behaviours.replies import Failed, Ok, Refused
from server.errors import ApplicationError, CalleeExited

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from server.kernel import Pid
    from server.spec.app_spec import AppSpec

__all__ = [
    "NAME",
    "START_TYPES",
    "RunningApplication",
    "change_application_data",
    "config_change",
    "ensure_all_started",
    "load_and_start",
    "load_application",
    "loaded_applications",
    "start_application",
    "start_link",
    "start_type",
    "stop_application",
    "top_supervisors",
    "unload_application",
    "which_applications",
]

logger = logging.getLogger("server.app")

NAME = "application_controller"
ENGINE = "server.app._controller"


@final
@dataclass(frozen=True, slots=True)
class RunningApplication:
    """One row of ``which_applications``."""

    name: str
    description: str
    vsn: str


@final
@dataclass(frozen=True, slots=True)
class EnvChange:
    """How a running application's env changed (what its ``config_change`` is given)."""

    application: str
    module: str  # the application's callback module
    changed: dict[str, Any]
    added: dict[str, Any]
    removed: tuple[str, ...]


# -- the requests (answered by the controller with a ``replies`` record) ------------------


@final
@dataclass(frozen=True, slots=True)
class LoadApplication:
    """Load ``spec`` (its ``lib_dir`` joins the code path)."""

    spec: AppSpec
    lib_dir: Path | None


@final
@dataclass(frozen=True, slots=True)
class UnloadApplication:
    """Forget a stopped application."""

    application: str


@final
@dataclass(frozen=True, slots=True)
class StartApplication:
    """Start a loaded application whose dependencies run."""

    application: str
    start_type: str


@final
@dataclass(frozen=True, slots=True)
class StopApplication:
    """Stop a running application."""

    application: str


@final
@dataclass(frozen=True, slots=True)
class WhichApplications:
    """Answer with a ``RunningApplication`` for each running one, in start order."""


@final
@dataclass(frozen=True, slots=True)
class TopSupervisors:
    """Answer with ``{application: top supervisor}``."""


@final
@dataclass(frozen=True, slots=True)
class LoadedApplications:
    """Answer with ``{application: (spec, lib_dir)}``."""


@final
@dataclass(frozen=True, slots=True)
class GetStartType:
    """Answer with the start type of a running application, or None."""

    application: str


@final
@dataclass(frozen=True, slots=True)
class ChangeApplicationData:
    """Install a new release's specs and env; answer with the previous envs."""

    apps: tuple[tuple[AppSpec, Path | None], ...]
    sys_env: dict[str, dict[str, Any]]


@final
@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """Answer with an ``EnvChange`` for each running application whose env changed."""

    snapshot: dict[str, dict[str, Any]]


ControllerRequest = (
    LoadApplication
    | UnloadApplication
    | StartApplication
    | StopApplication
    | WhichApplications
    | TopSupervisors
    | LoadedApplications
    | GetStartType
    | ChangeApplicationData
    | ConfigDiff
)


async def start_link(sys_env: dict[str, dict[str, Any]] | None = None) -> Pid:
    """Start the controller, linked to the caller (the node's boot process).

    Raises:
        StartError: it could not start (for instance one is already running).
    """
    pid = await gen_server.start_link(ENGINE, sys_env or {}, name=NAME)
    assert pid is not None
    return pid


START_TYPES = ("permanent", "transient", "temporary")


async def _call(request: ControllerRequest) -> object:
    return await gen_server.call(NAME, request, timeout=math.inf)


async def _query(request: ControllerRequest) -> Any:
    """The value of a query the controller always answers with ``Ok``."""
    match await _call(request):
        case Ok(value=value):
            return value
        case answer:
            raise TypeError(f"{NAME} answered {request!r} with {answer!r}")


def _check(application: str, answer: object) -> None:
    match answer:
        case Ok():
            return
        case Refused(reason=reason) | Failed(reason=reason):
            raise ApplicationError(application, _explain(reason), reason)
    raise TypeError(f"{NAME} answered {answer!r} about {application}")


def _explain(reason: object) -> str:
    match reason:
        case ("not_started", dependency):
            return f"needs {dependency} running first (start it, or use ensure_all_started)"
        case ("not_loaded", name):
            return f"{name} is not loaded (load_application first)"
        case ("already_loaded", name, vsn):
            return f"{name} {vsn} is already loaded (unload_application first)"
        case ("not_running", name):
            return f"{name} is not running"
        case ("already_started", name):
            return f"{name} is already started"
        case ("running", name):
            return f"{name} is running: stop_application first"
        case ("bad_lib_dir", why):
            return f"its lib directory is unusable: {why}"
    return f"failed to start: {reason!r}"


async def load_application(spec: AppSpec, lib_dir: Path | None = None) -> None:
    """Load an application: its source root joins the code path, its env is set.

    Raises:
        ApplicationError: already loaded, or the lib directory is unusable.
    """
    _check(spec.name, await _call(LoadApplication(spec, lib_dir)))


async def unload_application(application: str) -> None:
    """Forget a stopped application: its env and its modules.

    Raises:
        ApplicationError: not loaded, or still running.
    """
    _check(application, await _call(UnloadApplication(application)))


async def start_application(application: str, start_type: str = "temporary") -> None:
    """Start a loaded application whose dependencies run.

    Raises:
        ApplicationError: not loaded, a dependency is not started, already started, or its
            start failed (a permanent or transient failure also stops the node).
        ValueError: ``start_type`` is not permanent, transient or temporary.
    """
    if start_type not in START_TYPES:
        raise ValueError(f"start type must be one of {', '.join(START_TYPES)}: {start_type!r}")
    _check(application, await _call(StartApplication(application, start_type)))


async def stop_application(application: str) -> None:
    """Stop a running application (its start type is not applied).

    Raises:
        ApplicationError: not started.
    """
    _check(application, await _call(StopApplication(application)))


async def load_and_start(spec: AppSpec, lib_dir: Path | None, start_type: str) -> None:
    """Load then start (the release handler's ``add_application``).

    Raises:
        ApplicationError: the load or the start failed; after a failed start the
            application is unloaded again (if the controller still runs).
    """
    await load_application(spec, lib_dir)
    try:
        await start_application(spec.name, start_type)
    except ApplicationError:
        with contextlib.suppress(ApplicationError, CalleeExited):
            await unload_application(spec.name)
        raise


async def ensure_all_started(
    specs: dict[str, AppSpec], application: str, start_type: str = "temporary"
) -> list[str]:
    """Start ``application`` after its dependencies, depth first, loading any not loaded.

    Dependencies are read from the loaded specs, else from ``specs`` (which are loaded,
    with no lib directory, when needed). On failure every application this call started is
    stopped again and every one it loaded unloaded, so the node is as it was.

    Returns:
        The applications this call started, in order.

    Raises:
        ApplicationError: a dependency is unknown or circular, or failed to start.
        ValueError: ``start_type`` is not permanent, transient or temporary.
    """
    if start_type not in START_TYPES:
        raise ValueError(f"start type must be one of {', '.join(START_TYPES)}: {start_type!r}")
    running = {row.name for row in await which_applications()}
    loaded = {name: spec for name, (spec, _) in (await loaded_applications()).items()}
    started: list[str] = []
    newly_loaded: list[str] = []

    async def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in running or name in started:
            return
        if name in trail:
            raise ApplicationError(
                name,
                f"circular dependency: {' -> '.join((*trail, name))}",
                ("circular_dependency", (*trail, name)),
            )
        spec = loaded.get(name) or specs.get(name)
        if spec is None:
            raise ApplicationError(name, "unknown application (no spec)", ("no_spec", name))
        for dependency in spec.applications:
            await visit(dependency, (*trail, name))
        if name not in loaded:
            await load_application(spec)
            loaded[name] = spec
            newly_loaded.append(name)
        await start_application(name, start_type)
        started.append(name)

    try:
        await visit(application, ())
    except ApplicationError:
        for name in reversed(started):
            with contextlib.suppress(ApplicationError, CalleeExited):
                await stop_application(name)
        for name in reversed(newly_loaded):
            with contextlib.suppress(ApplicationError, CalleeExited):
                await unload_application(name)
        raise
    return started


async def which_applications() -> list[RunningApplication]:
    """The running applications, in start order."""
    return list(await _query(WhichApplications()))


async def top_supervisors() -> dict[str, Pid]:
    """The top supervisor of each running application that has one, in start order."""
    return dict(await _query(TopSupervisors()))


async def loaded_applications() -> dict[str, tuple[AppSpec, Path | None]]:
    """Every loaded application's spec and lib directory."""
    return dict(await _query(LoadedApplications()))


async def start_type(application: str) -> str | None:
    """The start type of a running application, or None."""
    return await _query(GetStartType(application))  # type: ignore[no-any-return]


async def change_application_data(
    apps: Sequence[tuple[AppSpec, Path | None]], sys_env: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Install the specs and env of a new release; returns the previous envs (a snapshot)."""
    return await _query(ChangeApplicationData(tuple(apps), sys_env))  # type: ignore[no-any-return]


async def config_change(snapshot: dict[str, dict[str, Any]]) -> list[tuple[str, object]]:
    """Call ``config_change(changed, new, removed)`` of each running app whose env changed.

    ``snapshot`` is what ``change_application_data`` returned. The callbacks run here, in
    the caller's process (as OTP's release handler runs them), through each callback
    module's current version; a module without ``config_change`` is skipped.

    Returns:
        ``(application, what its config_change returned)`` for each one called; a callback
        that raised gives ``("error", repr(exception))`` and the others still run.
    """
    results: list[tuple[str, object]] = []
    diffs: tuple[EnvChange, ...] = await _query(ConfigDiff(snapshot))
    for diff in diffs:
        name = diff.application
        hook = getattr(resolve(diff.module), "config_change", None)
        if hook is None:
            continue
        try:
            outcome = hook(diff.changed, diff.added, list(diff.removed))
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except Exception as exc:
            logger.exception("config_change of application %s raised", name)
            outcome = ("error", repr(exc))
        results.append((name, outcome))
    return results
