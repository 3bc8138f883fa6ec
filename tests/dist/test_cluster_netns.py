"""Three Python nodes, each an OS process in its own network namespace, form one cluster.

Each node (the demo release, ``counter_store`` inside) runs in a namespace of its own
(``tests._support.netns``) with its own ``epmd``, listening on the namespace's address with
a long name (``a@10.77.k.11``) and ``net_ticktime`` 2 s. The test process is a fourth,
hidden node on the bridge; it drives the others through ``rpc`` to
``tests.dist._cluster_probe``, whose processes report to the test's process by message.
Cutting the link between two namespaces (a blackhole route both ways) is a network
partition: only those two lose each other, after the tick time, with ``noconnection`` on
their links, monitors and calls in flight; the rest stays up, and after healing the next
call reconnects.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from server import dist, kernel
from server.kernel import Node, Pid
from server.spec import DistSettings
from tests._support.erl_nodes import require_erl
from tests._support.netns import Netns, Space, network_namespaces
from tests._support.nodes import REPO, NodeProcess, cli_json, copy_demo_tree, free_port
from tests._support.waits import drain, recv, step
from tests.dist import _cluster_probe as probe
from tests.dist.conftest import COOKIE, distributed

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.node, pytest.mark.timeout(120)]

TICK = 2.0
NAMES = ("a", "b", "c")
#: the process the watchers link to and monitor (it traps exits: a link does not kill it)
TARGET = "probe_target"
#: ``link <a@10.77.1.11.20.0>`` -> ``link a@10.77.1.11``
_PID_NUMBERS = re.compile(r"<([^<>]+)\.\d+\.\d+>")


@dataclass
class NamespacedNode(NodeProcess):
    """A ``NodeProcess`` run inside a network namespace (``ip netns exec``)."""

    prefix: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        return [*self.prefix, *super().command()]


@dataclass
class Cluster:
    net: Netns
    epmd_port: int
    nodes: dict[str, NamespacedNode]
    names: dict[str, str]

    @property
    def test_name(self) -> str:
        return f"t@{self.net.host_address}"

    def test_settings(self) -> DistSettings:
        host = self.net.host_address
        return DistSettings.model_validate(
            {
                "name": self.test_name,
                "longnames": True,
                "cookie": COOKIE,
                "net_ticktime": TICK,
                "listen_host": host,
                "epmd_host": host,
                "epmd_port": self.epmd_port,
                "start_epmd": False,
            }
        )

    async def report(self, alias: str) -> dict[str, Any]:
        """What ``nodes`` on the control socket of node ``alias`` says (off the loop)."""
        node = self.nodes[alias]
        answer: dict[str, Any] = await anyio.to_thread.run_sync(node.control, "nodes")
        return answer

    async def remote_of(self, alias: str, name: str) -> set[str]:
        """The cross-node links and monitors of process ``name`` on node ``alias`` (as
        ``server processes`` shows them), each with the other process's node only."""
        node = self.nodes[alias]
        rows = await anyio.to_thread.run_sync(node.control, "processes")
        (row,) = [row for row in rows if row["name"] == name]
        return {_PID_NUMBERS.sub(r"\1", entry) for entry in row["remote"]}

    async def peers_up(self, alias: str) -> set[str]:
        report = await self.report(alias)
        return {row["node"] for row in report["connections"] if row["state"] == "up"}


def _epmd_answers(host: str, port: int, process: subprocess.Popen[Any]) -> None:
    """Poll (bounded, backing off) until ``host:port`` accepts a connection."""
    delay = 0.005
    for _ in range(40):
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return
        except OSError:
            if process.poll() is not None:
                raise AssertionError(f"epmd on {host}:{port} ended") from None
            time.sleep(delay)  # polling a fact: does it accept connections yet?
            delay = min(delay * 2, 0.25)
    raise AssertionError(f"epmd did not answer on {host}:{port}")


def _free_port_on(host: str) -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind((host, 0))
        port: int = probe_socket.getsockname()[1]
        return port


def _epmd_argv(address: str, port: int) -> list[str]:
    return ["epmd", "-port", str(port), "-address", address, "-relaxed_command_check"]


def _dist_table(name: str, address: str, epmd_port: int) -> str:
    allow = ", ".join(f'"{entry}"' for entry in probe.ALLOW)
    return f"""
[node.dist]
name = "{name}"
longnames = true
cookie = "{COOKIE}"
hidden = false
net_ticktime = {TICK}
listen_host = "{address}"
epmd_host = "{address}"
epmd_port = {epmd_port}
start_epmd = false
rpc_allow = [{allow}]
"""


def _start_node(net: Netns, space: Space, alias: str, root: Path, epmd_port: int) -> NamespacedNode:
    copy_demo_tree(root)
    config = root / "sys.config"
    text = config.read_text().replace("port = 8080", f"port = {free_port()}")
    config.write_text(text + _dist_table(f"{alias}@{space.address}", space.address, epmd_port))
    node = NamespacedNode(
        root,
        ["run"],
        0,
        env={"PYTHONPATH": str(REPO)},
        prefix=net.exec_argv(space, []),
    )
    node.start()
    net.defer(node.kill)
    return node


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Three booted demo nodes in three namespaces, each with its own epmd."""
    require_erl()
    with network_namespaces(len(NAMES)) as net:
        port = _free_port_on(net.host_address)
        host_epmd = subprocess.Popen(
            _epmd_argv(net.host_address, port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def stop_host_epmd() -> None:
            host_epmd.terminate()
            host_epmd.wait(timeout=10)

        net.defer(stop_host_epmd)
        _epmd_answers(net.host_address, port, host_epmd)
        for space in net.spaces:
            epmd = net.popen(
                space,
                _epmd_argv(space.address, port),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _epmd_answers(space.address, port, epmd)
        nodes = {
            alias: _start_node(net, space, alias, tmp_path / alias, port)
            for alias, space in zip(NAMES, net.spaces, strict=True)
        }
        for node in nodes.values():
            node.wait_for("release demo 1.0.0 booted")
        names = {
            alias: f"{alias}@{space.address}"
            for alias, space in zip(NAMES, net.spaces, strict=True)
        }
        try:
            yield Cluster(net, port, nodes, names)
        finally:
            for alias, node in nodes.items():  # shown when the test fails
                print(f"--- node {alias}:\n{node.tail(60)}")


async def _rpc(node: str, function: str, *args: object) -> object:
    with step(f"rpc {function} on {node}"):
        return await dist.rpc_call(node, probe.MODULE, function, list(args))


async def _ping(node: str, other: str) -> None:
    assert await _rpc(node, "ping", other) is True, f"{node} cannot ping {other}"


async def _call(node: str, name: str, other: str, request: object) -> object:
    """``gen_server.call((name, other), request)`` made on ``node``; its reply."""
    caller = await _rpc(node, "call", name, other, request, kernel.self())
    assert isinstance(caller, Pid)
    message = await recv(
        lambda m: type(m) is tuple and len(m) >= 2 and m[1] is caller, step=f"call from {node}"
    )
    assert type(message) is tuple
    assert message[0] == "reply", message
    return message[2]


async def _watch(node: str, name: str, other: str) -> Pid:
    """A watcher on ``node`` of ``(name, other)``, set up."""
    watcher = await _rpc(node, "watch", name, other, kernel.self())
    assert isinstance(watcher, Pid)
    message = await recv(
        lambda m: type(m) is tuple and m[:2] == ("watching", watcher), step=f"watch on {node}"
    )
    assert type(message) is tuple
    assert kernel.node(message[2]) == other
    return watcher


async def _calls_at_once(*calls: tuple[str, str, str, object]) -> list[object]:
    """Each ``(node, name, other, request)`` call made at once, each from a process of its
    own here; their replies in order."""
    me = kernel.self()

    async def start(index: int, here: str, name: str, other: str, request: object) -> None:
        caller = await _rpc(here, "call", name, other, request, me)
        kernel.send(me, ("started", index, caller))

    for index, call in enumerate(calls):
        kernel.spawn(start, index, *call)
    callers: dict[int, Pid] = {}
    while len(callers) < len(calls):
        message = await recv(lambda m: type(m) is tuple and m[0] == "started", step="callers")
        assert type(message) is tuple
        callers[message[1]] = message[2]
    replies = []
    for index in range(len(calls)):
        message = await recv(_from(callers[index]), step=f"call {calls[index]}")
        assert type(message) is tuple
        assert message[0] == "reply", message
        replies.append(message[2])
    return replies


def _from(pid: Pid) -> Any:
    return lambda m: type(m) is tuple and len(m) >= 2 and m[1] is pid


async def test_three_nodes_in_namespaces_form_a_cluster(node: Node, cluster: Cluster) -> None:
    a, b, c = (cluster.names[alias] for alias in NAMES)

    async def body() -> None:
        async with distributed(cluster.test_settings()):
            for peer in (a, b, c):
                with step(f"ping {peer}"):
                    assert await dist.ping(peer) is True
            for here, there in ((a, b), (a, c), (b, c), (b, a), (c, a), (c, b)):
                await _ping(here, there)
            assert set(kernel.nodes("visible")) == {a, b, c}
            report = await anyio.to_thread.run_sync(cli_json, cluster.nodes["a"].root, "nodes")
            assert report["name"] == a
            assert report["mode"] == "visible"
            assert report["net_ticktime"] == TICK
            peers = {row["node"]: row for row in report["connections"]}
            assert set(peers) == {b, c, cluster.test_name}
            assert {row["state"] for row in peers.values()} == {"up"}
            assert peers[cluster.test_name]["hidden"] is True
            assert peers[b]["hidden"] is False
            for target in (b, c):
                one = await _call(a, "counter_store", target, ("incr", "k"))
                two = await _call(a, "counter_store", target, ("incr", "k"))
                assert (one, two) == ({"value": 1}, {"value": 2})
            assert await _call(b, "counter_store", c, ("total",)) == 2
            assert await _call(c, "counter_store", a, ("get", "k")) == {"value": 0}

    await node.run_process(body)


async def test_a_partition_fires_noconnection_and_the_cluster_reforms_after_healing(
    node: Node, cluster: Cluster
) -> None:
    a, b, c = (cluster.names[alias] for alias in NAMES)
    space = dict(zip(NAMES, cluster.net.spaces, strict=True))

    async def body() -> None:
        async with distributed(cluster.test_settings()):
            for here, there in ((a, b), (a, c), (b, c)):
                await _ping(here, there)
            for peer in (a, b, c):
                assert isinstance(await _rpc(peer, "target", TARGET), Pid)
            a_watches_b = await _watch(a, TARGET, b)
            b_watches_a = await _watch(b, TARGET, a)
            a_watches_c = await _watch(a, TARGET, c)
            c_watches_b = await _watch(c, TARGET, b)
            assert await cluster.remote_of("b", TARGET) == {f"link {a}", f"link {c}"}
            holder = await _rpc(b, "hold", "probe_hold", kernel.self())
            assert isinstance(holder, Pid)
            caller = await _rpc(a, "call", "probe_hold", b, ("question",), kernel.self(), 60.0)
            assert isinstance(caller, Pid)
            await recv(lambda m: m == ("held", holder), step="the call reached b")

            cluster.net.cut(space["a"], space["b"])
            started = anyio.current_time()
            seen: dict[str, set[tuple[object, ...]]] = {"a": set(), "b": set()}
            with step("noconnection on both sides of the cut", 2 * TICK + 2):
                for side, watcher in (("a", a_watches_b), ("b", b_watches_a)):
                    lost = b if side == "a" else a
                    expected = {
                        ("exit", "noconnection"),
                        ("down", "pid", "noconnection"),
                        ("down", "name", "noconnection"),
                        ("nodedown", lost),
                    }
                    while seen[side] != expected:
                        message = await kernel.receive(_from(watcher))
                        assert type(message) is tuple
                        fact = (message[0], *message[2:])
                        assert fact in expected, message
                        seen[side].add(fact)
                failed = await kernel.receive(_from(caller))
            waited = anyio.current_time() - started
            assert failed == ("call_failed", caller, "CalleeExited", "noconnection")
            assert TICK * 0.5 <= waited <= TICK * 1.25 + 1.5, waited

            # the rest of the cluster stays connected (the same connections: see the end)
            assert await cluster.peers_up("a") == {c, cluster.test_name}
            assert await cluster.peers_up("b") == {c, cluster.test_name}
            assert await cluster.peers_up("c") == {a, b, cluster.test_name}
            # the links across the cut are gone from `server processes`, the others remain
            assert await cluster.remote_of("b", TARGET) == {f"link {c}"}
            assert await cluster.remote_of("a", TARGET) == set()
            assert await _call(a, "counter_store", c, ("incr", "x")) == {"value": 1}
            assert await _call(b, "counter_store", c, ("incr", "x")) == {"value": 2}
            quiet = [m for m in drain() if _from(a_watches_c)(m) or _from(c_watches_b)(m)]
            assert quiet == []
            # while cut, a call from a to b fails at once (noconnection), nothing waits
            with step("a call across the cut fails"):
                caller = await _rpc(a, "call", "counter_store", b, ("incr", "k"), kernel.self())
                assert isinstance(caller, Pid)
                failed = await kernel.receive(_from(caller))
            assert failed == ("call_failed", caller, "CalleeExited", "noconnection")

            cluster.net.heal(space["a"], space["b"])
            # the next send reconnects: a and b call each other at once (both dial), and
            # both calls are answered over the one connection that wins
            assert await _calls_at_once(
                (a, "counter_store", b, ("incr", "k")), (b, "counter_store", a, ("incr", "k"))
            ) == [{"value": 1}, {"value": 1}]
            assert await _call(a, "counter_store", b, ("incr", "k")) == {"value": 2}
            assert await cluster.peers_up("a") == {b, c, cluster.test_name}
            assert await cluster.peers_up("b") == {a, c, cluster.test_name}
            connections_a = (await cluster.report("a"))["connections"]
            assert [row["node"] for row in connections_a].count(b) == 1
            await _watch(a, TARGET, b)
            assert [m for m in drain() if _from(a_watches_c)(m) or _from(c_watches_b)(m)] == []
            # c never lost a or b: each connected to it once
            c_log = cluster.nodes["c"].tail(100_000).splitlines()
            connects = {
                peer: sum(f"node {peer} connected" in line for line in c_log) for peer in (a, b)
            }
            assert connects == {a: 1, b: 1}

    await node.run_process(body)
