"""File trees walked and deleted without recursion, never through a symbolic link.

The folders of a release may hold a tree of any depth (an application writes what it likes
under its lib dir), and the standard library's walkers recurse (``shutil.rmtree`` and
``Path.rglob`` on Python 3.11): past about 1,000 levels they raise RecursionError, which in
the release handler used to end the handler. Every walk and delete of a folder in release
code goes through these two functions, which keep an explicit stack instead.

Both work on paths (``os.scandir``), so a path longer than the system's limit (about 4,096
bytes on Linux) fails with ``OSError`` (``ENAMETOOLONG``), as any other file error does.
Neither follows a symbolic link: a link is yielded or unlinked, never entered. Like
``shutil.rmtree`` on paths, they assume nobody swaps a folder for a link while they run
(the node owns its root).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["delete_tree", "walk_tree"]


def walk_tree(
    top: Path, *, skip: Callable[[os.DirEntry[str]], bool] | None = None
) -> Iterator[Path]:
    """Everything under ``top`` (not ``top`` itself), depth first, each folder's entries by name.

    A folder is yielded before what it holds, as a recursive walk would. Symbolic links are
    yielded, never followed.

    Args:
        top: the folder to walk.
        skip: entries for which it returns True are left out, with everything under them.

    Raises:
        OSError: a folder cannot be listed (``FileNotFoundError`` if ``top`` is missing).
    """
    stack: list[Iterator[os.DirEntry[str]]] = [_entries(top)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        if skip is not None and skip(entry):
            continue
        yield Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            stack.append(_entries(entry.path))


def _entries(folder: Path | str) -> Iterator[os.DirEntry[str]]:
    with os.scandir(folder) as listing:
        return iter(sorted(listing, key=lambda entry: entry.name))


def delete_tree(path: Path, *, on_deleted: Callable[[int], None] | None = None) -> int:
    """Delete ``path`` and everything under it, bottom up, following no symbolic link.

    A link (to a folder or not) is unlinked, never entered; a missing ``path``, or an entry
    that disappears meanwhile, counts as deleted already.

    Args:
        path: the folder (or file, or link) to delete.
        on_deleted: called with the number of entries deleted so far, after each one (the
            crash tests kill the node there).

    Returns:
        How many entries (files, links and folders, ``path`` included) were deleted.

    Raises:
        OSError: an entry could not be deleted (what was deleted stays deleted).
    """
    deleted = 0

    def done() -> None:
        nonlocal deleted
        deleted += 1
        if on_deleted is not None:
            on_deleted(deleted)

    try:
        if not path.is_dir() or path.is_symlink():
            path.unlink()
            done()
            return deleted
    except FileNotFoundError:
        return deleted
    # (folder, listed): a folder is listed first, and removed once everything under it is
    stack: list[tuple[str, bool]] = [(str(path), False)]
    while stack:
        folder, listed = stack.pop()
        if listed:
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(folder)
            done()
            continue
        stack.append((folder, True))
        try:
            listing = os.scandir(folder)
        except FileNotFoundError:
            continue
        with listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, False))
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                done()
    return deleted
