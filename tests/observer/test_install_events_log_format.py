"""``[node] log_format`` and ``log_level`` of sys.config, for a node whose logs a shipper reads.

A flag given on the command line wins over sys.config; a bad value is refused in one line
before anything boots.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests._support.nodes import NodeProcess, free_port, set_port

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.node


def configure(root: Path, line: str) -> None:
    config = root / "sys.config"
    config.write_text(config.read_text().replace('log_level = "INFO"\n', line + "\n"))


def boot(root: Path, global_args: list[str], wanted: str) -> NodeProcess:
    port = free_port()
    set_port(root, port)
    node = NodeProcess(root, ["run"], port, global_args=global_args)
    node.start()
    try:
        node.wait_for(wanted)
        assert node.request("GET", "/count/x")[0] == 200
    finally:
        node.kill()
    return node


def test_sys_config_asks_for_json_lines(demo_tree: Path) -> None:
    configure(demo_tree, 'log_format = "json"\nlog_level = "DEBUG"')
    node = boot(demo_tree, [], '"message": "release demo 1.0.0 booted')
    logged = [json.loads(line) for line in node.lines if line.startswith("{")]
    assert "server.release" in {entry["logger"] for entry in logged}
    assert "DEBUG" in {entry["level"] for entry in logged}  # its log_level too
    # every line is the CLI's own print or one JSON object: no text log line among them
    assert not [line for line in node.lines if " INFO server" in line]


def test_a_flag_wins_over_sys_config(demo_tree: Path) -> None:
    configure(demo_tree, 'log_format = "json"')
    node = boot(demo_tree, ["--log-format", "text"], "INFO server.release: release demo 1.0.0")
    assert not [line for line in node.lines if line.startswith('{"time"')]


def test_a_bad_log_format_is_refused_before_anything_boots(demo_tree: Path) -> None:
    configure(demo_tree, 'log_format = "xml"')
    done = subprocess.run(
        [sys.executable, "-m", "server", "run", "--root", str(demo_tree)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("server: ")
    assert "node.log_format" in line
    assert not (demo_tree / "releases" / "RELEASES").exists()  # nothing was set up
