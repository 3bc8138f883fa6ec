"""A release package copied to another node over the distribution, in chunks.

No shared file system is assumed: the driving node reads ``<name>-<vsn>.tar.gz``, its
``.sha256`` and its ``.sig`` (when there is one) and sends them to the node's release agent
in chunks of ``CHUNK`` bytes (each chunk one call, so a big package never makes one huge
message and the connection's ticks keep flowing). The agent writes them under
``<root>/run/incoming/`` and hands the file to its own release handler's ``unpack``,
which verifies the checksum (and the signature, when that node has trusted keys) as for a
package put there by hand. The incoming files are removed afterwards, unpacked or not.

Sender side: ``PackageFiles``. Receiver side: ``write_chunk``, ``write_sidecars``,
``discard``.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

from server.errors import RolloutError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["CHUNK", "INCOMING", "PackageFiles", "discard", "write_chunk", "write_sidecars"]

#: Bytes per chunk sent.
CHUNK: Final = 1024 * 1024
#: Where an agent writes a package it receives, relative to its node's root.
INCOMING: Final = "run/incoming"
_NAME: Final = re.compile(r"[A-Za-z0-9_.+-]+\.tar\.gz")


@final
@dataclass(frozen=True, slots=True)
class PackageFiles:
    """A package on the driving machine: its path, checksum file and optional signature."""

    path: Path
    sha256: bytes
    signature: bytes | None
    size: int

    @classmethod
    def read(cls, path: Path) -> PackageFiles:
        """The package at ``path`` and the files beside it.

        Raises:
            RolloutError: it is not a ``.tar.gz`` file, or its ``.sha256`` is missing.
        """
        if not _NAME.fullmatch(path.name):
            raise RolloutError(f"{path.name} is not a release package (<name>-<vsn>.tar.gz)")
        try:
            size = path.stat().st_size
            sha256 = path.with_name(path.name + ".sha256").read_bytes()
        except FileNotFoundError as exc:
            raise RolloutError(
                f"{exc.filename} does not exist: give the package `server build` wrote, with "
                "its .sha256 beside it"
            ) from None
        signature_path = path.with_name(path.name + ".sig")
        signature = signature_path.read_bytes() if signature_path.exists() else None
        return cls(path, sha256, signature, size)

    def chunks(self) -> Iterator[tuple[int, bytes]]:
        """``(offset, bytes)`` of each chunk, in order (the file is read as it goes)."""
        with self.path.open("rb") as source:
            offset = 0
            while chunk := source.read(CHUNK):
                yield offset, chunk
                offset += len(chunk)
            if offset == 0:
                yield 0, b""


def _incoming(root: Path, name: str) -> Path:
    if not _NAME.fullmatch(name) or name.startswith("."):
        raise RolloutError(f"refusing package file name {name!r}")
    folder = root / INCOMING
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def write_chunk(root: Path, name: str, offset: int, data: bytes) -> int:
    """Append ``data`` at ``offset`` of incoming package ``name`` (0 starts it afresh).

    Returns the file's size after the write.

    Raises:
        RolloutError: the name is not a package's, or ``offset`` is not the file's end.
    """
    target = _incoming(root, name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if offset == 0 else 0)
    fd = os.open(target, flags, 0o600)
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        if end != offset:
            raise RolloutError(f"chunk of {name} at {offset}, but {end} bytes arrived so far")
        os.write(fd, data)
        return end + len(data)
    finally:
        os.close(fd)


def write_sidecars(root: Path, name: str, sha256: bytes, signature: bytes | None) -> Path:
    """Write the ``.sha256`` (and ``.sig``) beside the incoming package; returns its path."""
    target = _incoming(root, name)
    target.with_name(name + ".sha256").write_bytes(sha256)
    signature_path = target.with_name(name + ".sig")
    if signature is not None:
        signature_path.write_bytes(signature)
    else:
        signature_path.unlink(missing_ok=True)
    return target


def discard(root: Path, name: str) -> None:
    """Remove incoming package ``name`` and the files beside it."""
    target = _incoming(root, name)
    for path in (target, target.with_name(name + ".sha256"), target.with_name(name + ".sig")):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
