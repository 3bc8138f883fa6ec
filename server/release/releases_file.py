"""The RELEASES record: which releases a node has, their status, and the permanent history.

``<root>/releases/RELEASES`` is JSON (a pydantic model). It is written atomically: a temp
file in the same folder, fsync, rename over the old one, fsync of the folder, so a crash at
any instant leaves the old record or the new one, never a torn one. ``current`` is never
written (see ``release_status.on_disk``).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Literal

import pydantic

from server.errors import SpecError
from server.release import _faults
from server.release.release_status import Status, on_disk
from server.spec.files import SPEC_MODEL_CONFIG, parse_model

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "NEXT_BOOT_FILE",
    "AppEntry",
    "ReleaseEntry",
    "ReleasesFile",
    "read_releases",
    "take_next_boot",
    "write_next_boot",
    "write_releases",
]

FILE_NAME = "RELEASES"


class AppEntry(pydantic.BaseModel):
    """One application of a release, and where its code lives (relative to the root)."""

    model_config = SPEC_MODEL_CONFIG

    name: str
    vsn: str
    lib_dir: str


class ReleaseEntry(pydantic.BaseModel):
    """One release the node has."""

    model_config = SPEC_MODEL_CONFIG

    name: str
    vsn: str
    status: Status
    applications: list[AppEntry]


class ReleasesFile(pydantic.BaseModel):
    """The whole record: releases, plus the versions made permanent, oldest first."""

    model_config = SPEC_MODEL_CONFIG

    format: Literal[1] = 1
    releases: list[ReleaseEntry]
    permanent_history: list[str] = []

    @pydantic.model_validator(mode="after")
    def _one_permanent(self) -> ReleasesFile:
        permanent = [r.vsn for r in self.releases if r.status == "permanent"]
        if len(permanent) != 1:
            raise ValueError(f"exactly one release must be permanent, found {permanent}")
        vsns = [r.vsn for r in self.releases]
        if len(set(vsns)) != len(vsns):
            raise ValueError("a release version is listed twice")
        return self

    @property
    def permanent(self) -> ReleaseEntry:
        """The release that boots."""
        return next(r for r in self.releases if r.status == "permanent")

    def get(self, vsn: str) -> ReleaseEntry | None:
        """The entry of ``vsn``, or None."""
        return next((r for r in self.releases if r.vsn == vsn), None)


def read_releases(root: Path) -> ReleasesFile | None:
    """The node's RELEASES record, or None when the root has none yet.

    Raises:
        SpecError: the file exists but is not a valid record (never silently replaced).
    """
    path = root / "releases" / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), [("", f"cannot read the file: {exc}")]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(str(path), [("", f"not valid JSON: {exc}")]) from None
    return parse_model(ReleasesFile, data, str(path))


def write_releases(root: Path, record: ReleasesFile, *, before_rename: object = None) -> None:
    """Write RELEASES atomically (``current`` is written as ``unpacked``).

    ``before_rename``, when callable, runs after the temp file is synced and before the
    rename. The crash tests kill the node there and just after the rename (fault point
    ``releases_write``, see ``_faults``). A temp file a crash left behind is removed by the
    next write (one writer per root: the release handler, or the first boot before it).
    """
    folder = root / "releases"
    folder.mkdir(parents=True, exist_ok=True)
    crash = _faults.hook(root, "releases_write")
    for stale in folder.glob(f".{FILE_NAME}.*"):
        stale.unlink(missing_ok=True)
    stored = record.model_copy(
        update={
            "releases": [
                r.model_copy(update={"status": on_disk(r.status)}) for r in record.releases
            ]
        }
    )
    data = stored.model_dump_json(indent=2).encode() + b"\n"
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{FILE_NAME}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if callable(before_rename):
            before_rename()
        if crash is not None:
            crash(0)
        os.replace(temp, folder / FILE_NAME)
        if crash is not None:
            crash(1)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


#: A one-shot order to boot another release than the permanent one (an install by restart).
NEXT_BOOT_FILE = "NEXT_BOOT"


def write_next_boot(root: Path, vsn: str) -> None:
    """Make the next boot (only that one) boot release ``vsn`` instead of the permanent one."""
    folder = root / "releases"
    temp = folder / f".{NEXT_BOOT_FILE}.tmp"
    temp.write_text(vsn + "\n", encoding="utf-8")
    os.replace(temp, folder / NEXT_BOOT_FILE)


def take_next_boot(root: Path) -> str | None:
    """The release the next boot must boot, if an install by restart asked; asked once.

    The order is removed as it is read: a node that restarts again before the release is
    made permanent boots the permanent release, as OTP's temporary boot does.
    """
    path = root / "releases" / NEXT_BOOT_FILE
    try:
        vsn = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    return vsn or None
