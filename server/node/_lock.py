"""The node's lock on its root: one node per root, refused before anything boots.

``<root>/run/node.lock`` is locked with ``flock`` for the node's whole life and holds its
pid. The kernel drops the lock when the process ends, however it ends (SIGKILL included),
so a stale file never blocks the next node; the pid in it only names the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import TYPE_CHECKING, final

from server.errors import NodeAlreadyRunning

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["NodeLock"]

_RUN_DIR_MODE = 0o700


@final
class NodeLock:
    """The exclusive lock on ``<root>/run/node.lock``."""

    def __init__(self, root: Path) -> None:
        self.path = root / "run" / "node.lock"
        self.root = root
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting and write this process's pid into it.

        Raises:
            NodeAlreadyRunning: another live node holds it (its pid named when known).
        """
        self.path.parent.mkdir(mode=_RUN_DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise NodeAlreadyRunning(self.root, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Give the lock back (the file stays: removing it would race the next node)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> NodeLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None
