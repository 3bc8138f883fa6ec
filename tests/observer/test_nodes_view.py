"""The observer's nodes view with a peer that does not answer: the page is not held.

Two demo nodes as real OS processes, distributed on the test's own EPMD; the observer runs
on ``a``. ``b`` is stopped (``SIGSTOP``, by its pid): its connection stays up, it answers
nothing, and the view lists it with the error after one push interval (at least a second),
not after the cluster call's five seconds.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests._support.erl_nodes import running_epmd
from tests._support.nodes import NodeProcess, cli_json, copy_demo_tree, free_port, set_port

if TYPE_CHECKING:
    from pathlib import Path


def _root(tmp_path: Path, alive: str, epmd_port: int, extra: str = "") -> Path:
    root = copy_demo_tree(tmp_path / alive)
    set_port(root, free_port())
    config = root / "sys.config"
    config.write_text(
        config.read_text()
        + f"""
[node.dist]
name = "{alive}@localhost"
cookie = "observer-test-cookie"
epmd_port = {epmd_port}
start_epmd = false
{extra}"""
    )
    return root


def _nodes_view(url: str) -> tuple[float, list[dict[str, Any]]]:
    """``GET /api/nodes`` with the URL's token: how long it took, and its rows."""
    address, _, query = url.removeprefix("http://").partition("/?")
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    started = time.perf_counter()
    try:
        conn.request("GET", f"/api/nodes?{query}")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 200, body
    rows: list[dict[str, Any]] = json.loads(body)
    return time.perf_counter() - started, rows


@pytest.mark.node
@pytest.mark.timeout(120)
async def test_a_peer_that_does_not_answer_holds_the_nodes_view_one_interval(
    tmp_path: Path,
) -> None:
    async with running_epmd() as epmd:
        a = _root(tmp_path, "a", epmd.port, "\n[node.observer]\nport = 0\ninterval = 0.5\n")
        b = _root(tmp_path, "b", epmd.port)
        nodes = [NodeProcess(root, ["run"], 0).start() for root in (a, b)]
        stopped = False
        try:
            for node in nodes:
                node.wait_for("release demo 1.0.0 booted")
            line = nodes[0].wait_for("observer at ")
            url = line[line.index("http://") :].split()[0]
            assert cli_json(a, "connect", "b@localhost")["connected"] is True
            _, rows = _nodes_view(url)
            assert [(row["node"], row["error"]) for row in rows] == [
                ("a@localhost", None),
                ("b@localhost", None),
            ]
            os.kill(nodes[1].process.pid, signal.SIGSTOP)
            stopped = True
            took, rows = _nodes_view(url)
            (b_row,) = [row for row in rows if row["node"] == "b@localhost"]
            assert b_row["error"] == "no answer within 1 s"
            assert 1.0 <= took < 4.0, f"the view took {took:.2f} s"
        finally:
            if stopped:
                os.kill(nodes[1].process.pid, signal.SIGCONT)
            for node in nodes:
                node.terminate()
