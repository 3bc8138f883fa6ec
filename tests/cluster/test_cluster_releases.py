"""``server cluster releases``: every node's releases side by side, disagreements flagged.

The agreement rule is a pure function, tested on its own; then two demo nodes as real OS
processes, distributed on the test's own EPMD, one of them upgraded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server.cluster._view import NodeReleases, _agreement
from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests._support.erl_nodes import running_epmd
from tests._support.nodes import NodeProcess, cli, cli_json, copy_demo_tree, free_port, set_port

if TYPE_CHECKING:
    from pathlib import Path


def _node(name: str, *rows: tuple[str, str]) -> NodeReleases:
    return NodeReleases(
        name, tuple({"name": "demo", "vsn": v, "status": s, "applications": []} for v, s in rows)
    )


def test_nodes_that_run_or_boot_another_release_disagree() -> None:
    same = _agreement((_node("a", ("1.0.0", "permanent")), _node("b", ("1.0.0", "permanent"))))
    assert (same.running, same.permanent, same.disagreeing) == ("1.0.0", "1.0.0", ())
    upgraded = _agreement(
        (
            _node("a", ("1.0.0", "permanent")),
            _node("b", ("1.0.0", "permanent")),
            _node("c", ("1.0.0", "permanent"), ("1.1.0", "current")),
        )
    )
    assert (upgraded.running, upgraded.disagreeing) == ("1.0.0", ("c",))
    assert upgraded.nodes[2].running == "1.1.0"
    assert upgraded.nodes[2].permanent == "1.0.0"
    lost = _agreement((_node("a", ("1.0.0", "permanent")), NodeReleases("b", error="noconnection")))
    assert lost.disagreeing == ("b",)
    assert lost.to_json()["nodes"][1]["error"] == "noconnection"


def _root(tmp_path: Path, alive: str, epmd_port: int) -> Path:
    root = copy_demo_tree(tmp_path / alive)
    set_port(root, free_port())
    config = root / "sys.config"
    config.write_text(
        config.read_text()
        + f"""
[node.dist]
name = "{alive}@localhost"
cookie = "cluster-test-cookie"
epmd_port = {epmd_port}
start_epmd = false
"""
    )
    return root


@pytest.mark.node
@pytest.mark.timeout(120)
async def test_server_cluster_releases_shows_every_node_and_flags_the_one_that_differs(
    tmp_path: Path,
) -> None:
    async with running_epmd() as epmd:
        roots = [_root(tmp_path, alive, epmd.port) for alive in ("a", "b")]
        packages = tmp_path / "packages"
        build_package(SourceTree(roots[1]), "demo", "1.1.0", packages)
        nodes = [NodeProcess(root, ["run"], 0).start() for root in roots]
        try:
            for node in nodes:
                node.wait_for("release demo 1.0.0 booted")
            a, b = roots
            assert cli_json(a, "connect", "b@localhost") == {
                "node": "b@localhost",
                "connected": True,
            }
            view = cli_json(a, "cluster", "releases")
            assert [entry["node"] for entry in view["nodes"]] == ["a@localhost", "b@localhost"]
            assert (view["running"], view["permanent"], view["disagreeing"]) == (
                "1.0.0",
                "1.0.0",
                [],
            )
            # b installs 1.1.0 without making it permanent: it runs another release
            cli(b, "unpack", str(packages / "demo-1.1.0.tar.gz"))
            cli(b, "install", "1.1.0")
            view = cli_json(a, "cluster", "releases")
            (b_entry,) = [entry for entry in view["nodes"] if entry["node"] == "b@localhost"]
            assert (b_entry["running"], b_entry["permanent"]) == ("1.1.0", "1.0.0")
            assert view["disagreeing"] == ["b@localhost"]
            shown = cli(a, "cluster", "releases").stdout
            assert "b@localhost (!)" in shown
            assert "disagree" in shown
            refused = cli(a, "cluster", "frobnicate", check=False)
            assert refused.returncode != 0
            assert "takes releases, upgrade or reconcile" in refused.stderr
        finally:
            for node in nodes:
                node.terminate()
