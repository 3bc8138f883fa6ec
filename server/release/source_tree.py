"""A release source tree: the specs and sources a release package is built from.

::

    releases/<name>-<vsn>.toml        release specs
    appspecs/<app>-<vsn>.toml         application specs, one per application version
    <apps_dir>/<app>-<vsn>/           each application version's source root
    sys.config                        node settings and env overrides

Reading is strict: a spec whose name or version differs from its file name, a module listed
without a source file, or a source file no spec lists are errors (a module nobody lists
would never be upgraded).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, final

from server.errors import BuildError
from server.release._tree import walk_tree
from server.spec.app_spec import AppSpec
from server.spec.files import read_model
from server.spec.release_spec import ReleaseSpec
from server.spec.release_view import ReleaseView
from server.spec.sys_config import SysConfig, read_sys_config

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["SourceTree", "module_sources", "vsn_key"]

_SKIPPED_DIRS = {"__pycache__"}


def vsn_key(vsn: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key for versions: numeric parts compare as numbers (``1.10.0 > 1.9.0``)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+_-]", vsn))


def module_sources(app_dir: Path) -> dict[str, Path]:
    """Every Python module under an application source root, by dotted name."""
    found: dict[str, Path] = {}
    if not app_dir.is_dir():
        return found
    for path in sorted(p for p in walk_tree(app_dir) if p.name.endswith(".py")):
        relative = path.relative_to(app_dir)
        if any(part in _SKIPPED_DIRS or part.startswith(".") for part in relative.parts):
            continue
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts:
            found[".".join(parts)] = path
    return found


@final
@dataclass
class SourceTree:
    """The release sources under ``root`` (the project directory)."""

    root: Path
    config: Path | None = None  # sys.config; default <root>/sys.config
    sys_config: SysConfig = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.sys_config = read_sys_config(self.config or self.root / "sys.config")

    @property
    def apps_dir(self) -> Path:
        """Where the application versions' sources live."""
        return self.root / self.sys_config.node.apps_dir

    def release_specs(self, name: str | None = None) -> list[ReleaseSpec]:
        """Every release spec (of release ``name``), oldest first.

        Raises:
            SpecError: a spec is malformed.
            BuildError: a spec's name or version differs from its file name.
        """
        specs: list[ReleaseSpec] = []
        for path in sorted((self.root / "releases").glob("*.toml")):
            spec = read_model(ReleaseSpec, path)
            if path.stem != f"{spec.name}-{spec.vsn}":
                raise BuildError(str(path), [f"the file must be named {spec.name}-{spec.vsn}.toml"])
            if name is None or spec.name == name:
                specs.append(spec)
        return sorted(specs, key=lambda spec: (spec.name, vsn_key(spec.vsn)))

    def release_spec(self, name: str, vsn: str) -> ReleaseSpec:
        """The spec of release ``name`` ``vsn``.

        Raises:
            BuildError: there is no such release spec.
            SpecError: the spec is malformed.
        """
        path = self.root / "releases" / f"{name}-{vsn}.toml"
        if not path.is_file():
            known = ", ".join(f"{s.name}-{s.vsn}" for s in self.release_specs()) or "none"
            raise BuildError(f"release {name} {vsn}", [f"no {path} (known: {known})"])
        return read_model(ReleaseSpec, path)

    def app_spec(self, app: str, vsn: str) -> AppSpec:
        """The spec of one application version, checked against its sources.

        Raises:
            BuildError: the spec or the source directory is missing or inconsistent.
            SpecError: the spec is malformed.
        """
        path = self.root / "appspecs" / f"{app}-{vsn}.toml"
        if not path.is_file():
            raise BuildError(f"application {app} {vsn}", [f"no spec file {path}"])
        spec = read_model(AppSpec, path)
        problems: list[str] = []
        if (spec.name, spec.vsn) != (app, vsn):
            problems.append(f"{path} describes {spec.name} {spec.vsn}, not {app} {vsn}")
        source = self.app_dir(app, vsn)
        if not source.is_dir():
            problems.append(f"no source directory {source}")
        else:
            found = module_sources(source)
            problems.extend(
                f"module {m} is listed in {path.name} but has no source file under {source}"
                for m in spec.modules
                if m not in found
            )
            problems.extend(
                f"{found[m]} is not listed in the modules of {path.name} (list it)"
                for m in found
                if m not in spec.modules
            )
        if problems:
            raise BuildError(f"application {app} {vsn}", problems)
        return spec

    def app_dir(self, app: str, vsn: str) -> Path:
        """The source root of one application version."""
        return self.apps_dir / f"{app}-{vsn}"

    def view(self, name: str, vsn: str) -> ReleaseView:
        """A release with its applications' specs.

        Raises:
            BuildError: a spec or source is missing or inconsistent, or the applications'
                dependencies are not in the release before them.
            SpecError: a spec is malformed.
        """
        spec = self.release_spec(name, vsn)
        apps = {entry.name: self.app_spec(entry.name, entry.vsn) for entry in spec.applications}
        problems: list[str] = []
        seen: set[str] = set()
        for entry in spec.applications:
            problems.extend(
                f"application {entry.name} depends on {dep}, which must come before it "
                f"in the release's applications"
                for dep in apps[entry.name].applications
                if dep not in seen
            )
            seen.add(entry.name)
        if problems:
            raise BuildError(f"release {name} {vsn}", problems)
        return ReleaseView(spec=spec, apps=apps)

    def module_hashes(self, app: str, vsn: str) -> dict[str, str]:
        """The sha256 of each module's source of one application version."""
        return {
            module: hashlib.sha256(path.read_bytes()).hexdigest()
            for module, path in module_sources(self.app_dir(app, vsn)).items()
        }
