"""The installer suspends, migrates and resumes parked gen_servers in place (no message).

The bench's ``fleet`` application, its worker given a log of casts and a call that leaves
it waiting with a timeout: such a worker is not parked in a receive of every message, so
the installer asks it by message, in the same install as the others. The work in place
runs in slices (``SLICE_ITEMS``, made small here so that many slices run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from bench.upgrade_at_scale import write_tree
from server.behaviours import gen_server, system_messages
from server.errors import InstallFailed
from server.release import _installer, current_vsn, handler
from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests.behaviours._helpers import within
from tests.release._fleet import boot_fleet, fleet_states, fleet_workers, stop_fleet

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from server.kernel import Node, Pid

_WORKER = '''"""A fleet worker with a log of casts, and a call that arms a timeout."""

from __future__ import annotations

from typing import Any

from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply, Timeout

__vsn__ = "{vsn}"


def init(args: Any) -> Ok:
    return Ok({{"a": int(args), "log": []}})


def handle_call(request: Any, from_: Any, state: dict[str, Any]) -> Reply:
    if request == "arm":
        return Reply("armed", state, Timeout(3600.0))
    return Reply(state, state)


def handle_cast(request: Any, state: dict[str, Any]) -> NoReply:
    state["log"].append(request)
    return NoReply(state)


def handle_info(message: Any, state: dict[str, Any]) -> NoReply:
    return NoReply(state)


def code_change(old_vsn: Any, state: dict[str, Any], extra: Any) -> dict[str, Any]:
{body}
'''

_UP = """\
    if isinstance(old_vsn, tuple):
        return {"a": state["a"], "log": state["log"]}
    state["log"].append("mutated")  # its input, before it may refuse
    if state["a"] == REFUSES:
        raise RuntimeError(f"worker {state['a']} refuses")
    return {**state, "log": [*state["log"][:-1], "migrated"], "vsn": 2}"""

_DOWN = '    return {"a": state["a"], "log": state["log"]}'


@pytest.fixture(autouse=True)
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_installer, "SLICE_ITEMS", 64)


def _tree(root: Path, packages: Path, count: int, refuses: int = -1) -> None:
    write_tree(root, count)
    for vsn, body in (("1.0.0", _DOWN), ("2.0.0", _UP)):
        worker = root / "apps" / f"fleet-{vsn}" / "fleet" / "worker.py"
        text = _WORKER.format(vsn=vsn, body=body.replace("REFUSES", str(refuses)))
        worker.write_text(text)
    build_package(SourceTree(root), "fleet", "2.0.0", packages)


class _Asked:
    """Which processes the installer asked by message (a spy around the real calls)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.suspended: list[Pid] = []
        self.changed: list[Pid] = []
        suspend_many, change_code_many = (
            system_messages.suspend_many,
            system_messages.change_code_many,
        )

        async def suspend(pids: Sequence[Pid], **kwargs: Any) -> Any:
            self.suspended.extend(pids)
            return await suspend_many(pids, **kwargs)

        async def change(pids: Sequence[Pid], *args: Any, **kwargs: Any) -> Any:
            self.changed.extend(pids)
            return await change_code_many(pids, *args, **kwargs)

        monkeypatch.setattr(system_messages, "suspend_many", suspend)
        monkeypatch.setattr(system_messages, "change_code_many", change)


async def test_a_failing_code_change_in_the_middle_of_1000_restores_all(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 1000
    root = tmp_path / "root"
    _tree(root, tmp_path / "packages", count, refuses=500)
    asked = _Asked(monkeypatch)

    async def body() -> None:
        boot = await boot_fleet(root)
        try:
            pids = await fleet_workers()
            assert len(pids) == count
            await within(handler.unpack(tmp_path / "packages" / "fleet-2.0.0.tar.gz"), "unpack")
            with pytest.raises(InstallFailed) as failed:
                await within(handler.install("2.0.0"), "install", 60)
            assert failed.value.outcome == "rolled_back"
            assert failed.value.step == "code_change"
            assert failed.value.pid == repr(pids[500])
            assert "worker 500 refuses" in str(failed.value)
            assert asked.suspended == [], "all of it in place"
            assert asked.changed == []
            assert await fleet_states(pids) == [{"a": i, "log": []} for i in range(count)]
            statuses = {(await system_messages.get_status(p)).status for p in pids}
            assert statuses == {"running"}
            assert not any(system_messages.is_suspended_in_place(p) for p in pids)
            assert current_vsn() == "1.0.0"
        finally:
            await stop_fleet(boot)

    await node.run_process(body)


async def test_messages_sent_during_the_suspension_are_handled_after_it_in_order(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 200
    root = tmp_path / "root"
    _tree(root, tmp_path / "packages", count)
    asked = _Asked(monkeypatch)

    async def body() -> None:
        boot = await boot_fleet(root)
        try:
            pids = await fleet_workers()
            armed = [pids[3], pids[150]]  # waiting with a timeout: asked by message
            for pid in armed:
                assert await within(gen_server.call(pid, "arm"), "arm") == "armed"
            await within(handler.unpack(tmp_path / "packages" / "fleet-2.0.0.tar.gz"), "unpack")

            def progress(step: str, done: int, total: int) -> None:
                if step == "load":  # every process is suspended by now
                    for pid in pids:
                        for i in range(3):
                            gen_server.cast(pid, i)

            report = await within(handler.install("2.0.0", progress=progress), "install", 60)
            assert len(report.processes) == count
            assert set(asked.suspended) == set(armed)
            assert set(asked.changed) == set(armed)
            states = await fleet_states(pids)
            assert states == [
                {"a": i, "log": ["migrated", 0, 1, 2], "vsn": 2} for i in range(count)
            ]
            await within(handler.install("1.0.0"), "downgrade", 60)
            states = await fleet_states(pids)
            assert states == [{"a": i, "log": ["migrated", 0, 1, 2]} for i in range(count)]
        finally:
            await stop_fleet(boot)

    await node.run_process(body)
