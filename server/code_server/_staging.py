"""Two-phase loading for the release handler: build now, make current later, or take back.

OTP's release handler reads the new object code before the point of no return and loads it
after; if a later step fails it restarts the node. Here the three steps are separate so an
install can be undone in place:

1. ``prepare(name, path)`` builds a version from a file in isolation (its body runs, with
   ``sys.modules[name]`` pointing at it meanwhile); nothing the node sees changes.
2. ``install_prepared(name, version)`` makes it current; the former current becomes old
   (refused with ``NotPurged`` while an old version is still there).
3. ``revert(name)`` takes the last load or delete back: the old version is current again
   and the version it replaced is forgotten. A module that had no version before the load
   is forgotten entirely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.code_server import _table
from server.code_server._table import code_server
from server.code_server._version import forget_version

if TYPE_CHECKING:
    from pathlib import Path

    from server.code_server._version import ModuleVersion

__all__ = [
    "current_version",
    "has_old",
    "install_prepared",
    "prepare",
    "revert",
    "root_of",
    "top_level_names",
]


def prepare(name: str, path: Path) -> ModuleVersion:
    """Build a version of ``name`` from ``path`` without making it current.

    Raises:
        ModuleLoadError: it does not compile or its body raised (file and line named).
        OSError: the file cannot be read.
    """
    text = path.read_text(encoding="utf-8")
    return code_server.build_detached(name, text, path)


def install_prepared(name: str, version: ModuleVersion) -> None:
    """Make a prepared version current; the former current becomes old.

    Raises:
        NotPurged: an old version still exists (purge it first); nothing changed.
        UnknownModule: ``name`` is not under a managed root.
    """
    first = code_server.check_loadable(name)
    code_server.make_current(code_server.entry_for(name), version, first=first)


def revert(name: str) -> None:
    """Take back the last load or delete of ``name``: its old version is current again."""
    entry = code_server.entry_of(name)
    if entry is None:
        return
    dropped = entry.current
    if entry.old is None:  # it had no version before: forget it entirely
        code_server.unpublish(name)
    else:
        code_server.reinstate_old(entry)
    if dropped is not None:
        forget_version(dropped)


def has_old(name: str) -> bool:
    """Whether ``name`` has an old version in memory."""
    entry = code_server.entry_of(name)
    return entry is not None and entry.old is not None


def current_version(name: str) -> ModuleVersion | None:
    """The current version of ``name``, or None."""
    entry = code_server.entry_of(name)
    return entry.current if entry is not None else None


def top_level_names(directory: Path) -> list[str]:
    """The top-level packages and modules an application source root provides."""
    return _table.top_level_names(directory.resolve())


def root_of(top: str) -> Path | None:
    """The source root a managed top-level name is loaded from, or None."""
    return code_server.root_of(top)
