"""``server start`` without ``--foreground``: a heart started in the background."""

from __future__ import annotations

import os
import select
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from server.errors import HeartStartFailed
from server.heart._files import RootLock, log_dir, open_log

__all__ = ["DetachedHeart", "start_detached"]


@dataclass(frozen=True, slots=True)
class DetachedHeart:
    """A heart started in the background by ``start_detached``."""

    heart_pid: int
    node_pid: int
    log_dir: Path


def start_detached(root: Path, *, log_level: str = "INFO", timeout: float = 30.0) -> DetachedHeart:
    """Start ``server start --foreground`` for ``root`` in a new session, in the background.

    Its stdout and stderr (the heart's report lines and the node's output) are appended to
    ``<root>/log/node.log``. Returns once the heart has started its first node.

    Raises:
        HeartAlreadyRunning: another heart holds ``root`` (checked before anything starts).
        HeartStartFailed: the heart ended, or said nothing within ``timeout`` seconds,
            before it started a node.
    """
    root = Path(root).resolve()
    probe = RootLock(root)
    probe.acquire()
    probe.release()
    logs = log_dir(root)
    argv = [
        sys.executable,
        "-m",
        "server",
        "--log-level",
        log_level,
        "start",
        "--root",
        str(root),
        "--foreground",
    ]
    read_end, write_end = os.pipe()
    try:
        os.set_inheritable(write_end, True)
        with os.fdopen(open_log(logs / "node.log"), "ab") as output:
            # posix_spawn, not Popen: the heart outlives this process in its own session,
            # and no Popen object is left behind to be reaped or warned about.
            pid = os.posix_spawn(
                sys.executable,
                [*argv, "--ready-fd", str(write_end)],
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, output.fileno(), 1),
                    (os.POSIX_SPAWN_DUP2, output.fileno(), 2),
                ],
                setsid=True,
            )
        os.close(write_end)
        write_end = -1
        line = _read_line(read_end, timeout)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    if not line.endswith("\n"):
        ended, wait_status = os.waitpid(pid, os.WNOHANG)
        why = (
            f"said nothing within {timeout:g} s"
            if ended == 0
            else f"exited with code {os.waitstatus_to_exitcode(wait_status)}"
        )
        raise HeartStartFailed(root, f"{why} before it started the node")
    return DetachedHeart(heart_pid=pid, node_pid=int(line), log_dir=logs)


def _read_line(fd: int, timeout: float) -> str:
    """Read up to a newline from ``fd``: less when it closes or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")
