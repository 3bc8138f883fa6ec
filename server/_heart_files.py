"""The heart's files under a node's root: the root lock, the pid files and ``heart.log``.

How this works:

1. One heart per root. ``run/heart.lock`` is created once and never removed; a heart holds
   an exclusive ``flock`` on it for its whole life and hands the descriptor to its node, so
   the lock is released only when both are gone (a node that outlives a SIGKILLed heart still
   holds its root). The kernel drops the lock of a dead process, so the lock, not a pid
   file, says whether a root is taken: a pid file left by a heart that died is stale by
   definition and is simply overwritten, and a reused pid can never fake a live heart.
2. ``run/heart.pid`` and ``run/node.pid`` are written only while the lock is held, each
   atomically (temporary file, fsync, rename), so a reader sees a whole pid or no file.
   They name the processes for people and for the refusal message; they decide nothing.
3. ``log/heart.log`` gets one ``key=value`` line per event, appended and flushed at once, so
   a crash of the heart loses no line already reported.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
from typing import TYPE_CHECKING, TextIO, final

from server.errors import ServerError

if TYPE_CHECKING:
    import logging
    from pathlib import Path

__all__ = [
    "HeartAlreadyRunning",
    "HeartLog",
    "RootLock",
    "format_event",
    "pid_alive",
    "read_pid_file",
    "remove_file",
    "write_pid_file",
]


class HeartAlreadyRunning(ServerError):
    """A heart (or the node of a heart that died) already holds this root."""

    def __init__(self, root: Path, heart_pid: int | None, node_pid: int | None) -> None:
        self.root = root
        self.heart_pid = heart_pid
        self.node_pid = node_pid
        if heart_pid is not None:
            what = f"a heart already runs on {root} (pid {heart_pid})"
            todo = f"stop it first (kill -TERM {heart_pid}) or use another --root"
        elif node_pid is not None:
            what = f"the node of a heart that is gone still runs on {root} (pid {node_pid})"
            todo = f"stop that node first (kill -TERM {node_pid})"
        else:
            what = f"a heart or its node holds {root / 'run' / 'heart.lock'}"
            todo = "stop it first or use another --root"
        super().__init__(f"{what}; {todo}")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid_file(path: Path) -> int | None:
    """The pid written in ``path``, or None when it is missing or unreadable."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def write_pid_file(path: Path, pid: int) -> None:
    """Write ``pid`` to ``path`` atomically (temporary file, fsync, rename)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w") as file:
        file.write(f"{pid}\n")
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def remove_file(path: Path) -> None:
    """Remove ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@final
class RootLock:
    """The exclusive lock on ``<root>/run/heart.lock`` (invariant 1)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "run" / "heart.lock"
        self._fd: int | None = None

    @property
    def fd(self) -> int:
        """The locked descriptor, for a child process to inherit."""
        if self._fd is None:
            raise RuntimeError("the root lock is not held")
        return self._fd

    def acquire(self) -> None:
        """Take the lock without waiting.

        Raises:
            HeartAlreadyRunning: another heart, or the node of a heart that died, holds it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self._refusal() from None
        self._fd = fd

    def release(self) -> None:
        """Give the lock back (the file stays: removing it would race a new heart)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _refusal(self) -> HeartAlreadyRunning:
        run = self.root / "run"
        heart_pid = read_pid_file(run / "heart.pid")
        node_pid = read_pid_file(run / "node.pid")
        return HeartAlreadyRunning(
            self.root,
            heart_pid if heart_pid is not None and pid_alive(heart_pid) else None,
            node_pid if node_pid is not None and pid_alive(node_pid) else None,
        )


def format_event(event: str, facts: dict[str, object], *, now: datetime.datetime) -> str:
    """One ``heart.log`` line: ``time=... event=... key=value ...``; spaced values quoted."""
    fields = {"time": now.isoformat(timespec="milliseconds"), "event": event, **facts}
    parts = []
    for key, value in fields.items():
        text = str(value)
        if not text or any(c.isspace() or c in '"=' for c in text):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


@final
class HeartLog:
    """Appends events to ``heart.log`` (invariant 3) and reports them to a logger."""

    def __init__(self, path: Path, logger: logging.Logger) -> None:
        self.path = path
        self._logger = logger
        self._file: TextIO | None = None

    def open(self) -> None:
        """Open the file for appending (its directory is created)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, level: int, event: str, message: str, **facts: object) -> None:
        """Record ``event`` with its facts in the file and through the logger."""
        if self._file is not None:
            now = datetime.datetime.now(datetime.UTC)
            self._file.write(format_event(event, facts, now=now) + "\n")
            self._file.flush()
        self._logger.log(level, message, extra={"event": event, **facts})
