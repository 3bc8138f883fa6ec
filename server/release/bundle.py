"""Python distributions bundled into a release package, so that the target needs no index.

``server build --bundle-deps [--wheels DIR]`` fetches one wheel per requirement of the
release's applications (``pip download --only-binary=:all: --no-deps``: pure-Python and this
platform's binary wheels, from the build environment's index, or from ``DIR`` alone) and
stores each wheel's files unzipped under ``releases/<vsn>/deps/`` of the package, with
``releases/<vsn>/deps.json`` naming each distribution and version. Unpack counts those as
met requirements, and the boot puts the release's ``deps/`` first on the path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from server.errors import BuildError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["DEPS_DIR", "DEPS_INDEX", "bundled_versions", "deps_members"]

DEPS_DIR = "deps"
DEPS_INDEX = "deps.json"


def deps_members(
    vsn: str, requires: Iterable[str], wheels: Path | None, what: str
) -> dict[str, bytes]:
    """The package members holding a wheel of each requirement, unzipped, and their index.

    Raises:
        BuildError: a requirement has no wheel (pip's reason given), or a wheel is unsafe.
    """
    wanted = sorted(set(requires))
    if not wanted:
        return {}
    members: dict[str, bytes] = {}
    index: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="server-deps-") as scratch:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--only-binary=:all:", "--dest", scratch]
        if wheels is not None:
            command += ["--no-index", "--find-links", str(wheels)]
        for text in wanted:
            done = subprocess.run(
                [*command, text], capture_output=True, text=True, timeout=600, check=False
            )
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
                raise BuildError(what, [f"no wheel for {text}: {last}"])
        for wheel in sorted(Path(scratch).glob("*.whl")):
            name, version, _build, _tags = parse_wheel_filename(wheel.name)
            index[str(name)] = str(version)
            with zipfile.ZipFile(wheel) as archive:
                for info in archive.infolist():
                    path = PurePosixPath(info.filename)
                    if info.is_dir():
                        continue
                    if path.is_absolute() or ".." in path.parts:
                        raise BuildError(what, [f"{wheel.name}: unsafe path {info.filename}"])
                    members[f"releases/{vsn}/{DEPS_DIR}/{path}"] = archive.read(info)
        missing = [t for t in wanted if canonicalize_name(Requirement(t).name) not in index]
        if missing:
            raise BuildError(what, [f"pip gave no wheel for {t}" for t in missing])
    members[f"releases/{vsn}/{DEPS_INDEX}"] = json.dumps(index, indent=2).encode() + b"\n"
    return members


def bundled_versions(index: bytes | None) -> Mapping[str, str]:
    """Distribution (canonical name) -> version, from a package's ``deps.json``."""
    if not index:
        return {}
    data = json.loads(index)
    return {canonicalize_name(k): str(v) for k, v in data.items()}
