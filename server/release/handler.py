"""The release handler's API: each function is a call to the ``release_handler`` process.

OTP's ``release_handler`` operations, with OTP's statuses (``permanent``, ``current``,
``old``, ``unpacked``), plus ``rollback`` and ``upgrade`` as the control CLI offers them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from server.behaviours import gen_server
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


async def _call(*request: object) -> Any:
    status, value = await gen_server.call(NAME, request, timeout=math.inf)
    if status != "ok":
        raise value
    return value


async def which_releases() -> list[dict[str, Any]]:
    """Every release the node has: name, vsn, status and applications."""
    rows: list[dict[str, Any]] = await _call("which_releases")
    return rows


async def unpack(package: Path | str) -> str:
    """Verify and unpack a release package under the node's root; returns its vsn.

    Raises:
        UnpackError: the package is refused (checksum, hostile member, wrong specs...).
        SignatureRefused: the node has trusted keys and the package is not signed by one.
        InstallRefused: another operation is running.
    """
    vsn: str = await _call("unpack", str(package))
    return vsn


async def check_install(vsn: str) -> dict[str, Any]:
    """Everything up to the point of no return, and a dry run of every ``code_change``.

    Raises:
        InstallRefused: the install would fail (why, and nothing changed).
    """
    report: dict[str, Any] = await _call("check_install", vsn)
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
    """
    options = InstallOptions(suspend_timeout, code_change_timeout, progress)
    report: InstallReport = await _call("install", vsn, options)
    return report


async def make_permanent(vsn: str) -> str:
    """Make the running release ``vsn`` the one the node boots.

    Raises:
        InstallRefused: ``vsn`` is not the running release.
    """
    done: str = await _call("make_permanent", vsn, False)
    return done


async def remove(vsn: str) -> str:
    """Delete a release that is neither permanent nor running, and its unshared code.

    Raises:
        InstallRefused: it is permanent, running or unknown.
    """
    done: str = await _call("remove", vsn)
    return done


async def rollback() -> dict[str, Any]:
    """Go back to the permanent release, or (when running it) to the one before it.

    Raises:
        InstallRefused: nothing to roll back to.
        InstallFailed: as ``install``.
    """
    target = await _call("rollback_target")
    report = await install(target["vsn"])
    if target["make_permanent"]:
        await _call("make_permanent", target["vsn"], True)
    return {"vsn": target["vsn"], "report": report.as_json()}


async def upgrade(package: Path | str) -> dict[str, Any]:
    """Unpack, install and make permanent, in one go.

    Raises:
        UnpackError, InstallRefused, InstallFailed: as the three steps.
    """
    vsn = await unpack(package)
    report = await install(vsn)
    await make_permanent(vsn)
    return {"vsn": vsn, "report": report.as_json()}
