"""Real node OS processes for tests and benchmarks: a root, the node, a load client.

- ``copy_demo_tree`` / ``set_port``: a private copy of the repository's release sources.
- ``NodeProcess``: ``python -m server <args> --root R`` as an OS process, its output lines
  (each with the time it was read), one-shot HTTP requests, control requests, its memory
  and descriptors, stopped by its pid.
- ``IncrementingClient``: a thread keeping one keep-alive connection busy with
  ``POST /incr/<key>``, checking that each answer is the previous value plus one.
- ``cli`` / ``cli_json`` / ``statuses``: the ``server`` command as a user runs it.

The benchmarks import this module too (``bench/soak.py``, ``bench/upgrade_under_load.py``).
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.control.client import request_sync

BOOT_TIMEOUT = 30.0
#: The repository's root: its releases, appspecs, apps and sys.config make the demo.
REPO = Path(__file__).resolve().parents[2]


def http_json(port: int, method: str, path: str, host: str = "127.0.0.1") -> tuple[int, Any]:
    """One HTTP request on a fresh connection: the status and the JSON body decoded."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def copy_demo_tree(target: Path) -> Path:
    """A private copy of the repository's release sources (specs, apps, sys.config)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("releases", "appspecs", "apps"):
        shutil.copytree(
            REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.tar.gz")
        )
    shutil.copy(REPO / "sys.config", target / "sys.config")
    return target


def cli(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``server <args> --root <root>`` as a user would."""
    done = subprocess.run(
        [sys.executable, "-m", "server", *args, "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"server {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def cli_json(root: Path, *args: str) -> Any:
    """``cli`` with ``--json``, its output decoded."""
    return json.loads(cli(root, *args, "--json").stdout)


def statuses(root: Path) -> dict[str, str]:
    """Each release's status, as ``server releases`` reports it."""
    return {row["vsn"]: row["status"] for row in cli_json(root, "releases")}


def free_port() -> int:
    """A TCP port nobody listens on right now (the node binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def set_port(root: Path, port: int) -> None:
    """Point the root's sys.config at ``port`` for the counter application."""
    config = root / "sys.config"
    text = config.read_text()
    config.write_text(text.replace("port = 8080", f"port = {port}"))


@dataclass
class NodeProcess:
    """A node started as ``python -m server <args>``; its stderr lines are collected."""

    root: Path
    args: list[str]
    port: int
    #: the node's soft descriptor limit (RLIMIT_NOFILE), or None to inherit the test's
    nofile: int | None = None
    #: more environment for the node (PYTHONPATH for a tracing hook, ...)
    env: dict[str, str] = field(default_factory=dict)
    #: start it in its own session, so that a Ctrl-C reaches only the caller
    new_session: bool = False
    #: options before the sub-command (``--log-format json``, ...)
    global_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] = field(init=False)
    lines: list[str] = field(default_factory=list)
    #: ``time.perf_counter()`` when each line of ``lines`` was read
    times: list[float] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread = field(init=False)

    def command(self) -> list[str]:
        """The node's command line."""
        return [
            sys.executable,
            "-m",
            "server",
            *self.global_args,
            *self.args,
            "--root",
            str(self.root),
        ]

    def start(self) -> NodeProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        nofile = self.nofile

        def limit_descriptors() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            preexec_fn=limit_descriptors if nofile is not None else None,
            start_new_session=self.new_session,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.times.append(time.perf_counter())
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        self.process.stdout.close()
        with self._changed:
            self.times.append(time.perf_counter())
            self.lines.append("<eof>")
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = BOOT_TIMEOUT, *, count: int = 1) -> str:
        """Block until ``count`` lines containing ``text`` were printed (fails on exit)."""

        def matching() -> list[str]:
            return [line for line in self.lines if text in line]

        with self._changed:
            found = self._changed.wait_for(
                lambda: len(matching()) >= count or "<eof>" in self.lines, timeout=timeout
            )
            lines = matching()
            match = lines[count - 1] if len(lines) >= count else None
        if not found or match is None:
            raise AssertionError(f"no line with {text!r}; output:\n" + "\n".join(self.lines))
        return match

    def line_time(self, text: str) -> float | None:
        """When the first line containing ``text`` was read (``perf_counter``), if it was."""
        with self._changed:
            return next(
                (at for at, line in zip(self.times, self.lines, strict=True) if text in line), None
            )

    def tail(self, n: int = 40) -> str:
        """The last ``n`` lines of output."""
        with self._changed:
            return "\n".join(self.lines[-n:])

    def complaints(self) -> list[str]:
        """Lines that look like trouble (warnings, errors, tracebacks)."""
        words = ("WARNING", "ERROR", "CRITICAL", "Traceback")
        with self._changed:
            return [line for line in self.lines if any(w in line for w in words)]

    def request(self, method: str, path: str) -> tuple[int, Any]:
        """One HTTP request on a fresh connection; the JSON body decoded."""
        return http_json(self.port, method, path)

    def control(self, command: str, timeout: float = 120.0, **args: str) -> Any:
        """One control request over the node's socket; its result."""
        return request_sync(self.root / "run" / "control.sock", command, args, timeout=timeout)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the node, if it still runs."""
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def terminate(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; reap it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        """Signal the node and wait for its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def rss_kb(self) -> int:
        """The node's resident memory (kB), from /proc."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def descriptors(self) -> int:
        """How many file descriptors the node has open."""
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def kill(self) -> None:
        """SIGKILL, if still running."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)


class IncrementingClient(threading.Thread):
    """Keeps incrementing one key on one keep-alive connection; counts what went wrong.

    Each answer must be 200 with the previous value plus one; anything else (a connection
    error, another status, a wrong value) is a failure. ``going`` is set after ``warm_up``
    good answers; set ``stopping`` to end it. ``host`` is where the node listens.
    """

    def __init__(self, port: int, key: str, *, warm_up: int = 20, host: str = "127.0.0.1") -> None:
        super().__init__(daemon=True)
        self.port, self.key, self.host = port, key, host
        self.warm_up = warm_up
        self.ok = 0
        self.failures: list[str] = []
        self.versions: set[str] = set()
        self.stopping = threading.Event()
        self.going = threading.Event()
        self._answered = threading.Condition()

    def wait_for_ok(self, total: int, timeout: float = 30.0) -> bool:
        """Block until ``total`` good answers came (False when ``timeout`` ran out)."""
        with self._answered:
            return self._answered.wait_for(lambda: self.ok >= total, timeout=timeout)

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            while not self.stopping.is_set():
                try:
                    conn.request("POST", f"/incr/{self.key}")
                    response = conn.getresponse()
                    body = json.loads(response.read())
                except Exception as exc:  # a failed request is what the caller counts
                    self.failures.append(repr(exc))
                    conn.close()
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                    continue
                if response.status != 200 or body.get("value") != self.ok + 1:
                    self.failures.append(f"{response.status} {body}")
                    if isinstance(body, dict) and isinstance(body.get("value"), int):
                        self.ok = body["value"]  # count on from what the node says
                else:
                    self.versions.add(body["vsn"])
                    with self._answered:
                        self.ok += 1
                        self._answered.notify_all()
                if self.ok >= self.warm_up:
                    self.going.set()
        finally:
            conn.close()
