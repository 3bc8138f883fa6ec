"""Building a release package: the release spec, sys.config, the relup and every application.

A package is a gzipped tar with this layout, plus ``<name>-<vsn>.tar.gz.sha256`` beside it::

    releases/<vsn>/release.toml
    releases/<vsn>/sys.config
    releases/<vsn>/relup.json
    lib/<app>-<vsn>/app.toml
    lib/<app>-<vsn>/<the application's source files>

Built with a signing key, ``<name>-<vsn>.tar.gz.sig`` goes beside it too (see
``server.release.signature``); built without, a stale ``.sig`` from an earlier build is
removed, so the files beside a package always describe it.

The archive is reproducible (sorted members, fixed times and owners), so the same sources
give the same checksum. Before anything is written, every module that changed between two
versions of an application must be named by the appup entry that moves between them: a
changed module nobody mentions would silently keep running its old code after the upgrade.
``default_appups`` fills such gaps with a default instruction, and says which it chose.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from server.errors import BuildError
from server.release._tree import walk_tree
from server.release.bundle import deps_members
from server.release.relup_builder import make_relup
from server.release.signature import public_key_text, signature_line, signature_path
from server.release.source_tree import module_sources, vsn_key
from server.spec.appup import (
    AddModule,
    AppUp,
    AppUpEntry,
    DeleteModule,
    LoadModule,
    RestartApplication,
    Update,
)
from server.spec.env_schema import check_release_env
from server.spec.release_view import ReleaseView

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from server.release.source_tree import SourceTree
    from server.spec.app_spec import AppSpec
    from server.spec.appup import HighInstruction
    from server.spec.relup import Relup

__all__ = ["BuiltPackage", "build_package", "package_name"]

_MODULE_STEPS = (LoadModule, Update, AddModule, DeleteModule)


@final
@dataclass(frozen=True, slots=True)
class BuiltPackage:
    """What ``build_package`` wrote and decided."""

    path: Path
    sha256: str
    size: int
    relup: Relup
    notes: tuple[str, ...]
    signed_by: str | None = None  # the public key whose signature is beside the package


def package_name(name: str, vsn: str) -> str:
    """The file name of a release package."""
    return f"{name}-{vsn}.tar.gz"


def build_package(
    tree: SourceTree,
    name: str,
    vsn: str,
    out_dir: Path,
    *,
    up_from: Sequence[str] | None = None,
    down_to: Sequence[str] | None = None,
    default_appups: bool = False,
    signing_key: Ed25519PrivateKey | None = None,
    bundle_deps: bool = False,
    wheels: Path | None = None,
) -> BuiltPackage:
    """Build the package of release ``name`` ``vsn`` into ``out_dir``.

    ``up_from`` and ``down_to`` name the older releases the relup moves from and back to;
    by default every older release of the same name in the tree. With ``signing_key`` the
    package's signature is written beside it. With ``bundle_deps`` a wheel of each of
    the applications' ``requires`` is bundled (``bundle``; from ``wheels`` alone if given).

    Raises:
        BuildError: a spec or source is inconsistent, an appup lacks an entry, or a changed
            module is not mentioned by its appup (each problem listed); nothing is written.
        SpecError: a spec file is malformed, or sys.config gives an application of the
            release an env its ``env_schema`` refuses, or names an application it lacks.
    """
    top = tree.view(name, vsn)
    check_release_env(
        {app: (spec.env_schema, spec.env) for app, spec in top.apps.items()},
        [(str(tree.config or tree.root / "sys.config"), tree.sys_config.env)],
        f"release {name} {vsn}",
    )
    older = [s.vsn for s in tree.release_specs(name) if vsn_key(s.vsn) < vsn_key(vsn)]
    ups = [tree.view(name, v) for v in (older if up_from is None else up_from)]
    downs = [tree.view(name, v) for v in (older if down_to is None else down_to)]
    notes: list[str] = []
    problems: list[str] = []
    apps = dict(top.apps)
    for base in {b.spec.vsn: b for b in [*ups, *downs]}.values():
        for direction, bases in (("up", ups), ("down", downs)):
            if base in bases:
                for app_name in top.apps:
                    apps[app_name] = _check_changes(
                        tree, apps[app_name], base, direction, default_appups, notes, problems
                    )
    if problems:
        hint = "name them in the appup, or build with --default-appups to let the builder choose"
        raise BuildError(f"release {name} {vsn}", [*problems, hint])
    top = ReleaseView(spec=top.spec, apps=apps)
    relup = make_relup(top, ups, downs)
    members = _members(tree, top, relup)
    if bundle_deps:
        members.update(
            deps_members(
                vsn,
                (t for spec in top.apps.values() for t in spec.requires),
                wheels,
                f"release {name} {vsn}",
            )
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / package_name(name, vsn)
    data = _archive(members)
    digest = hashlib.sha256(data).hexdigest()
    _write_atomically(target, data)
    _write_atomically(
        target.with_name(target.name + ".sha256"), f"{digest}  {target.name}\n".encode()
    )
    signature = signature_path(target)
    if signing_key is None:
        signature.unlink(missing_ok=True)
        return BuiltPackage(target, digest, len(data), relup, tuple(notes))
    _write_atomically(signature, signature_line(signing_key, target.name, digest))
    signer = public_key_text(signing_key)
    return BuiltPackage(target, digest, len(data), relup, tuple(notes), signer)


def _check_changes(
    tree: SourceTree,
    spec: AppSpec,
    base: ReleaseView,
    direction: str,
    default_appups: bool,
    notes: list[str],
    problems: list[str],
) -> AppSpec:
    """Check (or, with ``default_appups``, complete) one appup entry against the sources."""
    if spec.name not in base.apps or base.app(spec.name).vsn == spec.vsn:
        return spec
    old_vsn = base.app(spec.name).vsn
    new_hashes = tree.module_hashes(spec.name, spec.vsn)
    old_hashes = tree.module_hashes(spec.name, old_vsn)
    changed = [m for m in new_hashes if m in old_hashes and new_hashes[m] != old_hashes[m]]
    added = [m for m in new_hashes if m not in old_hashes]
    removed = [m for m in old_hashes if m not in new_hashes]
    entry = spec.appup.up_from(old_vsn) if direction == "up" else spec.appup.down_to(old_vsn)
    instructions = list(entry.instructions) if entry is not None else []
    if any(isinstance(i, RestartApplication) and i.application == spec.name for i in instructions):
        return spec  # every module is reloaded
    named = {i.module for i in instructions if isinstance(i, _MODULE_STEPS)}
    missing = [m for m in (*changed, *added, *removed) if m not in named]
    if not missing:
        return spec
    where = f"appup.{direction} {old_vsn!r} of {spec.name} {spec.vsn}"
    if not default_appups:
        problems.append(f"{where}: changed modules not mentioned: {', '.join(missing)}")
        return spec
    sources = module_sources(tree.app_dir(spec.name, spec.vsn))
    for module in missing:
        chosen = _default_instruction(
            module, direction, module in added, module in removed, sources
        )
        instructions.append(chosen)
        notes.append(f"{where}: {module}: chose {_describe(chosen)}")
    return _with_entry(spec, direction, old_vsn, entry, instructions)


def _default_instruction(
    module: str, direction: str, added: bool, removed: bool, sources: dict[str, Path]
) -> HighInstruction:
    if added or removed:
        appears = added == (direction == "up")
        if appears:
            return AddModule(op="add_module", module=module)
        return DeleteModule(op="delete_module", module=module)
    text = sources[module].read_text(encoding="utf-8")
    if re.search(r"^(async\s+)?def\s+code_change\b", text, re.MULTILINE):
        return Update(op="update", module=module, change="advanced")
    # a gen_server's callbacks, or a gen_statem's (every gen_statem defines callback_mode)
    behaviour = r"^(async\s+)?def\s+(handle_call|handle_cast|handle_info|callback_mode)\b"
    if re.search(behaviour, text, re.M):
        return Update(op="update", module=module, change="soft")
    return LoadModule(op="load_module", module=module)


def _describe(instruction: HighInstruction) -> str:
    if isinstance(instruction, Update):
        why = (
            "it defines code_change"
            if instruction.advanced
            else "it is a gen_server or gen_statem module"
        )
        return f"update {instruction.change} ({why})"
    if isinstance(instruction, AddModule):
        return "add_module (new in this version)"
    if isinstance(instruction, DeleteModule):
        return "delete_module (gone in the target version)"
    return "load_module (no process state to migrate)"


def _with_entry(
    spec: AppSpec,
    direction: str,
    old_vsn: str,
    entry: AppUpEntry | None,
    instructions: list[HighInstruction],
) -> AppSpec:
    completed = AppUpEntry(vsn=old_vsn, instructions=instructions)
    entries = list(spec.appup.up if direction == "up" else spec.appup.down)
    if entry is None:
        entries.insert(0, completed)
    else:
        entries[entries.index(entry)] = completed
    appup = (
        AppUp(up=entries, down=spec.appup.down)
        if direction == "up"
        else AppUp(up=spec.appup.up, down=entries)
    )
    return spec.model_copy(update={"appup": appup})


def _members(tree: SourceTree, top: ReleaseView, relup: Relup) -> dict[str, bytes]:
    vsn = top.spec.vsn
    spec_file = tree.root / "releases" / f"{top.spec.name}-{vsn}.toml"
    sys_config = tree.config or tree.root / "sys.config"
    members = {
        f"releases/{vsn}/release.toml": spec_file.read_bytes(),
        f"releases/{vsn}/sys.config": sys_config.read_bytes() if sys_config.exists() else b"",
        f"releases/{vsn}/relup.json": relup.model_dump_json(indent=2).encode() + b"\n",
    }
    for entry in top.spec.applications:
        prefix = f"lib/{entry.name}-{entry.vsn}"
        spec_path = tree.root / "appspecs" / f"{entry.name}-{entry.vsn}.toml"
        members[f"{prefix}/app.toml"] = spec_path.read_bytes()
        source = tree.app_dir(entry.name, entry.vsn)
        for path in sorted(walk_tree(source)) if source.is_dir() else ():
            relative = path.relative_to(source)
            if path.is_symlink():
                raise BuildError(str(path), ["symbolic links are not packaged; copy the file"])
            if not path.is_file() or any(
                part == "__pycache__" or part.startswith(".") for part in relative.parts
            ):
                continue
            members[f"{prefix}/{relative.as_posix()}"] = path.read_bytes()
    return members


def _archive(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for name in sorted(members):
            parts = name.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in dirs:
                    dirs.add(folder)
                    tar.addfile(_info(folder, tarfile.DIRTYPE, 0o755, 0))
            data = members[name]
            tar.addfile(_info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def _info(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
