"""Three demo nodes, each under its heart in a network namespace of its own, one cluster.

``netns_cluster(tmp_path, packages)`` builds, for the test that enters it:

- three namespaces (``tests._support.netns``), each running its own ``epmd`` on the default
  port (each namespace has its own ports; every epmd is stopped by its pid);
- in each, a copy of the demo (``n<i>``, named ``n<i>@10.77.<k>.<11+i>`` with long names,
  visible, ``net_ticktime`` 2 s) run by ``server run``, or by ``server start --foreground``
  for the nodes named in ``hearts``, so that such a node, killed, comes back on its
  permanent release (a heart is one more Python process to start: only where a test kills
  a node). Its HTTP listener is on port ``HTTP_PORT`` of
  every address of its namespace: the test process reaches it on the namespace's address
  through the bridge, the node itself on ``127.0.0.1`` (one ``--health`` URL fits every node);
- the three nodes connected to each other (``server connect`` on their control sockets,
  which are Unix sockets in the file system, so the test process reaches them directly).

Every node may be killed at any fault point (``SERVER_FAULT_INJECTION`` lists them all); a
test arms one on one node with ``ClusterNode.arm``. A node may also hold at a health check
(``HEALTH_GATE``): the test then decides when the check answers (``HealthGate``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from server.release import _faults
from tests._support.erl_nodes import require_erl
from tests._support.netns import Netns, Space, network_namespaces
from tests._support.nodes import (
    REPO,
    IncrementingClient,
    NodeProcess,
    cli,
    cli_json,
    copy_demo_tree,
)
from tests.cluster._health_gate import GATE as HEALTH_GATE

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = [
    "COOKIE",
    "HEALTH_GATE",
    "HTTP_PORT",
    "TICK",
    "ClusterNode",
    "HealthGate",
    "NetnsCluster",
    "load",
    "more_answers",
    "netns_cluster",
]

TICK = 2.0
COOKIE = "rollout-netns-cookie"
#: the counter's HTTP port, the same in every namespace
HTTP_PORT = 8080
EPMD_PORT = 4369
LISTENING = "control: listening"
#: every point a node of these tests may be killed at (the marker picks one, once)
FAULTS_ALLOWED = ",".join(dict.fromkeys((*_faults.POINTS, "rollout_confirm")))


@dataclass
class NamespacedNode(NodeProcess):
    """A ``NodeProcess`` run inside a network namespace (``ip netns exec``)."""

    prefix: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        return [*self.prefix, *super().command()]


@dataclass
class ClusterNode:
    """One node of the cluster: its namespace, root, process (its heart, or the node) and
    name."""

    alias: str
    name: str
    space: Space
    root: Path
    process: NamespacedNode
    heart: bool
    boots: int = 0

    @property
    def address(self) -> str:
        return self.space.address

    def start(self) -> None:
        self.process.start()
        self.wait_booted()

    def wait_booted(self, timeout: float = 30.0) -> None:
        """Wait until the next boot (the first, or the heart's next restart) serves."""
        self.boots += 1
        self.process.wait_for(LISTENING, timeout, count=self.boots)

    def control(self, command: str, timeout: float = 60.0, **args: str) -> Any:
        return self.process.control(command, timeout, **args)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``server <args> --root <root>``, run in the root namespace (control socket)."""
        return cli(self.root, *args, check=check)

    def cli_json(self, *args: str) -> Any:
        return cli_json(self.root, *args)

    def running(self) -> str:
        """The release this node runs, as its control socket says."""
        vsn: str = self.control("ping")["release"]
        return vsn

    def statuses(self) -> dict[str, str]:
        return {row["vsn"]: row["status"] for row in self.control("releases")}

    def request(self, method: str, path: str) -> tuple[int, Any]:
        """One HTTP request through the bridge, on a fresh connection."""
        conn = http.client.HTTPConnection(self.address, HTTP_PORT, timeout=10)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def count(self, key: str) -> int:
        """This node's count of ``key`` (``load`` gives each node a key of its own, which only
        that node increments, so the cluster-wide sum ``/count`` answers is this node's)."""
        status, body = self.request("GET", f"/count/{own_key(key, self)}")
        assert status == 200, body
        value: int = body["value"]
        return value

    def arm(self, point: str) -> None:
        """Kill this node at ``point`` (``<name>:<index>``), once."""
        (self.root / _faults.MARKER).write_text(point + "\n")

    def node_pid(self) -> int:
        """The pid of the node the heart runs now."""
        assert self.heart, f"{self.name} runs without a heart"
        return int((self.root / "run" / "node.pid").read_text())

    def stop(self) -> None:
        """Stop the node (a heart stops its node), then make sure the node is gone too."""
        node_pid = None
        if self.heart:
            with contextlib.suppress(OSError, ValueError):
                node_pid = self.node_pid()
        if self.process.process.poll() is None:
            self.process.stop(signal.SIGTERM, timeout=30)
        self.process.kill()
        if node_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node_pid, signal.SIGKILL)  # only if the heart left it behind


@dataclass
class NetnsCluster:
    """The namespaces, the nodes in them (``n0``, ``n1``, ``n2``) and the 1.1.0 package."""

    net: Netns
    nodes: list[ClusterNode]
    package: Path

    def __getitem__(self, alias: str) -> ClusterNode:
        (node,) = [node for node in self.nodes if node.alias == alias]
        return node

    def by_name(self, name: str) -> ClusterNode:
        (node,) = [node for node in self.nodes if node.name == name]
        return node

    def connect(self, here: ClusterNode, there: ClusterNode) -> None:
        answer = here.control("connect", node=there.name)
        assert answer == {"node": there.name, "connected": True}, answer

    def connect_all(self) -> None:
        """Every node connected to every other (each pair once)."""
        for i, here in enumerate(self.nodes):
            for there in self.nodes[i + 1 :]:
                self.connect(here, there)

    def releases(self, via: ClusterNode | None = None) -> Any:
        """What ``server cluster releases --json`` shows on ``via`` (default: the first
        node), asked on its control socket (the request the command sends)."""
        return (via or self.nodes[0]).control("cluster", action="releases")


def _dist_table(name: str, address: str) -> str:
    return f"""
[node.dist]
name = "{name}"
longnames = true
cookie = "{COOKIE}"
hidden = false
net_ticktime = {TICK}
listen_host = "{address}"
epmd_host = "{address}"
epmd_port = {EPMD_PORT}
start_epmd = false
"""


def _write_config(root: Path, name: str, address: str) -> None:
    config = root / "sys.config"
    text = config.read_text()
    # every crash in a test is a restart: the heart must not give up
    text = text.replace("[node]\n", "[node]\nheart_max_restarts = 100\n", 1)
    text = text.replace("port = 8080", f'port = {HTTP_PORT}\nhost = "0.0.0.0"')
    config.write_text(text + _dist_table(name, address))


def _epmd_answers(space: Space, process: subprocess.Popen[Any]) -> None:
    """Poll (bounded, backing off) until the namespace's epmd accepts a connection."""
    delay = 0.005
    for _ in range(40):
        try:
            socket.create_connection((space.address, EPMD_PORT), timeout=1.0).close()
            return
        except OSError:
            if process.poll() is not None:
                raise AssertionError(f"epmd in {space.name} ended") from None
            time.sleep(delay)  # polling a fact: does it accept connections yet?
            delay = min(delay * 2, 0.25)
    raise AssertionError(f"epmd in {space.name} did not answer")


def _start_epmd(net: Netns, space: Space) -> None:
    argv = ["epmd", "-port", str(EPMD_PORT), "-address", space.address]
    epmd = net.popen(
        space,
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _epmd_answers(space, epmd)


def _node(net: Netns, space: Space, root: Path, env: dict[str, str], heart: bool) -> ClusterNode:
    alias = f"n{space.index}"
    name = f"{alias}@{space.address}"
    copy_demo_tree(root)
    _write_config(root, name, space.address)
    process = NamespacedNode(
        root,
        ["start", "--foreground"] if heart else ["run"],
        HTTP_PORT,
        env={"PYTHONPATH": str(REPO), _faults.ENV: FAULTS_ALLOWED, **env},
        prefix=net.exec_argv(space, []),
    )
    return ClusterNode(alias, name, space, root, process, heart)


@contextmanager
def netns_cluster(
    tmp_path: Path,
    package: Path,
    *,
    count: int = 3,
    env: dict[str, dict[str, str]] | None = None,
    hearts: tuple[str, ...] = (),
) -> Iterator[NetnsCluster]:
    """``count`` booted, connected demo nodes in namespaces of their own; all stopped, and
    the namespaces removed, at the end. ``env`` adds environment variables per alias;
    ``hearts`` names the aliases run under a heart."""
    require_erl()
    with network_namespaces(count) as net:
        for space in net.spaces:
            _start_epmd(net, space)
        aliases = [f"n{space.index}" for space in net.spaces]
        unknown = set(hearts) - set(aliases)
        assert not unknown, f"no such nodes: {sorted(unknown)}"
        nodes = [
            _node(net, space, tmp_path / alias, (env or {}).get(alias, {}), alias in hearts)
            for alias, space in zip(aliases, net.spaces, strict=True)
        ]
        for node in nodes:
            net.defer(node.stop)
            node.process.start()
        for node in nodes:
            node.wait_booted()
        cluster = NetnsCluster(net, nodes, package)
        try:
            cluster.connect_all()
            yield cluster
        finally:
            for node in nodes:  # shown when the test fails
                print(f"--- node {node.name}:\n{node.process.tail(80)}")


@dataclass
class HealthGate:
    """A Unix socket the gated health check (``_health_gate.hold``) connects to.

    ``wait_called()`` returns once a node's check connected (its node's name); ``answer``
    tells it what to return. Stopped by ``close()``.
    """

    path: Path
    _listener: socket.socket = field(init=False)
    _calls: list[socket.socket] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(4)
        self._listener.settimeout(60.0)

    def wait_called(self) -> str:
        """Block until a health check reports in; the name of its node."""
        conn, _ = self._listener.accept()
        conn.settimeout(60.0)
        self._calls.append(conn)
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(256)
            if not chunk:
                raise AssertionError("the health check hung up before naming its node")
            data += chunk
        return data.decode().strip()

    def answer(self, healthy: bool) -> None:
        """Answer the latest check that reported in."""
        self._calls[-1].sendall(b"ok\n" if healthy else b"no\n")

    def close(self) -> None:
        for conn in self._calls:
            conn.close()
        self._listener.close()
        self.path.unlink(missing_ok=True)


def own_key(key: str, node: ClusterNode) -> str:
    """The key ``load`` increments on ``node`` for ``key``."""
    return f"{key}.{node.name.partition('@')[0]}"


@contextmanager
def load(nodes: list[ClusterNode], key: str) -> Iterator[list[IncrementingClient]]:
    """One keep-alive client per node incrementing ``key`` through the bridge, warmed up;
    stopped (and joined) at the end."""
    clients = [
        IncrementingClient(HTTP_PORT, own_key(key, node), host=node.address) for node in nodes
    ]
    for client in clients:
        client.start()
    try:
        for node, client in zip(nodes, clients, strict=True):
            assert client.going.wait(30), f"no load on {node.name}: {client.failures[:3]}"
        yield clients
    finally:
        for client in clients:
            client.stopping.set()
        for client in clients:
            client.join(timeout=30)


def more_answers(clients: list[IncrementingClient], count: int) -> None:
    """Wait until each client got ``count`` more good answers than it has now."""
    totals = [client.ok + count for client in clients]
    for client, total in zip(clients, totals, strict=True):
        assert client.wait_for_ok(total), f"no more answers: {client.failures[:3]}"
