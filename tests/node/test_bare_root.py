"""A node root set up from a release package alone, and the layers of its configuration.

Real OS processes: ``server run --release <package>`` on an empty folder, then again.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests._support.nodes import NodeProcess, cli, free_port, set_port

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.node


@pytest.fixture
def packages(demo_tree: Path) -> tuple[Path, int]:
    """demo 1.0.0 and 1.1.0 packages built for a free port; the folder and the port."""
    port = free_port()
    set_port(demo_tree, port)
    for vsn in ("1.0.0", "1.1.0"):
        build_package(SourceTree(demo_tree), "demo", vsn, demo_tree / "build")
    return demo_tree / "build", port


def boot(root: Path, package: Path, port: int, **env: str) -> NodeProcess:
    node = NodeProcess(root, ["run", "--release", str(package)], port, env=env).start()
    node.wait_for("release demo 1.0.0 booted")
    return node


def test_an_empty_folder_is_set_up_from_a_package_and_booted_again_as_it_is(
    packages: tuple[Path, int], tmp_path: Path
) -> None:
    folder, port = packages
    root = tmp_path / "bare"
    root.mkdir()
    node = boot(root, folder / "demo-1.0.0.tar.gz", port)
    try:
        assert node.request("POST", "/incr/k")[1] == {"key": "k", "value": 1, "vsn": "1.0.0"}
        assert not (root / "apps").exists()
        assert not (root / "sys.config").exists()
        assert any("setting up" in line for line in node.lines)
        cli(root, "unpack", str(folder / "demo-1.1.0.tar.gz"))
        cli(root, "install", "1.1.0")
        counted = node.request("GET", "/count/k")[1]
        assert (counted["value"], counted["vsn"]) == (1, "1.1.0")
        cli(root, "permanent", "1.1.0")
    finally:
        assert node.stop() == 0
    again = NodeProcess(root, ["run", "--release", str(folder / "demo-1.0.0.tar.gz")], port)
    again.start()
    try:
        again.wait_for("release demo 1.1.0 booted")
        assert any("set up already" in line for line in again.lines)
        assert again.request("GET", "/health") == (200, {"release": "1.1.0"})
    finally:
        again.kill()


def test_the_roots_sys_config_then_the_environment_override_the_packaged_env(
    packages: tuple[Path, int], tmp_path: Path
) -> None:
    folder, packaged_port = packages
    root = tmp_path / "bare"
    root.mkdir()
    package = folder / "demo-1.0.0.tar.gz"
    boot(root, package, packaged_port).stop()
    own_port = free_port()
    (root / "sys.config").write_text(f'[node]\nname = "own"\n\n[counter]\nport = {own_port}\n')
    node = boot(root, package, own_port)
    try:
        assert node.request("GET", "/health")[0] == 200
        assert any("node own: starting" in line for line in node.lines)
    finally:
        node.stop()
    env_port = free_port()
    node = boot(root, package, env_port, SERVER_CONFIG__COUNTER__PORT=str(env_port))
    try:
        assert node.request("GET", "/health")[0] == 200
    finally:
        node.stop()


def test_a_failed_first_boot_leaves_no_release_to_boot_again(
    packages: tuple[Path, int], tmp_path: Path
) -> None:
    folder, port = packages
    root = tmp_path / "bare"
    root.mkdir()
    package = folder / "demo-1.0.0.tar.gz"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        failed = NodeProcess(root, ["run", "--release", str(package)], port).start()
        failed.wait_for("<eof>")
        assert failed.stop() != 0
    assert not (root / "releases" / "RELEASES").exists()
    node = boot(root, package, port)  # the port is free now: the same command sets it up
    try:
        assert node.request("GET", "/health") == (200, {"release": "1.0.0"})
        assert any("setting up" in line for line in node.lines)
    finally:
        node.stop()


def test_an_install_keeps_the_nodes_own_env_over_the_new_release(
    packages: tuple[Path, int], tmp_path: Path
) -> None:
    folder, port = packages
    root = tmp_path / "bare"
    root.mkdir()
    (root / "sys.config").write_text(f"[counter]\nport = {port}\nmax_key_length = 77\n")
    node = boot(root, folder / "demo-1.0.0.tar.gz", port)
    key = "k" * 70  # over the spec's 64, within the node's 77
    try:
        assert node.request("POST", f"/incr/{key}")[0] == 200
        cli(root, "unpack", str(folder / "demo-1.1.0.tar.gz"))
        cli(root, "install", "1.1.0")
        status, body = node.request("POST", f"/incr/{key}")
        assert (status, body["value"], body["vsn"]) == (200, 2, "1.1.0")
    finally:
        node.stop()
