"""``server start`` without ``--foreground``: a heart started in the background."""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from server.errors import HeartStartFailed
from server.heart._files import RootLock, log_dir, open_log
from server.node import NOTIFY_ENV

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["DetachedHeart", "start_detached"]


@dataclass(frozen=True, slots=True)
class DetachedHeart:
    """A heart started in the background by ``start_detached``, its node serving."""

    heart_pid: int
    node_pid: int
    log_dir: Path
    status: str  # what the node said when it was ready ("serving release 1.0.0")


def start_detached(
    root: Path,
    *,
    log_args: Sequence[str] = ("--log-level", "INFO"),
    timeout: float = 30.0,
    serve_timeout: float = 120.0,
    start_args: Sequence[str] = (),
) -> DetachedHeart:
    """Start ``server start --foreground`` for ``root`` in a new session, in the background.

    Its stdout and stderr (the heart's report lines and the node's output) are appended to
    ``<root>/log/node.log``. Returns once the node says it serves (``READY=1`` on the
    notify socket this call hands it). ``log_args`` (``--log-level``, ``--log-format``,
    ``--log-file``) go before ``start``, ``start_args`` after it.

    Raises:
        HeartAlreadyRunning: another heart holds ``root`` (checked before anything starts).
        HeartStartFailed: the heart ended, or said nothing within ``timeout`` seconds,
            before it started a node; or its node did not serve within ``serve_timeout``
            (the heart may still be restarting it), or the heart ended first.
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
        *log_args,
        "start",
        "--root",
        str(root),
        "--foreground",
        *start_args,
    ]
    ready = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"server-start-{os.getpid()}-{secrets.token_hex(6)}"
    ready.bind("\0" + name)
    environ = dict(os.environ, **{NOTIFY_ENV: "@" + name})
    with ready:
        heart = _spawn(argv, environ, logs, root, timeout)
        status = _wait_serving(ready, heart.heart_pid, root, serve_timeout)
    return DetachedHeart(heart.heart_pid, heart.node_pid, logs, status)


def _spawn(
    argv: list[str], environ: dict[str, str], logs: Path, root: Path, timeout: float
) -> DetachedHeart:
    read_end, write_end = os.pipe()
    try:
        os.set_inheritable(write_end, True)
        with os.fdopen(open_log(logs / "node.log"), "ab") as output:
            # posix_spawn, not Popen: the heart outlives this process in its own session,
            # and no Popen object is left behind to be reaped or warned about.
            pid = os.posix_spawn(
                sys.executable,
                [*argv, "--ready-fd", str(write_end)],
                environ,
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
    return DetachedHeart(heart_pid=pid, node_pid=int(line), log_dir=logs, status="started")


def _wait_serving(ready: socket.socket, heart_pid: int, root: Path, timeout: float) -> str:
    """The node's STATUS once it says READY=1; fails when the heart ends or time runs out."""
    heart = os.pidfd_open(heart_pid)
    try:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([ready.fileno(), heart], [], [], remaining)
            if ready.fileno() in readable:
                fields = dict(
                    line.partition("=")[::2]
                    for line in ready.recv(4096).decode(errors="replace").splitlines()
                )
                if fields.get("READY") == "1":
                    return fields.get("STATUS", "serving")
            elif heart in readable:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(heart_pid, 0)
                raise HeartStartFailed(root, "ended before its node served")
    finally:
        os.close(heart)
    raise HeartStartFailed(
        root,
        f"started a node that did not serve within {timeout:g} s (the heart may still be "
        "restarting it)",
    )


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
