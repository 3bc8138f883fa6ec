"""A real node under hostile HTTP clients: bounded memory per connection, capped descriptors.

Each test boots the demo release as an OS process and attacks it over loopback.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import select
import signal
import socket
from typing import TYPE_CHECKING

import pytest

from server.behaviours.acceptor import DESCRIPTOR_RESERVE
from tests._support.nodes import NodeProcess, cli_json, free_port, set_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.node

MB = 1024 * 1024
#: The most the node's memory may grow while one client floods it (kB).
RSS_SLACK_KB = 8 * 1024
#: With no byte taken for this long, the node has stopped reading (seconds).
STALLED = 2.0


def get_health(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


HEALTH = b"GET /health HTTP/1.1\r\nHost: flood\r\n\r\n"
PING = b'{"id": 1, "command": "ping", "args": {}}\n'


def flood(sock: socket.socket, total: int, stall: float = STALLED, line: bytes = HEALTH) -> int:
    """Send ``line`` pipelined until ``total`` bytes or none is taken for ``stall`` s."""
    chunk = line * 4096
    view = memoryview(chunk)
    sock.setblocking(False)
    sent = 0
    while sent < total:
        try:
            n = sock.send(view)
        except BlockingIOError:
            _, writable, _ = select.select([], [sock], [], stall)
            if not writable:
                return sent  # the window stays shut: the node reads no more
            continue
        sent += n
        view = view[n:] if n < len(view) else memoryview(chunk)
    return sent


def flood_from_the_start(
    node: NodeProcess, sock: socket.socket, address: tuple[str, int] | str, line: bytes
) -> int:
    """Connect and flood 200 MB of ``line``; returns what the node let through.

    The worst timing: the first burst is already waiting when the node accepts (the node
    is stopped while the kernel completes the handshake and buffers the burst).
    """
    os.kill(node.process.pid, signal.SIGSTOP)
    try:
        sock.connect(address)
        sent = flood(sock, 200 * MB, stall=0.0, line=line)
    finally:
        os.kill(node.process.pid, signal.SIGCONT)
    return sent + flood(sock, 200 * MB - sent, line=line)


def test_a_client_that_sends_without_reading_is_pushed_back_and_costs_no_memory(
    demo_node: NodeProcess,
) -> None:
    port = demo_node.port
    assert get_health(port) == 200
    before = demo_node.rss_kb()
    hostile = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sent = flood_from_the_start(demo_node, hostile, ("127.0.0.1", port), HEALTH)
        during = demo_node.rss_kb()
        assert sent < 200 * MB, "the node read everything: no back-pressure"
        # other clients are answered while the flood waits in the kernel's buffers
        assert [get_health(port) for _ in range(20)] == [200] * 20
        assert demo_node.rss_kb() - before < RSS_SLACK_KB
    finally:
        hostile.close()
    assert get_health(port) == 200
    after = demo_node.rss_kb()
    print(
        f"flood: {sent / MB:.1f} MB taken of 200 MB; RSS before {before} kB, "
        f"during {during} kB, after {after} kB"
    )
    assert during - before < RSS_SLACK_KB
    assert after - before < RSS_SLACK_KB


def test_a_control_client_that_sends_without_reading_is_pushed_back_too(
    demo_node: NodeProcess,
) -> None:
    path = str(demo_node.root / "run" / "control.sock")
    assert cli_json(demo_node.root, "ping")["release"] == "1.0.0"
    before = demo_node.rss_kb()
    hostile = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sent = flood_from_the_start(demo_node, hostile, path, PING)
        during = demo_node.rss_kb()
        assert sent < 200 * MB, "the node read everything: no back-pressure"
        assert cli_json(demo_node.root, "ping")["release"] == "1.0.0"
    finally:
        hostile.close()
    assert cli_json(demo_node.root, "ping")["release"] == "1.0.0"
    after = demo_node.rss_kb()
    print(
        f"control flood: {sent / MB:.1f} MB taken of 200 MB; RSS before {before} kB, "
        f"during {during} kB, after {after} kB"
    )
    assert during - before < RSS_SLACK_KB
    assert after - before < RSS_SLACK_KB


@contextlib.contextmanager
def own_descriptors(count: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count)), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def answer_of(sock: socket.socket) -> str:
    """``"200"``/``"503"`` from one request on ``sock``, or ``"closed"`` if it was closed."""
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: idle\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                return "closed"
            head += data
    except (ConnectionResetError, BrokenPipeError):
        return "closed"
    return head.split(b" ", 2)[1].decode()


def fresh_answer(port: int) -> str:
    """``answer_of`` on a new connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return answer_of(sock)


@pytest.mark.parametrize("demo_node", [1024], indirect=True)
def test_out_of_descriptors_http_is_capped_and_the_operator_still_gets_in(
    demo_node: NodeProcess,
) -> None:
    port = demo_node.port
    cap = 1024 - DESCRIPTOR_RESERVE
    idle_before = demo_node.descriptors()
    with own_descriptors(4096):
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(1100)]
        try:
            answers = [answer_of(sock) for sock in clients]
            served = [s for s, a in zip(clients, answers, strict=True) if a == "200"]
            refused = len(clients) - len(served)
            assert len(served) == cap, answers.count("200")
            assert set(answers) <= {"200", "503", "closed"}
            assert "503" in answers
            held = demo_node.descriptors()
            assert held < 1024
            # the operator gets in, and new HTTP clients get an answer, not a hang
            assert cli_json(demo_node.root, "ping")["release"] == "1.0.0"
            assert fresh_answer(port) in {"503", "closed"}  # at once, never a hang
            for sock in served[:10]:
                sock.close()
            # the slots come back once those connections have ended
            answers_after = []
            for _ in range(200):
                answers_after.append(fresh_answer(port))
                if answers_after[-1] == "200":
                    break
            assert answers_after[-1] == "200"
        finally:
            for sock in clients:
                sock.close()
    print(
        f"descriptors: node at {idle_before} idle, {held} with 1100 clients "
        f"({len(served)} served = cap {cap}, {refused} refused)"
    )


def test_sys_config_sets_the_node_wide_http_cap(demo_tree: Path) -> None:
    config = demo_tree / "sys.config"
    config.write_text(
        config.read_text().replace("[counter]", "[node.http]\nmax_connections = 2\n\n[counter]")
    )
    port = free_port()
    set_port(demo_tree, port)
    node = NodeProcess(demo_tree, ["run"], port).start()
    try:
        node.wait_for("release demo 1.0.0 booted")
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        assert [answer_of(sock) for sock in held] == ["200", "200"]
        assert get_health(port) == 503
        for sock in held:
            sock.close()
    finally:
        node.kill()
