"""``server cluster upgrade`` and ``reconcile`` across three real demo nodes on loopback.

The pure parts first (the batch plan, the health check's syntax, the incoming file's
rules); then three demo nodes as OS processes on the test's own EPMD, connected, the
1.1.0 package only on the driving machine (so it is copied over the distribution): bad
inputs refused with nothing changed, a canary whose health check fails rolled back with the
others untouched, a rollout under load on every node with no failed request, and a
reconcile of a node upgraded by hand. The network-namespace scenarios (partition, a node
killed before the permanent step) are in ``test_rollout_netns.py``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from server import kernel
from server.cluster._health import parse_check, run_check
from server.cluster._rollout import DRIVER, driving, plan_batches
from server.cluster._transfer import PackageFiles, write_chunk
from server.control.client import request
from server.errors import HealthCheckFailed, RemoteError, RolloutError
from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests._support.erl_nodes import running_epmd
from tests._support.nodes import (
    IncrementingClient,
    NodeProcess,
    cli,
    cli_json,
    copy_demo_tree,
    free_port,
    http_json,
    set_port,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from server.kernel import Node

# -- pure ------------------------------------------------------------------------------------


def test_the_canary_goes_alone_then_batches_with_the_driving_node_last() -> None:
    nodes = ["c@h", "a@h", "b@h", "d@h"]
    assert plan_batches(nodes, "a@h", None, 1) == (("b@h",), ("c@h",), ("d@h",), ("a@h",))
    assert plan_batches(nodes, "a@h", "d@h", 2) == (("d@h",), ("b@h", "c@h"), ("a@h",))
    assert plan_batches(["a@h"], "a@h", None, 3) == (("a@h",),)
    with pytest.raises(RolloutError, match="canary x@h is not a node"):
        plan_batches(nodes, "a@h", "x@h", 1)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("https://127.0.0.1:1/x", "HTTPS"),
        ("http://127.0.0.1/health", "http://HOST:PORT/PATH"),
        ("http://127.0.0.1:99999/health", "http://HOST:PORT/PATH"),
        ("counter.web", "neither"),
        ("os.system; rm:x", "neither"),
    ],
)
def test_a_health_check_that_is_neither_a_url_nor_a_function_is_refused(
    text: str, why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        parse_check(text)


def test_a_health_status_outside_http_is_refused() -> None:
    with pytest.raises(ValueError, match="HTTP status"):
        parse_check("http://127.0.0.1:80/", 700)


async def test_a_function_check_passes_unless_it_returns_false_or_raises() -> None:
    assert "returned" in await run_check(parse_check("platform:python_version"))
    with pytest.raises(HealthCheckFailed, match="cannot be found"):
        await run_check(parse_check("no_such_module_here:check"))
    with pytest.raises(HealthCheckFailed, match="raised"):
        await run_check(parse_check("json:loads"))  # a TypeError: no argument


async def test_an_http_check_against_a_closed_port_fails_with_the_reason() -> None:
    with pytest.raises(HealthCheckFailed, match=r"GET http://127\.0\.0\.1"):
        await run_check(parse_check(f"http://127.0.0.1:{free_port()}/health"))


def test_an_incoming_package_is_written_in_order_under_a_package_name(tmp_path: Path) -> None:
    assert write_chunk(tmp_path, "demo-1.1.0.tar.gz", 0, b"abc") == 3
    assert write_chunk(tmp_path, "demo-1.1.0.tar.gz", 3, b"de") == 5
    with pytest.raises(RolloutError, match="at 9, but 5 bytes arrived"):
        write_chunk(tmp_path, "demo-1.1.0.tar.gz", 9, b"x")
    for name in ("../evil.tar.gz", "demo.zip", ".hidden.tar.gz"):
        with pytest.raises(RolloutError, match="refusing package file name"):
            write_chunk(tmp_path, name, 0, b"x")
    assert write_chunk(tmp_path, "demo-1.1.0.tar.gz", 0, b"z") == 1  # offset 0 starts afresh


async def test_one_rollout_or_reconcile_at_a_time_is_driven_from_a_node(node: Node) -> None:
    async def body() -> None:
        with driving():
            second = driving()
            with pytest.raises(RolloutError, match="driven from this node is running"):
                second.__enter__()
            assert kernel.whereis(DRIVER) == kernel.self()
        assert kernel.whereis(DRIVER) is None

    await node.run_process(body)


def test_a_package_without_its_checksum_is_refused_before_anything(tmp_path: Path) -> None:
    package = tmp_path / "demo-1.1.0.tar.gz"
    package.write_bytes(b"x")
    with pytest.raises(RolloutError, match=r"demo-1.1.0.tar.gz.sha256 does not exist"):
        PackageFiles.read(package)
    with pytest.raises(RolloutError, match="not a release package"):
        PackageFiles.read(tmp_path / "demo.zip")


# -- three real nodes --------------------------------------------------------------------------

NAMES = ("a", "b", "c")


def _root(tmp_path: Path, alive: str, epmd_port: int) -> tuple[Path, int]:
    root = copy_demo_tree(tmp_path / alive)
    port = free_port()
    set_port(root, port)
    config = root / "sys.config"
    config.write_text(
        config.read_text()
        + f"""
[node.dist]
name = "{alive}@localhost"
cookie = "rollout-test-cookie"
epmd_port = {epmd_port}
start_epmd = false
net_ticktime = 4
"""
    )
    return root, port


class Cluster:
    """Three demo nodes, connected, and the 1.1.0 package built outside their roots."""

    def __init__(self, tmp_path: Path, epmd_port: int) -> None:
        made = [_root(tmp_path, alive, epmd_port) for alive in NAMES]
        self.roots = {
            f"{alive}@localhost": root for alive, (root, _) in zip(NAMES, made, strict=True)
        }
        self.ports = {
            f"{alive}@localhost": port for alive, (_, port) in zip(NAMES, made, strict=True)
        }
        packages = tmp_path / "packages"
        self.package = build_package(SourceTree(made[0][0]), "demo", "1.1.0", packages).path
        self.nodes = [NodeProcess(root, ["run"], port).start() for root, port in made]

    @property
    def driver(self) -> Path:
        return self.roots["a@localhost"]

    def running(self) -> dict[str, tuple[str | None, str | None]]:
        view = cli_json(self.driver, "cluster", "releases")
        return {entry["node"]: (entry["running"], entry["permanent"]) for entry in view["nodes"]}

    def upgrade(self, *args: str) -> tuple[int, dict[str, Any]]:
        done = cli(self.driver, "cluster", "upgrade", *args, "--json", check=False)
        assert done.stdout, done.stderr
        return done.returncode, json.loads(done.stdout)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_epmd() as epmd:
        made = Cluster(tmp_path, epmd.port)
        try:
            for node in made.nodes:
                node.wait_for("release demo 1.0.0 booted")
            for other in ("b@localhost", "c@localhost"):
                assert cli_json(made.driver, "connect", other)["connected"] is True
            yield made
        finally:
            for node in made.nodes:
                node.terminate()


def _by_node(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["node"]: row for row in report["nodes"]}


@pytest.mark.node
@pytest.mark.timeout(180)
async def test_bad_rollouts_are_refused_in_one_line_and_nothing_changes(
    cluster: Cluster, tmp_path: Path
) -> None:
    before = cluster.running()
    lonely = tmp_path / "demo-9.9.9.tar.gz"
    lonely.write_bytes(b"not a package")
    package = str(cluster.package)
    cases: list[tuple[dict[str, str], str]] = [
        ({"action": "upgrade"}, "give the package"),
        ({"action": "upgrade", "package": str(lonely)}, "demo-9.9.9.tar.gz.sha256 does not"),
        ({"action": "upgrade", "package": package, "canary": "z@localhost"}, "canary z@local"),
        ({"action": "upgrade", "package": package, "batch": "0"}, "--batch must be 1"),
        ({"action": "upgrade", "package": package, "batch": "two"}, "whole number, not 'two'"),
        ({"action": "upgrade", "package": package, "health": "rm -rf"}, "neither"),
        ({"action": "upgrade", "package": package, "health_status": "200"}, "needs --health"),
        (
            {"action": "upgrade", "package": package, "health": "m:f", "health_status": "99"},
            "HTTP status",
        ),
        ({"action": "reconcile", "package": package}, "not the cluster's permanent release"),
        ({"action": "frobnicate"}, "takes releases, upgrade or reconcile"),
    ]
    socket = cluster.driver / "run" / "control.sock"
    for args, why in cases:
        with pytest.raises(RemoteError, match=why):
            await request(socket, "cluster", args, timeout=60.0)
    # as a user sees one of them: one line, exit status 1
    done = cli(cluster.driver, "cluster", "upgrade", package, "--batch", "two", check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "server: RolloutError: --batch takes a whole number, not 'two'"
    ], done.stderr
    assert cluster.running() == before
    assert all(
        [row["vsn"] for row in cli_json(root, "releases")] == ["1.0.0"]
        for root in cluster.roots.values()
    )


@pytest.mark.node
@pytest.mark.timeout(240)
async def test_a_canary_that_fails_its_health_check_is_rolled_back_and_no_other_node_is_touched(
    cluster: Cluster,
) -> None:
    for node, port in cluster.ports.items():  # state to keep: one count per node
        for _ in range(3):
            assert http_json(port, "POST", f"/incr/{node[0]}")[0] == 200
    code, report = cluster.upgrade(
        str(cluster.package), "--canary", "b@localhost", "--health", "counter.web:no_such_check"
    )
    assert code == 1
    assert report["outcome"] == "halted"
    assert report["failure"]["node"] == "b@localhost"
    assert report["failure"]["step"] == "health"
    assert "cannot be found" in report["failure"]["error"]
    rows = _by_node(report)
    assert rows["b@localhost"]["state"] == "rolled_back"
    assert rows["b@localhost"]["steps"] == [
        "copy",
        "unpack",
        "check",
        "install",
        "health",
        "rollback",
    ]
    for other in ("a@localhost", "c@localhost"):
        assert rows[other]["state"] == "untouched"
        assert "install" not in rows[other]["steps"]
        assert rows[other]["steps"] == ["copy", "unpack", "check"]  # a is local: copied too
    assert cluster.running() == dict.fromkeys(cluster.roots, ("1.0.0", "1.0.0"))
    for node, port in cluster.ports.items():  # the canary's state came back through code_change
        status, body = http_json(port, "GET", f"/count/{node[0]}")
        assert (status, body["value"], body["vsn"]) == (200, 3, "1.0.0")
    # the human output says what halted and why
    shown = cli(
        cluster.driver,
        "cluster",
        "upgrade",
        str(cluster.package),
        "--canary",
        "b@localhost",
        "--health",
        f"http://127.0.0.1:{free_port()}/health",
        check=False,
    )
    assert shown.returncode == 1
    assert "halted" in shown.stdout
    assert "health on b@localhost failed" in shown.stdout


@pytest.mark.node
@pytest.mark.timeout(240)
async def test_a_rollout_under_load_on_every_node_fails_no_request_and_keeps_every_state(
    cluster: Cluster,
) -> None:
    clients = [IncrementingClient(port, f"k-{node[0]}") for node, port in cluster.ports.items()]
    for client in clients:
        client.start()
    for client in clients:
        assert client.going.wait(30)
    try:
        health = "http://127.0.0.1:{port}/health"
        code, report = cluster.upgrade(
            str(cluster.package),
            "--batch",
            "2",
            "--health",
            health.format(port=cluster.ports["b@localhost"]),
        )
    finally:
        for client in clients:
            client.stopping.set()
        for client in clients:
            client.join(30)
    assert code == 0, report
    assert report["outcome"] == "permanent"
    assert report["failure"] is None
    assert report["batches"] == [["b@localhost"], ["c@localhost", "a@localhost"]]
    for row in report["nodes"]:
        assert (row["state"], row["before"], row["after"]) == ("permanent", "1.0.0", "1.1.0")
        assert row["steps"][-2:] == ["confirm", "permanent"]
    for client in clients:
        assert client.failures == []
        assert client.versions == {"1.0.0", "1.1.0"}
    assert cluster.running() == dict.fromkeys(cluster.roots, ("1.1.0", "1.1.0"))
    for (node, port), client in zip(cluster.ports.items(), clients, strict=True):
        status, body = http_json(port, "GET", f"/count/k-{node[0]}")
        assert (status, body["value"]) == (200, client.ok)
    # all agree now: reconcile has nothing to do
    calm = cli_json(cluster.driver, "cluster", "reconcile")
    assert calm["permanent"] == "1.1.0"
    assert {row["action"] for row in calm["nodes"]} == {"none"}


@pytest.mark.node
@pytest.mark.timeout(240)
async def test_reconcile_brings_a_node_upgraded_by_hand_back_to_the_clusters_permanent_release(
    cluster: Cluster,
) -> None:
    c = cluster.roots["c@localhost"]
    cli(c, "unpack", str(cluster.package))
    cli(c, "install", "1.1.0")
    assert cluster.running()["c@localhost"] == ("1.1.0", "1.0.0")
    done = cli(cluster.driver, "cluster", "reconcile", "--json", check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["permanent"] == "1.0.0"
    assert {row["node"]: row["action"] for row in report["nodes"]} == {
        "a@localhost": "none",
        "b@localhost": "none",
        "c@localhost": "installed",
    }
    assert cluster.running() == dict.fromkeys(cluster.roots, ("1.0.0", "1.0.0"))
