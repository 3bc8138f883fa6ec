"""The code server's calls: thin, documented entry points to the one table of this process.

Every function here acts on ``code_server`` (``_table.py``); the package re-exports them.
Code paths can be replaced as a whole and put back (``replace_paths`` / ``restore_paths``,
the undo being a frozen record of what each name pointed at before), and forgotten as a
whole (``forget_all``), so that the release installer and the boot never touch the table.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio.lowlevel

from server import kernel
from server.code_server._table import PURGE_NOTICE_LABEL, code_server
from server.errors import ProcessError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from server.code_server._proxy import ModuleProxy
    from server.code_server._table import PathsUndo, VersionInfo
    from server.code_server._version import ModuleVersion
    from server.kernel import Pid

#: The longest ``soft_purge_in_slices`` holds the event loop between two turns (s).
SLICE_SECONDS = 0.004

__all__ = [
    "add_path",
    "all_loaded",
    "check_process_code",
    "code_paths",
    "delete",
    "forget_all",
    "get_vsn",
    "is_managed",
    "load",
    "module_proxy",
    "on_purge",
    "processes_in_old_code",
    "purge",
    "remove_path",
    "replace_paths",
    "restore_paths",
    "soft_purge",
    "soft_purge_in_slices",
    "source_changed",
    "watch_old_code",
    "which_versions",
]


def add_path(directory: Path | str) -> list[str]:
    """Manage the application modules found in ``directory``; returns their top-level names.

    Raises:
        ModuleConflict: another root already provides one of those names.
        FileNotFoundError: ``directory`` does not exist.
    """
    return code_server.add_path(directory)


def module_proxy(module: str) -> ModuleProxy:
    """The stable proxy of an application module: attribute reads reach its current version.

    A module makes qualified calls to itself through it (``import`` of itself while its
    body runs would bind the version being built)::

        this = module_proxy(__name__)

        async def loop(state):
            ...
            return Continue(this.loop, state)  # the next iteration runs the newest code

    Raises:
        UnknownModule: ``module`` is not under any application source root.
    """
    return code_server.proxy_of(module)


def remove_path(directory: Path | str) -> None:
    """Stop managing ``directory`` and forget its modules (for tests and removed apps)."""
    code_server.remove_path(directory)


def replace_paths(directories: Iterable[Path | str], *, keep_managed: bool = False) -> PathsUndo:
    """Point every top-level name found in ``directories`` at the directory it is in.

    A release switch: the new release's lib directories take over the names they provide
    (``keep_managed=True`` only adds the names no root provides yet, to build a new
    application's modules before it is loaded). Modules already loaded keep their versions.

    Returns:
        A frozen record of what each changed name pointed at before, for ``restore_paths``.

    Raises:
        FileNotFoundError: a directory does not exist; nothing changed.
        ModuleConflict: two of ``directories`` provide the same name; nothing changed.
    """
    return code_server.replace_paths(directories, keep_managed=keep_managed)


def restore_paths(undo: PathsUndo) -> None:
    """Put back the code paths a ``replace_paths`` changed (names it added are dropped).

    Restoring twice is the same as once. Loaded modules are not touched (``revert`` takes
    loads back).

    Raises:
        TypeError: ``undo`` is not what ``replace_paths`` returned; nothing changed.
    """
    code_server.restore_paths(undo)


def code_paths() -> list[Path]:
    """Every managed application source root, sorted."""
    return code_server.code_paths()


def forget_all() -> None:
    """Stop managing every source root and forget every application module.

    What ``remove_path`` does for each root, and also for modules whose name no root
    provides any more: the next ``add_path`` and import load the code afresh (a node's
    next boot).
    """
    code_server.remove_all()


def is_managed(module: str) -> bool:
    """True if ``module`` is an application module owned by the code server."""
    return code_server.is_managed(module)


def load(module: str, source: str | Path | None = None) -> ModuleVersion:
    """Load a new version of ``module`` (from ``source``, or its file read again).

    The new version is compiled and executed first; only then does it become current and
    the former current old.

    Raises:
        NotPurged: an old version still exists; nothing changed.
        ModuleLoadError: the source does not compile or its body raised (the error names
            the file and line); nothing changed.
        UnknownModule: ``module`` is not an application module.
    """
    return code_server.load(module, source)


def delete(module: str) -> bool:
    """Make the current version old (no current until loaded again); False if not possible."""
    return code_server.delete(module)


def check_process_code(pid: Pid, module: str) -> bool:
    """True when ``pid`` runs old code of ``module`` (a frame of its stack is in it)."""
    return code_server.check_process_code(pid, module)


def processes_in_old_code(module: str) -> list[Pid]:
    """Every live process running old code of ``module`` (none without an old version)."""
    return code_server.processes_in_old_code(module)


def soft_purge(module: str) -> bool:
    """Drop the old version unless a process runs it (then False, nothing changed)."""
    return code_server.soft_purge(module)


async def soft_purge_in_slices(module: str, *, slice_seconds: float = SLICE_SECONDS) -> bool:
    """``soft_purge``, looking at the processes between turns of the event loop.

    Every process is looked at in slices of at most ``slice_seconds``; then, in one last
    step that does not yield, only those that ran since they were looked at (and those
    started meanwhile) are looked at again before the old version is dropped: the answer
    is ``soft_purge``'s, and no other process waits for a look at all of them at once.
    """
    entry = code_server.entry_of(module)
    if entry is None or entry.old is None:
        return True
    ends = time.perf_counter() + slice_seconds
    unchanged: dict[Pid, object] = {}
    live = _live()
    check = code_server.check_process_code
    for start in range(0, len(live), 64):
        pids = live[start : start + 64]
        for pid, token in zip(pids, kernel.parked_tokens(pids), strict=True):
            if check(pid, module):
                return False
            if token is not None:
                unchanged[pid] = token
        if time.perf_counter() >= ends:
            await anyio.lowlevel.checkpoint()
            ends = time.perf_counter() + slice_seconds
    return code_server.soft_purge(module, unchanged)


def _live() -> list[Pid]:
    try:
        return kernel.processes()
    except ProcessError:  # no node is running: no process can run old code
        return []


async def purge(module: str) -> bool:
    """Kill every process running old code of ``module`` (``killed``), then drop it.

    Returns:
        True if a process was killed.
    """
    return await code_server.purge(module)


def on_purge(notice: Callable[[str], anyio.Event | None] | None) -> None:
    """Ask to be told before a ``purge`` kills the calling process for running old code.

    ``notice(module)`` is called by the purging process, so it must not block (it sets an
    event of the process's own). It returns an event it sets once the process left the old
    code, or None to be waited for until it ends. The purge waits that long, at most
    ``PURGE_NOTICE_TIMEOUT`` (5) seconds, then kills the process like any other if it still
    runs the old code. None takes the notice back.

    Raises:
        NoProcessError: not called from a process.
    """
    kernel.set_label(PURGE_NOTICE_LABEL, notice)


def watch_old_code(module: str, *, watch: bool = True) -> None:
    """The calling process gets ``("old_code_lingers", module)`` at each refused soft purge.

    ``watch=False`` stops it (so does the process's end).

    Raises:
        NoProcessError: not called from a process.
    """
    code_server.watch_old_code(module, kernel.self(), watch=watch)


def source_changed(module: str) -> bool:
    """True unless the module's file holds exactly its current version's source.

    Raises:
        ModuleLoadError: the file is not UTF-8 text.
        UnknownModule: not managed, or no source file under its root.
    """
    return code_server.source_changed(module)


def which_versions(module: str) -> list[VersionInfo]:
    """The versions of ``module`` in memory, current first."""
    return code_server.which_versions(module)


def all_loaded() -> list[VersionInfo]:
    """Every version of every application module in memory."""
    return code_server.all_loaded()


def get_vsn(module: str) -> object:
    """The vsn of the current version (``__vsn__``, else a hash of its source).

    Raises:
        UnknownModule: not loaded.
    """
    return code_server.get_vsn(module)
