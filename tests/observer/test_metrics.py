"""The Prometheus text of a real node, parsed by the Prometheus client's own parser.

The demo is booted in the test's own node (as the release tests do), a supervised child is
killed and restarted, a mailbox is filled, an install is refused and a real one (1.0.0 ->
1.1.0) is made; then the text must say what the node's own introspection says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server import kernel
from server.behaviours import supervisor
from server.errors import InstallRefused
from server.observer import loop_lag
from server.observer.metrics import CONTENT_TYPE, render_metrics
from server.release import handler
from tests._support.nodes import cli
from tests._support.waits import down, idle
from tests.behaviours._helpers import within
from tests.release._live import boot_demo, stop_demo

if TYPE_CHECKING:
    from pathlib import Path

    from prometheus_client.metrics_core import Metric

    from server.kernel import Node
    from tests._support.nodes import NodeProcess


def parsed(text: bytes) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(text.decode())}


def value(family: Metric, suffix: str = "", **labels: str) -> float:
    (found,) = [
        s.value
        for s in family.samples
        if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return found


async def test_the_metrics_of_a_node_through_an_install(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await check_the_node(demo.package("1.1.0"))
        finally:
            await stop_demo(demo)

    await node.run_process(body)


async def check_the_node(package: Path) -> None:
    sup = kernel.whereis("counter_sup")
    assert sup is not None
    assert supervisor.restart_count(sup) == 0
    web = next(row.pid for row in await supervisor.which_children(sup) if row.id == "web")
    assert isinstance(web, kernel.Pid)
    ref = kernel.monitor(web)
    kernel.exit(web, kernel.KILL)
    await down(ref, step="web killed")
    # asked after the supervisor's EXIT from the child: answered once it is restarted
    assert [row.id for row in await supervisor.which_children(sup)] == ["store", "web"]
    assert supervisor.restart_count(sup) == 1
    assert supervisor.restart_count(kernel.self()) is None  # not a supervisor

    probe = kernel.spawn(idle)
    kernel.register("metrics_probe", probe)
    for n in range(7):
        kernel.send(probe, ("unread", n))

    await within(handler.unpack(package), "unpack", 30)
    with pytest.raises(InstallRefused):
        await handler.install("9.9.9")
    await within(handler.install("1.1.0"), "install", 30)

    # one synchronous step: the text and the introspection read the same moment
    families = parsed(render_metrics(top=3))
    pids = kernel.processes()
    infos = [info for pid in pids if (info := kernel.process_info(pid)) is not None]
    lag = loop_lag.lag_statistics()
    installs = handler.install_statistics()

    assert value(families["server_processes"]) == len(infos)
    assert value(families["server_mailbox_messages"]) == sum(i.message_queue_len for i in infos)
    top = families["server_process_mailbox_messages"].samples
    assert len(top) == 3
    assert top[0].labels == {"pid": repr(probe), "name": "metrics_probe"}
    assert top[0].value == 7
    longest = sorted((i.message_queue_len for i in infos), reverse=True)[:3]
    assert [s.value for s in top] == longest

    restarts = families["server_supervisor_restarts"]
    assert restarts.type == "counter"
    labels = {"pid": repr(sup), "name": "counter_sup", "module": "counter.sup"}
    assert value(restarts, "_total", **labels) == 1
    supervisors = [i for i in infos if dict(i.labels).get("behaviour") == "supervisor"]
    assert len(restarts.samples) == len(supervisors) > 1  # every supervisor of the node

    assert lag is not None
    lag_family = families["server_event_loop_lag_seconds"]
    assert value(lag_family, quantile="0.99") == lag.p99
    assert value(lag_family, quantile="1") == lag.max
    assert value(families["server_event_loop_lag_samples"]) == lag.samples

    assert value(families["server_release_info"], name="demo", vsn="1.1.0") == 1
    operations = families["server_release_operations"]
    assert value(operations, "_total", operation="install", outcome="ok") == 1
    assert value(operations, "_total", operation="install", outcome="refused") == 1
    histogram = families["server_release_install_duration_seconds"]
    assert histogram.type == "histogram"
    assert installs is not None
    assert value(histogram, "_count") == installs.install_count == 1
    assert value(histogram, "_sum") == pytest.approx(installs.install_seconds)
    assert value(histogram, "_bucket", le="+Inf") == 1
    assert installs.install_seconds > 0

    assert value(families["process_resident_memory_bytes"]) > 0


async def test_the_global_registry_is_left_alone(node: Node) -> None:
    async def body() -> None:
        before = prometheus_client.generate_latest(prometheus_client.REGISTRY)
        text = render_metrics()
        assert b"server_processes " in text
        after = prometheus_client.generate_latest(prometheus_client.REGISTRY)
        assert b"server_" not in after
        assert before.count(b"\n# TYPE") == after.count(b"\n# TYPE")
        assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")

    await node.run_process(body)


async def test_without_sampler_or_release_handler_those_families_are_absent(node: Node) -> None:
    async def body() -> None:
        families = parsed(render_metrics())
        assert "server_processes" in families
        assert "server_event_loop_lag_seconds" not in families
        assert "server_release_operations" not in families
        assert families["server_process_mailbox_messages"].samples[0].labels["name"] == ""

    await node.run_process(body)


async def test_a_negative_top_is_refused(node: Node) -> None:
    async def body() -> None:
        with pytest.raises(ValueError, match="top must be a whole number >= 0, not -1"):
            render_metrics(top=-1)
        assert parsed(render_metrics(top=0))["server_process_mailbox_messages"].samples == []

    await node.run_process(body)


@pytest.mark.node
def test_server_metrics_prints_a_real_nodes_text(demo_node: NodeProcess) -> None:
    assert demo_node.request("POST", "/incr/m")[0] == 200
    families = parsed(cli(demo_node.root, "metrics").stdout.encode())
    assert value(families["server_release_info"], name="demo", vsn="1.0.0") == 1
    assert value(families["server_processes"]) > 5
    # the boot started the lag sampler: its figures are there
    assert value(families["server_event_loop_lag_seconds"], quantile="1") >= 0.0
    labels = {"name": "counter_sup", "module": "counter.sup"}
    assert value(families["server_supervisor_restarts"], "_total", **labels) == 0
    assert families["server_release_operations"].samples == []  # nothing asked yet
