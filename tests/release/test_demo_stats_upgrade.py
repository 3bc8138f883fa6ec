"""The demo's gen_statem and gen_event upgraded live: release 2.0.0 -> 2.1.0 and back.

In 2.0.0 the ``stats`` application runs ``stats_activity`` (a gen_statem, ``idle`` /
``busy``, an event time-out ending a busy spell) and ``stats_events`` (an event manager
whose handler ``stats.transitions`` keeps the activity's changes as ``[old, new]`` pairs).
Release 2.1.0's appup updates both modules: the machine's ``idle`` becomes ``quiet`` and
its data gains ``busiest``; the handler's pairs become ``{"from", "to", "at"}`` records.
The processes are the same before and after (suspended, migrated, resumed), the service
answers at every step, and the way down restores 2.0.0's shapes. ``idle_after`` is an hour
here, so no quiet spell ends while the test runs, except in the last test, which waits for
the time-out's change on a watching handler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from server import kernel
from server.behaviours import gen_event
from server.behaviours.gen_event_callbacks import Handler
from tests._support.nodes import http_json
from tests._support.waits import recv, tagged

if TYPE_CHECKING:
    from server.testing.upgrades import HarnessFactory, UpgradeHarness

VERSIONS = ["2.0.0", "2.1.0"]
HOUR = 3600.0
WATCHER = "tests.behaviours.callbacks.event_log"  # tells its owner every event


async def request(port: int, method: str, path: str) -> tuple[int, Any]:
    """One request on a fresh connection (the blocking client runs in a worker thread)."""
    return await anyio.to_thread.run_sync(http_json, port, method, path)


async def pids() -> tuple[object, object]:
    return kernel.whereis("stats_activity"), kernel.whereis("stats_events")


async def handlers() -> list[Handler]:
    return await gen_event.which_handlers("stats_events")


async def start(upgrade_harness: HarnessFactory, port: int) -> UpgradeHarness:
    env: dict[str, dict[str, object]] = {"counter": {"port": port}, "stats": {"idle_after": HOUR}}
    return await upgrade_harness(VERSIONS, env=env)


async def test_a_busy_machine_and_its_handler_migrate_up_and_back_down(
    upgrade_harness: HarnessFactory, free_tcp_port: int
) -> None:
    port = free_tcp_port
    h = await start(upgrade_harness, port)
    for _ in range(3):
        assert (await request(port, "POST", "/incr/apples"))[0] == 200
    before = await h.prepare(pids)
    assert await h.state("stats_activity") == ("busy", {"hits": 3, "spells": 1})

    report = await h.upgrade_to("2.1.0")

    migrated = sorted(module for _pid, module in report.processes)
    assert migrated == ["stats.activity", "stats.transitions"]
    assert await h.prepare(pids) == before, "the same processes, migrated in place"
    assert await h.state("stats_activity") == ("busy", {"hits": 3, "spells": 1, "busiest": 3})
    status, stats = await request(port, "GET", "/stats")  # a fourth hit, on 1.1.0's code
    assert status == 200, stats
    assert stats["activity"] == {"state": "busy", "hits": 4, "spells": 1, "busiest": 4}
    assert stats["changes"] == [{"from": "idle", "to": "busy", "at": None}]
    assert stats["routes"] == {"/incr": 3, "/stats": 1}
    assert await h.prepare(handlers) == [Handler("stats.transitions")]

    down = await h.downgrade_to("2.0.0")

    assert sorted(module for _pid, module in down.processes) == migrated
    assert await h.prepare(pids) == before
    assert await h.state("stats_activity") == ("busy", {"hits": 4, "spells": 1})
    status, stats = await request(port, "GET", "/stats")
    assert (status, stats["changes"]) == (200, [["idle", "busy"]])
    assert stats["activity"] == {"state": "busy", "hits": 5, "spells": 1}


async def test_an_idle_machine_is_renamed_quiet_and_its_next_change_is_stamped(
    upgrade_harness: HarnessFactory, free_tcp_port: int
) -> None:
    port = free_tcp_port
    h = await start(upgrade_harness, port)
    assert await h.state("stats_activity") == ("idle", {"hits": 0, "spells": 0})

    await h.upgrade_to("2.1.0")

    assert await h.state("stats_activity") == ("quiet", {"hits": 0, "spells": 0, "busiest": 0})
    status, stats = await request(port, "GET", "/stats")
    assert status == 200, stats
    assert stats["activity"] == {"state": "busy", "hits": 1, "spells": 1, "busiest": 1}
    [change] = stats["changes"]
    assert (change["from"], change["to"]) == ("quiet", "busy")
    assert isinstance(change["at"], float), "a change seen by 1.1.0 has its time"


async def busy_then_quiet(port: int) -> list[object]:
    """Watch ``stats_events`` (a handler telling this process), make one request, and wait
    for the busy spell it starts to end by the machine's event time-out."""
    await gen_event.add_handler("stats_events", WATCHER, kernel.self())
    assert (await request(port, "POST", "/incr/pears"))[0] == 200
    seen = []
    for _ in range(2):
        message = await recv(tagged("event"), step="an activity change")
        assert isinstance(message, tuple)
        seen.append(message[2])
    return seen


async def test_a_quiet_spell_ends_a_busy_one_by_the_event_timeout_after_the_upgrade(
    upgrade_harness: HarnessFactory, free_tcp_port: int
) -> None:
    port = free_tcp_port
    env: dict[str, dict[str, object]] = {"counter": {"port": port}, "stats": {"idle_after": 0.05}}
    h = await upgrade_harness(VERSIONS, env=env)
    await h.upgrade_to("2.1.0")

    seen = await h.prepare(busy_then_quiet, port)

    assert seen == [("activity", "quiet", "busy"), ("activity", "busy", "quiet")]
    state, data = await h.state("stats_activity")
    assert (state, data["busiest"]) == ("quiet", 1)
