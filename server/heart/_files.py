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
4. Modes, set exactly whatever the umask when the heart creates them (what exists already is
   left as it is): ``run/`` 0700, as the control server makes it (it holds the control
   socket by default, and only the node's user may reach that); ``log/`` 0750 and the log
   files 0640 (the node's user writes them, its group may read them).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
from typing import TYPE_CHECKING, Final, TextIO, final

from server.errors import HeartAlreadyRunning

if TYPE_CHECKING:
    import logging
    from pathlib import Path

__all__ = [
    "LOG_DIR_MODE",
    "LOG_FILE_MODE",
    "RUN_DIR_MODE",
    "HeartLog",
    "RootLock",
    "format_event",
    "log_dir",
    "open_log",
    "pid_alive",
    "read_pid_file",
    "remove_file",
    "run_dir",
    "write_pid_file",
]


RUN_DIR_MODE: Final = 0o700
"""The mode of ``<root>/run`` (invariant 4)."""
LOG_DIR_MODE: Final = 0o750
"""The mode of ``<root>/log`` (invariant 4)."""
LOG_FILE_MODE: Final = 0o640
"""The mode of ``heart.log`` and ``node.log`` (invariant 4)."""

_APPEND: Final = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC


def _make_dir(path: Path, mode: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=mode)
    except FileExistsError:
        return path
    os.chmod(path, mode)  # the umask may have taken bits away; set it exactly
    return path


def run_dir(root: Path) -> Path:
    """``<root>/run``, created with mode 0700 when missing.

    Raises:
        OSError: it cannot be created.
    """
    return _make_dir(root / "run", RUN_DIR_MODE)


def log_dir(root: Path) -> Path:
    """``<root>/log``, created with mode 0750 when missing.

    Raises:
        OSError: it cannot be created.
    """
    return _make_dir(root / "log", LOG_DIR_MODE)


def open_log(path: Path) -> int:
    """Open the log file ``path`` for appending; a missing one is created with mode 0640.

    Returns:
        The descriptor (close-on-exec; the caller owns it).

    Raises:
        OSError: the file cannot be opened or created.
    """
    while True:
        try:
            fd = os.open(path, _APPEND | os.O_CREAT | os.O_EXCL, LOG_FILE_MODE)
        except FileExistsError:
            try:
                return os.open(path, _APPEND)
            except FileNotFoundError:
                continue  # removed in between: create it after all
        os.fchmod(fd, LOG_FILE_MODE)  # exactly, whatever the umask
        return fd


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
        run_dir(self.root)
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
        """Open the file for appending (it and its directory are created, invariant 4)."""
        _make_dir(self.path.parent, LOG_DIR_MODE)
        self._file = os.fdopen(open_log(self.path), "a", encoding="utf-8")

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
