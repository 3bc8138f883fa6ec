"""A bare machine: the server installed from its wheel, a node set up from a package alone.

The project is built into a wheel and installed into a fresh virtual environment (not
editable, the repository out of reach); the node runs there from an empty folder and the
demo's packages, upgrades live under load with no failed request, and takes a new port
from the root's sys.config and from an environment variable on its next boots.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from typing import TYPE_CHECKING

import pytest

from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests._support.nodes import REPO, IncrementingClient, NodeProcess, free_port, set_port

if TYPE_CHECKING:
    from pathlib import Path

#: building the wheel and installing it with its dependencies takes a while
pytestmark = [pytest.mark.node, pytest.mark.slow, pytest.mark.timeout(600)]  # builds a wheel


class InstalledNode(NodeProcess):
    """A node run by the fresh environment's ``server`` script, from outside the repository."""

    python: str = ""

    def command(self) -> list[str]:
        return [self.python, "-m", "server", *self.args, "--root", str(self.root)]


def run(*command: str, cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment holding the server's wheel and its dependencies only."""
    scratch = tmp_path_factory.mktemp("wheel")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        str(scratch),
        str(REPO),
        cwd=scratch,
    )
    (wheel,) = scratch.glob("server-*.whl")
    env = scratch / "venv"
    venv.create(env, with_pip=True)
    run(str(env / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel), cwd=scratch)
    return env / "bin" / "python"


def test_a_node_from_the_wheel_and_a_package_upgrades_live_and_takes_new_ports(
    installed: Path, demo_tree: Path, tmp_path: Path
) -> None:
    port = free_port()
    set_port(demo_tree, port)
    packages = demo_tree / "build"
    for vsn in ("1.0.0", "1.1.0"):
        build_package(SourceTree(demo_tree), "demo", vsn, packages)
    root = tmp_path / "machine"
    root.mkdir()
    first = ["run", "--release", str(packages / "demo-1.0.0.tar.gz")]

    def node(port: int, **env: str) -> InstalledNode:
        started = InstalledNode(root, first, port, env=env)
        started.python = str(installed)
        started.start()
        return started

    live = node(port)
    try:
        live.wait_for("release demo 1.0.0 booted")
        where = subprocess.run(
            [str(installed), "-c", "import server; print(server.__file__)"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert str(REPO) not in where
        client = IncrementingClient(port, "load")
        client.start()
        assert client.going.wait(30), client.failures
        for args in (["unpack", str(packages / "demo-1.1.0.tar.gz")], ["install", "1.1.0"]):
            run(str(installed), "-m", "server", *args, "--root", str(root), cwd=root)
        client.stopping.set()
        client.join(30)
        assert client.failures == []
        assert client.versions == {"1.0.0", "1.1.0"}
        assert live.request("GET", "/count/load")[1]["value"] == client.ok
    finally:
        assert live.stop() == 0
    own = free_port()
    (root / "sys.config").write_text(f"[counter]\nport = {own}\n")
    again = node(own)
    try:
        again.wait_for("release demo 1.0.0 booted")  # 1.1.0 was not made permanent
        assert again.request("GET", "/health") == (200, {"release": "1.0.0"})
    finally:
        assert again.stop() == 0
    from_env = free_port()
    last = node(from_env, SERVER_CONFIG__COUNTER__PORT=str(from_env))
    try:
        last.wait_for("release demo 1.0.0 booted")
        assert last.request("GET", "/health") == (200, {"release": "1.0.0"})
    finally:
        assert last.stop() == 0
    assert os.listdir(root) != []
