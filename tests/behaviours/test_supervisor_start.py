"""Supervisor start: children start in list order and stop in reverse order; a child that
fails to start fails the whole start and the started ones are stopped; ``Ignore()``.
(OTP semantics 7.1 and 7.2.)
"""

from __future__ import annotations

import pytest

from server import kernel
from server.behaviours import gen_server, supervisor
from server.behaviours.gen_server_callbacks import Ignore
from server.behaviours.supervisor_callbacks import ChildSpec, SupervisorSpec
from server.errors import StartError
from server.kernel import ExitMessage, Node, Pid
from tests.behaviours.callbacks import sup_given, sup_upgrade_bad, worker_probe

from ._supervisor_support import (
    children,
    drain,
    events,
    pending_events,
    reason_of,
    recv,
    start_sup,
    within,
)

IDS = ["x1", "x2", "x3"]


def three(collector: Pid, *, refusing: str | None = None) -> SupervisorSpec:
    return SupervisorSpec(
        children=[
            worker_probe.child(
                i, collector, trap_exit=True, plan=["refuse"] if i == refusing else []
            )
            for i in IDS
        ]
    )


async def test_children_start_in_list_order(node: Node) -> None:
    async def body() -> None:
        sup = await start_sup(three(kernel.self()))
        assert await events(3, name="initial starts") == [("started", i) for i in IDS]
        rows = await within(supervisor.which_children(sup), "which_children")
        assert [row.id for row in rows] == IDS
        for row in rows:
            assert isinstance(row.pid, Pid)
            assert kernel.is_alive(row.pid)
            assert row.type == "worker"
            assert row.modules == (worker_probe.__name__,)
            info = kernel.process_info(row.pid)
            assert info is not None
            assert sup in info.links, "a child is linked to its supervisor"

    await node.run_process(body)


@pytest.mark.parametrize("how", ["parent_exit_signal", "gen_server_stop"])
async def test_children_stop_in_reverse_order_when_the_supervisor_stops(
    node: Node, how: str
) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        sup = await start_sup(three(kernel.self()))
        await events(3, name="initial starts")
        before = await children(sup)
        ref = kernel.monitor(sup)
        if how == "parent_exit_signal":
            kernel.exit(sup, kernel.SHUTDOWN)
        else:
            await within(gen_server.stop(sup, kernel.SHUTDOWN), "stop")
        assert await reason_of(ref, name="supervisor ended") == "shutdown"
        assert await events(3, name="stops") == [("terminated", i) for i in reversed(IDS)]
        for pid in before.values():
            assert isinstance(pid, Pid)
            assert not kernel.is_alive(pid)

    await node.run_process(body)


@pytest.mark.parametrize("refusing", IDS)
async def test_a_child_failing_to_start_fails_the_start_and_stops_the_started_ones(
    node: Node, refusing: str
) -> None:
    async def body() -> None:
        before = set(kernel.processes())
        with pytest.raises(StartError) as raised:
            await within(
                supervisor.start_link(sup_given, three(kernel.self(), refusing=refusing)), "start"
            )
        assert raised.value.reason == (
            "shutdown",
            ("failed_to_start_child", refusing, ("refused", refusing)),
        )
        started = IDS[: IDS.index(refusing)]
        expected = [("started", i) for i in started]
        expected += [("terminated", i) for i in reversed(started)]
        assert await events(len(expected), name="starts and stops") == expected
        messages = drain()
        assert ("refused", refusing) in messages
        assert not [m for m in messages if isinstance(m, ExitMessage)]
        assert [m for m in messages if type(m) is tuple and m[0] in ("started", "terminated")] == []
        assert set(kernel.processes()) == before, "no supervisor and no child is left"

    await node.run_process(body)


async def test_a_start_function_that_raises_fails_the_start_with_the_exception(
    node: Node,
) -> None:
    error = ConnectionError("database is down")

    async def broken_start() -> Pid:
        raise error

    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(
            children=[
                worker_probe.child("first", me, trap_exit=True),
                ChildSpec(id="db", start=(broken_start,)),
            ]
        )
        with pytest.raises(StartError) as raised:
            await within(supervisor.start_link(sup_given, spec), "start")
        assert raised.value.reason == ("shutdown", ("failed_to_start_child", "db", error))
        assert await events(2, name="first started and stopped") == [
            ("started", "first"),
            ("terminated", "first"),
        ]

    await node.run_process(body)


async def test_a_start_function_returning_junk_fails_the_start(node: Node) -> None:
    async def junk_start() -> object:
        return "not a pid"

    async def body() -> None:
        spec = SupervisorSpec(children=[ChildSpec(id="junk", start=(junk_start,))])
        with pytest.raises(StartError) as raised:
            await within(supervisor.start_link(sup_given, spec), "start")
        assert raised.value.reason == (
            "shutdown",
            ("failed_to_start_child", "junk", ("bad_start_return", "not a pid")),
        )

    await node.run_process(body)


async def test_init_returning_ignore_makes_start_link_return_none(node: Node) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        before = set(kernel.processes())
        assert await within(supervisor.start_link(sup_given, Ignore(), name="ig"), "start") is None
        assert set(kernel.processes()) == before
        assert kernel.whereis("ig") is None
        assert drain() == [], "no ExitMessage reaches the parent"

    await node.run_process(body)


async def test_init_building_an_invalid_spec_fails_the_start(node: Node) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        with pytest.raises(StartError, match="brutal_kil"):
            await within(supervisor.start_link(sup_upgrade_bad, kernel.self()), "start")
        assert await recv(lambda m: m == ("init", "bad"), step="init ran") == ("init", "bad")
        assert pending_events() == [], "no child was started"

    await node.run_process(body)


async def test_init_returning_something_else_fails_the_start(node: Node) -> None:
    async def body() -> None:
        with pytest.raises(StartError, match="not a SupervisorSpec"):
            await within(supervisor.start_link(sup_given, "junk"), "start")

    await node.run_process(body)


@pytest.mark.parametrize(
    ("restart", "kept"),
    [
        pytest.param("permanent", True, id="permanent-kept"),
        pytest.param("transient", True, id="transient-kept"),
        pytest.param("temporary", False, id="temporary-dropped"),
    ],
)
async def test_a_child_that_ignores_its_start(node: Node, restart: str, kept: bool) -> None:
    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(
            children=[
                worker_probe.child("lazy", me, plan=["ignore"], restart=restart),  # type: ignore[arg-type]
                worker_probe.child("busy", me),
            ]
        )
        sup = await start_sup(spec)
        assert await recv(lambda m: m == ("ignored", "lazy"), step="ignored") == ("ignored", "lazy")
        rows = await children(sup)
        assert ("lazy" in rows) is kept
        if kept:
            assert rows["lazy"] is None
        assert isinstance(rows["busy"], Pid)

    await node.run_process(body)


async def test_a_supervisor_can_be_registered_under_a_name(node: Node) -> None:
    async def body() -> None:
        sup = await start_sup(three(kernel.self()), name="registered_sup")
        assert kernel.whereis("registered_sup") is sup
        rows = await within(supervisor.which_children("registered_sup"), "which_children by name")
        assert [row.id for row in rows] == IDS

    await node.run_process(body)
