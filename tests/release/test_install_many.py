"""Installing over many processes of one module: the bench's ``fleet`` application.

Its top supervisor is simple_one_for_one over ``fleet.worker`` gen_servers. The installer
asks them in batches (``BATCH``, made small here so that several batches run): every one
is suspended, migrated and resumed, and a failure in a middle batch rolls every batch back
in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bench.upgrade_at_scale import write_tree
from server.behaviours import system_messages
from server.errors import InstallFailed
from server.release import _installer, current_vsn, handler
from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests.behaviours._helpers import within
from tests.release._fleet import boot_fleet, fleet_states, fleet_workers, stop_fleet

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Node

COUNT = 50


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_installer, "BATCH", 8)


def _v1(i: int) -> dict[str, int]:
    return {"a": i, "b": 2 * i, "c": 0}


async def test_every_process_is_migrated_up_and_back_down(node: Node, tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_tree(root, COUNT)
    build_package(SourceTree(root), "fleet", "2.0.0", tmp_path / "packages")

    async def body() -> None:
        boot = await boot_fleet(root)
        try:
            pids = await fleet_workers()
            assert len(pids) == COUNT
            await within(handler.unpack(tmp_path / "packages" / "fleet-2.0.0.tar.gz"), "unpack")
            report = await within(handler.install("2.0.0"), "install", 30)
            assert sorted(p for p, _ in report.processes) == sorted(repr(p) for p in pids)
            assert await fleet_states(pids) == [{**_v1(i), "total": 0} for i in range(COUNT)]
            statuses = [(await system_messages.get_status(p)).status for p in pids]
            assert statuses == ["running"] * COUNT
            await within(handler.install("1.0.0"), "downgrade", 30)
            assert await fleet_states(pids) == [_v1(i) for i in range(COUNT)]
        finally:
            await stop_fleet(boot)

    await node.run_process(body)


async def test_a_failure_in_a_middle_batch_rolls_every_batch_back_in_place(
    node: Node, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    write_tree(root, COUNT)
    worker = root / "apps" / "fleet-2.0.0" / "fleet" / "worker.py"
    text = worker.read_text()
    head, _, _ = text.partition("def code_change(")
    worker.write_text(
        head + "def code_change(old_vsn: Any, state: dict[str, int], extra: Any) -> Any:\n"
        "    state['c'] = -1  # mutates its input, for every process\n"
        "    if state['a'] == 29:\n"
        "        raise RuntimeError('worker 29 refuses')\n"
        "    return {**state, 'total': 0}\n"
    )
    build_package(SourceTree(root), "fleet", "2.0.0", tmp_path / "packages")

    async def body() -> None:
        boot = await boot_fleet(root)
        try:
            pids = await fleet_workers()
            await within(handler.unpack(tmp_path / "packages" / "fleet-2.0.0.tar.gz"), "unpack")
            with pytest.raises(InstallFailed) as failed:
                await within(handler.install("2.0.0"), "install", 30)
            assert failed.value.outcome == "rolled_back"
            assert failed.value.step == "code_change"
            assert failed.value.pid == repr(pids[29])
            assert "worker 29 refuses" in str(failed.value)
            assert await fleet_states(pids) == [_v1(i) for i in range(COUNT)]
            statuses = [(await system_messages.get_status(p)).status for p in pids]
            assert statuses == ["running"] * COUNT
            assert current_vsn() == "1.0.0"
        finally:
            await stop_fleet(boot)

    await node.run_process(body)
