"""The heart: restarts, stops, the restart limit, pid files and the one-heart-per-root rule.

Each heart runs in its own OS process (so signals behave as in production) around a tiny
fake node: a ``python -c`` script that says ``started`` on stdout with its pid and the
heart's environment variables, then crashes, exits 0 or waits for a signal. Every wait is
on a fact (a line on a pipe, a process exit) under a deadline.
"""

from __future__ import annotations

import json
import os
import select
import signal
import stat
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Protocol

import pytest

from tests._support.nodes import cli, free_port, http_json, set_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.node

STEP = 10.0  # seconds any one waiting step may take before the test fails

FAKE_NODE = textwrap.dedent(
    """
    import os, signal, sys
    mode = sys.argv[1]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(8))
    heart = os.environ.get("SERVER_HEART")
    restarts = os.environ.get("SERVER_HEART_RESTARTS")
    print(f"started {os.getpid()} {heart} {restarts}", flush=True)
    if mode == "crash":
        sys.exit(3)
    if mode == "exit0":
        sys.exit(0)
    while True:
        signal.pause()
    """
)

HEART = textwrap.dedent(
    """
    import json, logging, sys
    from pathlib import Path
    from server.errors import HeartAlreadyRunning
    from server.heart import run_heart
    options = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        code = run_heart(
            [sys.executable, "-c", options["node"], options["mode"]],
            root=Path(options["root"]),
            max_restarts=options["max_restarts"],
            period=options["period"],
            foreground=options["foreground"],
        )
    except HeartAlreadyRunning as exc:
        print(f"refused: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
    """
)


class Heart:
    """A heart process and the lines its fake nodes print on its stdout."""

    def __init__(self, root: Path, mode: str, *, max_restarts: int, foreground: bool) -> None:
        options = {
            "node": FAKE_NODE,
            "mode": mode,
            "root": str(root),
            "max_restarts": max_restarts,
            "period": 60.0,
            "foreground": foreground,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", HEART, json.dumps(options)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        self._fd = self.process.stdout.fileno()
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    def next_line(self) -> str | None:
        """The next line on stdout; None at end of file. Fails after ``STEP`` seconds."""
        deadline = time.monotonic() + STEP
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._fd], [], [], remaining)[0]:
                pytest.fail(f"no line from the heart's nodes within {STEP} s")
            chunk = os.read(self._fd, 4096)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def next_start(self) -> tuple[int, str, str]:
        """Wait for a fake node to start: its pid, SERVER_HEART and SERVER_HEART_RESTARTS."""
        line = self.next_line()
        assert line is not None, "the heart's stdout closed before a node started"
        word, pid, heart, restarts = line.split()
        assert word == "started"
        return int(pid), heart, restarts

    def wait(self) -> int:
        return self.process.wait(timeout=STEP)

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read().decode()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STEP)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class HeartStarter(Protocol):
    def __call__(self, mode: str, *, max_restarts: int = 5, foreground: bool = True) -> Heart: ...


@pytest.fixture
def start_heart(tmp_path: Path) -> Iterator[HeartStarter]:
    """Start hearts on ``tmp_path``; every one still running is killed at the end."""
    started: list[Heart] = []

    def start(mode: str, *, max_restarts: int = 5, foreground: bool = True) -> Heart:
        heart = Heart(tmp_path, mode, max_restarts=max_restarts, foreground=foreground)
        started.append(heart)
        return heart

    yield start
    for heart in started:
        heart.close()


def events(root: Path) -> list[dict[str, str]]:
    """The lines of ``heart.log`` as ``key: value`` dicts (values here are never quoted)."""
    lines = (root / "log" / "heart.log").read_text().splitlines()
    return [dict(field.split("=", 1) for field in line.split() if "=" in field) for line in lines]


def event_names(root: Path) -> list[str]:
    return [event["event"] for event in events(root)]


def read_pid(path: Path) -> int:
    return int(path.read_text())


# --- hearts around fake nodes --------------------------------------------------------------


def test_sigkilled_node_is_restarted(start_heart: HeartStarter, tmp_path: Path) -> None:
    heart = start_heart("wait")
    first, under_heart, restarts = heart.next_start()
    assert (under_heart, restarts) == ("1", "0")
    os.kill(first, signal.SIGKILL)
    second, under_heart, restarts = heart.next_start()
    assert second != first
    assert (under_heart, restarts) == ("1", "1")
    assert read_pid(tmp_path / "run" / "node.pid") == second
    heart.process.send_signal(signal.SIGTERM)
    assert heart.wait() == 7
    assert event_names(tmp_path) == [
        "heart_start",
        "start",
        "exit",
        "restart",
        "start",
        "exit",
        "heart_exit",
    ]
    crash = events(tmp_path)[2]
    assert (crash["pid"], crash["status"]) == (str(first), str(128 + signal.SIGKILL))


def test_node_exiting_zero_ends_the_heart(start_heart: HeartStarter, tmp_path: Path) -> None:
    heart = start_heart("exit0", foreground=False)
    assert heart.wait() == 0
    assert heart.next_line() is None  # not foreground: the node wrote to node.log
    node_log = (tmp_path / "log" / "node.log").read_text().splitlines()
    assert len(node_log) == 1
    assert node_log[0].startswith("started ")
    assert event_names(tmp_path) == ["heart_start", "start", "exit", "heart_exit"]
    assert events(tmp_path)[-1]["code"] == "0"


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 7), (signal.SIGINT, 8)], ids=["SIGTERM", "SIGINT"]
)
def test_stop_signal_is_forwarded_and_never_restarted(
    start_heart: HeartStarter, tmp_path: Path, signum: int, code: int
) -> None:
    heart = start_heart("wait")
    heart.next_start()
    heart.process.send_signal(signum)
    assert heart.wait() == code
    assert heart.next_line() is None  # no second start
    assert event_names(tmp_path) == ["heart_start", "start", "exit", "heart_exit"]
    assert events(tmp_path)[-1]["code"] == str(code)


def test_gives_up_over_the_restart_limit(start_heart: HeartStarter, tmp_path: Path) -> None:
    heart = start_heart("crash", max_restarts=2)
    assert [heart.next_start()[2] for _ in range(3)] == ["0", "1", "2"]
    assert heart.wait() == 3
    assert heart.next_line() is None  # max_restarts + 1 starts, no more
    assert "3 restarts within 60 s (limit 2)" in heart.stderr()
    log_text = (tmp_path / "log" / "heart.log").read_text()
    assert 'event=give_up reason="3 restarts within 60 s" max_restarts=2' in log_text
    assert event_names(tmp_path).count("restart") == 2


def test_pid_files_are_written_then_removed(start_heart: HeartStarter, tmp_path: Path) -> None:
    heart = start_heart("wait")
    node_pid, _, _ = heart.next_start()
    run = tmp_path / "run"
    assert read_pid(run / "heart.pid") == heart.pid
    assert read_pid(run / "node.pid") == node_pid
    heart.process.send_signal(signal.SIGTERM)
    assert heart.wait() == 7
    assert not (run / "heart.pid").exists()
    assert not (run / "node.pid").exists()
    assert [p.name for p in run.iterdir()] == ["heart.lock"]  # no temporary files left


def test_second_heart_on_the_root_is_refused(start_heart: HeartStarter, tmp_path: Path) -> None:
    first = start_heart("wait")
    node_pid, _, _ = first.next_start()
    second = start_heart("wait")
    assert second.wait() == 2
    assert second.next_line() is None  # it started no node
    assert f"a heart already runs on {tmp_path} (pid {first.pid})" in second.stderr()
    run = tmp_path / "run"
    assert read_pid(run / "heart.pid") == first.pid
    assert read_pid(run / "node.pid") == node_pid
    first.process.send_signal(signal.SIGTERM)
    assert first.wait() == 7


def test_stale_pid_file_is_replaced(start_heart: HeartStarter, tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=STEP)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "heart.pid").write_text(f"{gone.pid}\n")
    heart = start_heart("wait")
    heart.next_start()
    assert read_pid(tmp_path / "run" / "heart.pid") == heart.pid
    assert events(tmp_path)[0]["stale_pid"] == str(gone.pid)
    heart.process.send_signal(signal.SIGTERM)
    assert heart.wait() == 7


def test_node_outliving_its_heart_still_holds_the_root(
    start_heart: HeartStarter, tmp_path: Path
) -> None:
    heart = start_heart("wait")
    node_pid, _, _ = heart.next_start()
    try:
        heart.process.kill()  # the heart dies; its node, in its own process group, lives on
        heart.wait()
        second = start_heart("wait")
        assert second.wait() == 2
        assert f"still runs on {tmp_path} (pid {node_pid})" in second.stderr()
    finally:
        os.kill(node_pid, signal.SIGKILL)


# --- server start --------------------------------------------------------------------------


def wait_for_exit(pid: int) -> None:
    """Wait until a process that is not our child ends."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([pidfd], [], [], STEP)
        assert ready, f"process {pid} still runs after {STEP} s"
    finally:
        os.close(pidfd)


def test_server_start_fails_when_its_node_never_serves(tmp_path: Path) -> None:
    # A root with no release: the node fails to boot, and with no restarts allowed the
    # heart gives up at once, which makes a fast, self-ending real run.
    (tmp_path / "sys.config").write_text("[node]\nheart_max_restarts = 0\n")
    done = subprocess.run(
        [sys.executable, "-m", "server", "start", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=STEP,
        check=False,
        umask=0o022,  # the common default, which alone would leave run/ 0755 and logs 0644
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"server: the heart for {tmp_path} ended before its node served; "
        f"see {tmp_path / 'log' / 'node.log'}"
    )
    assert event_names(tmp_path) == ["heart_start", "start", "exit", "give_up", "heart_exit"]
    assert "no release to install" in (tmp_path / "log" / "node.log").read_text()
    assert modes(tmp_path) == {
        "run": 0o700,
        "run/heart.lock": 0o600,
        "run/node.lock": 0o600,
        "log": 0o750,
        "log/heart.log": 0o640,
        "log/node.log": 0o640,
    }


@pytest.mark.node
def test_server_start_returns_once_the_node_serves_and_stop_waits_for_its_end(
    demo_tree: Path,
) -> None:
    port = free_port()
    set_port(demo_tree, port)
    done = subprocess.run(
        [sys.executable, "-m", "server", "--log-format", "json", "start", "--root", str(demo_tree)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    node_log = (demo_tree / "log" / "node.log").read_text().splitlines()
    records = [json.loads(line) for line in node_log if line.startswith("{")]
    assert any(r["message"] == "release demo 1.0.0 booted" for r in records)  # the node's too
    first, second = done.stdout.splitlines()
    assert first.startswith("node serving release 1.0.0: heart pid ")
    heart_pid = int(first.split()[6].rstrip(","))
    assert second == (
        f"logs: {demo_tree / 'log' / 'heart.log'} and {demo_tree / 'log' / 'node.log'}"
    )
    assert http_json(port, "GET", "/health") == (200, {"release": "1.0.0"})  # no retry needed
    stopped = subprocess.run(
        [sys.executable, "-m", "server", "stop", "--root", str(demo_tree)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert stopped.returncode == 0, stopped.stderr
    wait_for_exit(heart_pid)


def modes(root: Path) -> dict[str, int]:
    """The permission bits of everything under ``run/`` and ``log/``, by relative path."""
    found = {}
    for top in ("run", "log"):
        for path in [root / top, *sorted((root / top).iterdir())]:
            found[str(path.relative_to(root))] = stat.S_IMODE(os.stat(path).st_mode)
    return found


def test_foreground_heart_makes_run_private_and_logs_0640(tmp_path: Path) -> None:
    (tmp_path / "sys.config").write_text("[node]\nheart_max_restarts = 0\n")
    done = subprocess.run(
        [sys.executable, "-m", "server", "start", "--root", str(tmp_path), "--foreground"],
        capture_output=True,
        text=True,
        timeout=STEP,
        check=False,
        umask=0o022,
    )
    assert done.returncode == 1, done.stderr  # the node could not boot: no release
    assert modes(tmp_path) == {
        "run": 0o700,
        "run/heart.lock": 0o600,
        "run/node.lock": 0o600,
        "log": 0o750,
        "log/heart.log": 0o640,
    }


def test_existing_folders_and_logs_keep_their_modes(tmp_path: Path) -> None:
    (tmp_path / "sys.config").write_text("[node]\nheart_max_restarts = 0\n")
    for folder, mode in (("run", 0o750), ("log", 0o755)):
        (tmp_path / folder).mkdir(mode=mode)
        os.chmod(tmp_path / folder, mode)
    (tmp_path / "log" / "heart.log").write_text("")
    os.chmod(tmp_path / "log" / "heart.log", 0o600)
    done = subprocess.run(
        [sys.executable, "-m", "server", "start", "--root", str(tmp_path), "--foreground"],
        capture_output=True,
        text=True,
        timeout=STEP,
        check=False,
        umask=0o022,
    )
    assert done.returncode == 1, done.stderr
    assert modes(tmp_path) == {
        "run": 0o750,
        "run/heart.lock": 0o600,
        "run/node.lock": 0o600,
        "log": 0o755,
        "log/heart.log": 0o600,
    }


def test_server_start_refuses_a_taken_root(start_heart: HeartStarter, tmp_path: Path) -> None:
    heart = start_heart("wait")
    heart.next_start()
    done = subprocess.run(
        [sys.executable, "-m", "server", "start", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=STEP,
        check=False,
    )
    assert done.returncode == 1
    assert f"server: a heart already runs on {tmp_path} (pid {heart.pid})" in done.stderr
    heart.process.send_signal(signal.SIGTERM)
    assert heart.wait() == 7


@pytest.mark.node
def test_server_start_takes_its_config_from_another_file(demo_tree: Path, tmp_path: Path) -> None:
    port = free_port()
    set_port(demo_tree, port)
    elsewhere = tmp_path / "etc" / "node.config"
    elsewhere.parent.mkdir()
    (demo_tree / "sys.config").rename(elsewhere)
    done = cli(demo_tree, "start", "--config", str(elsewhere), check=False)
    assert done.returncode == 0, done.stderr
    heart_pid = int(done.stdout.splitlines()[0].split()[6].rstrip(","))
    assert http_json(port, "GET", "/health") == (200, {"release": "1.0.0"})
    stopped = cli(demo_tree, "stop", "--config", str(elsewhere), check=False)
    assert stopped.returncode == 0, stopped.stderr
    wait_for_exit(heart_pid)
