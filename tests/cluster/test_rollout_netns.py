"""The cluster rollout on three nodes, each in a network namespace of its own (issue 14).

Each node is the demo in its own namespace (``_netns_cluster``; under its heart where the
test kills it), serving HTTP on the namespace's address; the test process drives them from
the root namespace with ``server cluster upgrade --json`` on the first node (n0), and loads
them through the bridge with keep-alive clients that check every answer is the previous
value plus one. The scenarios:

- a rollout under load through every node: no failed request, every node permanent on
  1.1.0, every counter kept;
- a canary whose health check fails (404): only the canary was installed, it is rolled
  back; the others were never touched;
- a failure in the second batch (n2 killed in its own install): the canary and the other
  node of the batch are rolled back, states intact; n2's heart brings it back on 1.0.0;
- a partition: n2, the canary, is cut off from the others while in its health check (a
  check the test holds: ``_health_gate``); the rollout halts and names it; after healing,
  ``server cluster releases`` shows it on 1.1.0 and ``server cluster reconcile`` installs
  it back to the cluster's permanent 1.0.0;
- a node killed at the confirm round, before anything is permanent: the others are rolled
  back, the rollout reports it lost at "confirm", and it boots 1.0.0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests._support.nodes import IncrementingClient, copy_demo_tree
from tests.cluster import _health_gate
from tests.cluster._netns_cluster import (
    HEALTH_GATE,
    ClusterNode,
    HealthGate,
    NetnsCluster,
    load,
    more_answers,
    netns_cluster,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from server.kernel import Node

pytestmark = [pytest.mark.node, pytest.mark.slow, pytest.mark.timeout(120)]  # ~55 s: CI


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's 1.1.0 package (and its ``.sha256``), built once for the module."""
    tree = copy_demo_tree(tmp_path_factory.mktemp("tree"))
    out = tmp_path_factory.mktemp("packages")
    return build_package(SourceTree(tree), "demo", "1.1.0", out).path


@pytest.fixture
def cluster(tmp_path: Path, package: Path) -> Iterator[NetnsCluster]:
    """Three demo nodes in namespaces, connected; none under a heart."""
    with netns_cluster(tmp_path, package) as running:
        yield running


@pytest.fixture
def cluster_with_a_heart(tmp_path: Path, package: Path) -> Iterator[NetnsCluster]:
    """``cluster``, with n2 under its heart: killed, it comes back."""
    with netns_cluster(tmp_path, package, hearts=("n2",)) as running:
        yield running


@pytest.fixture
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HealthGate]:
    """The test's end of the gated health check (a short path: Unix sockets' limit)."""
    listening = HealthGate(tmp_path_factory.mktemp("gate") / "health.sock")
    try:
        yield listening
    finally:
        listening.close()


@pytest.fixture
def gated_cluster(tmp_path: Path, package: Path, gate: HealthGate) -> Iterator[NetnsCluster]:
    """``cluster``, with n2's health check held until the test answers it."""
    with netns_cluster(tmp_path, package, env={"n2": {HEALTH_GATE: str(gate.path)}}) as running:
        yield running


def test_three_nodes_in_namespaces_serve_load_and_list_their_releases(
    cluster: NetnsCluster,
) -> None:
    names = [node.name for node in cluster.nodes]
    addresses = [node.address for node in cluster.nodes]
    assert len(set(addresses)) == 3
    assert all(name.endswith(f"@{address}") for name, address in zip(names, addresses, strict=True))
    for node in cluster.nodes:
        peers = {row["node"]: row["state"] for row in node.control("nodes")["connections"]}
        assert peers == {other: "up" for other in names if other != node.name}
    with load(cluster.nodes, "harness") as clients:
        view = cluster.nodes[0].cli_json("cluster", "releases")
    assert [client.failures for client in clients] == [[], [], []]
    assert all(client.versions == {"1.0.0"} for client in clients)
    assert [entry["node"] for entry in view["nodes"]] == names
    assert (view["running"], view["permanent"], view["disagreeing"]) == ("1.0.0", "1.0.0", [])
    for entry in view["nodes"]:
        assert (entry["running"], entry["permanent"], entry["error"]) == ("1.0.0", "1.0.0", None)
    # each node counts its own key: the loads went to three different nodes
    assert [node.count("harness") for node in cluster.nodes] == [c.ok for c in clients]


async def test_the_gated_health_check_returns_what_the_test_answers(
    node: Node, gate: HealthGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def check() -> object:
        return await _health_gate.hold()

    assert await node.run_process(check) is True  # no gate in the environment: healthy
    monkeypatch.setenv(HEALTH_GATE, str(gate.path))
    results: list[object] = []

    async def run_check() -> None:
        results.append(await node.run_process(check))

    for healthy in (True, False):
        async with anyio.create_task_group() as group:
            group.start_soon(run_check)
            assert await anyio.to_thread.run_sync(gate.wait_called) == "nonode@nohost"
            gate.answer(healthy)
    assert results == [True, False]


# -- the rollout ---------------------------------------------------------------------------

HEALTH = "http://127.0.0.1:8080/health"
GATED = "tests.cluster._health_gate:hold"


def _upgrade_argv(cluster: NetnsCluster, *options: str) -> list[str]:
    driver = cluster.nodes[0]
    return [
        sys.executable, "-m", "server", "cluster", "upgrade", str(cluster.package),
        *options, "--json", "--root", str(driver.root),
    ]  # fmt: skip


def _upgrade(cluster: NetnsCluster, *options: str) -> tuple[int, dict[str, Any]]:
    """``server cluster upgrade <package> <options> --json`` run on the first node: its exit
    status and its report."""
    done = subprocess.run(
        _upgrade_argv(cluster, *options), capture_output=True, text=True, timeout=100
    )
    return _report(done.returncode, done.stdout, done.stderr)


def _report(code: int, stdout: str, stderr: str) -> tuple[int, dict[str, Any]]:
    assert code in (0, 1), f"exit {code}:\n{stdout}\n{stderr}"
    try:
        report: dict[str, Any] = json.loads(stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"no JSON report (exit {code}):\n{stdout}\n{stderr}") from None
    print(json.dumps(report, indent=1))  # shown when the test fails
    return code, report


def _rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["node"]: row for row in report["nodes"]}


def _no_failures(clients: list[IncrementingClient]) -> None:
    assert [client.failures for client in clients] == [[] for _ in clients]


def _counts_kept(nodes: list[ClusterNode], clients: list[IncrementingClient], key: str) -> None:
    """Each node's counter is the number of good answers its client got: no value lost."""
    assert [node.count(key) for node in nodes] == [client.ok for client in clients]


def test_a_rollout_under_load_makes_every_node_permanent_without_a_failed_request(
    cluster: NetnsCluster,
) -> None:
    with load(cluster.nodes, "rollout") as clients:
        code, report = _upgrade(cluster, "--health", HEALTH)
        more_answers(clients, 5)  # from the new release, on the same connections
    _no_failures(clients)
    assert code == 0
    assert (report["vsn"], report["outcome"], report["failure"]) == ("1.1.0", "permanent", None)
    rows = _rows(report)
    assert set(rows) == {node.name for node in cluster.nodes}
    for row in rows.values():
        assert (row["before"], row["after"], row["state"]) == ("1.0.0", "1.1.0", "permanent")
        assert {"install", "health", "confirm", "permanent"} <= set(row["steps"])
    for node, client in zip(cluster.nodes, clients, strict=True):
        assert node.running() == "1.1.0"
        assert node.statuses() == {"1.0.0": "old", "1.1.0": "permanent"}
        assert client.versions == {"1.0.0", "1.1.0"}  # one connection saw both
    _counts_kept(cluster.nodes, clients, "rollout")
    view = cluster.releases()
    assert (view["running"], view["permanent"], view["disagreeing"]) == ("1.1.0", "1.1.0", [])


def test_a_canary_failing_its_health_check_is_rolled_back_and_nothing_else_is_touched(
    cluster: NetnsCluster,
) -> None:
    n0, n1, n2 = cluster.nodes
    with load(cluster.nodes, "canary") as clients:
        code, report = _upgrade(cluster, "--health", "http://127.0.0.1:8080/no-such-path")
    _no_failures(clients)
    assert code == 1
    assert report["outcome"] == "halted"
    # the default canary: the first node, by name, that does not drive the rollout
    assert (report["failure"]["node"], report["failure"]["step"]) == (n1.name, "health")
    assert "404" in report["failure"]["error"]
    rows = _rows(report)
    assert (rows[n1.name]["after"], rows[n1.name]["state"]) == ("1.0.0", "rolled_back")
    assert "rollback" in rows[n1.name]["steps"]
    for other in (n0, n2):
        row = rows[other.name]
        assert (row["after"], row["state"]) == ("1.0.0", "untouched")
        assert "install" not in row["steps"]
    for node in cluster.nodes:
        assert node.running() == "1.0.0"
        assert node.statuses()["1.0.0"] == "permanent"
    _counts_kept(cluster.nodes, clients, "canary")


def test_a_failure_in_the_second_batch_rolls_every_upgraded_node_back(
    cluster_with_a_heart: NetnsCluster,
) -> None:
    cluster = cluster_with_a_heart
    n0, n1, n2 = cluster.nodes
    # batches: the canary n1, then n2 and n0 (the driving node goes last) installed at once;
    # n2 dies in its own install, after its point of no return
    n2.arm("after_step:0")
    with load([n0, n1], "batch") as clients:
        code, report = _upgrade(cluster, "--canary", n1.name, "--batch", "2", "--health", HEALTH)
    _no_failures(clients)
    assert code == 1
    assert report["batches"] == [[n1.name], [n2.name, n0.name]]
    assert report["outcome"] == "halted"
    assert (report["failure"]["node"], report["failure"]["step"]) == (n2.name, "install")
    assert "noconnection" in report["failure"]["error"]
    rows = _rows(report)
    assert rows[n1.name]["steps"] == ["copy", "unpack", "check", "install", "health", "rollback"]
    assert rows[n0.name]["steps"] == ["copy", "unpack", "check", "install", "rollback"]
    for upgraded in (n1, n0):
        assert rows[upgraded.name]["state"] == "rolled_back"
        assert rows[upgraded.name]["after"] == "1.0.0"
        assert upgraded.running() == "1.0.0"
    assert rows[n2.name]["state"] == "lost"
    # lost, it is not rolled back by the rollout: its heart restarts it on its permanent
    # release (whether the report's last look found it back yet is a race: None or 1.0.0)
    assert rows[n2.name]["after"] in (None, "1.0.0")
    n2.process.wait_for("fault injection: killing the node at after_step:0")
    n2.wait_booted()
    assert n2.running() == "1.0.0"
    assert n2.statuses() == {"1.0.0": "permanent", "1.1.0": "unpacked"}
    for node in (n0, n1):  # installed, then left: old
        assert node.statuses() == {"1.0.0": "permanent", "1.1.0": "old"}
    _counts_kept([n0, n1], clients, "batch")


def test_a_partition_during_the_rollout_halts_it_and_reconcile_repairs_after_healing(
    gate: HealthGate, gated_cluster: NetnsCluster
) -> None:
    cluster = gated_cluster
    n0, n1, n2 = cluster.nodes
    rollout = subprocess.Popen(
        _upgrade_argv(cluster, "--canary", n2.name, "--health", GATED),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # n2, the canary, runs 1.1.0 and is in its health check: cut it off from the others
        assert gate.wait_called() == n2.name
        for other in (n0, n1):
            cluster.net.cut(n2.space, other.space)
        stdout, stderr = rollout.communicate(timeout=60)
    finally:
        if rollout.poll() is None:
            rollout.kill()
            rollout.communicate()
    # (n2's check itself times out on n2 after a while; its answer cannot cross the cut)
    code, report = _report(rollout.returncode, stdout, stderr)
    assert code == 1
    assert report["outcome"] == "halted"
    assert (report["failure"]["node"], report["failure"]["step"]) == (n2.name, "health")
    assert "noconnection" in report["failure"]["error"]
    rows = _rows(report)
    # still cut off at the rollout's last look: nothing is known of what it runs
    assert (rows[n2.name]["state"], rows[n2.name]["after"]) == ("lost", None)
    assert rows[n2.name]["steps"] == ["copy", "unpack", "check", "install", "health"]
    for other in (n0, n1):
        assert (rows[other.name]["state"], rows[other.name]["after"]) == ("untouched", "1.0.0")
    assert n2.running() == "1.1.0"  # its control socket is still reachable: not permanent
    assert n2.statuses()["1.0.0"] == "permanent"

    for other in (n0, n1):
        cluster.net.heal(n2.space, other.space)
    cluster.connect(n0, n2)
    cluster.connect(n1, n2)
    view = n0.cli_json("cluster", "releases")
    (entry,) = [entry for entry in view["nodes"] if entry["node"] == n2.name]
    assert (entry["running"], entry["permanent"]) == ("1.1.0", "1.0.0")
    assert (view["running"], view["permanent"], view["disagreeing"]) == (
        "1.0.0",
        "1.0.0",
        [n2.name],
    )
    repaired = n0.cli_json("cluster", "reconcile")
    assert repaired["permanent"] == "1.0.0"
    actions = {row["node"]: (row["action"], row["error"]) for row in repaired["nodes"]}
    assert actions == {
        n0.name: ("none", None),
        n1.name: ("none", None),
        n2.name: ("installed", None),
    }
    assert n2.running() == "1.0.0"
    view = cluster.releases()
    assert (view["running"], view["permanent"], view["disagreeing"]) == ("1.0.0", "1.0.0", [])


def test_a_node_killed_before_the_permanent_step_boots_its_old_release_and_is_reported(
    cluster_with_a_heart: NetnsCluster,
) -> None:
    cluster = cluster_with_a_heart
    n0, n1, n2 = cluster.nodes
    n2.arm("rollout_confirm:0")  # killed when the confirm round reaches it
    with load([n0, n1], "confirm") as clients:
        code, report = _upgrade(cluster, "--health", HEALTH)
    _no_failures(clients)
    assert code == 1
    assert report["outcome"] == "halted"
    assert (report["failure"]["node"], report["failure"]["step"]) == (n2.name, "confirm")
    assert "noconnection" in report["failure"]["error"]
    rows = _rows(report)
    assert rows[n2.name]["state"] == "lost"
    assert rows[n2.name]["steps"][-3:] == ["install", "health", "confirm"]
    assert rows[n2.name]["after"] in (None, "1.0.0")  # back already at the last look?
    for other in (n0, n1):
        row = rows[other.name]
        assert (row["after"], row["state"]) == ("1.0.0", "rolled_back")
        assert "rollback" in row["steps"]
        assert other.running() == "1.0.0"
    n2.process.wait_for("fault injection: killing the node at rollout_confirm:0")
    n2.wait_booted()
    assert n2.running() == "1.0.0"
    assert n2.statuses() == {"1.0.0": "permanent", "1.1.0": "unpacked"}
    _counts_kept([n0, n1], clients, "confirm")
