"""Removing a release's folders so that a kill at any instant leaves RELEASES and them agreeing.

How this works (the release handler runs the steps, in this order):

1. **Set aside.** Each folder of the release that no other release uses (its own
   ``lib/<app>-<vsn>`` folders, then ``releases/<vsn>``) is renamed to a sibling
   ``.removed-<vsn>-<token>``, then the parent folders are synced. Fault point
   ``remove_rename:<k>``: after the ``k``-th rename (from 1).
2. **RELEASES** is written without the release (atomically, ``write_releases``; fault points
   ``releases_write:0`` and ``:1``).
3. **Delete** the set-aside folders (``delete_tree``). Fault points ``remove_delete:<k>``:
   after the ``k``-th folder is deleted (``0``: RELEASES written, nothing deleted yet); and
   ``remove_entries:<n>``: after the ``n``-th entry (file, link or folder) is deleted,
   counted over all the folders.

Invariants:

1. A folder named ``lib/<app>-<vsn>`` or ``releases/<vsn>`` is whole: a remove only ever
   renames it whole, and deletes nothing but ``.removed-*`` folders.
2. A ``.removed-<vsn>-*`` folder whose vsn RELEASES still names marks a remove killed in
   step 1. The remove was asked for and accepted, so the handler, as it starts, does it
   again from step 1 (folders set aside already are skipped): the release is gone, as the
   operator asked.
3. Any other ``.removed-*`` folder is a leftover (killed in step 3, or a delete that
   failed): the handler deletes it as it starts and before each unpack.

So after a kill at any step, once the handler has started again, RELEASES names exactly the
releases whose folders are in place, and unpacking the removed package again succeeds.
Synchronous, file system only: callers run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from typing import TYPE_CHECKING

from server.release import _faults
from server.release._tree import delete_tree

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from pathlib import Path

    from server.release.releases_file import ReleasesFile

__all__ = [
    "REMOVED_PREFIX",
    "SetAside",
    "delete_leftovers",
    "delete_set_aside",
    "folders_of",
    "leftovers",
    "put_back",
    "set_aside",
]

logger = logging.getLogger("server.release")

#: A folder set aside by a remove is ``<parent>/<REMOVED_PREFIX><vsn>-<token>``.
REMOVED_PREFIX = ".removed-"
_TOPS = ("lib", "releases")

#: What ``set_aside`` renamed: (the folder's name in place, its name set aside), in order.
SetAside = list[tuple["Path", "Path"]]


def folders_of(record: ReleasesFile, vsn: str, root: Path) -> list[Path]:
    """The folders removing ``vsn`` deletes: its lib dirs no other release uses, then its own.

    Raises:
        KeyError: ``record`` has no release ``vsn``.
    """
    entry = record.get(vsn)
    if entry is None:
        raise KeyError(vsn)
    kept = {a.lib_dir for e in record.releases if e.vsn != vsn for a in e.applications}
    doomed = [root / a.lib_dir for a in entry.applications if a.lib_dir not in kept]
    return [*doomed, root / "releases" / vsn]


def set_aside(root: Path, vsn: str, folders: Sequence[Path]) -> SetAside:
    """Step 1: rename each of ``folders`` that exists to a sibling ``.removed-<vsn>-<token>``.

    Returns:
        The renames made, in order.

    Raises:
        OSError: a rename or a sync failed; the renames made were undone (``put_back``).
    """
    crash = _faults.hook(root, "remove_rename")
    moved: SetAside = []
    try:
        for folder in folders:
            if not os.path.lexists(folder):
                continue  # set aside already (an interrupted remove done again), or never there
            aside = folder.with_name(f"{REMOVED_PREFIX}{vsn}-{secrets.token_hex(6)}")
            os.rename(folder, aside)
            moved.append((folder, aside))
            if crash is not None:
                crash(len(moved))
        for parent in sorted({aside.parent for _, aside in moved}):
            _sync_folder(parent)  # the renames reach the disk before RELEASES does
    except OSError:
        put_back(moved)
        raise
    return moved


def put_back(moved: SetAside) -> bool:
    """Undo ``set_aside`` (RELEASES was not written); whether every folder is back in place."""
    back = True
    for folder, aside in reversed(moved):
        try:
            os.rename(aside, folder)
        except OSError:
            back = False
            logger.exception("cannot put %s back in place as %s", aside, folder)
    return back


def delete_set_aside(root: Path, moved: SetAside) -> list[tuple[Path, OSError]]:
    """Step 3: delete the folders set aside; returns those that could not be, and why.

    What is not deleted stays a ``.removed-*`` leftover (invariant 3).
    """
    crash_folder = _faults.hook(root, "remove_delete")
    crash_entry = _faults.hook(root, "remove_entries")
    if crash_folder is not None:
        crash_folder(0)
    deleted = 0

    def entry_deleted(count: int) -> None:
        if crash_entry is not None:
            crash_entry(deleted + count)

    failed: list[tuple[Path, OSError]] = []
    for index, (_, aside) in enumerate(moved, 1):
        try:
            deleted += delete_tree(aside, on_deleted=entry_deleted if crash_entry else None)
        except OSError as exc:
            failed.append((aside, exc))
        if crash_folder is not None:
            crash_folder(index)
    return failed


def leftovers(root: Path) -> list[tuple[Path, str]]:
    """Every ``.removed-*`` entry under ``lib/`` and ``releases/``, with the vsn it names."""
    found: list[tuple[Path, str]] = []
    for top in _TOPS:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            with os.scandir(root / top) as entries:
                names = sorted(e.name for e in entries if e.name.startswith(REMOVED_PREFIX))
            for name in names:
                vsn = name.removeprefix(REMOVED_PREFIX).rpartition("-")[0]
                found.append((root / top / name, vsn))
    return found


def delete_leftovers(root: Path, *, keep_vsns: Collection[str]) -> list[tuple[Path, str, OSError]]:
    """Delete the ``.removed-*`` leftovers of every vsn but ``keep_vsns`` (invariant 3).

    Returns:
        The leftovers that could not be deleted: path, vsn and why.
    """
    failed: list[tuple[Path, str, OSError]] = []
    for path, vsn in leftovers(root):
        if vsn in keep_vsns:
            continue
        try:
            delete_tree(path)
        except OSError as exc:
            failed.append((path, vsn, exc))
            continue
        logger.info("deleted %s, left by a remove of release %s", path, vsn)
    return failed


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
