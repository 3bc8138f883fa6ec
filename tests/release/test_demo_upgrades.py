"""The demo's upgrade path, proved with ``server.testing``: 1.0.0 -> 1.1.0 -> 2.0.0 and back.

Counters made before the first move (over HTTP and by gen_server calls) are migrated on
every step: plain counts in 1.0.0, ``{"value", "updated"}`` records in 1.1.0 and 2.0.0,
plain counts again back in 1.0.0. ``/stats`` exists in 2.0.0 only. A release whose
``code_change`` is broken fails with the step, the phase and the process named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from server import kernel
from server.behaviours import gen_server
from server.testing.upgrades import HarnessFactory, Step, UpgradeFailed
from tests._support.nodes import http_json
from tests.release._variants import make_variant

if TYPE_CHECKING:
    from pathlib import Path

VERSIONS = ["1.0.0", "1.1.0", "2.0.0"]


async def request(port: int, method: str, path: str) -> tuple[int, Any]:
    """One request on a fresh connection (the blocking client runs in a worker thread)."""

    return await anyio.to_thread.run_sync(http_json, port, method, path)


async def test_the_demo_chain_migrates_the_counters_up_and_back_down(
    upgrade_harness: HarnessFactory, free_tcp_port: int
) -> None:
    port = free_tcp_port
    h = await upgrade_harness(VERSIONS, env={"counter": {"port": port}})

    async def make_counters() -> None:
        for _ in range(3):
            assert (await request(port, "POST", "/incr/apples"))[0] == 200
        await gen_server.call("counter_store", ("incr", "pears"))

    await h.prepare(make_counters)
    visits = 0  # one more /incr/visits at every check: the service works at each step

    async def visit(step: Step) -> dict[str, Any]:
        nonlocal visits
        visits += 1
        status, body = await request(port, "POST", "/incr/visits")
        assert status == 200, body
        assert body["value"] == visits
        assert body["vsn"] == step.to_vsn
        answer: dict[str, Any] = body
        return answer

    async def counts(step: Step) -> None:
        await visit(step)
        assert await h.state("counter_store") == {"apples": 3, "pears": 1, "visits": visits}
        assert (await request(port, "GET", "/stats"))[0] == 404

    async def records(step: Step) -> None:
        body = await visit(step)
        assert isinstance(body["updated"], float)
        state = await h.state("counter_store")
        assert {key: record["value"] for key, record in state.items()} == {
            "apples": 3,
            "pears": 1,
            "visits": visits,
        }
        assert all(set(record) == {"value", "updated"} for record in state.values())
        status, stats = await request(port, "GET", "/stats")
        if step.to_vsn == "2.0.0":
            assert status == 200
            assert stats["routes"]["/incr"] >= 1
        else:
            assert status == 404

    steps = await h.chain({"1.0.0": counts, "1.1.0": records, "2.0.0": records})

    assert [str(step) for step in steps] == [
        "start at 1.0.0",
        "step 1/4 (up 1.0.0 -> 1.1.0)",
        "step 2/4 (up 1.1.0 -> 2.0.0)",
        "step 3/4 (down 2.0.0 -> 1.1.0)",
        "step 4/4 (down 1.1.0 -> 1.0.0)",
    ]
    reports = [step.report for step in steps[1:]]
    assert all(report is not None for report in reports)
    up_to_1_1, up_to_2, down_to_1_1, down_to_1 = (r for r in reports if r is not None)
    assert [p[1] for p in up_to_1_1.processes] == ["counter.store"]
    assert up_to_2.applications_added == ("stats",)
    assert "counter" in up_to_2.env_changes, "2.0.0 changes the counter's env"
    assert down_to_1_1.applications_removed == ("stats",)
    assert [p[1] for p in down_to_1.processes] == ["counter.store"]
    assert visits == 5
    assert h.vsn == "1.0.0"


async def test_upgrade_to_can_skip_a_version_and_downgrade_to_comes_straight_back(
    upgrade_harness: HarnessFactory, free_tcp_port: int
) -> None:
    h = await upgrade_harness(VERSIONS, env={"counter": {"port": free_tcp_port}})
    await h.call("counter_store", ("incr", "a"))
    report = await h.upgrade_to("2.0.0")
    assert (report.from_vsn, report.to_vsn, report.direction) == ("1.0.0", "2.0.0", "up")
    assert (await h.state("counter_store"))["a"]["value"] == 1
    down = await h.downgrade_to("1.0.0")
    assert down.direction == "down"
    assert await h.state("counter_store") == {"a": 1}


# the dry run (on a copy, in another process) raises too: check_install refuses
ALWAYS_RAISES = """
raise ValueError("broken migration")
"""

# raises only inside the store itself: the dry run passes, the install is rolled back
RAISES_IN_PLACE = """
from server import kernel
if kernel.whereis("counter_store") == kernel.self():
    raise ValueError("broken in place")
return dict(state)
"""

# the way up works, the way down does not
RAISES_ON_THE_WAY_DOWN = """
if isinstance(old_vsn, tuple):
    raise ValueError("no way down")
return dict(state)
"""


@pytest.mark.parametrize(
    ("body", "step", "phase", "said"),
    [
        pytest.param(
            ALWAYS_RAISES,
            "step 1/2 (up 1.0.0 -> 1.0.1)",
            "check_install",
            "broken migration",
            id="dry-run-refuses",
        ),
        pytest.param(
            RAISES_IN_PLACE,
            "step 1/2 (up 1.0.0 -> 1.0.1)",
            "install",
            "outcome: rolled_back",
            id="install-rolled-back",
        ),
        pytest.param(
            RAISES_ON_THE_WAY_DOWN,
            "step 2/2 (down 1.0.1 -> 1.0.0)",
            "check_install",
            "no way down",
            id="down-refused",
        ),
    ],
)
async def test_a_broken_code_change_fails_naming_the_step_and_the_process(
    upgrade_harness: HarnessFactory,
    free_tcp_port: int,
    demo_tree: Path,
    body: str,
    step: str,
    phase: str,
    said: str,
) -> None:
    make_variant(demo_tree, "1.0.1", body)
    h = await upgrade_harness(
        ["1.0.0", "1.0.1"], source=demo_tree, env={"counter": {"port": free_tcp_port}}
    )
    await h.call("counter_store", ("incr", "a"))
    await h.call("counter_store", ("incr", "a"))
    store = repr(await h.prepare(whereis, "counter_store"))

    with pytest.raises(UpgradeFailed) as info:
        await h.chain()

    failure = info.value
    assert (failure.step, failure.phase) == (step, phase)
    assert failure.path == "demo 1.0.0 -> 1.0.1 -> 1.0.0"
    assert failure.processes == {store: "counter_store"}
    message = str(failure)
    first = message.splitlines()[0]
    assert first.startswith(f"{step}: {phase}")
    assert said in message
    assert "counter.store" in message, "the module"
    assert f"process {store} is 'counter_store'" in message
    # nothing was lost: the store kept its state, the node runs where the step started
    assert await h.state("counter_store") == {"a": 2}
    assert h.vsn == failure.from_vsn


async def whereis(name: str) -> object:
    return kernel.whereis(name)


async def test_an_install_that_restarts_the_node_waits_for_the_reboot(
    upgrade_harness: HarnessFactory, free_tcp_port: int, demo_tree: Path
) -> None:
    make_variant(demo_tree, "1.0.1", "return dict(state)", apply="explode")
    h = await upgrade_harness(
        ["1.0.0", "1.0.1"], source=demo_tree, env={"counter": {"port": free_tcp_port}}
    )
    await h.call("counter_store", ("incr", "a"))

    with pytest.raises(UpgradeFailed) as info:
        await h.upgrade_to("1.0.1")

    failure = info.value
    assert (failure.step, failure.phase) == ("up 1.0.0 -> 1.0.1", "install")
    assert "apply exploded" in str(failure)
    assert "outcome: restarting" in str(failure)
    assert h.boots == ["1.0.0", "1.0.0"], "booted, then rebooted into the permanent release"
    assert h.vsn == "1.0.0"
    assert await h.state("counter_store") == {}, "a fresh node"
    status, body = await request(free_tcp_port, "POST", "/incr/a")
    assert (status, body["value"]) == (200, 1)
