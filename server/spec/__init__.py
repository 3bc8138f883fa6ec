"""Every model read from disk: sys.config, application and release specs, appups, relups.

Each is a frozen pydantic model; a mistake in a file is one ``SpecError`` naming the file,
the field and what was expected (:mod:`server.spec.files`). Nothing here does I/O beyond
reading the file it is given, and nothing here imports another sub-package but ``errors``.
"""

from __future__ import annotations

from server.spec.app_spec import AppSpec, StartCallback
from server.spec.appup import AppUp, AppUpEntry, HighInstruction
from server.spec.release_spec import ReleaseApp, ReleaseSpec
from server.spec.release_view import ReleaseView
from server.spec.relup import LowInstruction, Relup, RelupEntry
from server.spec.sys_config import (
    DistSettings,
    DistTlsSettings,
    NodeSettings,
    SysConfig,
    read_sys_config,
)

__all__ = [
    "AppSpec",
    "AppUp",
    "AppUpEntry",
    "DistSettings",
    "DistTlsSettings",
    "HighInstruction",
    "LowInstruction",
    "NodeSettings",
    "ReleaseApp",
    "ReleaseSpec",
    "ReleaseView",
    "Relup",
    "RelupEntry",
    "StartCallback",
    "SysConfig",
    "read_sys_config",
]
