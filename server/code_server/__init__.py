"""The code server: two versions per module, qualified calls to the newest, purge.

Application modules (those under a source root given to ``add_path``) are owned here: each
exists as up to two real module objects, *current* and *old*, while ``sys.modules`` holds a
stable proxy that forwards to the current one. See ``DESIGN.md`` section 5.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.code_server._proxy import ModuleProxy
from server.code_server._staging import (
    current_version,
    has_old,
    install_prepared,
    prepare,
    revert,
    root_of,
    top_level_names,
)
from server.code_server._table import CodeServer, VersionInfo, code_server, resolve
from server.code_server._version import ModuleVersion

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Pid

__all__ = [
    "CodeServer",
    "ModuleProxy",
    "ModuleVersion",
    "VersionInfo",
    "add_path",
    "all_loaded",
    "check_process_code",
    "code_server",
    "current_version",
    "delete",
    "get_vsn",
    "has_old",
    "install_prepared",
    "is_managed",
    "load",
    "module_proxy",
    "prepare",
    "purge",
    "remove_path",
    "resolve",
    "revert",
    "root_of",
    "soft_purge",
    "source_changed",
    "top_level_names",
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


def soft_purge(module: str) -> bool:
    """Drop the old version unless a process runs it (then False, nothing changed)."""
    return code_server.soft_purge(module)


async def purge(module: str) -> bool:
    """Kill every process running old code of ``module`` (``killed``), then drop it.

    Returns:
        True if a process was killed.
    """
    return await code_server.purge(module)


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
