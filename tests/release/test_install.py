"""Installing releases on a live node: upgrade, downgrade, add and remove applications."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server.errors import InstallRefused
from server.release import current_vsn, handler
from tests.behaviours._helpers import within
from tests.release._live import boot_demo, stop_demo

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
            with pytest.raises(InstallRefused, match="only release ever made permanent"):
                await handler.rollback()
        finally:
            await stop_demo(demo)

    await node.run_process(body)
