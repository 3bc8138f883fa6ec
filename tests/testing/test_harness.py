"""The upgrade harness itself: its refusals, its failures and what it leaves behind (nothing)."""

from __future__ import annotations

import contextlib
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from server import code_server, kernel
from server.app import get_env
from server.errors import ProcessError
from server.testing.upgrades import (
    HarnessFactory,
    Step,
    UpgradeFailed,
    UpgradeHarness,
    UpgradePath,
    open_harness,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from server.kernel import Node

from tests._support.nodes import REPO

VERSIONS = ["1.0.0", "1.1.0", "2.0.0"]
NODE_NAMES = {"release_handler", "application_controller", "counter_sup", "counter_store"}


def scratch_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("upgrade-harness-*"))


def left_behind(scratch: Path) -> list[object]:
    """Whatever a closed harness left: its directory, code roots, registered processes."""
    found: list[object] = [scratch] if scratch.exists() else []
    found += [d for d in code_server.code_paths() if d.is_relative_to(scratch)]
    with contextlib.suppress(ProcessError):  # no node any more: no process either
        found += sorted(NODE_NAMES & set(kernel.registered()))
    return found


async def env_of(app: str, key: str) -> Any:
    return get_env(app, key)


@pytest.mark.parametrize(
    ("versions", "error", "match"),
    [
        pytest.param(["1.1.0", "1.0.0"], ValueError, "1.0.0 after 1.1.0", id="descending"),
        pytest.param(["1.0.0", "2.0.0", "1.1.0"], ValueError, "1.1.0 after 2.0.0", id="unsorted"),
        pytest.param(["1.0.0", "1.0.0"], ValueError, "strictly ascending", id="repeated"),
        pytest.param(["1.10.0", "1.9.0"], ValueError, "1.9.0 after 1.10.0", id="numeric-order"),
        pytest.param([], ValueError, "versions is empty", id="empty"),
        pytest.param("1.0.0", TypeError, "not the string '1.0.0'", id="one-string"),
    ],
)
def test_a_version_list_that_is_not_ascending_is_refused(
    versions: Sequence[str], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        UpgradePath(versions)


def test_versions_compare_as_numbers() -> None:
    assert UpgradePath(["1.9.0", "1.10.0"]).versions == ("1.9.0", "1.10.0")


async def test_the_fixture_refuses_a_bad_list_before_copying_anything(
    upgrade_harness: HarnessFactory,
) -> None:
    before = scratch_dirs()
    with pytest.raises(ValueError, match="strictly ascending"):
        await upgrade_harness(["2.0.0", "1.0.0"])
    assert scratch_dirs() == before
    assert upgrade_harness.harnesses == []


async def test_a_failing_check_leaves_nothing_behind(node: Node, free_tcp_port: int) -> None:
    async def wrong(step: Step) -> None:
        assert await env_of("counter", "port") == -1

    made: list[UpgradeHarness] = []

    async def failing_test() -> None:
        async with HarnessFactory(default_source=REPO) as factory:
            made.append(await factory(VERSIONS, env={"counter": {"port": free_tcp_port}}))
            assert left_behind(made[0].scratch) != [], "running: its dir, roots, processes"
            await made[0].chain({"1.1.0": wrong})

    with pytest.raises(UpgradeFailed) as info:
        await failing_test()
    h, scratch = made[0], made[0].scratch
    failure = info.value
    assert str(failure).startswith("step 1/4 (up 1.0.0 -> 1.1.0): the check failed")
    assert (failure.phase, failure.from_vsn, failure.to_vsn) == ("check", "1.0.0", "1.1.0")
    assert "wrong at 1.1.0 raised" in str(failure)
    assert f"assert {free_tcp_port} == -1" in str(failure), "the assertion, as pytest wrote it"
    assert failure.report is not None
    assert failure.report.to_vsn == "1.1.0"
    assert "install report: up 1.0.0 -> 1.1.0" in str(failure)
    assert left_behind(scratch) == []
    assert kernel.current_node() is node, "the test's node is left running"
    # the slot is free again: a new harness boots in the same node
    async with open_harness(UpgradePath(VERSIONS[:1], source=REPO, env=h.path.env)) as again:
        assert again.vsn == "1.0.0"
    assert left_behind(again.scratch) == []


async def test_without_a_node_the_factory_runs_its_own_and_stops_it(free_tcp_port: int) -> None:
    made: list[UpgradeHarness] = []

    async def failing_test() -> None:
        async with HarnessFactory(default_source=REPO) as factory:
            made.append(await factory(VERSIONS, env={"counter": {"port": free_tcp_port}}))
            assert kernel.current_node() is made[0].node
            await made[0].prepare(explode)

    with pytest.raises(UpgradeFailed, match="prepare failed"):
        await failing_test()
    with pytest.raises(ProcessError, match="no node is running"):
        kernel.current_node()
    assert left_behind(made[0].scratch) == []


async def explode() -> None:
    raise RuntimeError("prepare exploded")


async def test_a_boot_that_fails_is_reported_and_cleaned_up(
    upgrade_harness: HarnessFactory,
) -> None:
    before = scratch_dirs()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UpgradeFailed) as info:
            await upgrade_harness(VERSIONS, env={"counter": {"port": port}})
    assert info.value.phase == "boot"
    assert str(info.value).startswith("boot of demo 1.0.0: boot failed")
    assert "the node's boot process ended" in str(info.value)
    assert scratch_dirs() == before
    assert NODE_NAMES & set(kernel.registered()) == set()


async def test_a_version_the_tree_does_not_have_fails_the_build(
    upgrade_harness: HarnessFactory,
) -> None:
    before = scratch_dirs()
    with pytest.raises(UpgradeFailed, match=r"building demo 3\.0\.0: build failed") as info:
        await upgrade_harness(["1.0.0", "3.0.0"])
    assert info.value.to_vsn == "3.0.0"
    assert "known: demo-1.0.0, demo-1.1.0, demo-2.0.0" in str(info.value)
    assert scratch_dirs() == before


async def test_a_source_that_is_no_release_tree_is_refused(
    upgrade_harness: HarnessFactory, tmp_path: Path
) -> None:
    before = scratch_dirs()
    with pytest.raises(FileNotFoundError, match="is not a release source tree"):
        await upgrade_harness(VERSIONS, source=tmp_path)
    assert scratch_dirs() == before


async def test_env_overrides_hold_in_every_version(
    upgrade_harness: HarnessFactory, free_tcp_port: int
) -> None:
    h = await upgrade_harness(
        VERSIONS, env={"counter": {"port": free_tcp_port, "max_key_length": 77}}
    )
    assert h.env["counter"] == {"port": free_tcp_port, "max_key_length": 77}
    assert await h.prepare(env_of, "counter", "port") == free_tcp_port
    await h.upgrade_to("2.0.0")
    assert await h.prepare(env_of, "counter", "port") == free_tcp_port
    assert await h.prepare(env_of, "counter", "max_key_length") == 77, "over 2.0.0's own"
    assert await h.prepare(env_of, "counter", "count_routes") is True, "2.0.0's own env"


async def test_an_env_its_schema_refuses_fails_the_boot_naming_the_key(
    upgrade_harness: HarnessFactory, free_tcp_port: int
) -> None:
    with pytest.raises(Exception, match=r"counter\.port.*valid integer") as caught:
        await upgrade_harness(VERSIONS, env={"counter": {"port": "18090x"}})
    assert "counter.port" in str(caught.value)


async def test_moves_that_make_no_sense_are_refused(
    upgrade_harness: HarnessFactory, free_tcp_port: int
) -> None:
    h = await upgrade_harness(VERSIONS, env={"counter": {"port": free_tcp_port}})
    with pytest.raises(ValueError, match=r"3\.0\.0 is not on the path"):
        await h.upgrade_to("3.0.0")
    with pytest.raises(ValueError, match=r"already runs 1\.0\.0"):
        await h.upgrade_to("1.0.0")
    with pytest.raises(ValueError, match="use upgrade_to"):
        await h.downgrade_to("1.1.0")
    with pytest.raises(ValueError, match=r"unlisted versions \['9\.0\.0'\]"):
        await h.chain({"9.0.0": noop})
    await h.upgrade_to("1.1.0", permanent=False)
    with pytest.raises(ValueError, match="use downgrade_to"):
        await h.upgrade_to("1.0.0")
    with pytest.raises(ValueError, match=r"a chain starts at 1\.0\.0; the node runs 1\.1\.0"):
        await h.chain()
    assert h.vsn == "1.1.0"


async def noop(step: Step) -> None:
    pass


async def test_a_chain_needs_two_versions(
    upgrade_harness: HarnessFactory, free_tcp_port: int
) -> None:
    h = await upgrade_harness(["1.0.0"], env={"counter": {"port": free_tcp_port}})
    with pytest.raises(ValueError, match="two versions or more"):
        await h.chain()


async def test_one_harness_at_a_time(upgrade_harness: HarnessFactory, free_tcp_port: int) -> None:
    h = await upgrade_harness(VERSIONS[:1], env={"counter": {"port": free_tcp_port}})
    with pytest.raises(RuntimeError, match="already running"):
        await upgrade_harness(VERSIONS[:1])
    await h.close()
    await h.close()  # idempotent
    again = await upgrade_harness(VERSIONS[:1], env={"counter": {"port": free_tcp_port}})
    assert again.vsn == "1.0.0"


async def test_the_state_of_a_process_nobody_registered_says_who_is_there(
    upgrade_harness: HarnessFactory, free_tcp_port: int
) -> None:
    h = await upgrade_harness(VERSIONS[:1], env={"counter": {"port": free_tcp_port}})
    with pytest.raises(UpgradeFailed, match=r"at 1\.0\.0: state failed") as info:
        await h.state("nobody")
    assert "registered now:" in str(info.value)
    assert "counter_store" in str(info.value)


async def test_inside_a_process_the_harness_runs_in_the_caller(
    node: Node, free_tcp_port: int
) -> None:
    path = UpgradePath(VERSIONS, source=REPO, env={"counter": {"port": free_tcp_port}})

    async def body() -> list[str]:
        me = kernel.self()
        async with open_harness(path) as h:

            async def same_process() -> bool:
                return kernel.self() is me

            assert await h.prepare(same_process)
            await h.call("counter_store", ("incr", "k"))
            steps = await h.chain(down=False)
            assert (await h.state("counter_store"))["k"]["value"] == 1
            return [str(step) for step in steps]

    assert await node.run_process(body) == [
        "start at 1.0.0",
        "step 1/2 (up 1.0.0 -> 1.1.0)",
        "step 2/2 (up 1.1.0 -> 2.0.0)",
    ]


async def test_a_harness_whose_node_ended_first_still_cleans_up(free_tcp_port: int) -> None:
    # as when a test asks for ``upgrade_harness`` before ``node``: the node is torn down
    # first (every process killed), the harness after it
    factory = HarnessFactory(default_source=REPO)
    async with kernel.Node(name="short-lived") as short:
        h = await factory(VERSIONS[:1], env={"counter": {"port": free_tcp_port}})
        assert h.node is short
        assert left_behind(h.scratch) != []
    await factory.aclose()
    assert left_behind(h.scratch) == []
