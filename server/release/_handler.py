"""The release handler: a gen_server (registered ``release_handler``) owning RELEASES.

How this works:

1. The state holds the node root, the RELEASES record *in memory* (with ``current``, which
   is never written), the version running, and the operation in progress, if any.
2. It runs under its own supervisor (``_handler_sup``). ``init`` reads RELEASES from disk
   (so a handler started again after a crash knows what the crashed one wrote), marks the
   running release (``current_vsn``) ``current`` again, finishes a remove a crash
   interrupted and deletes what removes left (``_removal``).
3. ``make_permanent`` and ``remove`` run inside the handler; they are quick (their file
   work runs in a thread). ``remove`` sets the release's folders aside, writes RELEASES,
   then deletes them (``_removal``). ``unpack``, ``check_install`` and ``install`` run in
   a worker process the handler spawns and links (file work in a thread: hashing and
   extracting must not stall the node's processes), answering the caller later (a
   deferred reply), so the handler stays responsive: ``which_releases`` answers during an
   install, and a second install is refused with the name of the one running.
4. A worker that ends without sending its result (any exception, or killed) has its
   caller answered at once with an error naming why (``_worker_crashed``). An unpack has a
   deadline (``HandlerConfig.unpack_timeout``): past it the caller gets an UnpackError,
   the worker is killed and the handler is free again (``_give_up``).
5. A status change goes through ``release_status.next_statuses`` (the one table), then
   RELEASES is written atomically, then the reply is sent.
6. An install that fails with ``outcome == "restarting"`` asks the boot process to restart
   the node into the permanent release (``("reboot", reason)``), after replying.
7. Calls are the request records of ``handler`` (the API module). Each is answered with a
   ``replies`` record; a refusal or failure carries the error's facts (``facts_of``), never
   the exception: the caller builds and raises it. The workers report to the handler with
   the ``_Unpacked`` / ``_Installed`` / ``_Checked`` / ``_WorkFailed`` records.

The module is past 600 lines: the handler's calls, its workers and the recovery at its
start share the state above; ``_removal``, ``unpack`` and ``_installer`` hold the file and
install work.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

import anyio

from server import code_server, kernel
from server.behaviours import replies
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply
from server.errors import InstallFailed, InstallRefused, ReleaseError, ServerError, UnpackError
from server.kernel import ExitMessage, From, Pid, TimerRef
from server.release import _faults, _installer
from server.release._removal import (
    delete_leftovers,
    delete_set_aside,
    folders_of,
    leftovers,
    put_back,
    set_aside,
)
from server.release.current import current_vsn, set_current_release
from server.release.handler import (
    CheckInstall,
    GetRollbackTarget,
    HandlerConfig,
    Install,
    InstallByRestart,
    MakePermanent,
    Remove,
    RollbackTarget,
    Unpack,
    WhichReleases,
    error_of,
    facts_of,
)
from server.release.install_events import Event, InstallTally, event_fields
from server.release.installed import read_installed
from server.release.release_status import StatusRefused, next_statuses
from server.release.releases_file import (
    AppEntry,
    ReleaseEntry,
    ReleasesFile,
    read_releases,
    write_next_boot,
    write_releases,
)
from server.release.unpack import UnpackedRelease, unpack_package
from server.spec.requirements import unmet

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from server.release.release_status import Status
    from server.release.signature import TrustedKeys

logger = logging.getLogger("server.release")


# -- what a worker tells the handler -------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class _Unpacked:
    from_: From
    entry: ReleaseEntry


@final
@dataclass(frozen=True, slots=True)
class _Installed:
    from_: From
    vsn: str
    report: _installer.InstallReport


@final
@dataclass(frozen=True, slots=True)
class _Checked:
    from_: From
    report: dict[str, Any]


@final
@dataclass(frozen=True, slots=True)
class _Overdue:
    """The handler's own timer: the unpack run by ``worker`` is past its deadline."""

    worker: Pid


@final
@dataclass(frozen=True, slots=True)
class _WorkFailed:
    from_: From
    answer: replies.Refused | replies.Failed


class HandlerState:
    """What the release handler knows."""

    __slots__ = (
        "booted",
        "busy",
        "installing",
        "local_env",
        "package",
        "pending",
        "record",
        "root",
        "running",
        "started",
        "tally",
        "timer",
        "trusted_keys",
        "unpack_timeout",
        "unpurged",
        "work_started",
        "worker",
    )

    def __init__(self, config: HandlerConfig, record: ReleasesFile, running: str) -> None:
        self.root = config.root
        self.trusted_keys = config.trusted_keys  # unpack refuses packages none of them signed
        self.unpack_timeout = config.unpack_timeout
        self.local_env = config.local_env  # kept over each release's own env by an install
        self.record = record
        self.running = running
        self.booted = config.boot  # the boot process: asked to restart the node when needed
        self.busy: str | None = None  # the operation a worker runs, as ``_busy`` names it
        self.worker: Pid | None = None
        self.pending: From | None = None  # the caller the worker answers, until it does
        self.package: str | None = None  # the package the worker unpacks
        self.timer: TimerRef | None = None  # sends ``_Overdue`` at the unpack's deadline
        self.unpurged: list[str] = []
        self.started = time.time()
        self.installing: str | None = None  # the vsn the worker installs (not checks)
        self.work_started = 0.0  # time.monotonic() when the worker was started
        self.tally = InstallTally()  # every operation answered, for metrics (install_events)

    def __repr__(self) -> str:
        return f"HandlerState(running={self.running!r}, busy={self.busy!r})"


async def init(config: HandlerConfig) -> object:
    kernel.trap_exit(True)
    kernel.set_label("behaviour", "release_handler")
    record = await anyio.to_thread.run_sync(_read_record, config.root)
    running = _running(record, config.booted)
    if running != record.permanent.vsn:  # a handler started again while it runs: current
        record = _with_statuses(record, next_statuses(_statuses(record), running, "install"))
    record = await anyio.to_thread.run_sync(_recover, config.root, record)
    state = HandlerState(config, record, running)
    state.tally.attach()
    return Ok(state)


def _read_record(root: Path) -> ReleasesFile:
    record = read_releases(root)
    if record is None:
        raise ReleaseError(f"{root} has no releases/RELEASES: the boot writes it first")
    return record


def _running(record: ReleasesFile, booted: str) -> str:
    """The release the node runs: the one booted, or (started again) the one installed since."""
    vsn = current_vsn()
    return vsn if vsn is not None and record.get(vsn) is not None else booted


async def handle_call(request: object, from_: From, state: HandlerState) -> object:
    match request:
        case WhichReleases():
            return Reply(replies.Ok(_rows(state)), state)
        case Unpack(package=package):
            if state.busy is not None:
                return Reply(_busy(state), state)
            worker = _start_work(
                state,
                from_,
                f"unpack {Path(package).name}",
                _unpack_work,
                from_,
                package,
                state.root,
                state.record,
                state.trusted_keys,
                state.unpack_timeout,
            )
            state.package = package
            if state.unpack_timeout != math.inf:
                overdue = _Overdue(worker)
                state.timer = kernel.send_after(state.unpack_timeout, kernel.self(), overdue)
            return NoReply(state)
        case MakePermanent(vsn=vsn, rollback=rollback):
            started = time.monotonic()
            was = state.record.permanent.vsn
            answer = _guard(state, lambda: _make_permanent(state, vsn, rollback))
            if isinstance(answer, replies.Ok):
                await _persist(state)
                fields = _event(state, "make_permanent", was, vsn, started, None)
                logger.info("release %s made permanent", vsn, extra=fields)
            else:
                _refused(state, "make_permanent", was, vsn, started, answer)
            return Reply(answer, state)
        case GetRollbackTarget():
            return Reply(_guard(state, lambda: _rollback_target(state)), state)
        case Remove(vsn=vsn):
            started = time.monotonic()
            answer = _busy(state) if state.busy is not None else await _remove(state, vsn)
            if isinstance(answer, replies.Ok):
                fields = _event(state, "remove", vsn, None, started, None)
                logger.info("release %s removed", vsn, extra=fields)
            else:
                _refused(state, "remove", vsn, None, started, answer)
            return Reply(answer, state)
        case InstallByRestart(vsn=vsn):
            started = time.monotonic()
            was = state.running
            answer = (
                _busy(state) if state.busy is not None else await _install_by_restart(state, vsn)
            )
            if not isinstance(answer, replies.Ok):
                _refused(state, "install_by_restart", was, vsn, started, answer)
            return Reply(answer, state)
        case CheckInstall(vsn=vsn) | Install(vsn=vsn):
            started = time.monotonic()
            if state.busy is not None:
                if isinstance(request, Install):
                    _refused(state, "install", state.running, vsn, started, _busy(state))
                return Reply(_busy(state), state)
            try:
                target = state.record.get(vsn)
                if target is None:
                    raise InstallRefused(f"no release {vsn} (unpack it first)")
                if vsn == state.running:
                    raise InstallRefused(f"release {vsn} is already running: nothing to install")
                if isinstance(request, Install):
                    next_statuses(_statuses(state.record), vsn, "install")
            except (ServerError, StatusRefused) as exc:
                answer = _error_reply(exc)
                if isinstance(request, Install):
                    _refused(state, "install", state.running, vsn, started, answer)
                return Reply(answer, state)
            operation = "install" if isinstance(request, Install) else "check_install"
            _start_work(
                state,
                from_,
                f"{operation} {vsn}",
                _work,
                from_,
                request,
                state.root,
                state.running,
                state.local_env,
            )
            state.installing = vsn if isinstance(request, Install) else None
            return NoReply(state)
    refusal = InstallRefused(f"unknown request {request!r}")
    return Reply(_error_reply(refusal), state)


def _start_work(
    state: HandlerState,
    from_: From,
    busy: str,
    work: Callable[..., Awaitable[None]],
    *args: object,
) -> Pid:
    """Spawn and link the worker that answers ``from_``; the handler is busy until it ends."""
    state.busy = busy
    state.pending = from_
    state.package = None
    state.installing = None
    state.work_started = time.monotonic()
    state.worker = kernel.spawn_link(work, kernel.self(), *args)
    return state.worker


def _answered(state: HandlerState, from_: From) -> None:
    """The worker's result for ``from_`` arrived: nobody waits any more."""
    if state.pending == from_:
        state.pending = None


def _work_over(state: HandlerState) -> None:
    """The worker ended (or was given up on): the handler is free for the next operation."""
    if state.timer is not None:
        kernel.cancel_timer(state.timer)
    state.busy = None
    state.worker = None
    state.pending = None
    state.package = None
    state.timer = None
    state.installing = None


def _give_up(state: HandlerState, worker: Pid) -> None:
    """The unpack is past its deadline: answer its caller, stop waiting for its worker.

    The worker is killed; its thread, if blocked in a read, stays blocked until the read
    returns, then stops at its own deadline check (``unpack_package``'s ``timeout``)
    without moving anything into place.
    """
    assert state.package is not None
    logger.error(
        "%s is past its deadline of %g s: giving up on it",
        state.busy,
        state.unpack_timeout,
        extra={"package": state.package},
    )
    if state.pending is not None:
        error = UnpackError(
            state.package,
            f"the unpack took longer than its {state.unpack_timeout:g} s: is the package on "
            "a stalled file system? Nothing was changed: copy it to a local disk and retry",
        )
        kernel.reply(state.pending, _error_reply(error))
    kernel.unlink(worker)
    kernel.exit(worker, kernel.KILL)
    state.timer = None  # it fired
    _work_over(state)


def _worker_crashed(state: HandlerState, reason: object) -> None:
    """Answer the caller a worker left waiting: it ended without a result (a bug, or killed)."""
    if state.pending is None:
        return
    what = (
        f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else repr(reason)
    )
    error: ServerError
    if state.package is not None:  # unpack_package undoes what it did on any exception
        error = UnpackError(
            state.package,
            f"the unpack crashed with {what}; nothing was changed; this is a bug: report it",
        )
    else:
        error = InstallRefused(f"{state.busy} crashed with {what}; report it as a bug")
    kernel.reply(state.pending, _error_reply(error))
    state.pending = None


async def handle_info(message: object, state: HandlerState) -> object:
    match message:
        case _Unpacked(from_=from_, entry=entry) if state.record.get(entry.vsn) is not None:
            # the result of an unpack given up on (past its deadline) that arrived after
            # another unpack of the same vsn: that one is recorded already
            logger.warning("release %s unpacked again after its deadline", entry.vsn)
        case _Unpacked(from_=from_, entry=entry):
            _answered(state, from_)
            releases = [*state.record.releases, entry]
            state.record = state.record.model_copy(update={"releases": releases})
            await _persist(state)
            logger.info("release %s unpacked", entry.vsn)
            kernel.reply(from_, replies.Ok(entry.vsn))
        case _Installed(from_=from_, vsn=vsn, report=report):
            _answered(state, from_)
            state.record = _with_statuses(
                state.record, next_statuses(_statuses(state.record), vsn, "install")
            )
            await _persist(state)
            state.running = vsn
            installed = state.record.get(vsn)
            assert installed is not None
            set_current_release(installed.name, vsn)
            state.unpurged = [m for m in report.modules_loaded if _has_old(m)]
            kernel.reply(from_, replies.Ok(report))
            fields = _event(
                state, "install", report.from_vsn, vsn, state.work_started, None, timed=True
            )
            logger.info(
                "release %s installed (%s from %s) in %.1f ms: %d modules loaded, "
                "%d processes migrated",
                vsn,
                report.direction,
                report.from_vsn,
                report.seconds * 1000,
                len(report.modules_loaded),
                len(report.processes),
                extra={
                    **fields,
                    "report": "release_installed",
                    "direction": report.direction,
                    "seconds": round(report.seconds, 6),
                    "modules_loaded": len(report.modules_loaded),
                    "processes_migrated": len(report.processes),
                    "applications_restarted": list(report.applications_restarted),
                },
            )
        case _WorkFailed(from_=from_, answer=answer):
            _answered(state, from_)
            kernel.reply(from_, answer)
            error = error_of(answer.reason)
            facts: dict[str, object] = {}
            if state.installing is not None:
                facts = _event(
                    state,
                    "install",
                    state.running,
                    state.installing,
                    state.work_started,
                    error,
                    timed=True,
                )
            logger.error(
                "%s failed: %s",
                state.busy or "a release operation",
                error,
                extra={
                    **facts,
                    "report": "release_operation_failed",
                    "running": state.running,
                    "error_type": type(error).__name__,
                },
            )
            if isinstance(error, InstallFailed) and error.outcome == "restarting":
                kernel.send(state.booted, ("reboot", str(error)))
        case _Checked(from_=from_, report=report):
            _answered(state, from_)
            kernel.reply(from_, replies.Ok(report))
        case _Overdue(worker=worker) if worker is state.worker:
            _give_up(state, worker)
        case ExitMessage(pid=pid, reason=reason) if pid is state.worker:
            if reason != kernel.NORMAL:
                logger.error("release handler worker (%s) ended with %r", state.busy, reason)
                _worker_crashed(state, reason)
            _work_over(state)
    return NoReply(state)


async def _install_by_restart(state: HandlerState, vsn: str) -> replies.ServerReply:
    """Mark ``vsn`` current, order the next boot to boot it, and ask the boot to restart."""
    started = time.monotonic()
    try:
        if state.record.get(vsn) is None:
            raise InstallRefused(f"no release {vsn} (unpack it first)")
        if vsn == state.running:
            raise InstallRefused(f"release {vsn} is already running: nothing to install")
        statuses = next_statuses(_statuses(state.record), vsn, "install")
        target = await anyio.to_thread.run_sync(read_installed, state.root, vsn)
        missing = unmet(
            ((a, t) for a, spec in target.apps.items() for t in spec.requires), target.version_of
        )
        if missing:
            raise InstallRefused(
                f"release {vsn} requires what the node's Python environment lacks: "
                + "; ".join(missing)
            )
    except (ServerError, StatusRefused) as exc:
        return _error_reply(exc)
    state.record = _with_statuses(state.record, statuses)
    await _persist(state)
    await anyio.to_thread.run_sync(write_next_boot, state.root, vsn)
    fields = _event(state, "install_by_restart", state.running, vsn, started, None)
    logger.warning(
        "installing release %s by restarting the node: every process's state is lost",
        vsn,
        extra={**fields, "report": "release_install_by_restart"},
    )
    kernel.send(state.booted, ("restart_new_process", vsn))
    return replies.Ok(vsn)


def _event(
    state: HandlerState,
    event: Event,
    from_vsn: str | None,
    to_vsn: str | None,
    started: float,
    error: ServerError | None,
    *,
    timed: bool = False,
) -> dict[str, object]:
    """Count the operation and give its event facts (``install_events``) for its one record.

    ``timed``: an install its worker ran, which also goes to the duration histogram.
    """
    fields = event_fields(
        event,
        release=state.record.permanent.name,
        from_vsn=from_vsn,
        to_vsn=to_vsn,
        duration=time.monotonic() - started,
        error=error,
    )
    state.tally.count(fields, timed=timed)
    return fields


def _refused(
    state: HandlerState,
    event: Event,
    from_vsn: str | None,
    to_vsn: str | None,
    started: float,
    answer: replies.Refused | replies.Failed,
) -> None:
    """Log and count an operation refused before it changed anything."""
    error = error_of(answer.reason)
    fields = _event(state, event, from_vsn, to_vsn, started, error)
    logger.warning("%s refused: %s", event.replace("_", " "), error, extra=fields)


async def _persist(state: HandlerState) -> None:
    """Write RELEASES in a worker thread: its fsyncs must not stall every other process."""
    await anyio.to_thread.run_sync(write_releases, state.root, state.record)


# -- the workers: unpack, check_install and install ---------------------------------------


async def _unpack_work(
    handler: Pid,
    from_: From,
    package: str,
    root: Path,
    record: ReleasesFile,
    trusted: TrustedKeys,
    timeout: float,
) -> None:
    """Unpack in a thread (hashing, two passes over the archive, renames), off the loop.

    Killed (its deadline passed), the worker ends at once: a thread blocked in a read
    cannot be stopped, so it is abandoned, and stops at its own deadline check.
    """
    job = functools.partial(_unpack, Path(package), root, record, trusted, timeout)
    try:
        unpacked = await anyio.to_thread.run_sync(job, abandon_on_cancel=True)
    except (ServerError, OSError) as exc:
        error = exc if isinstance(exc, ServerError) else InstallRefused(f"unpack failed: {exc}")
        kernel.send(handler, _WorkFailed(from_, _error_reply(error)))
        return
    entry = ReleaseEntry(
        name=unpacked.name,
        vsn=unpacked.vsn,
        status="unpacked",
        applications=[
            AppEntry(name=name, vsn=spec.vsn, lib_dir=str(lib.relative_to(root)))
            for name, (spec, lib) in unpacked.apps.items()
        ],
    )
    kernel.send(handler, _Unpacked(from_, entry))


def _unpack(
    package: Path, root: Path, record: ReleasesFile, trusted: TrustedKeys, timeout: float
) -> UnpackedRelease:
    """Delete what earlier removes left (``_removal``), then unpack.

    The folders in place that no release of ``record`` uses are leftovers the unpack
    replaces (``unpack_package``'s ``in_use``).
    """
    known = [entry.vsn for entry in record.releases]
    in_use = {f"releases/{vsn}" for vsn in known} | {
        app.lib_dir for entry in record.releases for app in entry.applications
    }
    vsn = package.name.removesuffix(".tar.gz").partition("-")[2]
    for path, of_vsn, exc in delete_leftovers(root, keep_vsns=known):
        if of_vsn == vsn:
            raise UnpackError(
                str(package),
                f"{path}, left by a remove of release {vsn}, cannot be deleted ({exc}); "
                "delete it, then retry",
            )
        logger.warning("cannot delete %s, left by a remove of %s: %s", path, of_vsn, exc)
    return unpack_package(package, root, known_vsns=known, trusted_keys=trusted, in_use=in_use)


async def _work(
    handler: Pid,
    from_: From,
    request: CheckInstall | Install,
    root: Path,
    running: str,
    local_env: Mapping[str, Mapping[str, Any]],
) -> None:
    vsn = request.vsn
    try:
        current = await anyio.to_thread.run_sync(read_installed, root, running)
        target = await anyio.to_thread.run_sync(read_installed, root, vsn)
        plan = _installer.prepare(current, target, local_env)
        if isinstance(request, CheckInstall):
            touched = await _installer.dry_run(plan)
            kernel.send(handler, _Checked(from_, _check_report(plan, touched)))
            return
        crash = _faults.hook(root, "after_step")  # None unless a crash test armed it
        report = await _installer.execute(plan, request.options, after_step=crash)
    except (ServerError, StatusRefused) as exc:
        kernel.send(handler, _WorkFailed(from_, _error_reply(exc)))
        return
    kernel.send(handler, _Installed(from_, vsn, report))


def _check_report(plan: _installer.Plan, touched: list[tuple[str, str]]) -> dict[str, Any]:
    current, target = plan.current, plan.target
    return {
        "from_vsn": current.vsn,
        "to_vsn": target.vsn,
        "direction": plan.direction,
        "modules": sorted(plan.prepared),
        "instructions": [step.op for step in plan.entry.instructions],
        "processes": [list(t) for t in touched],
        **_installer.application_changes(plan),
        "env_changes": {
            name: {"from": current.apps[name].env, "to": target.apps[name].env}
            for name in target.apps
            if name in current.apps and current.apps[name].env != target.apps[name].env
        },
    }


# -- quick operations ---------------------------------------------------------------------


def _guard(state: HandlerState, operation: Callable[[], object]) -> replies.ServerReply:
    if state.busy is not None:
        return _busy(state)
    try:
        return replies.Ok(operation())
    except (ServerError, StatusRefused) as exc:
        return _error_reply(exc)


def _busy(state: HandlerState) -> replies.Refused:
    refusal = InstallRefused(f"{state.busy} is running: wait for it to finish")
    return replies.Refused(facts_of(refusal))


def _error_reply(exc: ServerError | StatusRefused) -> replies.Refused | replies.Failed:
    """The reply for an operation that raised ``exc``: its facts, not the exception."""
    # a status refusal reaches the caller as the plain InstallRefused it always was
    error = InstallRefused(str(exc)) if type(exc) is StatusRefused else exc
    exc.__traceback__ = None  # the handler keeps nothing of the frames that raised it
    if isinstance(error, InstallFailed):  # after the point of no return: not a refusal
        return replies.Failed(facts_of(error))
    return replies.Refused(facts_of(error))


def _statuses(record: ReleasesFile) -> dict[str, Status]:
    return {entry.vsn: entry.status for entry in record.releases}


def _with_statuses(record: ReleasesFile, statuses: dict[str, Status]) -> ReleasesFile:
    releases = [
        entry.model_copy(update={"status": statuses[entry.vsn]})
        for entry in record.releases
        if entry.vsn in statuses
    ]
    return record.model_copy(update={"releases": releases})


def _rows(state: HandlerState) -> list[dict[str, Any]]:
    return [
        {
            "name": entry.name,
            "vsn": entry.vsn,
            "status": entry.status,
            "applications": [f"{a.name}-{a.vsn}" for a in entry.applications],
        }
        for entry in state.record.releases
    ]


def _make_permanent(state: HandlerState, vsn: str, rollback: bool) -> str:
    if state.record.get(vsn) is None:
        raise InstallRefused(f"no release {vsn}")
    was = state.record.permanent.vsn
    statuses = next_statuses(_statuses(state.record), vsn, "make_permanent")
    record = _with_statuses(state.record, statuses)
    history = list(record.permanent_history) or [was]
    if was != vsn:
        if rollback and len(history) >= 2 and history[-2] == vsn:
            history.pop()  # a rollback undoes the last make_permanent
        else:
            history.append(vsn)
    state.record = record.model_copy(update={"permanent_history": history})
    for module in state.unpurged:  # post-purge brutal_purge: now, as OTP does
        code_server.soft_purge(module)
    state.unpurged = []
    return vsn


def _rollback_target(state: HandlerState) -> RollbackTarget:
    """Where ``rollback`` goes: the permanent release, or the one permanent before it."""
    permanent = state.record.permanent.vsn
    if state.running != permanent:
        return RollbackTarget(permanent, make_permanent=False)
    history = state.record.permanent_history
    if len(history) < 2:
        raise InstallRefused(
            f"nothing to roll back to: {permanent} is the only release made permanent "
            f"(permanent history: {' -> '.join(history)})"
        )
    previous = history[-2]
    if state.record.get(previous) is None:
        raise InstallRefused(
            f"the previous permanent release {previous} was removed (permanent history: "
            f"{' -> '.join(history)}); install a release by its vsn instead"
        )
    return RollbackTarget(previous, make_permanent=True)


async def _remove(state: HandlerState, vsn: str) -> replies.ServerReply:
    """Set the folders of ``vsn`` aside, write RELEASES without it, delete them (``_removal``)."""
    try:
        if state.record.get(vsn) is None:
            raise InstallRefused(f"no release {vsn}")
        statuses = next_statuses(_statuses(state.record), vsn, "remove")
    except (ServerError, StatusRefused) as exc:
        return _error_reply(exc)
    record = _with_statuses(state.record, statuses)
    folders = folders_of(state.record, vsn, state.root)
    try:
        moved = await anyio.to_thread.run_sync(set_aside, state.root, vsn, folders)
    except OSError as exc:
        return _error_reply(
            InstallRefused(
                f"cannot remove release {vsn} ({exc}); nothing was changed: fix the cause and retry"
            )
        )
    try:
        await anyio.to_thread.run_sync(write_releases, state.root, record)
    except OSError as exc:
        back = await anyio.to_thread.run_sync(put_back, moved)
        outcome = (
            "nothing was changed"
            if back
            else "some of its folders stay set aside: the handler finishes the remove when it "
            "next starts"
        )
        return _error_reply(
            InstallRefused(f"cannot write RELEASES ({exc}); {outcome}: fix the cause and retry")
        )
    state.record = record
    for path, error in await anyio.to_thread.run_sync(delete_set_aside, state.root, moved):
        logger.warning(
            "cannot delete %s (%s): it is deleted before the next unpack",
            path,
            error,
            extra={"path": str(path)},
        )
    return replies.Ok(vsn)


def _recover(root: Path, record: ReleasesFile) -> ReleasesFile:
    """Finish the removes a crash interrupted, delete what removes left (``_removal``)."""
    statuses = _statuses(record)
    for vsn in sorted({vsn for _, vsn in leftovers(root)}):
        if record.get(vsn) is None:
            continue
        try:
            statuses = next_statuses(statuses, vsn, "remove")
        except StatusRefused as refused:
            logger.error("folders set aside to remove release %s are kept: %s", vsn, refused)
            continue
        logger.warning(
            "finishing the remove of release %s, which was interrupted", vsn, extra={"vsn": vsn}
        )
        try:
            set_aside(root, vsn, folders_of(record, vsn, root))
            finished = _with_statuses(record, statuses)
            write_releases(root, finished)
        except OSError:
            logger.exception("cannot finish the remove of release %s", vsn)
            statuses = _statuses(record)
            continue
        record = finished
    failed = delete_leftovers(root, keep_vsns={entry.vsn for entry in record.releases})
    for path, vsn, exc in failed:
        logger.warning("cannot delete %s, left by a remove of %s: %s", path, vsn, exc)
    return record


def _has_old(module: str) -> bool:
    return any(info.slot == "old" for info in code_server.which_versions(module))
