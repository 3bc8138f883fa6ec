"""The heart: OTP's watchdog, a parent OS process that restarts its node when it dies.

A heart runs the node as a child OS process and watches it. It runs nothing of the node
(no kernel, no event loop; of the runtime it uses only the pure restart-window function): it
is a plain synchronous loop around ``waitpid``, so it keeps working whatever state the
node's runtime is in.

How this works:

1. What ends a child decides what the heart does next:

   ==============================================  ===============================
   the child ended                                 the heart
   ==============================================  ===============================
   after SIGTERM/SIGINT sent to the heart          exits with the child's status
   on its own with code 0 (stopped via control)    exits 0, no restart
   on its own with another code, or by a signal    restarts it, unless over limit
   ==============================================  ===============================

   A child's status is its exit code, or ``128 + signal`` when a signal ended it.
2. SIGTERM and SIGINT received by the heart are forwarded to the child (SIGHUP too,
   which only asks the node to reopen its log file); a stop requested
   while no child runs (between a crash and its restart) means no restart. The child runs
   in its own process group, so a terminal's Ctrl-C reaches the heart only, and the node
   sees one signal, not two.
3. Restart intensity is counted with the supervisor's own sliding window
   (``server.behaviours.record_restart``, a pure function), over ``period`` seconds of
   monotonic time kept as floats (a supervisor counts whole seconds); the heart gives up when
   more than ``max_restarts`` restarts fall in the window, so a child that always crashes is
   started ``max_restarts + 1`` times.
4. The child is told it runs under a heart: ``SERVER_HEART=1`` and
   ``SERVER_HEART_RESTARTS=<n>`` (0 for the first start) are added to its environment.
5. Files (see ``server.heart._files``): the root lock, ``run/heart.pid`` and
   ``run/node.pid`` (removed on exit), ``log/heart.log`` (one line per event) and, unless
   ``foreground``, ``log/node.log`` with the child's stdout and stderr appended; ``run/`` is
   made 0700, the logs 0640.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeAlias, final

from server.behaviours import record_restart
from server.heart._files import (
    HeartLog,
    RootLock,
    log_dir,
    open_log,
    read_pid_file,
    remove_file,
    write_pid_file,
)
from server.node import node_config

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import FrameType

__all__ = ["HEART_ENV", "RESTARTS_ENV", "node_command", "run_heart", "run_heart_on_root"]

HEART_ENV = "SERVER_HEART"
"""Set to ``1`` in the environment of a node that runs under a heart."""
RESTARTS_ENV = "SERVER_HEART_RESTARTS"
"""How many times the heart has restarted the node before this start (``0`` at first)."""

_LOGGER = logging.getLogger("server.heart")
_Handler: TypeAlias = "Callable[[int, FrameType | None], object] | int | signal.Handlers | None"
_FORWARDED = (signal.SIGTERM, signal.SIGINT)


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


@final
class _StopRequest:
    """Signal handler state: the stop signal received, forwarded to the running child."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._signalled: subprocess.Popen[bytes] | None = None

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signal = signum
        child = self._child
        if child is not None:
            self._signalled = child
            child.send_signal(signum)

    def pass_on(self, signum: int, _frame: FrameType | None) -> None:
        """Hand a signal that is not a stop (SIGHUP: reopen the logs) to the running child."""
        child = self._child
        if child is not None:
            child.send_signal(signum)

    def attach(self, child: subprocess.Popen[bytes]) -> None:
        """Make ``child`` the one to forward to; a stop that came before it is sent now."""
        self._child = child
        if self.signal is not None and self._signalled is not child:
            self._signalled = child
            child.send_signal(self.signal)

    def detach(self) -> None:
        self._child = None

    def requested(self) -> bool:
        """Whether a stop signal has arrived (a method: the handler changes it any time)."""
        return self.signal is not None


@dataclass(frozen=True, slots=True)
class _Settings:
    command: Sequence[str]
    run_dir: Path
    max_restarts: int
    period: float
    env: Mapping[str, str]
    lock_fd: int
    output: IO[bytes] | None
    started: Callable[[int], None] | None


def run_heart(
    command: Sequence[str],
    *,
    root: Path,
    max_restarts: int,
    period: float,
    log: logging.Logger | None = None,
    env: Mapping[str, str] | None = None,
    foreground: bool = False,
    started: Callable[[int], None] | None = None,
) -> int:
    """Run ``command`` as the node under a heart until it stops or the heart gives up.

    Must be called from the main thread (it installs SIGTERM and SIGINT handlers, and puts
    the previous ones back when it returns).

    Args:
        command: the node's command line.
        root: the node's root directory (``run/`` and ``log/`` are created in it).
        max_restarts: restarts allowed within ``period``; one more and the heart gives up.
        period: the length of the sliding window, in seconds.
        log: where events are reported besides ``heart.log`` (default: this module's logger).
        env: the child's environment (default: the heart's), plus ``HEART_ENV`` and
            ``RESTARTS_ENV``.
        foreground: the child writes to the heart's stdout and stderr instead of
            ``log/node.log``.
        started: called with the child's pid once the first child is running.

    Returns:
        The last child's status when a stop was requested or the heart gave up, 0 when
        the child exited 0 on its own (see the table in the module docstring).

    Raises:
        HeartAlreadyRunning: another heart (or the node of a heart that died) holds ``root``.
        ValueError: ``max_restarts`` is negative or ``period`` is not positive.
        OSError: the command cannot be started or the root's files cannot be written.
    """
    if max_restarts < 0:
        raise ValueError(f"invalid max_restarts {max_restarts!r}: a count >= 0")
    if not period > 0:
        raise ValueError(f"invalid period {period!r}: seconds > 0")
    root = Path(root).resolve()
    run_dir = root / "run"
    lock = RootLock(root)
    lock.acquire()
    events = HeartLog(root / "log" / "heart.log", log or _LOGGER)
    stale = read_pid_file(run_dir / "heart.pid")
    output: IO[bytes] | None = None
    stop = _StopRequest()
    previous: dict[signal.Signals, _Handler] = {}
    try:
        for signum in _FORWARDED:
            previous[signum] = signal.signal(signum, stop.handle)
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, stop.pass_on)
        events.open()
        if not foreground:
            output = os.fdopen(open_log(log_dir(root) / "node.log"), "ab")
        write_pid_file(run_dir / "heart.pid", os.getpid())
        facts: dict[str, object] = {"heart_pid": os.getpid(), "root": root}
        if stale is not None:
            facts["stale_pid"] = stale
        events.write(logging.INFO, "heart_start", "heart started", **facts)
        settings = _Settings(
            command=list(command),
            run_dir=run_dir,
            max_restarts=max_restarts,
            period=period,
            env=os.environ if env is None else env,
            lock_fd=lock.fd,
            output=output,
            started=started,
        )
        code = _supervise(settings, stop, events)
        events.write(logging.INFO, "heart_exit", "heart exiting", code=code)
        return code
    finally:
        for forwarded, handler in previous.items():
            signal.signal(forwarded, handler)
        remove_file(run_dir / "node.pid")
        remove_file(run_dir / "heart.pid")
        if output is not None:
            output.close()
        events.close()
        lock.release()


def _supervise(settings: _Settings, stop: _StopRequest, events: HeartLog) -> int:
    restarts: tuple[float, ...] = ()
    count = 0
    status = 0
    while not stop.requested():
        child = subprocess.Popen(
            settings.command,
            stdin=subprocess.DEVNULL,
            stdout=settings.output,
            stderr=settings.output,
            env={**settings.env, HEART_ENV: "1", RESTARTS_ENV: str(count)},
            pass_fds=(settings.lock_fd,),
            process_group=0,
        )
        stop.attach(child)
        write_pid_file(settings.run_dir / "node.pid", child.pid)
        events.write(logging.INFO, "start", "node started", pid=child.pid, restarts=count)
        if count == 0 and settings.started is not None:
            settings.started(child.pid)
        returncode = child.wait()
        stop.detach()
        remove_file(settings.run_dir / "node.pid")
        status = _status(returncode)
        how = _describe(returncode)
        events.write(logging.INFO, "exit", f"node {how}", pid=child.pid, status=status, how=how)
        if stop.requested():
            break
        if returncode == 0:
            return 0
        restarts, over = record_restart(
            restarts, time.monotonic(), intensity=settings.max_restarts, period=settings.period
        )
        if over:
            reason = f"{len(restarts)} restarts within {settings.period:g} s"
            events.write(
                logging.ERROR,
                "give_up",
                f"heart gave up: {reason} (limit {settings.max_restarts})",
                reason=reason,
                max_restarts=settings.max_restarts,
                period=settings.period,
            )
            return status
        count += 1
        events.write(logging.WARNING, "restart", f"restarting node ({how})", restarts=count)
    return status


def node_command(
    root: Path, *, log_args: Sequence[str] = ("--log-level", "INFO"), run_args: Sequence[str] = ()
) -> list[str]:
    """The command line of ``server run`` for ``root``, this interpreter.

    ``log_args`` are the logging options before the sub-command (``--log-level``,
    ``--log-format``, ``--log-file``); ``run_args`` go after it (``--release``, ``--config``).
    """
    return [sys.executable, "-m", "server", *log_args, "run", "--root", str(root), *run_args]


def run_heart_on_root(
    root: Path,
    *,
    log_args: Sequence[str] = ("--log-level", "INFO"),
    ready_fd: int | None = None,
    config: Path | None = None,
    run_args: Sequence[str] = (),
) -> int:
    """Run the node of ``root`` under a heart in the foreground (``server start --foreground``).

    The limits come from the node's sys.config (``heart_max_restarts``, ``heart_period``;
    ``config``, the root's, or its release's). When ``ready_fd`` is given, the first node's
    pid is written to it, then it is closed. ``log_args`` and ``run_args`` go to every
    ``server run`` (see ``node_command``).

    Returns:
        The heart's exit code (see ``run_heart``).

    Raises:
        HeartAlreadyRunning: another heart holds ``root``.
        SpecError: ``sys.config`` is malformed.
    """
    root = Path(root).resolve()
    settings = node_config(root, config).node

    def report_ready(pid: int) -> None:
        if ready_fd is not None:
            with os.fdopen(ready_fd, "w") as ready:
                ready.write(f"{pid}\n")

    return run_heart(
        node_command(root, log_args=log_args, run_args=run_args),
        root=root,
        max_restarts=settings.heart_max_restarts,
        period=settings.heart_period,
        foreground=True,
        started=report_ready,
    )
