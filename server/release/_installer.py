"""Running a relup script on the live node, transactionally where Python allows it.

How this works:

1. ``prepare`` does everything before the point of no return and changes nothing: it finds
   the script (``installed.find_script``), checks it (one point of no return, object code
   for every load, suspends matching resumes and code changes), refuses a soft pre-purge
   that cannot succeed, and builds every new module version in isolation.
2. ``dry_run`` (``check_install``) runs each ``code_change`` the script will call on a deep
   copy of each affected process's live state: a migration bug is found before anything is
   touched.
3. ``execute`` runs the script after the point of no return, keeping an undo log:

   - ``suspend`` suspends every process using the modules: one parked in its behaviour's
     main loop right here, without a message (``system_messages.suspend_in_place``), in
     slices of at most ``SLICE_SECONDS`` between turns of the event loop; any other by
     message, a batch at a time (each batch asked at once, ``BATCH`` processes); a
     timeout aborts;
   - ``load`` / ``remove`` make the prepared version current / delete (undo: revert);
   - ``code_change`` backs each process's state up (a deep copy, so even a
     ``code_change`` that mutates its input loses nothing) and migrates it: in place for
     one suspended in place (its ``code_change`` runs here with ``kernel.self()`` being
     it), else in one round trip, a batch at a time (undo: the backups, put back in place
     or by message);
   - ``resume`` and ``purge`` are deferred: processes stay suspended and old code stays
     loaded until the whole script has succeeded, so no process runs a new state that a
     later failure would have to take back;
   - starting an application is undone by stopping it; a user ``apply``, stopping an
     application and ``stop``/``start`` cannot be undone.

4. Success: resume everything (reverse order; in place where suspended in place), purge,
   soft-purge what became old (looking at the processes in slices), reconcile the
   children of updated supervisors, and let the GC policy freeze what the install left
   (``gc_policy``: no automatic full collection runs while the install does). Failure:
   if nothing irreversible ran, the undo log is replayed backwards and every process is
   resumed with its untouched state (``InstallFailed`` with ``outcome="rolled_back"``);
   otherwise ``outcome`` is ``"restarting"`` and the caller restarts the node into its
   permanent release.
   Processes are never left suspended.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, final

import anyio
from anyio.lowlevel import checkpoint

from server import code_server, kernel
from server.app import controller
from server.behaviours import (
    gen_event,
    gen_statem_callbacks,
    resolve,
    supervisor,
    system_messages,
)
from server.errors import (
    CallError,
    CodeChangeFailed,
    CodeError,
    InstallFailed,
    InstallRefused,
    ServerError,
    SpecError,
    SystemCallError,
)
from server.release import _processes, gc_policy
from server.release.install_feed import InstallEvent, publish
from server.release.installed import find_script
from server.release.relup_builder import APPLICATION_API
from server.spec.env_schema import check_release_env
from server.spec.relup import (
    ApplyCall,
    CodeChange,
    LoadObjectCode,
    ModuleLoad,
    ModuleRemove,
    PointOfNoReturn,
    PurgeModules,
    RestartNewEmulator,
    ResumeModules,
    StartModules,
    StopModules,
    SuspendModules,
)
from server.spec.requirements import requirements_change, unmet
from server.spec.sys_config import merge_env

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from pathlib import Path

    from server.code_server import ModuleVersion
    from server.kernel import Pid
    from server.release.installed import InstalledRelease
    from server.spec.app_spec import AppSpec
    from server.spec.relup import LowInstruction, RelupEntry

__all__ = ["InstallOptions", "InstallReport", "Plan", "dry_run", "execute", "prepare"]

logger = logging.getLogger("server.release")

DEFAULT_TIMEOUT = system_messages.DEFAULT_TIMEOUT

# Processes asked at once by suspend, code_change and resume. A batch wakes that many
# processes in one turn of the event loop, which every other process waits for: at some
# 20 us a process, 500 keep that stall near 10 ms, and a batch costs one round trip.
BATCH = 500

# Processes suspended, migrated or resumed in place (no message: see system_messages) run
# in slices between two turns of the event loop: at most SLICE_SECONDS of work, or
# SLICE_ITEMS processes (resuming one hands it its first queued message, which it handles
# in the next turn), the clock read every SLICE_CHECK processes.
SLICE_SECONDS = 0.004
SLICE_ITEMS = 512
SLICE_CHECK = 64


@final
@dataclass(frozen=True, slots=True)
class InstallOptions:
    """``suspend_timeout`` replaces every suspend's timeout (as in OTP) when given."""

    suspend_timeout: float | None = None
    code_change_timeout: float = DEFAULT_TIMEOUT
    progress: Callable[[str, int, int], None] | None = None  # (step, done, total)


@final
@dataclass(frozen=True, slots=True)
class InstallReport:
    """What an install did, or (``check_install``) would do."""

    from_vsn: str
    to_vsn: str
    direction: str
    modules_loaded: tuple[str, ...]
    modules_removed: tuple[str, ...]
    processes: tuple[tuple[str, str], ...]  # (pid, module) suspended and migrated
    applications_added: tuple[str, ...]
    applications_removed: tuple[str, ...]
    applications_restarted: tuple[str, ...]
    env_changes: dict[str, Any]
    seconds: float

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON data (for the control socket)."""
        return {
            "from_vsn": self.from_vsn,
            "to_vsn": self.to_vsn,
            "direction": self.direction,
            "modules_loaded": list(self.modules_loaded),
            "modules_removed": list(self.modules_removed),
            "processes": [list(p) for p in self.processes],
            "applications_added": list(self.applications_added),
            "applications_removed": list(self.applications_removed),
            "applications_restarted": list(self.applications_restarted),
            "env_changes": self.env_changes,
            "seconds": round(self.seconds, 6),
        }


@final
@dataclass
class Plan:
    """A checked script with its new module versions built, ready to run."""

    current: InstalledRelease
    target: InstalledRelease
    direction: str
    entry: RelupEntry
    prepared: dict[str, ModuleVersion]
    old_vsns: dict[str, object]
    #: the node's own env layers, kept over the releases' sys.config env
    local_env: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def script(self) -> list[LowInstruction]:
        """The instructions after the point of no return."""
        steps = self.entry.instructions
        point = next(i for i, s in enumerate(steps) if isinstance(s, PointOfNoReturn))
        return list(steps[point + 1 :])

    def code_change_vsn(self, module: str, mode: str) -> object:
        """What ``code_change`` gets: the old vsn up, ``("down", vsn of the older code)``."""
        if mode == "up":
            return self.old_vsns.get(module)
        version = self.prepared.get(module)
        return ("down", version.vsn if version is not None else self.old_vsns.get(module))


# -- before the point of no return --------------------------------------------------------


def prepare(
    current: InstalledRelease,
    target: InstalledRelease,
    local_env: Mapping[str, Mapping[str, Any]] | None = None,
) -> Plan:
    """Check the script, the target's env, and build every new module version; nothing changes.

    ``local_env`` is the node's own env layer (its sys.config and the environment), kept
    over the target release's sys.config as at boot.

    Raises:
        InstallRefused: no script, a malformed script, a soft pre-purge that would fail, a
            module that does not build (named, with its error), or an env the target's
            ``env_schema`` refuses.
    """
    try:
        direction, entry = find_script(current, target)
    except ServerError as exc:
        raise InstallRefused(str(exc)) from None
    if any(isinstance(step, RestartNewEmulator) for step in entry.instructions):
        raise InstallRefused(
            f"the relup from {current.spec.vsn} to {target.spec.vsn} says restart_new_emulator "
            f"(the releases need other Python distributions, which are not managed code), so it "
            f"cannot be installed module by module: `server install {target.spec.vsn} "
            "--restart` installs it by a restart of the node (every process's state is lost)"
        )
    _check_script(entry.instructions, target)
    missing = unmet(
        ((app, text) for app, spec in target.apps.items() for text in spec.requires),
        target.version_of,
    )
    if missing:
        raise InstallRefused(
            f"release {target.spec.vsn} requires what the node's Python environment lacks: "
            + "; ".join(missing)
        )
    old_requires = [t for spec in current.apps.values() for t in spec.requires]
    added, removed = requirements_change(
        old_requires, [t for spec in target.apps.values() for t in spec.requires]
    )
    if added or removed:
        raise InstallRefused(
            f"release {target.spec.vsn} requires other Python distributions than "
            f"{current.spec.vsn} (added: {', '.join(added) or 'none'}; removed: "
            f"{', '.join(removed) or 'none'}); they are not managed code, so it cannot be "
            f"installed module by module: install it by a restart of the node, "
            f"`server install {target.spec.vsn} --restart` (every process's state is lost)"
        )
    local = dict(local_env or {})
    try:
        check_release_env(
            {app: (spec.env_schema, spec.env) for app, spec in target.apps.items()},
            [
                (f"releases/{target.spec.vsn}/sys.config", target.sys_config.env),
                ("the node's sys.config and environment", local),
            ],
            f"release {target.spec.name} {target.spec.vsn}",
        )
    except SpecError as exc:
        raise InstallRefused(str(exc)) from None
    plan = Plan(current, target, direction, entry, {}, {}, local)
    # a new application's modules may import one another while they are built
    borrowed = code_server.replace_paths(
        (target.lib_dirs[name] for name in target.apps if name not in current.apps),
        keep_managed=True,
    )
    try:
        _build_versions(plan)
    finally:
        code_server.restore_paths(borrowed)
    for step in plan.script:
        if not isinstance(step, ModuleLoad | ModuleRemove) or step.pre_purge != "soft_purge":
            continue
        if code_server.processes_in_old_code(step.module):
            raise InstallRefused(
                f"old_processes: processes still run old code of {step.module} "
                f"(its appup asks for soft_purge): wait for them, or purge it first"
            )
    for step in plan.script:
        if isinstance(step, ModuleRemove):
            plan.old_vsns.setdefault(step.module, _vsn_or_none(step.module))
    return plan


def _build_versions(plan: Plan) -> None:
    """Build every module of every ``load_object_code`` in isolation."""
    target = plan.target
    for step in plan.entry.instructions:
        if isinstance(step, LoadObjectCode):
            lib_dir = target.lib_dirs[step.application]
            for module in step.modules:
                path = _source_file(lib_dir, module)
                try:
                    plan.prepared[module] = code_server.prepare(module, path)
                except (CodeError, OSError) as exc:
                    raise InstallRefused(f"release {target.vsn}: {exc}") from None
                plan.old_vsns[module] = _vsn_or_none(module)


def _check_script(steps: list[LowInstruction], target: InstalledRelease) -> None:
    points = [i for i, s in enumerate(steps) if isinstance(s, PointOfNoReturn)]
    if len(points) != 1:
        raise InstallRefused(f"the relup needs exactly one point_of_no_return, has {len(points)}")
    before, after = steps[: points[0]], steps[points[0] + 1 :]
    problems: list[str] = []
    problems.extend(
        f"{s.op} before the point of no return"
        for s in before
        if not isinstance(s, LoadObjectCode | ApplyCall)
    )
    object_code: set[str] = set()
    for s in steps:
        if isinstance(s, LoadObjectCode):
            app = target.spec.app(s.application)
            if app is None or app.vsn != s.vsn:
                problems.append(f"load_object_code {s.application} {s.vsn}: not in the target")
            object_code.update(s.modules)
    suspended: set[str] = set()
    resumed: set[str] = set()
    for s in after:
        if isinstance(s, LoadObjectCode):
            problems.append("load_object_code after the point of no return")
        elif isinstance(s, ModuleLoad) and s.module not in object_code:
            problems.append(f"load {s.module}: no load_object_code reads it")
        elif isinstance(s, SuspendModules):
            suspended.update(m.module for m in s.modules)
        elif isinstance(s, ResumeModules):
            resumed.update(s.modules)
        elif isinstance(s, CodeChange):
            problems.extend(
                f"code_change {m.module}: not suspended"
                for m in s.modules
                if m.module not in suspended
            )
    if suspended != resumed:
        problems.append(f"suspended and resumed modules differ: {sorted(suspended ^ resumed)}")
    problems.extend(_application_order(after))
    if problems:
        raise InstallRefused(f"the relup to {target.vsn} is invalid: " + "; ".join(problems))


def _application_order(steps: list[LowInstruction]) -> list[str]:
    """An application stopped twice, or started twice, without the other step between."""
    problems: list[str] = []
    last: dict[str, str] = {}
    for step in steps:
        if not (isinstance(step, ApplyCall) and step.module == APPLICATION_API and step.args):
            continue
        if step.function not in ("start_application", "stop_application"):
            continue
        name = str(step.args[0])
        if last.get(name) == step.function:
            problems.append(f"{step.function} {name} twice in a row: the relup would fail there")
        last[name] = step.function
    return problems


def _source_file(lib_dir: Path, module: str) -> Path:
    base = lib_dir.joinpath(*module.split("."))
    package = base / "__init__.py"
    return package if package.is_file() else base.with_suffix(".py")


def _vsn_or_none(module: str) -> object:
    try:
        return code_server.get_vsn(module)
    except CodeError:
        return None


async def dry_run(plan: Plan) -> list[tuple[str, str]]:
    """Run every ``code_change`` of the script on deep copies of the live states.

    Returns:
        ``(pid, module)`` of every worker the install would suspend and migrate (as the
        install report counts them: a supervisor's new child specs are not a migration).

    Raises:
        InstallRefused: a ``code_change`` raised (the process, module and traceback named).
    """
    processes = await _processes.supervised_processes()
    touched: list[tuple[str, str]] = []
    script = plan.script
    for index, step in enumerate(script):
        if not isinstance(step, CodeChange):
            continue
        for change in step.modules:
            # the code that runs it: the new version when the script loaded it before this
            # step (upgrades, static downgrades), else the code still current
            loaded_before = any(
                isinstance(s, ModuleLoad) and s.module == change.module for s in script[:index]
            )
            version = plan.prepared.get(change.module) if loaded_before else None
            code = version.module if version is not None else resolve(change.module)
            hook = getattr(code, "code_change", None)
            old_vsn = plan.code_change_vsn(change.module, step.mode)
            for using in _processes.processes_using(processes, change.module):
                if using.is_supervisor:  # its new child specs are read at the install
                    continue
                touched.append((repr(using.pid), change.module))
                if hook is not None:
                    await _dry_one(using, change.module, hook, old_vsn, change.extra)
    return touched


def application_changes(plan: Plan) -> dict[str, list[str]]:
    """The applications the script starts (added), stops (removed) or both (restarted)."""
    started: list[str] = []
    stopped: list[str] = []
    for step in plan.script:
        if isinstance(step, ApplyCall) and step.module == APPLICATION_API and step.args:
            if step.function == "start_application":
                started.append(str(step.args[0]))
            elif step.function == "stop_application":
                stopped.append(str(step.args[0]))
    return {
        "applications_added": [name for name in started if name not in stopped],
        "applications_removed": [name for name in stopped if name not in started],
        "applications_restarted": [name for name in started if name in stopped],
    }


async def _dry_one(
    using: _processes.Using, module: str, hook: Any, old_vsn: object, extra: object
) -> None:
    try:
        state = await system_messages.get_state(using.pid)
    except CallError:
        return  # the process ended meanwhile: nothing to migrate
    # a gen_statem's state is (state, data), and its code_change takes both and returns Ok;
    # an event manager's state is one HandlerState per handler: each of ``module`` migrates
    statem = kernel.get_label(using.pid, "behaviour") == "gen_statem"
    states: list[Any] = gen_event.handler_states(state, module) if using.dynamic else [state]
    try:
        for one in states:
            if statem:
                state_name, data = copy.deepcopy(one)
                result = hook(old_vsn, state_name, data, extra)
            else:
                result = hook(old_vsn, copy.deepcopy(one), extra)
            if hasattr(result, "__await__"):
                result = await result
            if statem and type(result) is not gen_statem_callbacks.Ok:
                raise TypeError(
                    f"a gen_statem's code_change must return Ok(state, data), not {result!r}"
                )
    except Exception as exc:
        raise InstallRefused(
            f"dry run of {module}.code_change({old_vsn!r}, <state>, {extra!r}) in process "
            f"{_who(using.pid)} raised {exc!r}; nothing was changed:\n{_trace(exc)}"
        ) from None


def _trace(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


# -- after the point of no return ---------------------------------------------------------


@dataclass
class _Run:
    """The state of one execution: the undo log and what is deferred to the commit."""

    plan: Plan
    options: InstallOptions
    undo: list[tuple[str, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    irreversible: str | None = None
    suspended: list[Pid] = field(default_factory=list)
    suspended_set: set[Pid] = field(default_factory=set)
    suspended_by_module: dict[str, list[_processes.Using]] = field(default_factory=dict)
    processes: list[_processes.Using] | None = None
    purges: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    migrated: list[tuple[str, str]] = field(default_factory=list)
    supervisors: list[Pid] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)


async def execute(
    plan: Plan,
    options: InstallOptions,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    after_step: Callable[[int], None] | None = None,
) -> InstallReport:
    """Run the script on the live node (see the module docstring).

    ``after_step(i)`` runs after instruction ``i`` (fault-injection tests kill the node).

    Raises:
        InstallFailed: a step failed; ``outcome`` says whether it was rolled back in place.
    """
    began = time.perf_counter()
    progress = progress or options.progress
    run = _Run(plan, options)
    steps = plan.script
    with gc_policy.deferred():
        snapshot = await _switch_paths_and_env(run)
        for index, step in enumerate(steps):
            if progress is not None:
                progress(step.op, index, len(steps))
            _publish(run, step.op, index)
            try:
                await _step(run, step)
            except _StepFailed as failure:
                await _failed(run, failure, index)
            except Exception as exc:
                await _failed(run, _StepFailed(step.op, repr(exc) + "\n" + _trace(exc)), index)
            if after_step is not None:
                after_step(index)
        await _commit(run)
    # the records of every process of the trees: freed a slice at a time (100,000 freed at
    # once held the loop ~20 ms), and not kept by the freeze
    run.suspended_by_module.clear()
    records, run.processes = run.processes or [], None
    while records:
        del records[-SLICE_ITEMS * 8 :]
        await checkpoint()
    gc_policy.settle(f"the install of {plan.target.vsn}")
    changes = await controller.config_change(snapshot)
    env_changes = {name: repr(outcome) for name, outcome in changes}
    if progress is not None:
        progress("done", len(steps), len(steps))
    _publish(run, "done", len(steps), outcome="done")
    return InstallReport(
        from_vsn=plan.current.vsn,
        to_vsn=plan.target.vsn,
        direction=plan.direction,
        modules_loaded=tuple(run.loaded),
        modules_removed=tuple(run.removed),
        processes=tuple(run.migrated),
        applications_added=tuple(a for a in run.added if a not in run.stopped),
        applications_removed=tuple(a for a in run.stopped if a not in run.added),
        applications_restarted=tuple(a for a in run.added if a in run.stopped),
        env_changes=env_changes,
        seconds=time.perf_counter() - began,
    )


def _publish(
    run: _Run, step: str, index: int, *, error: str | None = None, outcome: str = "running"
) -> None:
    """Tell the install's watcher (``install_feed``) where this install is."""
    plan = run.plan
    publish(
        InstallEvent(
            plan.current.vsn,
            plan.target.vsn,
            step,
            index,
            len(plan.script),
            len(run.suspended),
            len(run.migrated),
            error,
            outcome,
        )
    )


async def _failed(run: _Run, failure: _StepFailed, index: int) -> None:
    """``_fail``, telling the watcher how the install ended (the error's first line)."""
    try:
        await _fail(run, failure)
    except InstallFailed as exc:
        first = failure.detail.splitlines()[0] if failure.detail else failure.step
        _publish(run, failure.step, index, error=first, outcome=exc.outcome)
        raise


def _who(pid: Pid) -> str:
    """A process as errors and reports name it: its pid, and its registered name if any."""
    info = kernel.process_info(pid)
    name = info.registered_name if info is not None else None
    return f"{pid!r} ({name})" if name else repr(pid)


class _StepFailed(Exception):
    def __init__(self, step: str, detail: str, pid: str | None = None, module: str | None = None):
        super().__init__(detail)
        self.step = step
        self.detail = detail
        self.pid = pid
        self.module = module


async def _switch_paths_and_env(run: _Run) -> dict[str, dict[str, Any]]:
    """The point of no return: code paths and application data of the target release."""
    current, target = run.plan.current, run.plan.target
    switched = code_server.replace_paths(
        lib_dir
        for name, lib_dir in target.lib_dirs.items()
        if current.lib_dirs.get(name) != lib_dir
    )

    async def restore_paths() -> None:
        code_server.restore_paths(switched)

    run.undo.append(("code paths", restore_paths))
    target_apps: list[tuple[AppSpec, Path | None]] = [
        (target.apps[n], target.lib_dirs[n]) for n in target.apps
    ]
    snapshot = await controller.change_application_data(
        target_apps, merge_env(target.sys_config.env, run.plan.local_env)
    )
    current_apps: list[tuple[AppSpec, Path | None]] = [
        (current.apps[n], current.lib_dirs[n]) for n in current.apps
    ]

    async def restore_data() -> None:
        await controller.change_application_data(
            current_apps, merge_env(current.sys_config.env, run.plan.local_env)
        )

    run.undo.append(("application data", restore_data))
    return snapshot


async def _step(run: _Run, step: LowInstruction) -> None:
    match step:
        case SuspendModules():
            await _suspend(run, step)
        case ModuleLoad(module=module):
            await _load(run, module)
        case ModuleRemove(module=module):
            await _remove(run, module)
        case CodeChange():
            await _code_change(run, step)
        case ResumeModules() | PurgeModules():
            if isinstance(step, PurgeModules):
                run.purges.extend(step.modules)  # deferred: old code stays until the commit
        case ApplyCall():
            await _apply(run, step)
        case StopModules() | StartModules():
            await _stop_or_start(run, step)
        case _:
            raise _StepFailed(step.op, f"{step.op} is not allowed after the point of no return")


async def _suspend(run: _Run, step: SuspendModules) -> None:
    if run.processes is None:
        run.processes = await _processes.supervised_processes()
    by_timeout: dict[float, list[Pid]] = {}
    for entry in step.modules:
        timeout = run.options.suspend_timeout or entry.timeout or DEFAULT_TIMEOUT
        using = await _using(run.processes, entry.module)
        run.suspended_by_module[entry.module] = using
        wanted = by_timeout.setdefault(timeout, [])
        wanted.extend(u.pid for u in using if u.pid not in run.suspended_set)
    for timeout, pids in by_timeout.items():
        # parked in their main loop: suspended right here, without a message
        by_message: list[Pid] = []
        slices = _Slices()
        for pid in pids:
            if pid in run.suspended_set:
                continue
            if system_messages.suspend_in_place(pid):
                run.suspended.append(pid)
                run.suspended_set.add(pid)
            else:
                by_message.append(pid)
            if slices.due():
                await slices.next()
        for start in range(0, len(by_message), BATCH):
            batch = [p for p in by_message[start : start + BATCH] if p not in run.suspended_set]
            outcomes = await system_messages.suspend_many(batch, timeout=timeout)
            failures: list[tuple[Pid, BaseException]] = []
            for pid, error in zip(batch, outcomes, strict=True):
                if error is None:
                    run.suspended.append(pid)
                    run.suspended_set.add(pid)
                elif kernel.is_alive(pid):
                    failures.append((pid, error))
            if failures:  # the batches not asked yet stay running: nothing to resume there
                pid, exc = failures[0]
                raise _StepFailed(
                    "suspend", f"process {_who(pid)} did not suspend: {exc}", _who(pid)
                )


async def _using(processes: list[_processes.Using], module: str) -> list[_processes.Using]:
    """``processes_using``, yielding to the event loop every ``SLICE_ITEMS * 8`` processes."""
    found: list[_processes.Using] = []
    seen: set[Pid] = set()
    for index, process in enumerate(processes):
        if module in process.modules and process.pid not in seen:
            seen.add(process.pid)
            found.append(process)
        if not (index + 1) % (SLICE_ITEMS * 8):
            await checkpoint()
    return found


@final
class _Slices:
    """Work done between two turns of the event loop, at most ``SLICE_SECONDS`` of it."""

    __slots__ = ("count", "ends")

    def __init__(self) -> None:
        self.count = 0
        self.ends = time.perf_counter() + SLICE_SECONDS

    def due(self) -> bool:
        """After one more item: whether it is time to let the other processes run."""
        self.count += 1
        return not self.count % SLICE_CHECK and (
            self.count >= SLICE_ITEMS or time.perf_counter() >= self.ends
        )

    async def next(self) -> None:
        """Let every other process run one turn, then start a new slice."""
        await checkpoint()
        self.count = 0
        self.ends = time.perf_counter() + SLICE_SECONDS


async def _load(run: _Run, module: str) -> None:
    version = run.plan.prepared[module]
    if code_server.has_old(module):
        await code_server.purge(module)  # the code from two versions ago: never needed again
    code_server.install_prepared(module, version)
    run.loaded.append(module)

    async def undo() -> None:
        code_server.revert(module)

    run.undo.append((f"load {module}", undo))


async def _remove(run: _Run, module: str) -> None:
    if not code_server.which_versions(module):
        return  # never loaded (imported on first use, and not used yet): nothing to remove
    if code_server.has_old(module):
        # the pre-purge, as for a load (a soft one was checked before the point of no return)
        await code_server.purge(module)
    if not code_server.delete(module):
        raise _StepFailed(
            "remove", f"module {module} cannot be removed (it has no current version)"
        )
    run.removed.append(module)

    async def undo() -> None:
        code_server.revert(module)

    run.undo.append((f"remove {module}", undo))


async def _code_change(run: _Run, step: CodeChange) -> None:
    timeout = run.options.code_change_timeout
    for change in step.modules:
        old_vsn = run.plan.code_change_vsn(change.module, step.mode)
        using = run.suspended_by_module.get(change.module, [])
        by_message = await _change_in_place(run, using, change.module, old_vsn, change.extra)
        for start in range(0, len(by_message), BATCH):
            batch = by_message[start : start + BATCH]
            await _change_batch(run, batch, change.module, old_vsn, change.extra, timeout)


async def _change_in_place(
    run: _Run, using: list[_processes.Using], module: str, old_vsn: object, extra: object
) -> list[_processes.Using]:
    """Migrate the processes suspended in place; returns the others (the first failure raises).

    ``code_change`` runs right here, with ``kernel.self()`` being each process.
    """
    by_message: list[_processes.Using] = []
    changed: list[Pid] = []
    backups: list[object] = []
    failure: _StepFailed | None = None
    slices = _Slices()
    in_place, not_in_place = system_messages.change_code_in_place, system_messages.NOT_IN_PLACE
    suspended = run.suspended_set
    for entry in using:
        pid = entry.pid
        if pid not in suspended:
            continue
        try:
            backup = in_place(pid, module, old_vsn, extra)
        except CodeChangeFailed as exc:  # the process put its own state back
            failure = _StepFailed("code_change", f"{_who(pid)}: {exc}", repr(pid), module)
            break
        if backup is not_in_place:
            by_message.append(entry)
        else:
            changed.append(pid)
            backups.append(backup)
            if entry.is_supervisor:
                run.supervisors.append(pid)  # re-read below; the report counts workers
            else:
                run.migrated.append((repr(pid), module))
        if slices.due():
            await slices.next()
    if changed:
        _undo_changes(run, module, changed, backups)
    if failure is not None:
        raise failure
    return by_message


def _undo_changes(run: _Run, module: str, changed: list[Pid], backups: list[object]) -> None:
    """Log the undo of a migration: each process gets its backup back, in place if it can."""

    async def undo() -> None:
        by_message: list[Pid] = []
        fns: list[Callable[[object], object]] = []
        slices = _Slices()
        for pid, backup in zip(changed, backups, strict=True):
            if not system_messages.replace_state_in_place(pid, backup):
                by_message.append(pid)
                fns.append(_constant(backup))
            if slices.due():
                await slices.next()
        for start in range(0, len(by_message), BATCH):
            pids = by_message[start : start + BATCH]
            await system_messages.replace_state_many(pids, fns[start : start + BATCH])

    run.undo.append((f"code_change {module} ({len(changed)} processes)", undo))


async def _change_batch(
    run: _Run,
    batch: list[_processes.Using],
    module: str,
    old_vsn: object,
    extra: object,
    timeout: float,
) -> None:
    """Migrate a batch (each process backs its state up first); the first failure raises."""
    pids = [u.pid for u in batch]
    outcomes = await system_messages.change_code_many(pids, module, old_vsn, extra, timeout=timeout)
    changed: list[Pid] = []
    backups: list[object] = []
    failure: _StepFailed | None = None
    for using, outcome in zip(batch, outcomes, strict=True):
        pid = using.pid
        if isinstance(outcome, CallError | SystemCallError):
            if failure is None and kernel.is_alive(pid):
                failure = _StepFailed("code_change", f"{_who(pid)}: {outcome}", repr(pid), module)
            continue
        changed.append(pid)
        backups.append(outcome)
        if using.is_supervisor:
            run.supervisors.append(pid)  # re-read below; the report counts workers
        else:
            run.migrated.append((repr(pid), module))
    if changed:
        _undo_changes(run, module, changed, backups)
    if failure is not None:  # a failed code_change put its own state back from its backup
        raise failure


def _constant(value: object) -> Callable[[object], object]:
    return lambda _: value


async def _apply(run: _Run, step: ApplyCall) -> None:
    if step.module == APPLICATION_API:
        await _application_step(run, step.function, step.args)
        return
    run.irreversible = run.irreversible or f"apply {step.module}.{step.function}"
    fn = getattr(resolve(step.module), step.function)
    result = fn(*step.args)
    if hasattr(result, "__await__"):
        await result


async def _application_step(run: _Run, function: str, args: list[Any]) -> None:
    name = str(args[0])
    target = run.plan.target
    if function in ("start_application", "load_application"):
        loaded = await controller.loaded_applications()
        if name not in loaded:
            await controller.load_application(target.apps[name], target.lib_dirs[name])
        if function == "start_application":
            await controller.start_application(name, str(args[1]))
            run.added.append(name)

        async def undo() -> None:
            running = {row.name for row in await controller.which_applications()}
            if name in running:
                await controller.stop_application(name)
            await controller.unload_application(name)

        run.undo.append((f"{function} {name}", undo))
    elif function == "stop_application":
        run.irreversible = run.irreversible or f"stop_application {name}"
        await controller.stop_application(name)
        run.stopped.append(name)
    elif function == "unload_application":
        await controller.unload_application(name)
    else:
        raise _StepFailed("apply", f"unknown application step {function}")


async def _stop_or_start(run: _Run, step: StopModules | StartModules) -> None:
    run.irreversible = run.irreversible or step.op
    if run.processes is None:
        run.processes = await _processes.supervised_processes()
    for module in step.modules:
        for using in _processes.processes_using(run.processes, module):
            if using.supervisor is None or using.child_id is None:
                continue
            try:
                if isinstance(step, StopModules):
                    await supervisor.terminate_child(using.supervisor, using.child_id)
                else:
                    await supervisor.restart_child(using.supervisor, using.child_id)
            except ServerError as exc:  # as OTP: errors are ignored
                logger.warning("%s %s: %s", step.op, using.child_id, exc)


async def _resume_all(run: _Run) -> None:
    pids = list(reversed(run.suspended))
    run.suspended.clear()
    run.suspended_set.clear()
    by_message: list[Pid] = []
    slices = _Slices()
    for pid in pids:
        if not system_messages.resume_in_place(pid):
            by_message.append(pid)  # suspended by message (or woken into it), or ended
        if slices.due():
            await slices.next()
    for start in range(0, len(by_message), BATCH):  # ended meanwhile: nothing to resume
        await system_messages.resume_many(by_message[start : start + BATCH], timeout=math.inf)


async def _commit(run: _Run) -> None:
    with anyio.CancelScope(shield=True):
        await _resume_all(run)
        for module in run.purges:
            await code_server.purge(module)
        for module in run.loaded:
            await code_server.soft_purge_in_slices(module, slice_seconds=SLICE_SECONDS)
        for sup in run.supervisors:
            await _reconcile(sup)


async def _reconcile(sup: Pid) -> None:
    """Start the children a supervisor's new spec added, stop the ones it dropped."""
    try:
        spec = await supervisor.get_spec_info(sup)
        rows = await supervisor.which_children(sup)
    except CallError:
        return
    if spec.strategy == "simple_one_for_one":
        return
    wanted = set(spec.child_ids)
    for row in rows:
        if row.id is None:
            continue
        try:
            if row.id not in wanted:
                await supervisor.terminate_child(sup, row.id)
                await supervisor.delete_child(sup, row.id)
            elif row.pid is None:
                await supervisor.restart_child(sup, row.id)
        except ServerError as exc:
            logger.warning("supervisor %r: reconciling child %s: %s", sup, row.id, exc)


async def _fail(run: _Run, failure: _StepFailed) -> None:
    """Undo in place when possible, then raise ``InstallFailed`` (never leaves suspended)."""
    vsn = run.plan.target.vsn
    outcome = "rolled_back"
    with anyio.CancelScope(shield=True):
        if run.irreversible is not None:
            outcome = "restarting"
            logger.error(
                "install of %s failed at %s after %s, which cannot be undone",
                vsn,
                failure.step,
                run.irreversible,
            )
        else:
            for what, undo in reversed(run.undo):
                try:
                    await undo()
                except Exception:
                    logger.exception("undoing %s failed", what)
                    outcome = "restarting"
        await _resume_all(run)
    raise InstallFailed(
        vsn, failure.step, outcome, failure.detail, pid=failure.pid, module=failure.module
    )
