"""Unpacking a release package: the good package, then every hostile or wrong one refused.

Each refusal is checked three ways: the exact error type, a message naming the member and
the reason, and a snapshot of the whole test directory (the node root, the package's
directory and everything beside them) equal before and after: nothing changed under the
root, nothing was written outside it, and no staging directory was left behind.
"""

from __future__ import annotations

import copy
import dataclasses
import gzip
import hashlib
import io
import logging
import os
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from server.errors import ReleaseError, SpecError, UnpackError
from server.release.package import build_package
from server.release.source_tree import SourceTree
from server.release.unpack import (
    STAGING_PREFIX,
    UnpackedRelease,
    UnpackLimits,
    clean_staging,
    unpack_package,
)
from server.spec.app_spec import AppSpec
from server.spec.release_spec import ReleaseSpec
from tests.release._trees import deep_tree, deleted_at_the_end

if TYPE_CHECKING:
    from collections.abc import Callable

from tests._support.nodes import REPO

PACKAGE = "demo-2.0.0.tar.gz"
# Small enough that the tests stay fast, large enough for the demo package (~25 KB of tar).
LIMITS = UnpackLimits(max_members=100, max_member_size=256 << 10, max_total_size=1 << 20)


@dataclass(frozen=True)
class Member:
    """One archive member to write: its header and (for a regular file) its content."""

    info: tarfile.TarInfo
    data: bytes = b""


Members = list[Member]


def file(name: str, data: bytes, mode: int = 0o644) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return Member(info, data)


def directory(name: str, mode: int = 0o755) -> Member:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    return Member(info)


def special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.devmajor, info.devminor = 1, 3
    return Member(info)


def tar_bytes(members: Members) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            data = io.BytesIO(member.data) if member.info.isreg() else None
            tar.addfile(member.info, data)
    return raw.getvalue()


def write_package(folder: Path, data: bytes, name: str = PACKAGE) -> Path:
    """Write ``data`` as package ``name`` with a matching ``.sha256`` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    path.with_name(name + ".sha256").write_text(f"{digest}  {name}\n")
    return path


def read_members(data: bytes) -> Members:
    out: Members = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            content = tar.extractfile(info)
            out.append(Member(info, content.read() if content is not None else b""))
    return out


def replace(members: Members, name: str, edit: Callable[[bytes], bytes]) -> Members:
    return [file(m.info.name, edit(m.data)) if m.info.name == name else m for m in members]


def snapshot(top: Path) -> dict[str, tuple[str, int, str]]:
    """Every path under ``top``: its kind, permission bits and content (or link target)."""
    seen: dict[str, tuple[str, int, str]] = {}
    for folder, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                entry = ("link", 0, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                entry = ("dir", stat.S_IMODE(info.st_mode), "")
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                entry = ("file", stat.S_IMODE(info.st_mode), digest)
            seen[path.relative_to(top).as_posix()] = entry
    return seen


@dataclass(frozen=True)
class Built:
    """The demo packages as bytes, and the members of 2.0.0."""

    packages: dict[str, bytes]
    members: Members


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Demo 1.0.0 and 2.0.0 built once from a copy of the repository's release sources."""
    tree = tmp_path_factory.mktemp("tree")
    for name in ("releases", "appspecs", "apps"):
        shutil.copytree(REPO / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "sys.config", tree / "sys.config")
    out = tmp_path_factory.mktemp("out")
    source = SourceTree(tree)
    packages = {
        vsn: build_package(source, "demo", vsn, out).path.read_bytes() for vsn in ("1.0.0", "2.0.0")
    }
    return Built(packages, read_members(packages["2.0.0"]))


@pytest.fixture
def root(tmp_path: Path, built: Built) -> Path:
    """A node root holding demo 1.0.0, unpacked."""
    node = tmp_path / "node"
    node.mkdir()
    first = write_package(tmp_path / "incoming", built.packages["1.0.0"], "demo-1.0.0.tar.gz")
    unpack_package(first, node)
    return node


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    return tmp_path / "incoming"


def refused(
    tmp_path: Path,
    package: Path,
    root: Path,
    *,
    limits: UnpackLimits = LIMITS,
    known_vsns: tuple[str, ...] = ("1.0.0",),
    expected_sha256: str | None = None,
) -> UnpackError:
    """Unpack, expect an UnpackError, and check that nothing at all changed."""
    before = snapshot(tmp_path)
    with pytest.raises(UnpackError) as info:
        unpack_package(
            package, root, limits=limits, known_vsns=known_vsns, expected_sha256=expected_sha256
        )
    assert snapshot(tmp_path) == before, "nothing changed, nothing left behind"
    return info.value


# -- the good package ------------------------------------------------------------------


def test_a_good_package_unpacks_with_its_files_modes_and_record(
    demo_tree: Path, tmp_path: Path
) -> None:
    built = build_package(SourceTree(demo_tree), "demo", "2.0.0", tmp_path / "out")
    root = tmp_path / "node"
    root.mkdir()
    old_umask = os.umask(0o077)  # the modes written do not depend on the umask
    try:
        release = unpack_package(built.path, root)
    finally:
        os.umask(old_umask)
    assert isinstance(release, UnpackedRelease)
    assert (release.name, release.vsn) == ("demo", "2.0.0")
    assert release.spec.vsn == "2.0.0"
    assert [a.name for a in release.spec.applications] == ["stats", "counter"]
    assert release.release_dir == root / "releases" / "2.0.0"
    assert release.relup is not None
    assert release.relup == built.relup
    assert set(release.apps) == {"stats", "counter"}
    spec, lib_dir = release.apps["counter"]
    assert isinstance(spec, AppSpec)
    assert (spec.name, spec.vsn, lib_dir) == ("counter", "2.0.0", root / "lib" / "counter-2.0.0")
    with pytest.raises(dataclasses.FrozenInstanceError):
        release.vsn = "3"  # type: ignore[misc]
    with pytest.raises(TypeError):
        release.apps["x"] = release.apps["counter"]  # type: ignore[index]

    with tarfile.open(built.path) as tar:
        expected = {m.name: m for m in tar.getmembers()}
    on_disk = snapshot(root)
    assert set(on_disk) == set(expected)
    for name, (kind, mode, digest) in on_disk.items():
        if expected[name].isdir():
            assert (kind, mode) == ("dir", 0o755), name
        else:
            content = tar_member(built.path, name)
            assert (kind, mode, digest) == ("file", 0o644, hashlib.sha256(content).hexdigest())
    assert not any(p.name.startswith(STAGING_PREFIX) for p in root.iterdir())


def tar_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


def test_archive_modes_are_not_kept(tmp_path: Path, built: Built, root: Path) -> None:
    members = [
        Member(_with_mode(m.info, 0o6777 if m.info.isreg() else 0o777), m.data)
        for m in built.members
    ]
    package = write_package(tmp_path / "incoming", gzip.compress(tar_bytes(members)))
    unpack_package(package, root, limits=LIMITS, known_vsns=("1.0.0",))
    for kind, mode, _ in snapshot(root).values():
        assert mode == (0o755 if kind == "dir" else 0o644)


def _with_mode(info: tarfile.TarInfo, mode: int) -> tarfile.TarInfo:
    changed = copy.copy(info)
    changed.mode = mode
    return changed


def test_an_explicit_checksum_stands_in_for_the_file(
    tmp_path: Path, built: Built, root: Path, incoming: Path
) -> None:
    package = write_package(incoming, built.packages["2.0.0"])
    package.with_name(PACKAGE + ".sha256").unlink()
    digest = hashlib.sha256(built.packages["2.0.0"]).hexdigest()
    release = unpack_package(package, root, expected_sha256=digest.upper())
    assert release.vsn == "2.0.0"
    with pytest.raises(ValueError, match="64 hex digits"):
        unpack_package(package, root, expected_sha256="abc")


def test_an_identical_application_directory_in_place_is_shared(
    tmp_path: Path, built: Built, root: Path, incoming: Path
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    unpack_package(write_package(incoming, built.packages["2.0.0"]), scratch)
    shutil.copytree(scratch / "lib" / "stats-1.0.0", root / "lib" / "stats-1.0.0")
    pycache = root / "lib" / "stats-1.0.0" / "stats" / "__pycache__"
    pycache.mkdir()  # written by a run of the sources: not content
    (pycache / "server.cpython-311.pyc").write_bytes(b"\0")
    inode = (root / "lib" / "stats-1.0.0").stat().st_ino
    release = unpack_package(incoming / PACKAGE, root, known_vsns=("1.0.0",))
    assert release.apps["stats"][1] == root / "lib" / "stats-1.0.0"
    assert (root / "lib" / "stats-1.0.0").stat().st_ino == inode, "kept, not replaced"
    assert (pycache / "server.cpython-311.pyc").is_file()
    assert (root / "lib" / "counter-2.0.0" / "app.toml").is_file()


# -- the checksum and the file name ---------------------------------------------------


def test_a_missing_checksum_file_is_refused(
    tmp_path: Path, built: Built, root: Path, incoming: Path
) -> None:
    package = write_package(incoming, built.packages["2.0.0"])
    package.with_name(PACKAGE + ".sha256").unlink()
    error = refused(tmp_path, package, root)
    assert error.member is None
    assert "no checksum file" in error.reason
    assert "copy the .sha256 file" in str(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "is not one line", id="empty"),
        pytest.param("abc  demo-2.0.0.tar.gz\n", "is not one line", id="short-hex"),
        pytest.param("{digest}\n", "is not one line", id="no-file-name"),
        pytest.param("{digest}  other-2.0.0.tar.gz\n", "is not one line", id="other-file-name"),
        pytest.param("{digest}  demo-2.0.0.tar.gz\n{digest}  x\n", "one line", id="two-lines"),
        pytest.param("{wrong}  demo-2.0.0.tar.gz\n", "sha256 is", id="mismatch"),
    ],
)
def test_a_bad_checksum_file_is_refused(
    tmp_path: Path, built: Built, root: Path, incoming: Path, text: str, expected: str
) -> None:
    package = write_package(incoming, built.packages["2.0.0"])
    digest = hashlib.sha256(built.packages["2.0.0"]).hexdigest()
    wrong = hashlib.sha256(b"other").hexdigest()
    package.with_name(PACKAGE + ".sha256").write_text(text.format(digest=digest, wrong=wrong))
    error = refused(tmp_path, package, root)
    assert expected in error.reason
    assert error.member is None


def test_a_wrong_explicit_checksum_is_refused(
    tmp_path: Path, built: Built, root: Path, incoming: Path
) -> None:
    package = write_package(incoming, built.packages["2.0.0"])
    error = refused(tmp_path, package, root, expected_sha256="0" * 64)
    assert "the caller says" in error.reason
    assert "copy it again" in error.reason


@pytest.mark.parametrize(
    "name", ["demo.tar.gz", "demo-2.0.0.tgz", "Demo-2.0.0.tar.gz", "-2.0.0.tar.gz"]
)
def test_a_package_not_named_name_vsn_tar_gz_is_refused(
    tmp_path: Path, built: Built, root: Path, incoming: Path, name: str
) -> None:
    package = write_package(incoming, built.packages["2.0.0"], name)
    error = refused(tmp_path, package, root)
    assert "<name>-<vsn>.tar.gz" in error.reason


# -- the stream ------------------------------------------------------------------------


def _truncated_gzip(built: Built) -> bytes:
    data = built.packages["2.0.0"]
    return data[: len(data) // 2]


def _corrupt_gzip(built: Built) -> bytes:
    data = bytearray(built.packages["2.0.0"])
    for index in range(len(data) // 2, len(data) // 2 + 64):
        data[index] ^= 0x5A
    return bytes(data)


def _not_gzip(built: Built) -> bytes:
    return tar_bytes(built.members)


def _tar_without_end_marker(built: Built) -> bytes:
    data = tar_bytes(built.members)
    body_end = _end_of_members(data)
    return gzip.compress(data[:body_end])


def _garbage_after_the_members(built: Built) -> bytes:
    data = tar_bytes(built.members)
    body_end = _end_of_members(data)
    return gzip.compress(data[:body_end] + b"\xff" * 512 + b"\0" * 10240)


def _end_of_members(data: bytes) -> int:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.getmembers()
        return tar.offset


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_truncated_gzip, id="truncated-gzip"),
        pytest.param(_corrupt_gzip, id="corrupt-gzip"),
        pytest.param(_not_gzip, id="plain-tar-not-gzip"),
        pytest.param(_tar_without_end_marker, id="tar-without-end-marker"),
        pytest.param(_garbage_after_the_members, id="garbage-after-the-last-member"),
        pytest.param(lambda built: gzip.compress(b""), id="empty-stream"),
    ],
)
def test_a_truncated_or_corrupt_stream_is_refused(
    tmp_path: Path, built: Built, root: Path, incoming: Path, make: Callable[[Built], bytes]
) -> None:
    package = write_package(incoming, make(built))
    error = refused(tmp_path, package, root)
    assert "truncated or corrupt" in error.reason
    assert "copy the package again" in error.reason


def test_an_empty_archive_is_refused(tmp_path: Path, root: Path, incoming: Path) -> None:
    package = write_package(incoming, gzip.compress(tar_bytes([])))
    error = refused(tmp_path, package, root)
    assert "empty" in error.reason


# -- hostile members -------------------------------------------------------------------


def _sparse(name: str, real_size: int) -> Member:
    """A GNU sparse member (PAX 0.1 form): no data stored, ``real_size`` bytes of holes."""
    info = tarfile.TarInfo(name)
    info.pax_headers = {
        "GNU.sparse.map": f"0,0,{real_size},0",
        "GNU.sparse.realsize": str(real_size),
        "GNU.sparse.name": name,
    }
    return Member(info)


def _nul_name() -> Member:
    info = tarfile.TarInfo("lib/counter-2.0.0/evilxpy")
    info.pax_headers = {"path": "lib/counter-2.0.0/evil\x00.py"}
    return Member(info)


HOSTILE = [
    pytest.param(file("/etc/evil", b"x"), "/etc/evil", "an absolute path", id="absolute-path"),
    pytest.param(
        file("lib/counter-2.0.0/../../../escape", b"x"),
        "lib/counter-2.0.0/../../../escape",
        "'..' component",
        id="dotdot-traversal",
    ),
    pytest.param(file("../escape", b"x"), "../escape", "'..' component", id="dotdot-at-the-top"),
    pytest.param(
        file("lib\\counter-2.0.0\\evil.py", b"x"),
        "lib\\counter-2.0.0\\evil.py",
        "backslash",
        id="backslash",
    ),
    pytest.param(_nul_name(), "lib/counter-2.0.0/evil\x00.py", "NUL", id="nul-in-name"),
    pytest.param(file("C:/evil", b"x"), "C:/evil", "drive letter", id="drive-letter"),
    pytest.param(
        file("lib/counter-2.0.0/./x.py", b"x"),
        "lib/counter-2.0.0/./x.py",
        "'.'",
        id="dot-component",
    ),
    pytest.param(directory("/"), "", "empty name", id="root-directory"),
    pytest.param(
        special("lib/counter-2.0.0/evil", tarfile.SYMTYPE, "../../../../etc/passwd"),
        "lib/counter-2.0.0/evil",
        "a symbolic link",
        id="symlink-pointing-out",
    ),
    pytest.param(
        special("lib/counter-2.0.0/inner", tarfile.SYMTYPE, "app.toml"),
        "lib/counter-2.0.0/inner",
        "a symbolic link",
        id="symlink-pointing-in",
    ),
    pytest.param(
        special("lib/counter-2.0.0/evil", tarfile.LNKTYPE, "/etc/passwd"),
        "lib/counter-2.0.0/evil",
        "a hard link",
        id="hardlink-pointing-out",
    ),
    pytest.param(
        special("lib/counter-2.0.0/tty", tarfile.CHRTYPE),
        "lib/counter-2.0.0/tty",
        "a character device",
        id="character-device",
    ),
    pytest.param(
        special("lib/counter-2.0.0/disk", tarfile.BLKTYPE),
        "lib/counter-2.0.0/disk",
        "a block device",
        id="block-device",
    ),
    pytest.param(
        special("lib/counter-2.0.0/pipe", tarfile.FIFOTYPE),
        "lib/counter-2.0.0/pipe",
        "a FIFO",
        id="fifo",
    ),
    pytest.param(
        _sparse("lib/counter-2.0.0/holes.bin", 200 << 20),
        "lib/counter-2.0.0/holes.bin",
        "a sparse file",
        id="sparse-200MB",
    ),
    pytest.param(
        file("lib/counter-2.0.0/app.toml", b'name = "counter"\nvsn = "2.0.0"\n'),
        "lib/counter-2.0.0/app.toml",
        "appears twice",
        id="duplicate-file",
    ),
    pytest.param(
        directory("lib/counter-2.0.0"), "lib/counter-2.0.0", "appears twice", id="duplicate-dir"
    ),
    pytest.param(
        directory("lib/counter-2.0.0/app.toml"),
        "lib/counter-2.0.0/app.toml",
        "appears twice",
        id="file-then-dir-of-the-same-name",
    ),
    pytest.param(
        (file("lib/counter-2.0.0/new/a.py", b"x"), file("lib/counter-2.0.0/new", b"x")),
        "lib/counter-2.0.0/new",
        "both a directory and a file",
        id="file-over-an-implied-directory",
    ),
    pytest.param(
        file("lib/counter-2.0.0/counter", b"x"),
        "lib/counter-2.0.0/counter",
        "appears twice",
        id="file-over-a-directory",
    ),
    pytest.param(
        file("lib/counter-2.0.0/app.toml/inside", b"x"),
        "lib/counter-2.0.0/app.toml/inside",
        "is a file",
        id="file-inside-a-file",
    ),
    pytest.param(file("bin/start", b"#!/bin/sh\n"), "bin/start", "unexpected top-level", id="bin"),
    pytest.param(file("setup.py", b"x"), "setup.py", "unexpected top-level", id="top-file"),
    pytest.param(
        file("releases/RELEASES", b"x"),
        "releases/RELEASES",
        "may hold only releases/2.0.0/",
        id="releases-file",
    ),
    pytest.param(
        file("releases/1.0.0/release.toml", b"x"),
        "releases/1.0.0/release.toml",
        "may hold only releases/2.0.0/",
        id="second-release-dir",
    ),
    pytest.param(
        file("lib/README", b"x"), "lib/README", "only <app>-<vsn> directories", id="lib-file"
    ),
    pytest.param(
        directory("lib/Counter-2.0.0"),
        "lib/Counter-2.0.0",
        "only <app>-<vsn> directories",
        id="lib-dir-bad-name",
    ),
    pytest.param(
        file("lib/extra-1.0.0", b"x"), "lib/extra-1.0.0", "must be a directory", id="lib-app-file"
    ),
]


@pytest.mark.parametrize(("hostile", "member", "reason"), HOSTILE)
def test_a_hostile_member_is_refused_before_anything_is_written(
    tmp_path: Path,
    built: Built,
    root: Path,
    incoming: Path,
    hostile: Member | tuple[Member, ...],
    member: str,
    reason: str,
) -> None:
    extra = hostile if isinstance(hostile, tuple) else (hostile,)
    package = write_package(incoming, gzip.compress(tar_bytes([*built.members, *extra])))
    error = refused(tmp_path, package, root)
    assert type(error) is UnpackError
    assert isinstance(error, ReleaseError)
    assert error.member == member
    assert reason in error.reason
    assert repr(member) in str(error)
    assert str(package) in str(error)
    assert "server build" in str(error), "the message says what to do"


def test_the_hostile_member_first_is_refused_too(
    tmp_path: Path, built: Built, root: Path, incoming: Path
) -> None:
    evil = special("lib/counter-2.0.0", tarfile.SYMTYPE, "/tmp")
    package = write_package(incoming, gzip.compress(tar_bytes([evil, *built.members])))
    error = refused(tmp_path, package, root)
    assert (error.member, "a symbolic link" in error.reason) == ("lib/counter-2.0.0", True)


# -- limits ----------------------------------------------------------------------------


def _pax_bomb() -> Member:
    # One header whose PAX record is 8 MB: tarfile would read it whole into memory.
    info = tarfile.TarInfo("lib/counter-2.0.0/notes.txt")
    info.pax_headers = {"comment": "z" * (8 << 20)}
    return Member(info)


LIMIT_CASES = [
    pytest.param(
        [file("lib/counter-2.0.0/zeros.bin", bytes(32 << 20))],
        UnpackLimits(max_member_size=1 << 30, max_total_size=4 << 20),
        "lib/counter-2.0.0/zeros.bin",
        "more than 4194304 bytes",
        id="bomb-32MB-of-zeros",
    ),
    pytest.param(
        [file("lib/counter-2.0.0/zeros.bin", bytes(2 << 20))],
        LIMITS,
        "lib/counter-2.0.0/zeros.bin",
        "over the 262144 bytes a member may hold",
        id="member-over-the-limit",
    ),
    pytest.param(
        [file(f"lib/counter-2.0.0/part{i}.bin", bytes(150 << 10)) for i in range(8)],
        UnpackLimits(max_member_size=1 << 20, max_total_size=1 << 20),
        "lib/counter-2.0.0/part",
        "add up to more than",
        id="total-over-the-limit",
    ),
    pytest.param(
        [_pax_bomb()],
        LIMITS,
        None,
        "decompresses to more than 1048576 bytes",
        id="bomb-in-a-pax-header",
    ),
    pytest.param(
        [file(f"lib/counter-2.0.0/m{i}.py", b"") for i in range(100)],
        LIMITS,
        "lib/counter-2.0.0/m",
        "more than 100 members",
        id="too-many-members",
    ),
]


@pytest.mark.parametrize(("extra", "limits", "member", "reason"), LIMIT_CASES)
def test_a_package_over_a_limit_is_refused_as_it_is_read(
    tmp_path: Path,
    built: Built,
    root: Path,
    incoming: Path,
    extra: Members,
    limits: UnpackLimits,
    member: str | None,
    reason: str,
) -> None:
    package = write_package(incoming, gzip.compress(tar_bytes([*built.members, *extra]), 1))
    error = refused(tmp_path, package, root, limits=limits)
    assert reason in error.reason
    assert "raise UnpackLimits." in error.reason
    if member is None:
        assert error.member is None
    else:
        assert error.member is not None
        assert error.member.startswith(member)


def test_a_bomb_after_the_end_of_the_archive_is_stopped_by_counting(
    tmp_path: Path, built: Built, root: Path, incoming: Path
) -> None:
    # Every header is honest; the gzip stream goes on with 32 MB of zeros after the tar's
    # end. Only counting the bytes as they are decompressed stops it.
    data = gzip.compress(tar_bytes(built.members) + bytes(32 << 20), 1)
    package = write_package(incoming, data)
    error = refused(tmp_path, package, root, limits=UnpackLimits(max_total_size=4 << 20))
    assert "decompresses to more than 4194304 bytes" in error.reason
    assert error.member is None


def test_a_package_file_larger_than_the_limit_is_refused_unread(
    tmp_path: Path, built: Built, root: Path, incoming: Path
) -> None:
    package = write_package(incoming, built.packages["2.0.0"])
    error = refused(tmp_path, package, root, limits=UnpackLimits(max_total_size=1000))
    assert "over 1000 bytes" in error.reason


def test_a_member_1500_levels_deep_is_refused_before_anything_is_written(
    tmp_path: Path, built: Built, root: Path, incoming: Path
) -> None:
    # within every other limit: one small file, a name of ~3 KB in a PAX header
    deep = "lib/counter-2.0.0/" + "d/" * 1_500 + "f.py"
    package = write_package(incoming, gzip.compress(tar_bytes([*built.members, file(deep, b"")])))
    assert UnpackLimits().max_depth == 64
    error = refused(tmp_path, package, root, limits=UnpackLimits())
    assert error.member == deep
    assert "its path has 1503 components, over the 64" in error.reason
    assert "raise UnpackLimits.max_depth" in error.reason


@pytest.mark.parametrize(("depth", "accepted"), [(5, True), (6, False)], ids=["at", "over"])
def test_the_depth_limit_counts_the_components_of_a_path(
    tmp_path: Path, built: Built, root: Path, incoming: Path, depth: int, accepted: bool
) -> None:
    name = "/".join(["lib", "counter-2.0.0", *["d"] * (depth - 3), "f.py"])
    package = write_package(incoming, gzip.compress(tar_bytes([*built.members, file(name, b"")])))
    limits = dataclasses.replace(LIMITS, max_depth=5)  # the demo's deepest member has 4
    if accepted:
        unpack_package(package, root, limits=limits, known_vsns=("1.0.0",))
        assert (root / name).is_file()
    else:
        assert refused(tmp_path, package, root, limits=limits).member == name


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_members must be positive"):
        UnpackLimits(max_members=0)
    with pytest.raises(ValueError, match="max_depth must be positive"):
        UnpackLimits(max_depth=0)


# -- specs that disagree ---------------------------------------------------------------


def _release_toml(text: str) -> Callable[[Members], Members]:
    return lambda members: replace(members, "releases/2.0.0/release.toml", lambda _: text.encode())


def _add(*extra: Member) -> Callable[[Members], Members]:
    return lambda members: [*members, *extra]


def _drop(name: str) -> Callable[[Members], Members]:
    return lambda members: [m for m in members if m.info.name != name]


def _edit(name: str, old: bytes, new: bytes) -> Callable[[Members], Members]:
    return lambda members: replace(members, name, lambda data: data.replace(old, new))


APPS = '[[applications]]\nname = "stats"\nvsn = "1.0.0"\n'
COUNTER = '[[applications]]\nname = "counter"\nvsn = "{vsn}"\n'

SPEC_CASES = [
    pytest.param(
        _release_toml(f'name = "demo"\nvsn = "2.0.1"\n{APPS}{COUNTER.format(vsn="2.0.0")}'),
        "releases/2.0.0/release.toml",
        "describes release demo 2.0.1, but the package file is named for demo 2.0.0",
        id="release-spec-names-another-vsn",
    ),
    pytest.param(
        _release_toml(f'name = "other"\nvsn = "2.0.0"\n{APPS}{COUNTER.format(vsn="2.0.0")}'),
        "releases/2.0.0/release.toml",
        "describes release other 2.0.0",
        id="release-spec-names-another-release",
    ),
    pytest.param(
        _release_toml(f'name = "demo"\nvsn = "2.0.0"\n{APPS}{COUNTER.format(vsn="3.0.0")}'),
        "lib/counter-3.0.0/app.toml",
        "lists application counter 3.0.0, but the package has no lib/counter-3.0.0/app.toml",
        id="application-version-not-in-the-package",
    ),
    pytest.param(
        _add(
            directory("lib/extra-1.0.0"),
            file("lib/extra-1.0.0/app.toml", b'name = "extra"\nvsn = "1.0.0"\n'),
        ),
        "lib/extra-1.0.0",
        "does not list this application version",
        id="extra-lib-dir-not-in-the-spec",
    ),
    pytest.param(
        _edit("lib/counter-2.0.0/app.toml", b'vsn = "2.0.0"', b'vsn = "1.0.0"'),
        "lib/counter-2.0.0/app.toml",
        "describes application counter 1.0.0, not counter 2.0.0",
        id="app-spec-of-another-version",
    ),
    pytest.param(
        _drop("lib/stats-1.0.0/app.toml"),
        "lib/stats-1.0.0/app.toml",
        "the package has no lib/stats-1.0.0/app.toml",
        id="app-spec-missing",
    ),
    pytest.param(
        _drop("releases/2.0.0/release.toml"),
        None,
        "no releases/2.0.0/release.toml",
        id="release-spec-missing",
    ),
    pytest.param(
        _edit("releases/2.0.0/relup.json", b'"vsn": "2.0.0",\n  "up"', b'"vsn": "2.0.1",\n  "up"'),
        "releases/2.0.0/relup.json",
        "the relup of vsn 2.0.1, not 2.0.0",
        id="relup-of-another-vsn",
    ),
]


@pytest.mark.parametrize(("mutate", "member", "reason"), SPEC_CASES)
def test_specs_that_disagree_are_refused(
    tmp_path: Path,
    built: Built,
    root: Path,
    incoming: Path,
    mutate: Callable[[Members], Members],
    member: str | None,
    reason: str,
) -> None:
    package = write_package(incoming, gzip.compress(tar_bytes(mutate(built.members))))
    error = refused(tmp_path, package, root)
    assert error.member == member
    assert reason in error.reason


@pytest.mark.parametrize(
    ("name", "text", "field"),
    [
        pytest.param("releases/2.0.0/release.toml", b"name = ", "not valid TOML", id="release"),
        pytest.param(
            "releases/2.0.0/release.toml",
            b'name = "demo"\nvsn = "2.0.0"\napplications = []\n',
            "applications",
            id="release-no-apps",
        ),
        pytest.param("lib/stats-1.0.0/app.toml", b"\xff\xfe", "not UTF-8", id="app-not-utf8"),
        pytest.param("lib/stats-1.0.0/app.toml", b'name = "stats"\n', "vsn", id="app-no-vsn"),
        pytest.param("releases/2.0.0/relup.json", b"{", "not valid JSON", id="relup-json"),
        pytest.param("releases/2.0.0/relup.json", b'{"vsn": 2}', "vsn", id="relup-model"),
    ],
)
def test_a_malformed_spec_in_the_package_is_a_spec_error(
    tmp_path: Path, built: Built, root: Path, incoming: Path, name: str, text: bytes, field: str
) -> None:
    members = replace(built.members, name, lambda _: text)
    package = write_package(incoming, gzip.compress(tar_bytes(members)))
    before = snapshot(tmp_path)
    with pytest.raises(SpecError) as info:
        unpack_package(package, root, known_vsns=("1.0.0",))
    assert snapshot(tmp_path) == before
    assert f"{PACKAGE}:{name}" in info.value.path
    assert field in str(info.value)


# -- what is already on the node -------------------------------------------------------


def test_a_known_vsn_is_refused(tmp_path: Path, built: Built, root: Path, incoming: Path) -> None:
    package = write_package(incoming, built.packages["2.0.0"])
    error = refused(tmp_path, package, root, known_vsns=("1.0.0", "2.0.0"))
    assert "release vsn 2.0.0 is already on this node" in error.reason


def _copy_of_unpacked(tmp_path: Path, built: Built, rel: str) -> Path:
    scratch = tmp_path / "scratch"
    if not scratch.exists():
        scratch.mkdir()
        package = write_package(tmp_path / "scratch-in", built.packages["2.0.0"])
        unpack_package(package, scratch)
    return scratch / rel


@pytest.mark.parametrize(
    ("rel", "change"),
    [
        pytest.param("lib/stats-1.0.0", "edit", id="app-dir-edited-file"),
        pytest.param("lib/stats-1.0.0", "extra", id="app-dir-extra-file"),
        pytest.param("lib/stats-1.0.0", "missing", id="app-dir-missing-file"),
        pytest.param("lib/stats-1.0.0", "symlink-inside", id="app-dir-holds-a-symlink"),
        pytest.param("releases/2.0.0", "edit", id="release-dir-edited-file"),
    ],
)
def test_a_directory_in_place_with_other_content_is_refused(
    tmp_path: Path, built: Built, root: Path, incoming: Path, rel: str, change: str
) -> None:
    target = root / rel
    shutil.copytree(_copy_of_unpacked(tmp_path, built, rel), target)
    some_file = sorted(p for p in target.rglob("*") if p.is_file())[0]
    if change == "edit":
        some_file.write_bytes(some_file.read_bytes() + b"# changed\n")
    elif change == "extra":
        (target / "extra.py").write_text("")
    elif change == "missing":
        some_file.unlink()
    else:
        (target / "link").symlink_to(some_file)
    package = write_package(incoming, built.packages["2.0.0"])
    error = refused(tmp_path, package, root)
    assert error.member == rel
    assert "already there" in error.reason
    assert "new vsn" in error.reason


def test_a_symlink_in_place_of_an_app_dir_is_refused_and_not_followed(
    tmp_path: Path, built: Built, root: Path, incoming: Path
) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(_copy_of_unpacked(tmp_path, built, "lib/stats-1.0.0"), outside)
    (root / "lib" / "stats-1.0.0").symlink_to(outside, target_is_directory=True)
    package = write_package(incoming, built.packages["2.0.0"])
    error = refused(tmp_path, package, root)
    assert error.member == "lib/stats-1.0.0"
    assert "symbolic link" in error.reason


@pytest.mark.parametrize("top", ["lib", "releases"])
def test_a_symlinked_lib_or_releases_dir_is_refused(
    tmp_path: Path, built: Built, incoming: Path, top: str
) -> None:
    root = tmp_path / "node"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / top).symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    package = write_package(incoming, built.packages["2.0.0"])
    error = refused(tmp_path, package, root, known_vsns=())
    assert f"{root / top} is a symbolic link" in error.reason


def test_a_missing_root_is_refused(tmp_path: Path, built: Built, incoming: Path) -> None:
    package = write_package(incoming, built.packages["2.0.0"])
    error = refused(tmp_path, package, tmp_path / "nowhere", known_vsns=())
    assert "is not a directory; create it first" in error.reason


# -- packages that are not regular files ------------------------------------------------


def _listing(top: Path) -> list[str]:
    """Every path under ``top`` with its kind (read nothing: a FIFO would block)."""
    return sorted(
        f"{p.relative_to(top).as_posix()} {stat.S_IFMT(p.lstat().st_mode):o}"
        for p in top.rglob("*")
    )


@pytest.mark.parametrize(
    ("special_one", "kind"),
    [
        pytest.param("package", "a FIFO", id="package-fifo"),
        pytest.param("checksum", "a FIFO", id="checksum-fifo"),
        pytest.param("package-dir", "a directory", id="package-directory"),
    ],
)
def test_a_package_or_checksum_that_is_not_a_regular_file_is_refused_unopened(
    tmp_path: Path, built: Built, root: Path, incoming: Path, special_one: str, kind: str
) -> None:
    package = write_package(incoming, built.packages["2.0.0"])
    checksum = package.with_name(PACKAGE + ".sha256")
    if special_one == "checksum":
        checksum.unlink()
        os.mkfifo(checksum)  # no writer: a plain open() would wait for one for ever
        culprit, what = checksum, "the checksum file"
    else:
        package.unlink()
        if special_one == "package":
            os.mkfifo(package)
        else:
            package.mkdir()
        culprit, what = package, "the package"
    before, listed = snapshot(root), _listing(tmp_path)
    with pytest.raises(UnpackError) as info:
        unpack_package(package, root, known_vsns=("1.0.0",))
    assert info.value.reason == (
        f"{what} {culprit} is {kind}, not a regular file: copy the file itself and retry"
    )
    assert snapshot(root) == before, "nothing changed under the root"
    assert _listing(tmp_path) == listed, "nothing written anywhere"


def test_an_unpack_past_its_timeout_stops_with_nothing_changed(
    tmp_path: Path, built: Built, root: Path, incoming: Path
) -> None:
    package = write_package(incoming, built.packages["2.0.0"])
    before = snapshot(tmp_path)
    with pytest.raises(UnpackError) as info:  # past the deadline at the first read
        unpack_package(package, root, known_vsns=("1.0.0",), timeout=1e-9)
    assert "the unpack took longer than its 1e-09 s" in info.value.reason
    assert "Nothing was changed" in info.value.reason
    assert snapshot(tmp_path) == before


# -- leftovers: directories in place that no release uses -----------------------------

IN_USE_BY_1_0_0 = ("releases/1.0.0", "lib/counter-1.0.0")


def _leave(tmp_path: Path, built: Built, root: Path, rel: str, change: str) -> Path:
    """Put a leftover of ``rel`` in place: half deleted, edited, deep or a link."""
    target = root / rel
    if change == "link":
        target.symlink_to(tmp_path, target_is_directory=True)
        return target
    shutil.copytree(_copy_of_unpacked(tmp_path, built, rel), target)
    files = sorted(p for p in target.rglob("*") if p.is_file())
    if change == "half-deleted":
        for path in files[: len(files) // 2 + 1]:
            path.unlink()
    elif change == "edited":
        files[0].write_bytes(b"# not the package's\n")
    else:
        deep_tree(target / "cache", 1_500)
    return target


@pytest.mark.parametrize("change", ["half-deleted", "edited", "deep", "link"])
@pytest.mark.parametrize("rel", ["releases/2.0.0", "lib/stats-1.0.0"])
def test_a_leftover_no_release_uses_is_replaced_with_a_warning(
    tmp_path: Path,
    built: Built,
    root: Path,
    incoming: Path,
    caplog: pytest.LogCaptureFixture,
    rel: str,
    change: str,
) -> None:
    target = _leave(tmp_path, built, root, rel, change)
    package = write_package(incoming, built.packages["2.0.0"])
    with (
        deleted_at_the_end(target / "cache"),  # the deep tree, should the unpack fail
        caplog.at_level(logging.WARNING, "server.release.unpack"),
    ):
        unpack_package(package, root, known_vsns=("1.0.0",), in_use=IN_USE_BY_1_0_0)
    assert snapshot(target) == snapshot(_copy_of_unpacked(tmp_path, built, rel)), "replaced"
    problem = (
        "is a symbolic link or not a directory"
        if change == "link"
        else "its content differs from the package's"
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if "leftover" in w] == [
        f"{target} is a leftover no release uses, and {problem}: the unpack replaces it"
    ]
    assert not any(p.name.startswith(STAGING_PREFIX) for p in root.iterdir()), "deleted"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "incoming",
        "node",
        "scratch",
        "scratch-in",
    ], "nothing else, and a link's target untouched"


def test_a_directory_in_use_that_differs_is_still_refused(
    tmp_path: Path, built: Built, root: Path, incoming: Path
) -> None:
    _leave(tmp_path, built, root, "lib/stats-1.0.0", "edited")
    package = write_package(incoming, built.packages["2.0.0"])
    before = snapshot(tmp_path)
    with pytest.raises(UnpackError) as info:
        unpack_package(
            package, root, known_vsns=("1.0.0",), in_use=(*IN_USE_BY_1_0_0, "lib/stats-1.0.0")
        )
    assert snapshot(tmp_path) == before
    assert info.value.member == "lib/stats-1.0.0"
    assert "already there" in info.value.reason


def test_a_replaced_leftover_is_put_back_when_a_move_fails(
    tmp_path: Path, built: Built, root: Path, incoming: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _leave(tmp_path, built, root, "releases/2.0.0", "half-deleted")
    package = write_package(incoming, built.packages["2.0.0"])
    before = snapshot(tmp_path)
    real_replace = os.replace
    calls: list[str] = []

    def replace_failing_at_the_last(src: str | Path, dst: str | Path) -> None:
        calls.append(str(dst))
        if calls.count(str(root / "releases" / "2.0.0")) == 1:  # the new one, leftover aside
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_failing_at_the_last)
    with pytest.raises(UnpackError, match="No space left on device"):
        unpack_package(package, root, known_vsns=("1.0.0",), in_use=IN_USE_BY_1_0_0)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before, "the leftover back in place, nothing else changed"


# -- crashes and retries ---------------------------------------------------------------


def test_a_failing_move_is_undone_and_a_retry_succeeds(
    tmp_path: Path, built: Built, root: Path, incoming: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = write_package(incoming, built.packages["2.0.0"])
    real_replace = os.replace
    calls: list[str] = []

    def replace_failing_once(src: str | Path, dst: str | Path) -> None:
        calls.append(str(dst))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_failing_once)
    error = refused(tmp_path, package, root)
    assert "No space left on device" in error.reason
    assert "retry" in error.reason
    assert len(calls) == 3, "two moves, then the first moved back"
    monkeypatch.undo()
    release = unpack_package(package, root, known_vsns=("1.0.0",))
    assert release.release_dir.is_dir()


@pytest.mark.parametrize(
    "left",
    [
        pytest.param("staging", id="staging-dir"),
        pytest.param("staging-and-one-lib", id="staging-and-a-moved-lib-dir"),
        pytest.param("all-moved", id="crash-after-the-last-move"),
    ],
)
def test_a_retry_after_a_crash_succeeds(
    tmp_path: Path, built: Built, root: Path, incoming: Path, left: str
) -> None:
    staging = root / f"{STAGING_PREFIX}crashed"
    (staging / "lib" / "counter-2.0.0").mkdir(parents=True)
    (staging / "lib" / "counter-2.0.0" / "half.py").write_text("# half written")
    if left != "staging":
        rel = "lib/stats-1.0.0"
        shutil.copytree(_copy_of_unpacked(tmp_path, built, rel), root / rel)
    if left == "all-moved":
        for rel in ("lib/counter-2.0.0", "releases/2.0.0"):
            shutil.copytree(_copy_of_unpacked(tmp_path, built, rel), root / rel)
    package = write_package(incoming, built.packages["2.0.0"])
    release = unpack_package(package, root, known_vsns=("1.0.0",))
    assert not staging.exists()
    assert not any(p.name.startswith(STAGING_PREFIX) for p in root.iterdir())
    assert snapshot(root / "releases" / "2.0.0") == snapshot(
        _copy_of_unpacked(tmp_path, built, "releases/2.0.0")
    )
    assert snapshot(root / "lib" / "counter-2.0.0") == snapshot(
        _copy_of_unpacked(tmp_path, built, "lib/counter-2.0.0")
    )
    assert isinstance(release.spec, ReleaseSpec)


def test_a_package_changed_between_the_passes_is_refused_while_staged(
    tmp_path: Path, built: Built, root: Path, incoming: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The checking pass reads the good package; then (as staging begins) someone swaps in a
    # hostile one. The writing pass checks every member again, and the checksum again.
    package = write_package(incoming, built.packages["2.0.0"])
    evil = special("lib/counter-2.0.0/evil", tarfile.SYMTYPE, "/etc/passwd")
    swapped = gzip.compress(tar_bytes([evil, *built.members]))
    real_mkdtemp = tempfile.mkdtemp

    def swap_then_mkdtemp(prefix: str, dir: Path) -> str:  # noqa: A002 - mkdtemp's name
        package.write_bytes(swapped)
        return real_mkdtemp(prefix=prefix, dir=dir)

    monkeypatch.setattr(tempfile, "mkdtemp", swap_then_mkdtemp)
    before = snapshot(root)
    with pytest.raises(UnpackError) as info:
        unpack_package(package, root, known_vsns=("1.0.0",))
    assert snapshot(root) == before, "staging removed, nothing moved"
    assert info.value.member == "lib/counter-2.0.0/evil"
    assert "a symbolic link" in info.value.reason


def test_clean_staging_removes_leftovers_without_following_links(tmp_path: Path) -> None:
    root = tmp_path / "node"
    (root / f"{STAGING_PREFIX}a" / "lib").mkdir(parents=True)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    (root / f"{STAGING_PREFIX}b").symlink_to(precious, target_is_directory=True)
    (root / "lib").mkdir()
    removed = clean_staging(root)
    assert sorted(p.name for p in removed) == [f"{STAGING_PREFIX}a", f"{STAGING_PREFIX}b"]
    assert sorted(p.name for p in root.iterdir()) == ["lib"]
    assert (precious / "keep.txt").read_text() == "keep"
    assert clean_staging(tmp_path / "missing") == []
