"""The cluster rollout on three nodes, each in a network namespace of its own (issue 14).

Each node is the demo under its heart in its own namespace (``_netns_cluster``), serving
HTTP on the namespace's address; the test process drives them from the root namespace
through their control sockets and loads them through the bridge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests._support.nodes import copy_demo_tree
from tests.cluster._netns_cluster import NetnsCluster, load, netns_cluster

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.node, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's 1.1.0 package (and its ``.sha256``), built once for the module."""
    tree = copy_demo_tree(tmp_path_factory.mktemp("tree"))
    out = tmp_path_factory.mktemp("packages")
    return build_package(SourceTree(tree), "demo", "1.1.0", out).path


@pytest.fixture
def cluster(tmp_path: Path, package: Path) -> Iterator[NetnsCluster]:
    with netns_cluster(tmp_path, package) as running:
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
        view = cluster.releases()
    assert [client.failures for client in clients] == [[], [], []]
    assert all(client.versions == {"1.0.0"} for client in clients)
    assert [entry["node"] for entry in view["nodes"]] == names
    assert (view["running"], view["permanent"], view["disagreeing"]) == ("1.0.0", "1.0.0", [])
    for entry in view["nodes"]:
        assert (entry["running"], entry["permanent"], entry["error"]) == ("1.0.0", "1.0.0", None)
    # each node counts its own key: the loads went to three different nodes
    assert [node.count("harness") for node in cluster.nodes] == [c.ok for c in clients]
