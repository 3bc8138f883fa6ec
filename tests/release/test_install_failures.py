"""What an install does when it fails: refused before anything changes, rolled back in place,
or, after a step that cannot be undone, a restart into the permanent release."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import pytest

from server import code_server, kernel
from server.errors import InstallFailed, InstallRefused
from server.release import current_vsn, handler
from server.release.releases_file import read_releases
from tests.behaviours._helpers import recv, within
from tests.release._live import LiveDemo, boot_demo, stop_demo
from tests.release._variants import make_variant

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Node

# raises only inside the store process itself: the dry run (in another process) passes
RAISES_IN_PLACE = """
from server import kernel
if kernel.whereis("counter_store") == kernel.self():
    raise ValueError("migration bug")
return {k: v for k, v in state.items()}
"""

MUTATES_THEN_RAISES = """
from server import kernel
if kernel.whereis("counter_store") == kernel.self():
    state["a"] = 999
    raise ValueError("mutated, then failed")
return state
"""

ALWAYS_RAISES = """
raise ValueError("always")
"""

WAITS_FOR_GO = """
from server import kernel
if kernel.whereis("counter_store") == kernel.self():
    kernel.send("install_probe", "in_code_change")
    await kernel.receive(lambda m: m == "go")
return dict(state)
"""


async def unpacked(demo: LiveDemo, vsn: str) -> None:
    await within(handler.unpack(demo.package(vsn)), "unpack", 30)


async def snapshot(demo: LiveDemo) -> tuple[object, ...]:
    versions = [(i.module, i.slot, i.vsn) for i in code_server.all_loaded()]
    return (
        copy.deepcopy(await demo.store_state()),  # the live object: a copy of it now
        await handler.which_releases(),
        (demo.root / "releases" / "RELEASES").read_bytes(),
        versions,
        current_vsn(),
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(RAISES_IN_PLACE, "migration bug", id="raises"),
        pytest.param(MUTATES_THEN_RAISES, "mutated, then failed", id="mutates-then-raises"),
    ],
)
async def test_a_failing_code_change_is_rolled_back_in_place(
    node: Node, demo_tree: Path, tmp_path: Path, body: str, expected: str
) -> None:
    make_variant(demo_tree, "1.0.1", body)

    async def run() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await demo.http("POST", "/incr/a")
            await demo.http("POST", "/incr/a")
            await unpacked(demo, "1.0.1")
            before = await snapshot(demo)
            with pytest.raises(InstallFailed, match=expected) as info:
                await within(handler.install("1.0.1"), "install", 30)
            assert info.value.outcome == "rolled_back"
            assert info.value.module == "counter.store"
            assert info.value.pid == repr(kernel.whereis("counter_store"))
            assert await snapshot(demo) == before, "states, statuses, RELEASES, code: as before"
            assert (await demo.http("POST", "/incr/a"))[1] == {
                "key": "a",
                "value": 3,
                "vsn": "1.0.0",
            }, "served by the same process, resumed, with its state"
        finally:
            await stop_demo(demo)

    await node.run_process(run)


async def test_check_install_runs_every_code_change_on_a_copy(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    make_variant(demo_tree, "1.0.1", ALWAYS_RAISES)

    async def run() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await demo.http("POST", "/incr/a")
            await unpacked(demo, "1.0.1")
            before = await snapshot(demo)
            with pytest.raises(
                InstallRefused, match=r"dry run of counter\.store\.code_change"
            ) as caught:
                await within(handler.check_install("1.0.1"), "check", 30)
            assert "(counter_store) raised" in str(caught.value)  # its name beside its pid
            assert await snapshot(demo) == before
        finally:
            await stop_demo(demo)

    await node.run_process(run)


async def test_an_apply_that_raises_restarts_into_the_permanent_release(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    make_variant(demo_tree, "1.0.1", "return dict(state)", apply="explode")

    async def run() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await demo.http("POST", "/incr/a")
            await unpacked(demo, "1.0.1")
            with pytest.raises(InstallFailed, match="apply exploded") as info:
                await within(handler.install("1.0.1"), "install", 30)
            assert info.value.outcome == "restarting"
            await recv(lambda m: m == ("booted", "1.0.0"), step="rebooted", limit=30)
            assert current_vsn() == "1.0.0"
            assert (await demo.http("GET", "/count/a"))[1] == {
                "key": "a",
                "value": 0,
                "vsn": "1.0.0",
            }, "a fresh node on the permanent release"
            rows = {r["vsn"]: r["status"] for r in await handler.which_releases()}
            assert rows == {"1.0.0": "permanent", "1.0.1": "unpacked"}
            record = read_releases(demo.root)
            assert record is not None
            assert record.permanent.vsn == "1.0.0"
        finally:
            await stop_demo(demo)

    await node.run_process(run)


async def test_a_second_install_while_one_runs_is_refused(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    make_variant(demo_tree, "1.0.1", WAITS_FOR_GO)

    async def run() -> None:
        kernel.register("install_probe", kernel.self())
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await unpacked(demo, "1.0.1")
            me = kernel.self()

            async def first() -> None:
                report = await handler.install("1.0.1")
                kernel.send(me, ("first done", report.to_vsn))

            kernel.spawn(first)
            await recv(lambda m: m == "in_code_change", step="install under way", limit=30)
            with pytest.raises(InstallRefused, match=r"install 1\.0\.1 is running"):
                await handler.install("1.0.1")
            with pytest.raises(InstallRefused, match="is running"):
                await handler.unpack(demo.package("1.0.1"))
            rows = await handler.which_releases()
            assert {r["vsn"] for r in rows} == {"1.0.0", "1.0.1"}, "answers while busy"
            kernel.send(kernel.whereis("counter_store"), "go")  # type: ignore[arg-type]
            await recv(lambda m: m == ("first done", "1.0.1"), step="first done", limit=30)
        finally:
            await stop_demo(demo)

    await node.run_process(run)


async def test_refusals_before_the_point_of_no_return_change_nothing(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    async def run() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            before = await snapshot(demo)
            with pytest.raises(InstallRefused, match=r"no release 9\.9\.9"):
                await handler.install("9.9.9")
            with pytest.raises(
                InstallRefused, match=r"release 1\.0\.0 is already running: nothing to install"
            ):
                await handler.install("1.0.0")
            with pytest.raises(InstallRefused, match="permanent release"):
                await handler.remove("1.0.0")
            await unpacked(demo, "2.0.0")
            with pytest.raises(InstallRefused, match=r"not installed"):
                await handler.make_permanent("2.0.0")
            after = await snapshot(demo)
            assert after[0] == before[0]
            assert after[3:] == before[3:]
            await handler.remove("2.0.0")
            assert not (demo.root / "releases" / "2.0.0").exists()
            assert not (demo.root / "lib" / "stats-1.0.0").exists()
            assert (demo.root / "lib" / "counter-1.0.0").exists()
            assert await snapshot(demo) == before
        finally:
            await stop_demo(demo)

    await node.run_process(run)


HANGS = """
from server import kernel
if kernel.whereis("counter_store") == kernel.self():
    await kernel.receive(lambda m: m == "never sent")
return dict(state)
"""


async def test_a_code_change_that_hangs_is_cancelled_and_rolled_back(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    make_variant(demo_tree, "1.0.1", HANGS)

    async def run() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await demo.http("POST", "/incr/h")
            await unpacked(demo, "1.0.1")
            before = await snapshot(demo)
            with pytest.raises(InstallFailed, match=r"did not finish within 0\.2 s") as info:
                await within(handler.install("1.0.1", code_change_timeout=0.2), "install", 30)
            assert info.value.outcome == "rolled_back"
            assert await snapshot(demo) == before
            assert (await demo.http("POST", "/incr/h"))[1]["value"] == 2
        finally:
            await stop_demo(demo)

    await node.run_process(run)
