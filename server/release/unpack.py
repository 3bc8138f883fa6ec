"""Unpacking a release package into a node root, refusing anything a package must not hold.

A package (``<name>-<vsn>.tar.gz``, see ``server.release.package``) becomes::

    <root>/releases/<vsn>/release.toml, sys.config, relup.json
    <root>/lib/<app>-<vsn>/app.toml and the application's sources

How this works (synchronous, file system only):

1. The file name says which release this is; a vsn the node already knows is refused.
2. The package and its ``.sha256`` must be regular files (``os.stat``; opened with
   ``O_NONBLOCK``, so a FIFO swapped in cannot block the open, then checked again). The
   package's bytes are hashed and compared with the sha256 of the ``.sha256`` file
   beside it (or the one the caller passes); with trusted keys, the signature beside it
   must vouch for that digest (``server.release.signature``), before the archive is read.
3. Pass 1 streams the archive and writes nothing. Every member is checked (name, type,
   place in the layout, duplicates, sizes counted as the bytes are read); the spec files
   are kept, every file's digest recorded. Then the specs are checked against each other
   and against the directories already under the root.
4. Pass 2 streams the archive again into ``<root>/.unpack-<random>``, checking every member
   again and hashing the package bytes again: what is moved into place is byte for byte
   what pass 1 accepted, even if the package file changed in between.
5. Each new ``lib/<app>-<vsn>`` is renamed into place, then ``releases/<vsn>`` last. An
   error undoes the renames made and removes the staging directory.

Invariants:

1. A refusal leaves ``<root>/lib`` and ``<root>/releases`` exactly as they were.
2. A directory in place is complete: it was renamed there whole.
3. A directory already present is kept when its content equals the package's (two
   releases share an application version; a crash after a rename into place). When it
   differs, it is refused if a release of the node uses it (``in_use``); if none does, it
   is a leftover (of a remove or an unpack killed midway): it is moved into the staging
   directory, replaced, and deleted with the staging directory, with a WARNING naming it.
   So a retry after any crash succeeds.
4. A crash leaves at most a staging directory and complete directories as in (3);
   ``clean_staging`` removes the staging directory, and ``unpack_package`` calls it first.

With a ``timeout``, every read and the moves into place check the deadline first: a read
that blocks (a stalled file system) cannot be interrupted, but the unpack stops at the
next one, and nothing is moved into place past the deadline.

Callers: one unpack per root at a time (the release handler serialises its calls), since
``clean_staging`` removes every staging directory under the root.

The module is longer than most: the member checks, the two passes and the writer share
one scan, and keeping them together keeps the safety argument above in one place.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import logging
import math
import os
import re
import stat
import tarfile
import tempfile
import time
import tomllib
import types
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, final

import pydantic
from packaging.utils import canonicalize_name

from server.errors import SpecError, UnpackError
from server.release import _faults
from server.release._tree import delete_tree, walk_tree
from server.release.bundle import DEPS_INDEX, bundled_versions
from server.release.signature import NO_TRUSTED_KEYS, check_origin
from server.spec.app_spec import AppSpec
from server.spec.files import AppName, Vsn, parse_model
from server.spec.release_spec import ReleaseSpec
from server.spec.relup import Relup
from server.spec.requirements import installed_version, unmet

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator, Mapping

    from server.release.signature import TrustedKeys

__all__ = ["STAGING_PREFIX", "UnpackLimits", "UnpackedRelease", "clean_staging", "unpack_package"]

logger = logging.getLogger(__name__)

_Model = TypeVar("_Model", bound=pydantic.BaseModel)

#: Staging directories are ``<root>/<STAGING_PREFIX><random>``.
STAGING_PREFIX = ".unpack-"

_SUFFIX = ".tar.gz"
_LEFTOVERS = ".leftovers"  # under the staging directory: what an unpack replaced
_CHUNK = 1 << 16
_MAX_CHECKSUM_FILE = 4096  # one line of 64 hex digits and a file name
_TAIL = 4 * tarfile.RECORDSIZE  # more than the end marker and its padding
_CHANGED = "the package file changed while it was read; copy it again and retry"
_REBUILD = "rebuild the package with `server build`"
_SHA256_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)\n?")
_DRIVE = re.compile(r"[A-Za-z]:")
_APP_NAME: pydantic.TypeAdapter[str] = pydantic.TypeAdapter(AppName)
_VSN: pydantic.TypeAdapter[str] = pydantic.TypeAdapter(Vsn)
_FILE_MODE = 0o644
_DIR_MODE = 0o755
_LINK_TYPES = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link"}
_OTHER_TYPES = {
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.CONTTYPE: "a contiguous file",
}


@final
@dataclass(frozen=True, slots=True)
class UnpackLimits:
    """How much a package may hold; past a limit it is refused as it is read.

    ``max_total_size`` counts the decompressed archive (headers and padding included) as
    it is read, so a decompression bomb stops there whatever its headers say.
    ``max_depth`` counts the components of a member's path (``lib/app-1.0.0/app/web.py``
    has 4): a tree deeper than that is refused before anything is written.
    """

    max_members: int = 20_000
    max_member_size: int = 64 << 20
    max_total_size: int = 512 << 20
    max_depth: int = 64

    def __post_init__(self) -> None:
        for name in ("max_members", "max_member_size", "max_total_size", "max_depth"):
            if getattr(self, name) <= 0:
                raise ValueError(f"UnpackLimits.{name} must be positive")


@final
@dataclass(frozen=True, slots=True)
class UnpackedRelease:
    """A release unpacked under a node root: its spec, applications and directories."""

    name: str
    vsn: str
    spec: ReleaseSpec
    apps: Mapping[str, tuple[AppSpec, Path]]
    release_dir: Path
    relup: Relup | None


def clean_staging(root: Path) -> list[Path]:
    """Remove the staging directories an interrupted unpack left under ``root``.

    Returns:
        What was removed.
    """
    removed: list[Path] = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in sorted(root.iterdir()):
            if not entry.name.startswith(STAGING_PREFIX):
                continue
            delete_tree(entry)
            removed.append(entry)
            logger.info("removed staging leftover", extra={"path": str(entry)})
    return removed


def unpack_package(
    package: Path,
    root: Path,
    *,
    limits: UnpackLimits = UnpackLimits(),
    known_vsns: Collection[str] = (),
    expected_sha256: str | None = None,
    trusted_keys: TrustedKeys = NO_TRUSTED_KEYS,
    in_use: Collection[str] | None = None,
    timeout: float = math.inf,
) -> UnpackedRelease:
    """Check release package ``package`` and unpack it under node root ``root``.

    Args:
        package: ``<name>-<vsn>.tar.gz``, with ``<name>-<vsn>.tar.gz.sha256`` beside it.
        root: the node root, holding (or about to hold) ``lib/`` and ``releases/``.
        limits: how many members and bytes the package may hold.
        known_vsns: the release versions the node already has; they are refused.
        expected_sha256: the package's sha256 in hex, used instead of the ``.sha256`` file.
        trusted_keys: the keys one of which must have signed the package; with none, any
            package is unpacked (and a WARNING says it is not verified).
        in_use: the directories the node's releases use, relative to ``root``
            (``lib/counter-1.0.0``, ``releases/1.0.0``); a directory in place that differs
            from the package's is refused if it is in use and replaced if not (invariant 3).
            None: every directory in place counts as in use.
        timeout: seconds the unpack may take; past them it stops at its next read, or
            before it moves anything into place (``math.inf``: no limit).

    Returns:
        The unpacked release.

    Raises:
        SignatureRefused: ``trusted_keys`` are given and the package is unsigned, signed
            by another key, or its signature is wrong; nothing changed.
        UnpackError: the package was refused (not a regular file, checksum, hostile or
            unexpected member, limits, corrupt stream, past ``timeout``, specs that
            disagree, a known vsn, a directory in use with other content) or could not be
            written; nothing under ``root/lib`` and ``root/releases`` changed.
        SpecError: a spec file in the package is malformed; nothing changed.
        ValueError: ``expected_sha256`` is not 64 hex digits (or, from the operating
            system, a path holds a NUL byte).
    """
    where = str(package)
    if expected_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", expected_sha256):
        raise ValueError(f"expected_sha256 must be 64 hex digits, got {expected_sha256!r}")
    if not root.is_dir():
        raise UnpackError(where, f"the node root {root} is not a directory; create it first")
    name, vsn = _name_and_vsn(package)
    if vsn in known_vsns:
        raise UnpackError(
            where,
            f"release vsn {vsn} is already on this node; remove it first "
            "or build the package with a new vsn",
        )
    deadline = _Deadline(where, timeout)
    clean_staging(root)
    expected = _expected_digest(package, expected_sha256)
    with _open_package(package) as source:
        if os.fstat(source.fileno()).st_size > limits.max_total_size:
            raise UnpackError(
                where,
                f"the package file is over {limits.max_total_size} bytes; raise "
                "UnpackLimits.max_total_size if it is genuine",
            )
        actual = _digest(source, deadline)
    if actual != expected.lower():
        raise UnpackError(
            where,
            f"its sha256 is {actual} but {_checksum_source(package, expected_sha256)} says "
            f"{expected.lower()}: the package is damaged or not the one built; copy it again",
        )
    check_origin(package, actual, trusted_keys)
    scan = _Scan(where, vsn, limits, deadline)
    with _open_package(package) as source:
        if scan.run(source, None) != actual:
            raise UnpackError(where, _CHANGED)
    plan = _plan(scan, name, vsn)
    bundled = bundled_versions(scan.documents.get(f"releases/{vsn}/{DEPS_INDEX}"))
    missing = unmet(
        ((app, text) for app, spec in plan.apps.items() for text in spec.requires),
        lambda dist: bundled.get(canonicalize_name(dist)) or installed_version(dist),
    )
    if missing:
        raise UnpackError(
            where,
            "the node's Python environment lacks what the release requires ("
            + "; ".join(missing)
            + "): install those distributions beside the server first",
        )
    leftovers = _check_in_place(scan, plan, root, in_use)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    try:
        _extract(package, scan, staging, actual)
        deadline.check()  # past it, the caller was told it failed: move nothing into place
        _move_into_place(where, plan, staging, root, leftovers)
    finally:
        with contextlib.suppress(OSError):
            delete_tree(staging)
    lib = root / "lib"
    return UnpackedRelease(
        name=name,
        vsn=vsn,
        spec=plan.spec,
        apps=types.MappingProxyType(
            {app: (spec, lib / spec.key) for app, spec in plan.apps.items()}
        ),
        release_dir=root / "releases" / vsn,
        relup=plan.relup,
    )


# -- the package file ------------------------------------------------------------------


def _name_and_vsn(package: Path) -> tuple[str, str]:
    stem = package.name.removesuffix(_SUFFIX)
    name, dash, vsn = stem.partition("-")
    try:
        if package.name == stem or not dash:
            raise ValueError
        _APP_NAME.validate_python(name)
        _VSN.validate_python(vsn)
    except (ValueError, pydantic.ValidationError):
        raise UnpackError(
            str(package),
            "a package is named <name>-<vsn>.tar.gz (such as demo-2.0.0.tar.gz); "
            "keep the name `server build` gave it",
        ) from None
    return name, vsn


def _checksum_source(package: Path, explicit: str | None) -> str:
    return "the caller" if explicit is not None else f"{package.name}.sha256"


def _expected_digest(package: Path, explicit: str | None) -> str:
    if explicit is not None:
        return explicit
    checksum = package.with_name(package.name + ".sha256")
    try:
        with _open_regular(checksum, str(package), "the checksum file") as file:
            text = file.read(_MAX_CHECKSUM_FILE).decode("utf-8")
    except FileNotFoundError:
        raise UnpackError(
            str(package),
            f"no checksum file {checksum} beside it; copy the .sha256 file `server build` "
            "wrote together with the package",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UnpackError(
            str(package), f"cannot read the checksum file {checksum} ({exc}); copy it again"
        ) from None
    match = _SHA256_LINE.fullmatch(text)
    if match is None or match.group(2) != package.name:
        raise UnpackError(
            str(package),
            f"the checksum file {checksum} is not one line '<64 hex digits>  {package.name}'; "
            "copy the one `server build` wrote",
        )
    return match.group(1)


@contextlib.contextmanager
def _open_package(package: Path) -> Iterator[BinaryIO]:
    try:
        file = _open_regular(package, str(package), "the package")
    except UnpackError:
        raise
    except OSError as exc:
        raise UnpackError(str(package), f"cannot open it ({exc.strerror or exc})") from None
    with file:
        yield file


def _is_regular(mode: int) -> bool:
    """Whether a file of ``mode`` may be read as a package or its checksum.

    Only a regular file: a FIFO, a device or a socket could block the read for ever or
    never end. (A seam: the deadline test lets a FIFO through, to make a read that blocks.)
    """
    return stat.S_ISREG(mode)


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _open_regular(path: Path, package: str, what: str) -> BinaryIO:
    """Open ``path`` to read if it is a regular file; the open itself never blocks.

    Raises:
        UnpackError: ``path`` is not a regular file (a FIFO, a device...).
        OSError: it cannot be stat'ed or opened (``FileNotFoundError`` when missing).
    """

    def refuse(mode: int) -> UnpackError:
        kind = next((name for test, name in _KINDS if test(mode)), "a special file")
        return UnpackError(
            package,
            f"{what} {path} is {kind}, not a regular file: copy the file itself and retry",
        )

    mode = os.stat(path).st_mode
    if not _is_regular(mode):
        raise refuse(mode)
    # O_NONBLOCK: should it be swapped for a FIFO after the stat, open() must not wait
    # for a writer; the fstat below then refuses it
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not _is_regular(mode):
            raise refuse(mode)
        os.set_blocking(fd, True)  # reads of what passed the check are plain reads again
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _digest(source: BinaryIO, deadline: _Deadline | None = None) -> str:
    digest = hashlib.sha256()
    while chunk := source.read(_CHUNK):
        if deadline is not None:
            deadline.check()
        digest.update(chunk)
    if deadline is not None:
        deadline.check()
    return digest.hexdigest()


@final
class _Deadline:
    """When an unpack must be over: checked after each read and before the moves."""

    __slots__ = ("at", "package", "timeout")

    def __init__(self, package: str, timeout: float) -> None:
        self.package = package
        self.timeout = timeout
        self.at = time.monotonic() + timeout

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise UnpackError(
                self.package,
                f"the unpack took longer than its {self.timeout:g} s: is the package on a "
                "stalled file system? Nothing was changed: copy it to a local disk and retry",
            )


# -- streaming the archive -------------------------------------------------------------


class _StreamTooLarge(Exception):
    """The decompressed stream went past ``max_total_size``."""


class _HashingReader(io.RawIOBase):
    """The package's raw bytes, hashed as they are read."""

    def __init__(self, source: BinaryIO, deadline: _Deadline | None) -> None:
        self._source = source
        self._deadline = deadline
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        if self._deadline is not None:
            self._deadline.check()
        self.digest.update(data)
        buffer[: len(data)] = data
        return len(data)


class _LimitedReader(io.RawIOBase):
    """The decompressed archive, refused past ``limit`` bytes actually produced.

    It keeps the last ``_TAIL`` bytes, to check the end of the archive.
    """

    def __init__(self, source: gzip.GzipFile, limit: int) -> None:
        self._source = source
        self._limit = limit
        self.position = 0
        self.tail = bytearray()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(min(len(buffer), self._limit - self.position + 1))
        self.position += len(data)
        if self.position > self._limit:
            raise _StreamTooLarge
        self.tail += data
        del self.tail[: -_TAIL or None]
        buffer[: len(data)] = data
        return len(data)


@dataclass
class _Scan:
    """What one pass over the archive saw, checking every member as it comes."""

    package: str
    vsn: str
    limits: UnpackLimits
    deadline: _Deadline | None = None
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256 of the content
    dirs: set[str] = field(default_factory=set)  # named by a member, or implied by one
    explicit_dirs: set[str] = field(default_factory=set)
    documents: dict[str, bytes] = field(default_factory=dict)
    data_size: int = 0
    members: int = 0
    current: str | None = None

    def run(self, source: BinaryIO, write: _Writer | None) -> str:
        """Read the whole archive (writing each member with ``write``); the package sha256."""
        raw = _HashingReader(source, self.deadline)
        package_in = io.BufferedReader(raw)
        try:
            with gzip.GzipFile(fileobj=package_in, mode="rb") as unzipped:
                limited = _LimitedReader(unzipped, self.limits.max_total_size)
                tar_in = io.BufferedReader(limited)
                with tarfile.open(fileobj=tar_in, mode="r|") as tar:
                    for info in tar:
                        self._member(tar, info, write)
                    end = tar.offset
                while tar_in.read(_CHUNK):  # to the end: gzip checks its CRC there
                    pass
                self._check_end(limited, end)
        except _StreamTooLarge:
            raise self.refuse(
                f"the archive decompresses to more than {self.limits.max_total_size} bytes "
                "(a decompression bomb?); raise UnpackLimits.max_total_size if it is genuine",
                self.current,
            ) from None
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise self.refuse(
                f"the gzip or tar stream is truncated or corrupt ({exc}); copy the package again",
                self.current,
            ) from None
        if not self.members:
            raise self.refuse(f"the archive is empty; {_REBUILD}", None)
        while package_in.read(_CHUNK):
            pass
        return raw.digest.hexdigest()

    def _check_end(self, limited: _LimitedReader, end: int) -> None:
        # tarfile takes a header it cannot read after the first one for the end of the
        # archive: what follows the last member must be the zero blocks that end it.
        trailing = limited.position - end
        if not 2 * tarfile.BLOCKSIZE <= trailing <= len(limited.tail) or any(
            limited.tail[-trailing:]
        ):
            raise self.refuse(
                "the tar stream is truncated or corrupt after its last member (no proper "
                "end-of-archive marker); copy the package again",
                None,
            )

    def refuse(self, reason: str, member: str | None) -> UnpackError:
        return UnpackError(self.package, reason, member)

    def _member(self, tar: tarfile.TarFile, info: tarfile.TarInfo, write: _Writer | None) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise self.refuse(
                f"more than {self.limits.max_members} members; raise UnpackLimits.max_members "
                "if the package is genuine",
                info.name,
            )
        parts = self._checked_name(info.name)
        name = "/".join(parts)
        if len(parts) > self.limits.max_depth:
            raise self.refuse(
                f"its path has {len(parts)} components, over the {self.limits.max_depth} a "
                "member's path may have; raise UnpackLimits.max_depth if it is genuine",
                name,
            )
        self._check_type(info, name)
        self._check_place(parts, info.isdir())
        if name in self.files or name in self.explicit_dirs:
            raise self.refuse(f"it appears twice in the archive; {_REBUILD}", name)
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in self.files:
                raise self.refuse(f"its parent {parent} is a file; {_REBUILD}", name)
            self.dirs.add(parent)
        if info.isdir():
            self.dirs.add(name)
            self.explicit_dirs.add(name)
            if write is not None:
                write.directory(parts)
            return
        if name in self.dirs:
            raise self.refuse(f"it is both a directory and a file; {_REBUILD}", name)
        if info.size > self.limits.max_member_size:
            raise self.refuse(self._too_big(info.size), name)
        if self.data_size + info.size > self.limits.max_total_size:
            raise self.refuse(self._too_much(), name)
        self.current = name
        self.files[name] = self._read(tar, info, name, parts, write)
        self.current = None

    def _checked_name(self, name: str) -> list[str]:
        problem = None
        if not name:
            problem = "an empty name (or '/')"
        elif "\x00" in name or "\\" in name:
            problem = "a NUL or backslash in its name"
        elif name.startswith("/"):
            problem = "an absolute path"
        elif _DRIVE.match(name):
            problem = "a drive letter"
        elif any(part in ("", ".", "..") for part in name.split("/")):
            problem = "an empty, '.' or '..' component in its path"
        else:
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                problem = "a name that is not UTF-8"
        if problem is not None:
            raise self.refuse(
                f"{problem}: a package holds only plain relative paths under releases/ and "
                f"lib/; {_REBUILD}",
                name,
            )
        return name.split("/")

    def _check_type(self, info: tarfile.TarInfo, name: str) -> None:
        if info.sparse is not None or info.type == tarfile.GNUTYPE_SPARSE:
            kind = "a sparse file"
        elif info.type in _LINK_TYPES:
            kind = f"{_LINK_TYPES[info.type]} (to {info.linkname!r})"
        elif info.type in _OTHER_TYPES:
            kind = _OTHER_TYPES[info.type]
        elif info.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):
            return
        else:
            kind = f"a member of tar type {info.type!r}"
        raise self.refuse(
            f"it is {kind}; a package holds only regular files and directories; {_REBUILD}",
            name,
        )

    def _check_place(self, parts: list[str], is_dir: bool) -> None:
        top = parts[0]
        name = "/".join(parts)
        if top == "releases":
            if len(parts) >= 2 and parts[1] != self.vsn:
                raise self.refuse(
                    f"the package is release vsn {self.vsn} (its file name says so) and may "
                    f"hold only releases/{self.vsn}/; {_REBUILD}",
                    name,
                )
        elif top == "lib":
            if len(parts) >= 2 and not _is_lib_dir(parts[1]):
                raise self.refuse(
                    f"lib/ holds only <app>-<vsn> directories; {_REBUILD}",
                    name,
                )
        else:
            raise self.refuse(
                f"unexpected top-level entry {top!r}: a package holds only releases/ and lib/; "
                f"{_REBUILD}",
                name,
            )
        if len(parts) <= 2 and not is_dir:
            raise self.refuse(f"it must be a directory, not a file; {_REBUILD}", name)

    def _read(
        self,
        tar: tarfile.TarFile,
        info: tarfile.TarInfo,
        name: str,
        parts: list[str],
        write: _Writer | None,
    ) -> str:
        member = tar.extractfile(info)
        if member is None:  # a regular file always has a reader; kept for mypy
            raise self.refuse(f"its content cannot be read; {_REBUILD}", name)
        keep = _is_document(parts)
        kept: list[bytes] = []
        digest = hashlib.sha256()
        size = 0
        with member, write.file(parts) if write is not None else _no_sink() as sink:
            while chunk := member.read(_CHUNK):
                size += len(chunk)
                self.data_size += len(chunk)
                if size > self.limits.max_member_size:
                    raise self.refuse(self._too_big(size), name)
                if self.data_size > self.limits.max_total_size:
                    raise self.refuse(self._too_much(), name)
                digest.update(chunk)
                sink(chunk)
                if keep:
                    kept.append(chunk)
        if keep:
            self.documents[name] = b"".join(kept)
        return digest.hexdigest()

    def _too_big(self, size: int) -> str:
        return (
            f"{size} bytes or more, over the {self.limits.max_member_size} bytes a member may "
            "hold; raise UnpackLimits.max_member_size if it is genuine"
        )

    def _too_much(self) -> str:
        return (
            f"the files add up to more than {self.limits.max_total_size} bytes; raise "
            "UnpackLimits.max_total_size if the package is genuine"
        )


def _is_lib_dir(dir_name: str) -> bool:
    app, dash, vsn = dir_name.partition("-")
    try:
        _APP_NAME.validate_python(app)
        _VSN.validate_python(vsn)
    except pydantic.ValidationError:
        return False
    return bool(dash)


def _is_document(parts: list[str]) -> bool:
    if parts[0] == "releases":
        return len(parts) == 3 and parts[2] in ("release.toml", "relup.json", DEPS_INDEX)
    return len(parts) == 3 and parts[2] == "app.toml"


@contextlib.contextmanager
def _no_sink() -> Iterator[Callable[[bytes], object]]:
    yield len


# -- what the package holds, checked -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    spec: ReleaseSpec
    apps: dict[str, AppSpec]
    relup: Relup | None
    dirs: tuple[str, ...]  # lib/<app>-<vsn> ..., then releases/<vsn>


def _plan(scan: _Scan, name: str, vsn: str) -> _Plan:
    spec_member = f"releases/{vsn}/release.toml"
    if spec_member not in scan.documents:
        raise scan.refuse(f"the package has no {spec_member}; {_REBUILD}", None)
    spec = _document(scan, ReleaseSpec, spec_member)
    if (spec.name, spec.vsn) != (name, vsn):
        raise scan.refuse(
            f"it describes release {spec.name} {spec.vsn}, but the package file is named for "
            f"{name} {vsn}; keep the file name `server build` gave it",
            spec_member,
        )
    listed = {f"lib/{entry.name}-{entry.vsn}": entry for entry in spec.applications}
    apps: dict[str, AppSpec] = {}
    for lib_dir, entry in listed.items():
        app_member = f"{lib_dir}/app.toml"
        if app_member not in scan.documents:
            raise scan.refuse(
                f"release {name} {vsn} lists application {entry.name} {entry.vsn}, but the "
                f"package has no {app_member}; {_REBUILD}",
                app_member,
            )
        app = _document(scan, AppSpec, app_member)
        if (app.name, app.vsn) != (entry.name, entry.vsn):
            raise scan.refuse(
                f"it describes application {app.name} {app.vsn}, not {entry.name} {entry.vsn}; "
                f"{_REBUILD}",
                app_member,
            )
        apps[entry.name] = app
    present = sorted({"/".join(d.split("/")[:2]) for d in scan.dirs if d.startswith("lib/")})
    for lib_dir in present:
        if lib_dir not in listed:
            raise scan.refuse(
                f"release {name} {vsn} does not list this application version; {_REBUILD}",
                lib_dir,
            )
    relup_member = f"releases/{vsn}/relup.json"
    relup = None
    if relup_member in scan.documents:
        relup = _document(scan, Relup, relup_member)
        if relup.vsn != vsn:
            raise scan.refuse(
                f"it is the relup of vsn {relup.vsn}, not {vsn}; {_REBUILD}", relup_member
            )
    return _Plan(spec, apps, relup, (*listed, f"releases/{vsn}"))


def _document(scan: _Scan, model: type[_Model], member: str) -> _Model:
    """Parse spec file ``member`` (TOML, or JSON for ``.json``) kept by the scan."""
    data = scan.documents[member]
    source = f"{scan.package}:{member}"
    kind = "JSON" if member.endswith(".json") else "TOML"
    try:
        text = data.decode("utf-8")
        parsed: object = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SpecError(source, [("", f"the file is not UTF-8 text (line {line})")]) from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(source, [("", f"not valid {kind}: {exc}")]) from None
    except RecursionError:
        raise SpecError(source, [("", f"not usable {kind}: nested too deeply")]) from None
    return parse_model(model, parsed, source)


def _check_in_place(
    scan: _Scan, plan: _Plan, root: Path, in_use: Collection[str] | None
) -> set[str]:
    """Refuse symlinks on the way, and directories in use whose content differs.

    Returns:
        The directories in place that differ and no release uses: leftovers to replace.
    """
    for top in ("lib", "releases"):
        path = root / top
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise scan.refuse(
                f"{path} is a symbolic link or not a directory; make it a plain directory", None
            )
    leftovers: set[str] = set()
    for rel in plan.dirs:
        target = root / rel
        if not target.is_symlink() and not target.exists():
            continue
        problem = _differs(scan, rel, target)
        if problem is None:
            continue
        if in_use is None or rel in in_use:
            raise scan.refuse(
                f"{target} is already there and {problem}; a version's content never "
                f"changes: build the package with a new vsn, or remove {target} if nothing "
                "uses it",
                rel,
            )
        logger.warning(
            "%s is a leftover no release uses, and %s: the unpack replaces it",
            target,
            problem,
            extra={"path": str(target), "package": scan.package},
        )
        leftovers.add(rel)
    return leftovers


def _differs(scan: _Scan, rel: str, target: Path) -> str | None:
    if target.is_symlink() or not target.is_dir():
        return "is a symbolic link or not a directory"
    prefix = rel + "/"
    want_files = {n[len(prefix) :]: d for n, d in scan.files.items() if n.startswith(prefix)}
    want_dirs = {n[len(prefix) :] for n in scan.dirs if n.startswith(prefix)}
    have_files: dict[str, str] = {}
    have_dirs: set[str] = set()
    for path in walk_tree(target, skip=_is_pycache):
        inside = path.relative_to(target).as_posix()
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            have_dirs.add(inside)
        elif stat.S_ISREG(mode):
            with path.open("rb") as file:
                have_files[inside] = _digest(file)
        else:
            return f"holds {inside}, which is not a regular file or directory"
    if have_files != want_files or have_dirs != want_dirs:
        return "its content differs from the package's"
    return None


def _is_pycache(entry: os.DirEntry[str]) -> bool:
    """``__pycache__`` is not content: running the sources may have written it."""
    return entry.name == "__pycache__" and entry.is_dir(follow_symlinks=False)


# -- writing ---------------------------------------------------------------------------


class _Writer:
    """Writes members under the staging directory, never through a symbolic link.

    The folder of the last file written stays open: the members of a folder come one
    after the other, and opening every component of the path again for each file cost
    most of an unpack's time (3,000 files: 21,000 ``open`` calls, 1.7 s of 4 s).
    """

    def __init__(self, staging: Path) -> None:
        self._staging = staging
        self._parent: tuple[tuple[str, ...], int] | None = None

    def close(self) -> None:
        """Close the folder kept open."""
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None

    def directory(self, parts: list[str]) -> None:
        os.close(self._open_dir(parts))

    @contextlib.contextmanager
    def file(self, parts: list[str]) -> Iterator[Callable[[bytes], object]]:
        folder = tuple(parts[:-1])
        if self._parent is None or self._parent[0] != folder:
            self.close()
            self._parent = (folder, self._open_dir(parts[:-1]))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(parts[-1], flags, _FILE_MODE, dir_fd=self._parent[1])
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), _FILE_MODE)
            yield out.write

    def _open_dir(self, parts: list[str]) -> int:
        """Open (creating as needed, mode 0755) the directory ``parts`` under staging."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        fd = os.open(self._staging, flags)
        try:
            for part in parts:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, _DIR_MODE, dir_fd=fd)
                child = os.open(part, flags, dir_fd=fd)
                os.close(fd)
                fd = child
                os.fchmod(fd, _DIR_MODE)
        except BaseException:
            os.close(fd)
            raise
        return fd


def _extract(package: Path, first: _Scan, staging: Path, digest: str) -> None:
    """Pass 2: the archive again, checked again, into ``staging``."""
    again = _Scan(first.package, first.vsn, first.limits, first.deadline)
    try:
        with _open_package(package) as source, contextlib.closing(_Writer(staging)) as write:
            actual = again.run(source, write)
    except OSError as exc:
        raise UnpackError(
            first.package,
            f"cannot write under {staging.parent} ({exc.strerror or exc}); free some space or "
            "fix the permissions, then retry",
            again.current,
        ) from None
    if actual != digest or again.files != first.files or again.dirs != first.dirs:
        raise UnpackError(first.package, _CHANGED)


def _move_into_place(
    package: str, plan: _Plan, staging: Path, root: Path, leftovers: set[str]
) -> None:
    """Rename each new directory into place, ``releases/<vsn>`` last; undo on error.

    A leftover in the way is first moved into the staging directory (deleted with it).
    """
    created: list[Path] = []
    moved: list[tuple[Path, Path]] = []  # (where it is now, where it goes back on undo)
    placed = 0
    crash = _faults.hook(root, "unpack_move")  # the crash tests kill the node between moves
    try:
        for top in ("lib", "releases"):
            path = root / top
            if not path.exists():
                path.mkdir()
                created.append(path)
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
                try:
                    os.fchmod(fd, _DIR_MODE)  # whatever the umask
                finally:
                    os.close(fd)
        if crash is not None:
            crash(0)
        for rel in plan.dirs:
            target = root / rel
            if rel in leftovers:
                aside = staging / _LEFTOVERS / rel
                aside.parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, aside)
                moved.append((aside, target))
            elif target.is_symlink() or target.exists():
                continue  # identical content, checked by _check_in_place
            os.replace(staging / rel, target)
            moved.append((target, staging / rel))
            placed += 1
            if crash is not None:
                crash(placed)
    except OSError as exc:
        outcome = (
            "nothing was changed"
            if _undo(moved, created)
            else "complete application directories may stay in place (a retry keeps them)"
        )
        raise UnpackError(
            package,
            f"cannot move the unpacked files into {root} ({exc.strerror or exc}); {outcome}: "
            "fix the cause and retry",
        ) from None
    except BaseException:
        _undo(moved, created)
        raise


def _undo(moved: list[tuple[Path, Path]], created: list[Path]) -> bool:
    """Move back what was moved; whether everything is as it was.

    A directory that cannot be moved back stays in place: it is complete and equal to the
    package's, so a retry keeps it (invariants 2 and 3).
    """
    undone = True
    for target, back in reversed(moved):
        try:
            os.replace(target, back)
        except OSError:
            undone = False
    for path in reversed(created):
        try:
            path.rmdir()
        except OSError:
            undone = False
    return undone
