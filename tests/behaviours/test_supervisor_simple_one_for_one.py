"""simple_one_for_one: one template, children added with extra arguments, all stopped at
once under one shared shutdown timer; restart_child and delete_child are refused
(OTP semantics 7.2). On virtual time, for the shared timer.
"""

from __future__ import annotations

import anyio
import pytest

from server import kernel
from server.behaviours import gen_server, supervisor
from server.behaviours.supervisor import ChildCounts, ChildInfo
from server.behaviours.supervisor_callbacks import (
    ChildSpec,
    RestartType,
    Shutdown,
    SupervisorSpec,
    worker,
)
from server.errors import SupervisorError
from server.kernel import Node, Pid
from tests.behaviours.callbacks import worker_dynamic, worker_stubborn

from ._supervisor_support import (
    drain,
    pending_events,
    reason_of,
    recv,
    reports,
    start_sup,
    started,
    terminated,
    within,
)

pytestmark = pytest.mark.virtual_time


def pool(
    collector: Pid, *, restart: RestartType = "permanent", shutdown: Shutdown | None = None
) -> SupervisorSpec:
    template = worker("pooled", worker_dynamic, collector, restart=restart, shutdown=shutdown)
    return SupervisorSpec(children=[template], strategy="simple_one_for_one", intensity=5)


async def add(sup: Pid, extra: object) -> Pid:
    pid = await within(supervisor.start_child(sup, extra), f"start_child {extra!r}")
    assert isinstance(pid, Pid)
    return pid


async def test_start_child_appends_its_arguments_to_the_template(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        sup = await start_sup(pool(me))
        assert await within(supervisor.which_children(sup), "no child yet") == []
        one = await add(sup, "a")
        assert await started(("a",)) is one
        two = await add(sup, ("b", 2))
        assert await started(("b", 2)) is two
        modules = (worker_dynamic.__name__,)
        assert await within(supervisor.which_children(sup), "which_children") == [
            ChildInfo(None, one, "worker", modules),
            ChildInfo(None, two, "worker", modules),
        ]
        counts = await within(supervisor.count_children(sup), "count_children")
        assert counts == ChildCounts(specs=1, active=2, supervisors=0, workers=2)
        template = await within(supervisor.get_childspec(sup, one), "get_childspec")
        assert template.id == "pooled"

    await node.run_process(body)


async def test_stopping_the_supervisor_stops_every_child(node: Node) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        sup = await start_sup(pool(me))
        pids = {await add(sup, n) for n in range(4)}
        refs = {kernel.monitor(pid): pid for pid in pids}
        sup_ref = kernel.monitor(sup)
        kernel.exit(sup, kernel.SHUTDOWN)
        assert await reason_of(sup_ref, name="supervisor ended") == "shutdown"
        for ref in refs:
            assert await reason_of(ref, name="child ended") == "shutdown"
        assert {await terminated((n,)) for n in range(4)} == {"shutdown"}

    await node.run_process(body)


async def test_children_are_killed_together_after_one_shared_timeout(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    """Three children ignore ``shutdown``: all are killed after 2 s, not one after another."""

    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        template = ChildSpec(id="s", start=(worker_stubborn.start_link, me), shutdown=2.0)
        sup = await start_sup(SupervisorSpec(children=[template], strategy="simple_one_for_one"))
        pids = [await add(sup, ()) for _ in range(3)]
        refs = [kernel.monitor(pid) for pid in pids]
        sup_ref = kernel.monitor(sup)
        began = anyio.current_time()
        kernel.exit(sup, kernel.SHUTDOWN)
        assert await reason_of(sup_ref, name="supervisor ended") == "shutdown"
        assert anyio.current_time() - began == pytest.approx(2.0)
        for ref in refs:
            assert await reason_of(ref) == "killed"
        signals = [m for m in drain() if type(m) is tuple and m[0] == "exit_signal"]
        assert sorted(m[1].number for m in signals) == sorted(p.number for p in pids)
        assert {m[2] for m in signals} == {"shutdown"}, "each got shutdown before the kill"
        errors = reports(caplog, "shutdown_error")
        assert errors
        assert {r.reason for r in errors} == {repr("killed")}  # type: ignore[attr-defined]

    await node.run_process(body)


async def test_restart_child_and_delete_child_are_refused(node: Node) -> None:
    async def body() -> None:
        sup = await start_sup(pool(kernel.self()))
        pid = await add(sup, "a")
        before = await within(supervisor.which_children(sup), "which_children")
        with pytest.raises(SupervisorError, match="simple_one_for_one"):
            await supervisor.restart_child(sup, "pooled")
        with pytest.raises(SupervisorError, match="simple_one_for_one"):
            await supervisor.delete_child(sup, "pooled")
        assert await within(supervisor.which_children(sup), "unchanged") == before
        assert kernel.is_alive(pid)

    await node.run_process(body)


async def test_terminate_child_by_pid(node: Node) -> None:
    async def body() -> None:
        sup = await start_sup(pool(kernel.self()))
        one = await add(sup, "a")
        two = await add(sup, "b")
        ref = kernel.monitor(one)
        await within(supervisor.terminate_child(sup, one), "terminate_child")
        assert await reason_of(ref) == "shutdown"
        assert await terminated(("a",)) == "shutdown"
        rows = await within(supervisor.which_children(sup), "which_children")
        assert [row.pid for row in rows] == [two]
        with pytest.raises(SupervisorError, match="not_found"):
            await supervisor.terminate_child(sup, one)
        with pytest.raises(SupervisorError, match="not_found"):
            await supervisor.terminate_child(sup, "pooled")
        with pytest.raises(SupervisorError, match="not_found"):
            await supervisor.get_childspec(sup, one)

    await node.run_process(body)


@pytest.mark.parametrize(
    ("restart", "reason", "restarted"),
    [
        pytest.param("permanent", "crash", True, id="permanent-crash-restarted"),
        pytest.param("permanent", "normal", True, id="permanent-normal-restarted"),
        pytest.param("transient", "crash", True, id="transient-crash-restarted"),
        pytest.param("transient", "normal", False, id="transient-normal-removed"),
        pytest.param("temporary", "crash", False, id="temporary-crash-removed"),
    ],
)
async def test_a_dynamic_child_exit(
    node: Node, restart: RestartType, reason: str, restarted: bool
) -> None:
    async def body() -> None:
        me = kernel.self()
        sup = await start_sup(pool(me, restart=restart))
        other = await add(sup, "other")
        await started(("other",))
        pid = await add(sup, ("a", 1))
        await started(("a", 1))
        ref = kernel.monitor(pid)
        gen_server.cast(pid, ("stop", reason))
        assert await reason_of(ref) == reason
        rows = [row.pid for row in await within(supervisor.which_children(sup), "children")]
        if restarted:
            new = await started(("a", 1))
            assert new is not pid
            assert rows == [other, new], "restarted with the same extra arguments"
        else:
            assert rows == [other]
        assert [m for m in pending_events() if m[0] == "started"] == []  # type: ignore[index]

    await node.run_process(body)


async def test_brutal_kill_template_kills_every_child_at_once(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        sup = await start_sup(pool(me, shutdown="brutal_kill"))
        refs = [kernel.monitor(await add(sup, n)) for n in range(3)]
        for n in range(3):
            await started((n,))
        kernel.exit(sup, kernel.SHUTDOWN)
        for ref in refs:
            assert await reason_of(ref) == "killed"
        await recv(lambda m: isinstance(m, kernel.ExitMessage) and m.pid is sup, step="EXIT")
        assert pending_events() == [], "no terminate ran"
        assert reports(caplog) == []

    await node.run_process(body)
