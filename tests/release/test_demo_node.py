"""``server run`` boots the demo release as a real OS process and serves its routes."""

from __future__ import annotations

import http.client
import json
import signal
from typing import TYPE_CHECKING

import pytest

from tests._support.nodes import NodeProcess, set_port

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.node


def test_the_demo_serves_its_routes(demo_node: NodeProcess) -> None:
    assert demo_node.request("POST", "/incr/apples") == (
        200,
        {"key": "apples", "value": 1, "vsn": "1.0.0"},
    )
    assert demo_node.request("POST", "/incr/apples")[1]["value"] == 2
    assert demo_node.request("GET", "/count/apples") == (
        200,
        {"key": "apples", "value": 2, "vsn": "1.0.0"},
    )
    assert demo_node.request("GET", "/count/pears")[1]["value"] == 0
    assert demo_node.request("GET", "/health") == (200, {"release": "1.0.0"})
    assert demo_node.request("GET", "/nowhere")[0] == 404
    assert demo_node.request("GET", "/incr/apples")[0] == 405
    assert demo_node.request("POST", "/incr/" + "k" * 65)[0] == 400, "max_key_length from env"


def test_keep_alive_connections_are_served(demo_node: NodeProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", demo_node.port, timeout=10)
    try:
        for n in range(1, 6):
            conn.request("POST", "/incr/kept")
            response = conn.getresponse()
            assert json.loads(response.read())["value"] == n
    finally:
        conn.close()


def test_sigterm_stops_the_applications_and_exits_zero(demo_node: NodeProcess) -> None:
    assert demo_node.stop(signal.SIGTERM) == 0
    demo_node.wait_for("application counter stopped")


def test_a_port_in_use_fails_the_boot_clearly(demo_tree: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        set_port(demo_tree, port)
        node = NodeProcess(demo_tree, ["run"], port).start()
        try:
            code = node.process.wait(timeout=30)
        finally:
            node.kill()
    assert code != 0
    node.wait_for("counter")
    assert any("address" in line.lower() or "in use" in line.lower() for line in node.lines), (
        "\n".join(node.lines)
    )
