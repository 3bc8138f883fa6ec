"""Signed packages on a real node: built and signed with the CLI, unpacked through it."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests._support.nodes import NodeProcess, cli, free_port, set_port, statuses

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.node

NOT_VERIFIED = "release packages are not verified"


def keygen(out: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server", "keygen", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "trusted_keys" in done.stdout
    return (out.parent / (out.name + ".pub")).read_text().strip()


def trust(root: Path, public: str) -> None:
    config = root / "sys.config"
    text = config.read_text()
    config.write_text(text.replace("[node]\n", f'[node]\ntrusted_keys = ["{public}"]\n', 1))


def test_a_node_with_trusted_keys_takes_signed_packages_only(
    demo_tree: Path, tmp_path: Path
) -> None:
    public = keygen(tmp_path / "signing")
    port = free_port()
    set_port(demo_tree, port)
    trust(demo_tree, public)
    cli(demo_tree, "build", "demo-1.1.0", "--sign", str(tmp_path / "signing"))
    cli(demo_tree, "build", "demo-2.0.0")  # unsigned
    packages = demo_tree / "build"
    assert (packages / "demo-1.1.0.tar.gz.sig").is_file()
    node = NodeProcess(demo_tree, ["run"], port).start()
    try:
        node.wait_for("release demo 1.0.0 booted")
        assert not [line for line in node.lines if NOT_VERIFIED in line]
        before = (demo_tree / "releases" / "RELEASES").read_bytes()
        done = cli(demo_tree, "unpack", str(packages / "demo-2.0.0.tar.gz"), check=False)
        assert done.returncode == 1
        assert "UnsignedPackage" in done.stderr
        assert "server build --sign KEY" in done.stderr
        assert (demo_tree / "releases" / "RELEASES").read_bytes() == before
        assert not (demo_tree / "releases" / "2.0.0").exists()
        cli(demo_tree, "upgrade", str(packages / "demo-1.1.0.tar.gz"))
        assert statuses(demo_tree) == {"1.0.0": "old", "1.1.0": "permanent"}
        node.wait_for(f"signed by trusted key {public}")
    finally:
        node.stop()
        node.kill()


def test_a_node_without_trusted_keys_warns_at_boot_and_at_each_unpack(demo_tree: Path) -> None:
    port = free_port()
    set_port(demo_tree, port)
    cli(demo_tree, "build", "demo-1.1.0")
    node = NodeProcess(demo_tree, ["run"], port).start()
    try:
        node.wait_for("release demo 1.0.0 booted")
        assert "WARNING" in node.wait_for(NOT_VERIFIED)
        cli(demo_tree, "unpack", str(demo_tree / "build" / "demo-1.1.0.tar.gz"))
        line = node.wait_for("package demo-1.1.0.tar.gz is not verified")
        assert "WARNING" in line
        assert statuses(demo_tree) == {"1.0.0": "permanent", "1.1.0": "unpacked"}
    finally:
        node.stop()
        node.kill()
