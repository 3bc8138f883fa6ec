"""Which sys.config a node's root runs with: its own, or its permanent release's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.release.installed import read_installed
from server.release.releases_file import read_releases
from server.spec.sys_config import SysConfig, read_sys_config

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["node_config"]


def node_config(root: Path, path: Path | None = None) -> SysConfig:
    """The node settings and env overrides of ``root``: its own sys.config, or its release's.

    ``path`` (default ``<root>/sys.config``) wins when it exists. A root set up from a
    package alone has none: then the permanent release's sys.config gives the settings,
    without its ``trusted_keys`` (a package cannot name the key that lets the next one in).

    Raises:
        SpecError: a sys.config is malformed.
        ReleaseError: the permanent release's files are missing.
    """
    own = path or root / "sys.config"
    if own.exists():
        return read_sys_config(own)
    record = read_releases(root)
    if record is None:
        return SysConfig()
    packaged = read_installed(root, record.permanent.vsn).sys_config
    return packaged.model_copy(
        update={"node": packaged.node.model_copy(update={"trusted_keys": []})}
    )
