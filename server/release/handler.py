"""The release handler's API: each function is a call to the ``release_handler`` process.

OTP's ``release_handler`` operations, with OTP's statuses (``permanent``, ``current``,
``old``, ``unpacked``), plus ``rollback`` and ``upgrade`` as the control CLI offers them.

Each function sends one of the request records below. The handler answers with a typed
reply: ``replies.Ok``; ``Refused`` (nothing changed) or ``Failed`` (an install that failed
after its point of no return), whose reason is an ``ErrorFacts`` record, plain data.
The function builds the exception from those facts and raises it here, in the caller's
process (``error_of``): no exception object crosses from the handler.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, final

from server import errors
from server.behaviours import gen_server, supervisor
from server.behaviours.replies import Failed, Ok, Refused
from server.errors import ReleaseError, ServerError
from server.kernel import whereis
from server.release._installer import InstallOptions, InstallReport
from server.release.current import current_release
from server.release.install_events import InstallStatistics, event_fields, tally_of
from server.release.signature import NO_TRUSTED_KEYS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from server.kernel import Pid
    from server.release.signature import TrustedKeys

__all__ = [
    "DEFAULT_UNPACK_TIMEOUT",
    "NAME",
    "SUPERVISOR",
    "HandlerConfig",
    "InstallOptions",
    "InstallReport",
    "check_install",
    "install",
    "install_by_restart",
    "install_statistics",
    "make_permanent",
    "remove",
    "rollback",
    "start_link",
    "start_supervisor",
    "unpack",
    "upgrade",
    "which_releases",
]

logger = logging.getLogger("server.release")

NAME = "release_handler"
ENGINE = "server.release._handler"
SUPERVISOR = "release_handler_sup"
SUPERVISOR_ENGINE = "server.release._handler_sup"


# -- the requests (answered by the handler with a ``replies`` record) ---------------------


@final
@dataclass(frozen=True, slots=True)
class WhichReleases:
    """Answer with a row (name, vsn, status, applications) for each release."""


@final
@dataclass(frozen=True, slots=True)
class Unpack:
    """Verify and unpack the package at ``package``; answer with its vsn."""

    package: str


@final
@dataclass(frozen=True, slots=True)
class CheckInstall:
    """Check an install of ``vsn`` up to its point of no return; answer with the report."""

    vsn: str


@final
@dataclass(frozen=True, slots=True)
class Install:
    """Install ``vsn``; answer with the ``InstallReport``."""

    vsn: str
    options: InstallOptions  # its ``progress`` runs in the install's process on this node


@final
@dataclass(frozen=True, slots=True)
class InstallByRestart:
    """Install ``vsn`` by restarting the node's OS process into it (its state is lost)."""

    vsn: str


@final
@dataclass(frozen=True, slots=True)
class MakePermanent:
    """Make the running release ``vsn`` permanent (``rollback``: undo the last one)."""

    vsn: str
    rollback: bool = False


@final
@dataclass(frozen=True, slots=True)
class Remove:
    """Remove release ``vsn`` and its unshared code; answer with ``vsn``."""

    vsn: str


@final
@dataclass(frozen=True, slots=True)
class GetRollbackTarget:
    """Answer with the ``RollbackTarget`` a rollback would go to."""


HandlerRequest = (
    WhichReleases
    | Unpack
    | CheckInstall
    | Install
    | InstallByRestart
    | MakePermanent
    | Remove
    | GetRollbackTarget
)


@final
@dataclass(frozen=True, slots=True)
class RollbackTarget:
    """Where ``rollback`` goes, and whether it then makes that release permanent again."""

    vsn: str
    make_permanent: bool


# -- the facts a refusal or failure carries ------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class ErrorFacts:
    """An error as plain data: its class in ``server.errors``, its message and its fields.

    ``fields`` are the error's public attributes that are plain data (strings, numbers,
    None, and tuples, lists or dicts of them): ``vsn``, ``outcome``, ``package``,
    ``member``, ``problems``... What is not plain data is left out.
    """

    kind: str
    message: str
    fields: tuple[tuple[str, object], ...]

    def field(self, name: str) -> object:
        """The value of field ``name``, or None."""
        return dict(self.fields).get(name)


def _is_plain(value: object) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, tuple | list):
        return all(_is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(_is_plain(k) and _is_plain(v) for k, v in value.items())
    return False


def facts_of(error: ServerError) -> ErrorFacts:
    """The plain facts of ``error``, from which ``error_of`` builds it again (type and all)."""
    fields = tuple(
        (name, value)
        for name, value in vars(error).items()
        if not name.startswith("_") and _is_plain(value)
    )
    return ErrorFacts(type(error).__name__, str(error), fields)


def error_of(facts: object) -> ServerError:
    """The exception the caller raises for the facts of a refusal or failure.

    The class is the one ``facts.kind`` names in ``server.errors`` (``ReleaseError`` if it
    names none); the message and the fields are the facts'.

    Raises:
        TypeError: ``facts`` is not an ``ErrorFacts``.
    """
    if not isinstance(facts, ErrorFacts):
        raise TypeError(f"not the facts of a release handler error: {facts!r}")
    cls = getattr(errors, facts.kind, None)
    if not (isinstance(cls, type) and issubclass(cls, ServerError)):
        cls = ReleaseError
    error = cls.__new__(cls)
    Exception.__init__(error, facts.message)  # the message as the handler's error said it
    for name, value in facts.fields:
        setattr(error, name, value)
    return error


#: How long an unpack may take before the handler answers its caller with an error.
DEFAULT_UNPACK_TIMEOUT = 300.0


@final
@dataclass(frozen=True, slots=True)
class HandlerConfig:
    """What the release handler starts with, and starts again with after a crash.

    Raises:
        ValueError: ``unpack_timeout`` is not a number of seconds > 0 (``math.inf``: none).
    """

    root: Path
    booted: str  # the vsn the node booted; a handler started again asks ``current_vsn``
    boot: Pid  # the boot process, asked to restart the node when an install needs it
    trusted_keys: TrustedKeys = NO_TRUSTED_KEYS  # packages must be signed by one (none: any)
    unpack_timeout: float = DEFAULT_UNPACK_TIMEOUT
    #: the node's env layers over every release's own sys.config (its root's sys.config,
    #: then the environment), per application: an install keeps them over the new release
    local_env: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.unpack_timeout > 0:  # NaN too
            raise ValueError(f"unpack_timeout must be seconds > 0, got {self.unpack_timeout!r}")


async def start_link(config: HandlerConfig) -> Pid:
    """Start the release handler (registered ``release_handler``), linked to the caller.

    Its supervisor does this (``start_supervisor``); the handler reads RELEASES under
    ``config.root`` as it starts.

    Raises:
        StartError: RELEASES is missing or malformed, or the name is taken.
    """
    pid = await gen_server.start_link(ENGINE, config, name=NAME)
    assert pid is not None
    return pid


async def start_supervisor(config: HandlerConfig) -> Pid:
    """Start the release handler under its own supervisor (``release_handler_sup``).

    The boot does this, linked to itself: a handler that crashes is started again at once
    and reads RELEASES again; stopping the supervisor stops the handler.

    Raises:
        StartError: the handler could not start (see ``start_link``).
    """
    pid = await supervisor.start_link(SUPERVISOR_ENGINE, config, name=SUPERVISOR)
    assert pid is not None
    return pid


async def _call(request: HandlerRequest) -> Any:
    match await gen_server.call(NAME, request, timeout=math.inf):
        case Ok(value=value):
            return value
        case Refused(reason=facts) | Failed(reason=facts):
            raise error_of(facts)
        case answer:
            raise TypeError(f"{NAME} answered {request!r} with {answer!r}")


async def which_releases() -> list[dict[str, Any]]:
    """Every release the node has: name, vsn, status and applications."""
    rows: list[dict[str, Any]] = await _call(WhichReleases())
    return rows


async def unpack(package: Path | str) -> str:
    """Verify and unpack a release package under the node's root; returns its vsn.

    Raises:
        UnpackError: the package is refused (checksum, hostile member, wrong specs...).
        SignatureRefused: the node has trusted keys and the package is not signed by one.
        InstallRefused: another operation is running.
    """
    vsn: str = await _call(Unpack(str(package)))
    return vsn


async def check_install(vsn: str) -> dict[str, Any]:
    """Everything up to the point of no return, and a dry run of every ``code_change``.

    Raises:
        InstallRefused: the install would fail (why, and nothing changed).
        ReleaseError: a release's files on disk are missing or do not match its record.
        SpecError: one of those files is malformed.
    """
    report: dict[str, Any] = await _call(CheckInstall(vsn))
    return report


async def install(
    vsn: str,
    *,
    suspend_timeout: float | None = None,
    code_change_timeout: float = 5.0,
    progress: Callable[[str, int, int], None] | None = None,
) -> InstallReport:
    """Move the running node to release ``vsn`` (up, or down through the newer relup).

    Raises:
        InstallRefused: refused before the point of no return; nothing changed.
        InstallFailed: failed after it; rolled back in place, or the node restarts into
            its permanent release (``outcome``).
        ReleaseError: a release's files on disk are missing or do not match its record.
        SpecError: one of those files is malformed.
    """
    options = InstallOptions(suspend_timeout, code_change_timeout, progress)
    report: InstallReport = await _call(Install(vsn, options))
    return report


async def install_by_restart(vsn: str) -> str:
    """Install ``vsn`` by a restart of the node's OS process (OTP's ``restart_new_emulator``).

    For a release that cannot be installed module by module (it requires other Python
    distributions). RELEASES marks it current, the next boot (only that one) boots it, and
    the boot process is asked to restart: every process's state is lost. A node restarted
    again before ``make_permanent`` boots the permanent release.

    Raises:
        InstallRefused: unknown, already running, its requirements not met, or the
            handler is busy; nothing changed.
    """
    done: str = await _call(InstallByRestart(vsn))
    return done


async def make_permanent(vsn: str) -> str:
    """Make the running release ``vsn`` the one the node boots.

    Raises:
        InstallRefused: ``vsn`` is not the running release.
    """
    done: str = await _call(MakePermanent(vsn))
    return done


async def remove(vsn: str) -> str:
    """Delete a release that is neither permanent nor running, and its unshared code.

    Raises:
        InstallRefused: it is permanent, running or unknown.
    """
    done: str = await _call(Remove(vsn))
    return done


async def rollback() -> dict[str, Any]:
    """Go back to the permanent release, or (when running it) to the one before it.

    Raises:
        InstallRefused: nothing to roll back to.
        InstallFailed: as ``install``.
    """
    started = time.monotonic()
    was = current_release()
    target: RollbackTarget | None = None
    try:
        target = await _call(GetRollbackTarget())
        report = await install(target.vsn)
        if target.make_permanent:
            await _call(MakePermanent(target.vsn, rollback=True))
    except ServerError as exc:
        _log_rollback(started, was, target, exc)
        raise
    _log_rollback(started, was, target, None)
    return {"vsn": target.vsn, "report": report.as_json()}


def _log_rollback(
    started: float,
    was: tuple[str, str] | None,
    target: RollbackTarget | None,
    error: ServerError | None,
) -> None:
    """The one event record of a rollback (``install_events``), logged by its caller."""
    fields = event_fields(
        "rollback",
        release=was[0] if was else None,
        from_vsn=was[1] if was else None,
        to_vsn=target.vsn if target else None,
        duration=time.monotonic() - started,
        error=error,
    )
    if error is None:
        logger.info("rolled back from %s to %s", fields["from_vsn"], fields["to_vsn"], extra=fields)
    elif fields["outcome"] == "refused":  # nothing was changed
        logger.warning("rollback refused: %s", error, extra=fields)
    else:
        logger.error("rollback to %s failed: %s", fields["to_vsn"], error, extra=fields)


def install_statistics() -> InstallStatistics | None:
    """What the release handler has counted (``install_events``), or None when none runs."""
    pid = whereis(NAME)
    tally = tally_of(pid) if pid is not None else None
    return tally.statistics() if tally is not None else None


async def upgrade(package: Path | str) -> dict[str, Any]:
    """Unpack, install and make permanent, in one go.

    Raises:
        UnpackError, InstallRefused, InstallFailed: as the three steps.
    """
    vsn = await unpack(package)
    report = await install(vsn)
    await make_permanent(vsn)
    return {"vsn": vsn, "report": report.as_json()}
