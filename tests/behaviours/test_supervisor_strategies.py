"""Strategies: which children a crash restarts, and in what order (OTP semantics 7.2).

The grid is strategy x failing child over ``[x1, x2, x3]``. The failing child is killed
(so it runs no ``terminate``); the others trap exits and report their ``terminate``, so
the events show the others being stopped in reverse order before the group restarts in
order, and the children outside the group keep their pids.
"""

from __future__ import annotations

import pytest

from server import kernel
from server.behaviours import supervisor
from server.behaviours.supervisor_callbacks import Strategy, SupervisorSpec
from server.kernel import Node, Pid
from tests.behaviours.callbacks import worker_probe

from ._supervisor_support import children, events, kill_and_wait, pending_events, start_sup

IDS = ["x1", "x2", "x3"]

S = "started"
T = "terminated"

# (strategy, failing child, the events after the crash, the children with a new pid)
GRID = [
    pytest.param("one_for_one", "x1", [(S, "x1")], {"x1"}, id="one_for_one-x1"),
    pytest.param("one_for_one", "x2", [(S, "x2")], {"x2"}, id="one_for_one-x2"),
    pytest.param("one_for_one", "x3", [(S, "x3")], {"x3"}, id="one_for_one-x3"),
    pytest.param(
        "one_for_all",
        "x1",
        [(T, "x3"), (T, "x2"), (S, "x1"), (S, "x2"), (S, "x3")],
        {"x1", "x2", "x3"},
        id="one_for_all-x1",
    ),
    pytest.param(
        "one_for_all",
        "x2",
        [(T, "x3"), (T, "x1"), (S, "x1"), (S, "x2"), (S, "x3")],
        {"x1", "x2", "x3"},
        id="one_for_all-x2",
    ),
    pytest.param(
        "one_for_all",
        "x3",
        [(T, "x2"), (T, "x1"), (S, "x1"), (S, "x2"), (S, "x3")],
        {"x1", "x2", "x3"},
        id="one_for_all-x3",
    ),
    pytest.param(
        "rest_for_one",
        "x1",
        [(T, "x3"), (T, "x2"), (S, "x1"), (S, "x2"), (S, "x3")],
        {"x1", "x2", "x3"},
        id="rest_for_one-x1",
    ),
    pytest.param(
        "rest_for_one",
        "x2",
        [(T, "x3"), (S, "x2"), (S, "x3")],
        {"x2", "x3"},
        id="rest_for_one-x2",
    ),
    pytest.param("rest_for_one", "x3", [(S, "x3")], {"x3"}, id="rest_for_one-x3"),
]


@pytest.mark.parametrize(("strategy", "failing", "expected", "restarted"), GRID)
async def test_a_crash_restarts_exactly_the_strategy_s_group(
    node: Node,
    strategy: Strategy,
    failing: str,
    expected: list[tuple[str, str]],
    restarted: set[str],
) -> None:
    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(
            children=[worker_probe.child(i, me, trap_exit=True) for i in IDS],
            strategy=strategy,
            intensity=1,
            period=5,
        )
        sup = await start_sup(spec)
        await events(3, name="initial starts")
        before = await children(sup)
        victim = before[failing]
        assert isinstance(victim, Pid)
        assert await kill_and_wait(victim) == "killed"
        assert await events(len(expected), name="restart") == expected
        after = await children(sup)  # answered after the EXIT has been handled
        assert list(after) == IDS, "the children keep their order"
        for child_id in IDS:
            pid = after[child_id]
            assert isinstance(pid, Pid)
            assert kernel.is_alive(pid)
            if child_id in restarted:
                assert pid is not before[child_id], f"{child_id} was restarted"
            else:
                assert pid is before[child_id], f"{child_id} kept its pid"
        assert pending_events() == [], "nothing else was stopped or started"

    await node.run_process(body)


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
async def test_a_group_restart_drops_temporary_children(node: Node, strategy: Strategy) -> None:
    """OTP: a temporary child stopped by a group restart is not restarted; its spec goes."""

    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(
            children=[
                worker_probe.child("x1", me, trap_exit=True),
                worker_probe.child("x2", me, trap_exit=True),
                worker_probe.child("tmp", me, trap_exit=True, restart="temporary"),
            ],
            strategy=strategy,
        )
        sup = await start_sup(spec)
        await events(3, name="initial starts")
        victim = (await children(sup))["x2"]
        assert isinstance(victim, Pid)
        await kill_and_wait(victim)
        if strategy == "one_for_all":
            expected = [(T, "tmp"), (T, "x1"), (S, "x1"), (S, "x2")]
        else:
            expected = [(T, "tmp"), (S, "x2")]
        assert await events(len(expected), name="restart") == expected
        assert list(await children(sup)) == ["x1", "x2"]
        assert pending_events() == []

    await node.run_process(body)


async def test_a_group_restart_also_starts_a_stopped_child(node: Node) -> None:
    """one_for_all restarts every child in the list, one stopped by terminate_child too."""

    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(
            children=[worker_probe.child(i, me, trap_exit=True) for i in IDS],
            strategy="one_for_all",
        )
        sup = await start_sup(spec)
        await events(3, name="initial starts")
        await supervisor.terminate_child(sup, "x3")
        assert await events(1, name="x3 stopped") == [(T, "x3")]
        victim = (await children(sup))["x1"]
        assert isinstance(victim, Pid)
        await kill_and_wait(victim)
        assert await events(4, name="restart") == [(T, "x2"), (S, "x1"), (S, "x2"), (S, "x3")]

    await node.run_process(body)
