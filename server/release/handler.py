"""The release handler's API: each function is a call to the ``release_handler`` process.

OTP's ``release_handler`` operations, with OTP's statuses (``permanent``, ``current``,
``old``, ``unpacked``), plus ``rollback`` and ``upgrade`` as the control CLI offers them.

Each function sends one of the request records below. The handler answers with a typed
reply: ``replies.Ok``; ``Refused`` (nothing changed) or ``Failed`` (an install that failed
after its point of no return), whose reason is one of the fact records below, plain data.
The function builds the exception from those facts and raises it here, in the caller's
process (``error_of``): no exception object crosses from the handler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final

from server.behaviours import gen_server
from server.behaviours.replies import Failed, Ok, Refused
from server.errors import (
    BadSignature,
    InstallFailed,
    InstallRefused,
    ReleaseError,
    ServerError,
    SignatureRefused,
    SpecError,
    UnpackError,
    UnsignedPackage,
    UntrustedSigner,
)
from server.release._installer import InstallOptions, InstallReport
from server.release.signature import NO_TRUSTED_KEYS

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from server.kernel import Pid
    from server.release.releases_file import ReleasesFile
    from server.release.signature import TrustedKeys

__all__ = [
    "NAME",
    "InstallOptions",
    "InstallReport",
    "check_install",
    "install",
    "make_permanent",
    "remove",
    "rollback",
    "start_link",
    "unpack",
    "upgrade",
    "which_releases",
]

NAME = "release_handler"
ENGINE = "server.release._handler"


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
    WhichReleases | Unpack | CheckInstall | Install | MakePermanent | Remove | GetRollbackTarget
)


@final
@dataclass(frozen=True, slots=True)
class RollbackTarget:
    """Where ``rollback`` goes, and whether it then makes that release permanent again."""

    vsn: str
    make_permanent: bool


# -- the facts a refusal or failure carries (one record per exception the caller gets) ----


@final
@dataclass(frozen=True, slots=True)
class OperationRefused:
    """``InstallRefused``: the operation was refused (busy, unknown release, status)."""

    message: str


@final
@dataclass(frozen=True, slots=True)
class PackageRefused:
    """``UnpackError``: unpack refused the package.

    ``kind`` names a ``SignatureRefused`` subclass when the package's origin was refused
    (``signature`` is then its signature file), else ``"UnpackError"``.
    """

    package: str
    reason: str
    member: str | None
    kind: str = "UnpackError"
    signature: str | None = None


@final
@dataclass(frozen=True, slots=True)
class SpecRefused:
    """``SpecError``: a spec file of the release is malformed."""

    path: str
    problems: tuple[tuple[str, str], ...]


@final
@dataclass(frozen=True, slots=True)
class ReleaseUnusable:
    """``ReleaseError``: the release on disk cannot be used (files missing, mismatched)."""

    message: str


@final
@dataclass(frozen=True, slots=True)
class InstallFailure:
    """``InstallFailed``: the install failed after its point of no return."""

    vsn: str
    step: str
    outcome: str  # "rolled_back" | "restarting"
    detail: str
    pid: str | None
    module: str | None


ErrorFacts = OperationRefused | PackageRefused | SpecRefused | ReleaseUnusable | InstallFailure


def facts_of(error: ServerError) -> ErrorFacts:
    """The plain facts of ``error``, from which ``error_of`` builds it again.

    An error of a kind no record names becomes ``ReleaseUnusable`` with its class and
    message (the handler's operations raise only the kinds above).
    """
    match error:
        case InstallFailed():
            return InstallFailure(
                error.vsn, error.step, error.outcome, error.detail, error.pid, error.module
            )
        case InstallRefused():
            return OperationRefused(str(error))
        case SignatureRefused():
            return PackageRefused(
                error.package, error.reason, None, type(error).__name__, error.signature
            )
        case UnpackError():
            return PackageRefused(error.package, error.reason, error.member)
        case SpecError():
            return SpecRefused(error.path, tuple((where, what) for where, what in error.problems))
        case ReleaseError() if type(error) is ReleaseError:
            return ReleaseUnusable(str(error))
    return ReleaseUnusable(f"{type(error).__name__}: {error}")


_SIGNATURE_REFUSALS = (UnsignedPackage, UntrustedSigner, BadSignature)


def error_of(facts: object) -> ServerError:
    """The exception the caller raises for the facts of a refusal or failure.

    Raises:
        TypeError: ``facts`` is not one of the fact records.
    """
    match facts:
        case OperationRefused(message=message):
            return InstallRefused(message)
        case PackageRefused(package=package, reason=reason, signature=str(signature), kind=kind):
            # the message was made where the package was refused: rebuild the same class
            kinds = {cls.__name__: cls for cls in _SIGNATURE_REFUSALS}
            error = SignatureRefused.__new__(kinds.get(kind, SignatureRefused))
            SignatureRefused.__init__(error, package, signature, reason)
            return error
        case PackageRefused(package=package, reason=reason, member=member):
            return UnpackError(package, reason, member)
        case SpecRefused(path=path, problems=problems):
            return SpecError(path, list(problems))
        case ReleaseUnusable(message=message):
            return ReleaseError(message)
        case InstallFailure():
            return InstallFailed(
                facts.vsn,
                facts.step,
                facts.outcome,
                facts.detail,
                pid=facts.pid,
                module=facts.module,
            )
    raise TypeError(f"not the facts of a release handler error: {facts!r}")


async def start_link(
    root: Path,
    record: ReleasesFile,
    running: str,
    booted: Pid,
    *,
    trusted_keys: TrustedKeys = NO_TRUSTED_KEYS,
) -> Pid:
    """Start the release handler (the boot does this), linked to the caller.

    ``trusted_keys`` are the keys packages must be signed by (none: not verified).
    """
    args = (root, record, running, booted, trusted_keys)
    pid = await gen_server.start_link(ENGINE, args, name=NAME)
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
    target: RollbackTarget = await _call(GetRollbackTarget())
    report = await install(target.vsn)
    if target.make_permanent:
        await _call(MakePermanent(target.vsn, rollback=True))
    return {"vsn": target.vsn, "report": report.as_json()}


async def upgrade(package: Path | str) -> dict[str, Any]:
    """Unpack, install and make permanent, in one go.

    Raises:
        UnpackError, InstallRefused, InstallFailed: as the three steps.
    """
    vsn = await unpack(package)
    report = await install(vsn)
    await make_permanent(vsn)
    return {"vsn": vsn, "report": report.as_json()}
