"""The whole story on real OS processes: a node, the CLI, a client under load, kill -9."""

from __future__ import annotations

import os
import signal
import stat
from typing import TYPE_CHECKING

import pytest

from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests._support.nodes import (
    IncrementingClient,
    NodeProcess,
    cli,
    cli_json,
    free_port,
    set_port,
    statuses,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.node


@pytest.fixture
def live(demo_tree: Path) -> Iterator[tuple[NodeProcess, Path]]:
    port = free_port()
    set_port(demo_tree, port)
    packages = demo_tree / "build"
    for vsn in ("1.1.0", "2.0.0"):
        build_package(SourceTree(demo_tree), "demo", vsn, packages)
    node = NodeProcess(demo_tree, ["run"], port).start()
    try:
        node.wait_for("release demo 1.0.0 booted")
        yield node, packages
    finally:
        node.kill()


def test_upgrade_under_load_and_back_loses_nothing(live: tuple[NodeProcess, Path]) -> None:
    node, packages = live
    root = node.root
    client = IncrementingClient(node.port, "load")
    client.start()
    assert client.going.wait(30), client.failures
    cli(root, "upgrade", str(packages / "demo-1.1.0.tar.gz"))
    assert statuses(root) == {"1.0.0": "old", "1.1.0": "permanent"}
    cli(root, "upgrade", str(packages / "demo-2.0.0.tar.gz"))
    assert cli_json(root, "status")["release"]["vsn"] == "2.0.0"
    cli(root, "rollback")
    cli(root, "rollback")
    client.stopping.set()
    client.join(30)
    assert client.failures == []
    assert client.versions == {"1.0.0", "1.1.0", "2.0.0"}
    assert statuses(root) == {"1.0.0": "permanent", "1.1.0": "old", "2.0.0": "old"}
    assert node.request("GET", "/count/load")[1] == {
        "key": "load",
        "value": client.ok,
        "vsn": "1.0.0",
    }, "every successful increment counted once, through three state migrations"


def test_a_bad_package_is_refused_and_nothing_changes(live: tuple[NodeProcess, Path]) -> None:
    node, packages = live
    root = node.root
    package = packages / "demo-1.1.0.tar.gz"
    data = bytearray(package.read_bytes())
    data[len(data) // 2] ^= 0xFF
    package.write_bytes(bytes(data))
    before = (root / "releases" / "RELEASES").read_bytes()
    done = cli(root, "unpack", str(package), check=False)
    assert done.returncode == 1
    assert "UnpackError" in done.stderr
    assert "sha256" in done.stderr
    assert (root / "releases" / "RELEASES").read_bytes() == before
    assert not (root / "releases" / "1.1.0").exists()
    assert cli(root, "install", "1.1.0", check=False).returncode == 1
    assert cli_json(root, "ping")["release"] == "1.0.0"


def test_kill_9_before_permanent_boots_the_permanent_release(demo_tree: Path) -> None:
    port = free_port()
    set_port(demo_tree, port)
    build_package(SourceTree(demo_tree), "demo", "1.1.0", demo_tree / "build")
    heart = NodeProcess(demo_tree, ["start", "--foreground"], port).start()
    try:
        heart.wait_for("release demo 1.0.0 booted")
        heart.request("POST", "/incr/k")
        cli(demo_tree, "unpack", str(demo_tree / "build" / "demo-1.1.0.tar.gz"))
        cli(demo_tree, "install", "1.1.0")
        assert heart.request("GET", "/count/k")[1]["vsn"] == "1.1.0"
        node_pid = int((demo_tree / "run" / "node.pid").read_text())
        os.kill(node_pid, signal.SIGKILL)
        heart.wait_for("restarted by heart")
        heart.wait_for("release demo 1.0.0 booted", timeout=30, count=2)
        assert cli_json(demo_tree, "ping")["release"] == "1.0.0"
        assert statuses(demo_tree) == {"1.0.0": "permanent", "1.1.0": "unpacked"}
        assert heart.request("GET", "/count/k")[1]["vsn"] == "1.0.0"
        cli(demo_tree, "install", "1.1.0")  # the same install is accepted again
        assert heart.request("GET", "/count/k")[1]["vsn"] == "1.1.0"
    finally:
        heart.stop(signal.SIGTERM)
        heart.kill()


def test_server_start_serves_the_control_socket_from_a_private_folder(demo_tree: Path) -> None:
    port = free_port()
    set_port(demo_tree, port)
    heart = NodeProcess(demo_tree, ["start", "--foreground"], port).start()
    try:
        heart.wait_for("release demo 1.0.0 booted")
        assert cli_json(demo_tree, "ping")["release"] == "1.0.0"
        run, log = demo_tree / "run", demo_tree / "log"
        assert stat.S_IMODE(os.stat(run).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(run / "control.sock").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(log).st_mode) == 0o750
        assert stat.S_IMODE(os.stat(log / "heart.log").st_mode) == 0o640
        assert "node stopping" in cli(demo_tree, "stop").stdout
        assert heart.process.wait(timeout=30) == 0  # the node exited 0: the heart ends too
    finally:
        heart.stop(signal.SIGTERM)
        heart.kill()
