"""Releases installed under a node's root: reading one back from its files.

::

    <root>/releases/RELEASES                the record (releases_file)
    <root>/releases/<vsn>/release.toml      the release spec
    <root>/releases/<vsn>/sys.config        its node settings and env overrides
    <root>/releases/<vsn>/relup.json        how to come from / go back to older releases
    <root>/lib/<app>-<vsn>/app.toml         each application version's spec
    <root>/lib/<app>-<vsn>/...              and its sources
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, final

from packaging.utils import canonicalize_name

from server.errors import ReleaseError, SpecError
from server.release.bundle import DEPS_INDEX, bundled_versions
from server.spec.app_spec import AppSpec
from server.spec.files import parse_model, read_model
from server.spec.release_spec import ReleaseSpec
from server.spec.release_view import ReleaseView
from server.spec.relup import Relup
from server.spec.requirements import installed_version
from server.spec.sys_config import SysConfig, read_sys_config

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from server.spec.relup import RelupEntry

__all__ = ["InstalledRelease", "find_script", "read_installed"]


@final
@dataclass(frozen=True, slots=True)
class InstalledRelease:
    """One release as its files under the root describe it."""

    vsn: str
    spec: ReleaseSpec
    apps: dict[str, AppSpec]
    lib_dirs: dict[str, Path]
    sys_config: SysConfig
    relup: Relup | None
    #: distributions bundled in the package (``releases/<vsn>/deps``): canonical name -> vsn
    bundled: Mapping[str, str] = field(default_factory=dict)

    def version_of(self, distribution: str) -> str | None:
        """The version of ``distribution`` this release runs with: bundled, else installed."""
        return self.bundled.get(canonicalize_name(distribution)) or installed_version(distribution)

    @property
    def view(self) -> ReleaseView:
        """The release with its application specs."""
        return ReleaseView(spec=self.spec, apps=self.apps)


def read_installed(root: Path, vsn: str) -> InstalledRelease:
    """Read release ``vsn`` back from ``root``.

    Raises:
        ReleaseError: a file is missing, or the specs do not match one another.
        SpecError: a file is malformed.
    """
    folder = root / "releases" / vsn
    spec_path = folder / "release.toml"
    if not spec_path.is_file():
        raise ReleaseError(f"release {vsn}: {spec_path} is missing (unpack the release again)")
    spec = read_model(ReleaseSpec, spec_path)
    if spec.vsn != vsn:
        raise ReleaseError(f"release {vsn}: {spec_path} describes release {spec.vsn}")
    apps: dict[str, AppSpec] = {}
    lib_dirs: dict[str, Path] = {}
    for entry in spec.applications:
        lib_dir = root / "lib" / f"{entry.name}-{entry.vsn}"
        app_path = lib_dir / "app.toml"
        if not app_path.is_file():
            raise ReleaseError(f"release {vsn}: {app_path} is missing (unpack it again)")
        app = read_model(AppSpec, app_path)
        if (app.name, app.vsn) != (entry.name, entry.vsn):
            raise ReleaseError(f"release {vsn}: {app_path} describes {app.name} {app.vsn}")
        apps[entry.name] = app
        lib_dirs[entry.name] = lib_dir
    relup_path = folder / "relup.json"
    relup: Relup | None = None
    if relup_path.is_file():
        try:
            data = json.loads(relup_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SpecError(str(relup_path), [("", f"not valid JSON: {exc}")]) from None
        relup = parse_model(Relup, data, str(relup_path))
        if relup.vsn != vsn:
            raise ReleaseError(f"release {vsn}: {relup_path} is the relup of {relup.vsn}")
    config = read_sys_config(folder / "sys.config")
    index = folder / DEPS_INDEX
    bundled = bundled_versions(index.read_bytes() if index.is_file() else None)
    return InstalledRelease(vsn, spec, apps, lib_dirs, config, relup, bundled)


def find_script(current: InstalledRelease, target: InstalledRelease) -> tuple[str, RelupEntry]:
    """The relup entry moving ``current`` to ``target``, and its direction (OTP's rule).

    First as an upgrade (the target's relup, ``up`` from the current version), else as a
    downgrade (the current release's relup, ``down`` to the target version).

    Raises:
        ReleaseError: neither relup has such an entry.
    """
    if target.relup is not None:
        entry = target.relup.up_from(current.vsn)
        if entry is not None:
            return "up", entry
    if current.relup is not None:
        entry = current.relup.down_to(target.vsn)
        if entry is not None:
            return "down", entry
    raise ReleaseError(
        f"no relup moves release {current.vsn} to {target.vsn}: build {target.vsn} with "
        f"--up-from {current.vsn} (or {current.vsn} with --down-to {target.vsn})"
    )
