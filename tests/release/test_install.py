"""Installing releases on a live node: upgrade, downgrade, add and remove applications."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server import code_server, kernel
from server.behaviours import gen_server, supervisor
from server.errors import InstallRefused
from server.release import current_vsn, handler
from tests.behaviours._helpers import within
from tests.release._live import boot_demo, stop_demo
from tests.release._variants import make_restart_variant, make_supervisor_variant

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Node


def statuses(rows: list[dict[str, object]]) -> dict[object, object]:
    return {row["vsn"]: row["status"] for row in rows}


async def test_upgrade_to_1_1_0_migrates_the_state_and_back_down(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            for _ in range(2):
                await demo.http("POST", "/incr/a")
            assert await demo.store_state() == {"a": 2}
            vsn = await within(handler.unpack(demo.package("1.1.0")), "unpack", 30)
            assert vsn == "1.1.0"
            assert statuses(await handler.which_releases()) == {
                "1.0.0": "permanent",
                "1.1.0": "unpacked",
            }
            check = await within(handler.check_install("1.1.0"), "check", 30)
            assert check["direction"] == "up"
            assert [p[1] for p in check["processes"]] == ["counter.store"]
            assert await demo.store_state() == {"a": 2}, "the dry run changed nothing"
            report = await within(handler.install("1.1.0"), "install", 30)
            assert report.modules_loaded == ("counter.store", "counter.web")
            assert [p[1] for p in report.processes] == ["counter.store"]
            status, body = await demo.http("GET", "/count/a")
            assert status == 200
            assert body["value"] == 2
            assert body["vsn"] == "1.1.0"
            assert isinstance(body["updated"], float)
            assert current_vsn() == "1.1.0"
            assert statuses(await handler.which_releases()) == {
                "1.0.0": "permanent",
                "1.1.0": "current",
            }
            await demo.http("POST", "/incr/a")
            # back down: through the 1.1.0 relup's down entry, state migrated down
            down = await within(handler.install("1.0.0"), "downgrade", 30)
            assert down.direction == "down"
            assert await demo.store_state() == {"a": 3}
            assert (await demo.http("GET", "/count/a"))[1] == {
                "key": "a",
                "value": 3,
                "vsn": "1.0.0",
            }
            assert statuses(await handler.which_releases()) == {
                "1.0.0": "permanent",
                "1.1.0": "old",
            }
        finally:
            await stop_demo(demo)

    await node.run_process(body)


async def test_2_0_0_adds_stats_and_rollback_removes_it(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await demo.http("POST", "/incr/b")
            await within(handler.upgrade(demo.package("2.0.0")), "upgrade", 30)
            await demo.http("POST", "/incr/b")
            status, stats = await demo.http("GET", "/stats")
            assert status == 200
            assert stats["routes"]["/incr"] == 1
            assert statuses(await handler.which_releases()) == {
                "1.0.0": "old",
                "2.0.0": "permanent",
            }
            assert (await demo.http("GET", "/count/b"))[1]["value"] == 2
            result = await within(handler.rollback(), "rollback", 30)
            assert result["vsn"] == "1.0.0"
            assert statuses(await handler.which_releases()) == {
                "1.0.0": "permanent",
                "2.0.0": "old",
            }
            assert (await demo.http("GET", "/stats"))[0] == 404
            assert await demo.store_state() == {"b": 2}
            with pytest.raises(
                InstallRefused, match=r"only release made permanent \(permanent history: 1\.0\.0\)"
            ):
                await handler.rollback()
        finally:
            await stop_demo(demo)

    await node.run_process(body)


async def test_a_supervisor_update_starts_added_children_and_stops_removed_ones(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    make_supervisor_variant(demo_tree, "1.0.2")

    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await demo.http("POST", "/incr/s")
            store = kernel.whereis("counter_store")
            await within(handler.unpack(demo.package("1.0.2")), "unpack", 30)
            check = await within(handler.check_install("1.0.2"), "check", 30)
            assert check["processes"] == [], "a supervisor's new specs are not a migration"
            report = await within(handler.install("1.0.2"), "install", 30)
            assert "counter.janitor" in report.modules_loaded
            assert report.processes == ()
            rows = await supervisor.which_children("counter_sup")
            assert [row.id for row in rows] == ["store", "web", "janitor"]
            janitor = kernel.whereis("counter_janitor")
            assert janitor is not None
            assert await gen_server.call(janitor, "ping") == "pong"
            assert kernel.whereis("counter_store") is store, "the other children kept"
            await within(handler.install("1.0.0"), "downgrade", 30)
            rows = await supervisor.which_children("counter_sup")
            assert [row.id for row in rows] == ["store", "web"]
            assert kernel.whereis("counter_janitor") is None
            assert kernel.whereis("counter_store") is store
            assert (await demo.http("GET", "/count/s"))[1]["value"] == 1
        finally:
            await stop_demo(demo)

    await node.run_process(body)


async def test_a_restarted_application_is_reported_restarted_by_check_and_install(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    make_restart_variant(demo_tree, "1.0.3")

    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await within(handler.unpack(demo.package("1.0.3")), "unpack", 30)
            # counter.web is imported at the first request only: none was made, so the
            # restart's remove of it has nothing to remove (and must not fail)
            assert code_server.which_versions("counter.web") == []
            check = await within(handler.check_install("1.0.3"), "check", 30)
            changes = {key: check[key] for key in check if key.startswith("applications_")}
            assert changes == {
                "applications_added": [],
                "applications_removed": [],
                "applications_restarted": ["counter"],
            }
            report = await within(handler.install("1.0.3"), "install", 30)
            assert report.applications_restarted == ("counter",)
            assert (report.applications_added, report.applications_removed) == ((), ())
        finally:
            await stop_demo(demo)

    await node.run_process(body)
