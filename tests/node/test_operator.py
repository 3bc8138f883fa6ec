"""What the operator sees: one node per root, one line for a failed boot, the version.

Real OS processes of ``server run`` on copies of the demo.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

import server
from server.cli._failure import in_words
from server.errors import ApplicationError, StartError
from tests._support.nodes import NodeProcess, free_port, set_port
from tests._support.nodes import cli as _cli

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.node
def test_a_second_node_on_a_root_is_refused_before_anything_boots(demo_node: NodeProcess) -> None:
    second = run_cli(demo_node.root, "run")
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert lines == [
        f"server: a node already runs on {demo_node.root} (pid {demo_node.process.pid}); "
        f"stop it first (server stop --root {demo_node.root}) or use another --root"
    ]
    assert "booting" not in second.stdout + second.stderr
    assert demo_node.request("GET", "/health")[0] == 200


@pytest.mark.node
def test_a_boot_that_fails_is_one_line_naming_the_application_and_the_cause(
    demo_tree: Path,
) -> None:
    port = free_port()
    set_port(demo_tree, port)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = run_cli(demo_tree, "run")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"server: application counter failed to start: cannot listen on 127.0.0.1:{port}: "
        "Address already in use (the log above has the reports)"
    )
    assert "Traceback" not in done.stderr
    assert "ExceptionGroup" not in done.stderr


def test_a_nested_start_failure_is_said_by_its_deepest_words() -> None:
    inner = ("shutdown", ("failed_to_start_child", "web", "cannot listen on h:1: in use"))
    error = ApplicationError("counter", "failed", ("start_failed", StartError("sup", inner)))
    assert in_words(error) == "application counter failed to start: cannot listen on h:1: in use"
    assert in_words(StartError("web", ValueError("bad port"))) == (
        "web failed to start: ValueError: bad port"
    )
    assert in_words(ApplicationError("x", "is not loaded")) == "application x: is not loaded"


def test_server_version_prints_the_installed_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"server {server.__version__}"


@pytest.mark.node
def test_server_stop_returns_once_the_node_has_exited(demo_node: NodeProcess) -> None:
    done = run_cli(demo_node.root, "stop")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "node stopped"
    assert demo_node.process.poll() == 0  # already gone: no wait needed


@pytest.mark.node
def test_json_logs_to_a_file_that_sighup_reopens_after_rotation(demo_tree: Path) -> None:
    port = free_port()
    set_port(demo_tree, port)
    log = demo_tree / "node.log"
    node = NodeProcess(demo_tree, ["run"], port)
    node.global_args = ["--log-format", "json", "--log-file", str(log)]
    node.start()
    try:
        node.wait_for("node demo: starting")
        done = run_cli(demo_tree, "ping")  # the control socket listens once booted
        assert done.returncode == 0, done.stderr
        log.rename(demo_tree / "node.log.1")
        node.send_signal(signal.SIGHUP)
        assert run_cli(demo_tree, "stop").returncode == 0  # logs the applications' stop
    finally:
        node.kill()
    before = [json.loads(line) for line in (demo_tree / "node.log.1").read_text().splitlines()]
    after = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"time", "level", "logger", "message"} <= set(before[0])
    assert any(e["message"] == "release demo 1.0.0 booted" for e in before)
    assert any(e["message"] == "application counter stopped" for e in after)
    assert not any(e["message"] == "application counter stopped" for e in before)


@pytest.mark.node
def test_server_env_says_where_each_value_came_from(demo_tree: Path) -> None:
    port = free_port()
    set_port(demo_tree, port)
    node = NodeProcess(
        demo_tree, ["run"], port, env={"SERVER_CONFIG__COUNTER__MAX_KEY_LENGTH": "99"}
    )
    node.start()
    try:
        node.wait_for("release demo 1.0.0 booted")
        done = run_cli(demo_tree, "env", "counter", "--json")
        assert done.returncode == 0, done.stderr
        rows = {row["key"]: (row["value"], row["source"]) for row in json.loads(done.stdout)}
        assert rows == {
            "port": (port, "the node's sys.config"),
            "max_key_length": (99, "the environment (SERVER_CONFIG__...)"),
        }
        table = run_cli(demo_tree, "env", "counter")
        assert "the environment (SERVER_CONFIG__...)" in table.stdout
    finally:
        node.stop()


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``server ARGS --root ROOT`` as a user runs it; its exit code not checked."""
    return _cli(root, *args, check=False)


@pytest.mark.node
def test_a_node_that_is_not_distributed_says_how_to_make_it_so(demo_node: NodeProcess) -> None:
    nodes = _cli(demo_node.root, "nodes")
    assert "not distributed: add a [node.dist] table to sys.config" in nodes.stdout
    report = json.loads(_cli(demo_node.root, "nodes", "--json").stdout)
    assert report == {"name": None, "mode": None, "port": None, "connections": []}
    connect = _cli(demo_node.root, "connect", "b@localhost", check=False)
    assert connect.returncode != 0
    assert "not distributed" in connect.stderr
    assert len(connect.stderr.strip().splitlines()) == 1
    assert demo_node.request("GET", "/health")[0] == 200
