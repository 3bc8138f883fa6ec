"""The code server: two versions per module, qualified calls to the newest, purge.

Application modules (those under a source root given to ``add_path``) are owned here: each
exists as up to two real module objects, *current* and *old*, while ``sys.modules`` holds a
stable proxy that forwards to the current one. See ``DESIGN.md`` section 5.

The calls live in ``_api.py`` (and two-phase loading in ``_staging.py``); this package only
re-exports them. The code server imports nothing above it: code that dispatches by module
name looks each module's current version up through ``resolve``.
"""

from __future__ import annotations

from server.code_server import _api
from server.code_server._api import (
    add_path,
    all_loaded,
    check_process_code,
    code_paths,
    delete,
    forget_all,
    get_vsn,
    is_managed,
    load,
    module_proxy,
    on_purge,
    processes_in_old_code,
    purge,
    remove_path,
    replace_paths,
    restore_paths,
    soft_purge,
    soft_purge_in_slices,
    source_changed,
    watch_old_code,
    which_versions,
)
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
from server.code_server._table import (
    CodeServer,
    PathsUndo,
    VersionInfo,
    code_server,
    resolve,
)
from server.code_server._version import ModuleVersion

__all__ = [
    "CodeServer",
    "ModuleProxy",
    "ModuleVersion",
    "PathsUndo",
    "VersionInfo",
    "add_path",
    "all_loaded",
    "check_process_code",
    "code_paths",
    "code_server",
    "current_version",
    "delete",
    "forget_all",
    "get_vsn",
    "has_old",
    "install_prepared",
    "is_managed",
    "load",
    "module_proxy",
    "on_purge",
    "prepare",
    "processes_in_old_code",
    "purge",
    "remove_path",
    "replace_paths",
    "resolve",
    "restore_paths",
    "revert",
    "root_of",
    "soft_purge",
    "soft_purge_in_slices",
    "source_changed",
    "top_level_names",
    "watch_old_code",
    "which_versions",
]

# The calls name their public path (this package) as their home, in reprs, docs and pickles.
for _name in _api.__all__:
    globals()[_name].__module__ = __name__
del _name
