"""``server start --nodes N``: nodes of one machine on one port, one cluster, each under a heart.

Real node OS processes on loopback, distributed on the test's own EPMD: the command, the
kernel spreading fresh connections over the nodes (each answer names its node in
``x-node``), the cluster (``server nodes``), a node SIGKILLed coming back under its heart and
rejoining by itself (``[node.dist] connect``), and ``server stop`` on the root stopping all.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests._support.erl_nodes import running_epmd
from tests._support.nodes import IncrementingClient, cli, cli_json, copy_demo_tree, free_port
from tests._support.waits import STEP

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = [pytest.mark.node, pytest.mark.slow, pytest.mark.timeout(110)]  # ~45 s: CI

FRESH_CONNECTIONS = 40  # all of them on one of two nodes by chance: 2 ** -39


def server(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``server <args>`` as a user runs it (no ``--root`` added)."""
    done = subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"server {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def request(port: int, method: str, path: str) -> tuple[int, str | None, Any]:
    """One request on a fresh connection: status, the node that answered, the JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.getheader("x-node"), json.loads(response.read())
    finally:
        conn.close()


def wait_for_exit(pid: int) -> None:
    """Wait until a process that is not our child ends."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        assert select.select([handle], [], [], STEP)[0], f"process {pid} still runs"
    finally:
        os.close(handle)


def until(fact: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Poll ``fact`` (a bounded number of times, backing off) until it holds."""
    deadline = time.monotonic() + limit
    delay = 0.02
    while not fact():
        assert time.monotonic() < deadline, f"{what}: not within {limit:g} s"
        time.sleep(delay)  # polling a fact of another OS process: is it there yet?
        delay = min(delay * 2, 0.5)


def peers_up(root: Path) -> set[str]:
    done = cli(root, "nodes", "--json", check=False)
    if done.returncode != 0:
        return set()
    report = json.loads(done.stdout)
    return {c["node"] for c in report["connections"] if c["state"] == "up"}


def config(path: Path, epmd_port: int, http_port: int) -> Path:
    path.write_text(
        f"""
[node]
name = "demo"
heart_max_restarts = 3

[node.dist]
name = "demo@localhost"
epmd_port = {epmd_port}
start_epmd = false
net_ticktime = 10

[counter]
port = {http_port}
"""
    )
    return path


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo's 1.0.0 and 1.1.0 packages (each with its .sha256), by vsn."""
    tree = SourceTree(copy_demo_tree(tmp_path_factory.mktemp("tree")))
    return {
        vsn: build_package(tree, "demo", vsn, tree.root / "build").path
        for vsn in ("1.0.0", "1.1.0")
    }


@pytest.fixture
def package(packages: dict[str, Path]) -> Path:
    return packages["1.0.0"]


async def test_two_nodes_share_a_port_form_a_cluster_rejoin_after_sigkill_and_stop_together(
    tmp_path: Path, package: Path
) -> None:
    async with running_epmd() as epmd:
        port = free_port()
        conf = config(tmp_path / "sys.config", epmd.port, port)
        root = tmp_path / "R"
        started = server(
            "start", "--nodes", "2", "--root", str(root), "--release", str(package),
            "--config", str(conf),
        )  # fmt: skip
        one, two = root / "node-1", root / "node-2"
        try:
            for name, node_root in (("demo-1@localhost", one), ("demo-2@localhost", two)):
                assert name in started.stdout
                assert str(node_root) in started.stdout
            assert str(port) in started.stdout
            assert (os.stat(root / "cookie").st_mode & 0o777) == 0o600
            assert (os.stat(one / "sys.config").st_mode & 0o777) == 0o600

            # the kernel spreads fresh connections over both nodes; each counts its own
            # increments (/incr answers the node's count), /count sums them over the cluster
            counted: dict[str | None, int] = {}
            for _ in range(FRESH_CONNECTIONS):
                status, node, body = request(port, "POST", "/incr/k")
                counted[node] = counted.get(node, 0) + 1
                assert (status, body["value"]) == (200, counted[node])
            assert set(counted) == {"demo-1@localhost", "demo-2@localhost"}
            for _ in range(4):  # whichever node answers, the sum over both
                status, _, body = request(port, "GET", "/count/k")
                assert (status, body["value"]) == (200, FRESH_CONNECTIONS)

            assert peers_up(one) == {"demo-2@localhost"}
            assert peers_up(two) == {"demo-1@localhost"}
            assert cli_json(one, "status")["release"]["vsn"] == "1.0.0"

            # a second start while they run is refused, naming the running node
            again = server("start", "--nodes", "2", "--root", str(root), "--release",
                           str(package), check=False)  # fmt: skip
            assert again.returncode == 1
            assert "node-1 still runs" in again.stderr
            assert f"server stop --root {root}" in again.stderr

            # SIGKILL node 2: its heart starts it again and it rejoins by itself
            killed = int((two / "run" / "node.pid").read_text())
            os.kill(killed, signal.SIGKILL)
            wait_for_exit(killed)
            until(lambda: peers_up(two) == {"demo-1@localhost"}, "node 2 back and rejoined")
            assert int((two / "run" / "node.pid").read_text()) != killed
            assert "restart" in (two / "log" / "heart.log").read_text()
            until(lambda: peers_up(one) == {"demo-2@localhost"}, "node 1 sees node 2 again")
            assert request(port, "GET", "/count/k")[0] == 200  # served, by either node

            hearts = [int((r / "run" / "heart.pid").read_text()) for r in (one, two)]
        finally:
            stopped = server("stop", "--root", str(root), check=False)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.splitlines() == [
            f"node-1: stopped (heart pid {hearts[0]})",
            f"node-2: stopped (heart pid {hearts[1]})",
        ]
        for pid in hearts:
            wait_for_exit(pid)
        with pytest.raises(OSError):  # noqa: PT011 - refused, however the platform words it
            request(port, "GET", "/health")
        assert server("stop", "--root", str(root)).stdout.splitlines() == [
            "node-1: was not running",
            "node-2: was not running",
        ]


async def test_a_rollout_across_three_local_nodes_under_keep_alive_load_fails_no_request(
    tmp_path: Path, packages: dict[str, Path]
) -> None:
    async with running_epmd() as epmd:
        port = free_port()
        conf = config(tmp_path / "sys.config", epmd.port, port)
        root = tmp_path / "R"
        server(
            "start", "--nodes", "3", "--root", str(root), "--release", str(packages["1.0.0"]),
            "--config", str(conf),
        )  # fmt: skip
        driver = root / "node-1"
        clients = [IncrementingClient(port, f"k{i}") for i in range(6)]  # keep-alive each
        try:
            for client in clients:
                client.start()
            for client in clients:
                assert client.going.wait(30)
            done = cli(
                driver, "cluster", "upgrade", str(packages["1.1.0"]),
                "--health", "counter.web:health", "--json", check=False,
            )  # fmt: skip
            for client in clients:
                client.stopping.set()
            for client in clients:
                client.join(30)
            report = json.loads(done.stdout)
            assert done.returncode == 0, report
            assert report["outcome"] == "permanent"
            assert [row["state"] for row in report["nodes"]] == ["permanent"] * 3
            for client in clients:
                assert client.failures == []
                assert client.versions == {"1.0.0", "1.1.0"}
                status, _, body = request(port, "GET", f"/count/{client.key}")
                assert (status, body["value"]) == (200, client.ok)  # summed over the nodes
            view = cli_json(driver, "cluster", "releases")
            assert [(n["running"], n["permanent"]) for n in view["nodes"]] == [
                ("1.1.0", "1.1.0")
            ] * 3
        finally:
            for client in clients:
                client.stopping.set()
            server("stop", "--root", str(root), check=False)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--nodes", "0"], "--nodes takes a count of 1 or more, not 0"),
        (["--nodes", "2", "--foreground"], "--foreground does not go with --nodes"),
        (["--nodes", "2", "--release", "missing-1.0.0.tar.gz"], "no package"),
    ],
    ids=["zero-nodes", "foreground", "missing-package"],
)
def test_bad_start_arguments_are_refused_in_one_line(
    tmp_path: Path, args: list[str], error: str
) -> None:
    root = tmp_path / "R"
    done = server("start", "--root", str(root), *args, check=False)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"server: nodes of {root}")
    assert error in line
    assert not (root / "node-1").exists()


def test_a_node_root_of_its_own_is_refused_as_a_root_of_nodes(tmp_path: Path) -> None:
    (tmp_path / "releases").mkdir()
    done = server("start", "--nodes", "2", "--root", str(tmp_path), check=False)
    assert done.returncode == 1
    assert "it is a node's own root" in done.stderr
    assert not (tmp_path / "nodes.json").exists()


def test_a_control_command_on_a_root_of_nodes_names_a_node_root(tmp_path: Path) -> None:
    (tmp_path / "nodes.json").write_text('{"nodes": [{"name": "a-1@localhost", "root": "node-1"}]}')
    done = server("status", "--root", str(tmp_path), check=False)
    assert done.returncode == 1
    assert f"use --root {tmp_path / 'node-1'}" in done.stderr


def test_one_log_file_for_every_node_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "all.log"
    done = server("--log-file", str(log), "start", "--nodes", "2", "--root", str(tmp_path / "R"),
                  check=False)  # fmt: skip
    assert done.returncode == 1
    assert "--log-file does not go with --nodes (each node logs under its own root)" in (
        done.stderr
    )
