"""Explicit administration: which_children, count_children, start_child, terminate_child,
restart_child, delete_child, get_childspec (OTP semantics 7.6).

Every refusal is checked for its exact error type and for "nothing changed".
"""

from __future__ import annotations

import pytest

from server import kernel
from server.behaviours import supervisor
from server.behaviours.supervisor import ChildCounts, ChildInfo
from server.behaviours.supervisor_callbacks import ChildSpec, SupervisorSpec, supervisor_child
from server.errors import StartError, SupervisorError
from server.kernel import Node, Pid
from tests.behaviours.callbacks import sup_given, worker_probe

from ._supervisor_support import (
    children,
    events,
    pending_events,
    pid_of,
    reason_of,
    start_sup,
    started,
    terminated,
    within,
)


def two(collector: Pid) -> SupervisorSpec:
    return SupervisorSpec(
        children=[
            worker_probe.child("a", collector, trap_exit=True),
            worker_probe.child("b", collector, trap_exit=True),
        ]
    )


async def test_which_children_and_count_children(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        inner = SupervisorSpec(children=[worker_probe.child("inner", me)])
        spec = SupervisorSpec(
            children=[
                worker_probe.child("a", me),
                supervisor_child("sub", sup_given, inner),
                worker_probe.child("lazy", me, plan=["ignore"]),
            ]
        )
        sup = await start_sup(spec)
        a = await started("a")
        rows = await within(supervisor.which_children(sup), "which_children")
        sub = rows[1].pid
        assert isinstance(sub, Pid)
        assert rows == [
            ChildInfo("a", a, "worker", (worker_probe.__name__,)),
            ChildInfo("sub", sub, "supervisor", (sup_given.__name__,)),
            ChildInfo("lazy", None, "worker", (worker_probe.__name__,)),
        ]
        counts = await within(supervisor.count_children(sup), "count_children")
        assert counts == ChildCounts(specs=3, active=2, supervisors=1, workers=2)

    await node.run_process(body)


async def test_start_child_adds_and_starts_a_new_child_last(node: Node) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        sup = await start_sup(two(me))
        await events(2, name="initial starts")
        pid = await within(
            supervisor.start_child(sup, worker_probe.child("c", me, trap_exit=True)), "start_child"
        )
        assert isinstance(pid, Pid)
        assert await started("c") is pid
        assert await children(sup) == {
            "a": await pid_of(sup, "a"),
            "b": await pid_of(sup, "b"),
            "c": pid,
        }
        info = kernel.process_info(pid)
        assert info is not None
        assert sup in info.links
        ref = kernel.monitor(sup)
        kernel.exit(sup, kernel.SHUTDOWN)
        assert await reason_of(ref, name="supervisor ended") == "shutdown"
        assert await events(3, name="stops") == [
            ("terminated", "c"),
            ("terminated", "b"),
            ("terminated", "a"),
        ]

    await node.run_process(body)


async def test_start_child_refuses_a_duplicate_id(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        sup = await start_sup(two(me))
        await events(2, name="initial starts")
        before = await children(sup)
        with pytest.raises(SupervisorError, match="already_started"):
            await supervisor.start_child(sup, worker_probe.child("a", me))
        await within(supervisor.terminate_child(sup, "a"), "terminate_child")
        await terminated("a")
        with pytest.raises(SupervisorError, match="already_present"):
            await supervisor.start_child(sup, worker_probe.child("a", me))
        after = await children(sup)
        assert list(after) == ["a", "b"]
        assert after["a"] is None
        assert after["b"] is before["b"]
        assert pending_events() == [], "no child was started"

    await node.run_process(body)


async def test_start_child_of_a_child_that_fails_to_start(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        sup = await start_sup(two(me))
        await events(2, name="initial starts")
        before = await children(sup)
        with pytest.raises(StartError) as raised:
            await supervisor.start_child(sup, worker_probe.child("c", me, plan=["refuse"]))
        assert raised.value.reason == ("refused", "c")
        assert await children(sup) == before, "the spec was not added"
        assert kernel.is_alive(sup)

    await node.run_process(body)


async def test_start_child_refuses_what_is_not_a_child_spec(node: Node) -> None:
    async def body() -> None:
        sup = await start_sup(two(kernel.self()))
        before = await children(sup)
        with pytest.raises(SupervisorError, match="not_a_child_spec"):
            await supervisor.start_child(sup, ("a", "tuple"))
        assert await children(sup) == before

    await node.run_process(body)


@pytest.mark.parametrize(
    ("restart", "kept"),
    [
        pytest.param("permanent", True, id="permanent-spec-kept"),
        pytest.param("transient", True, id="transient-spec-kept"),
        pytest.param("temporary", False, id="temporary-spec-removed"),
    ],
)
async def test_terminate_child(node: Node, restart: str, kept: bool) -> None:
    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(
            children=[
                worker_probe.child("a", me, trap_exit=True),
                worker_probe.child("c", me, trap_exit=True, restart=restart),  # type: ignore[arg-type]
            ]
        )
        sup = await start_sup(spec)
        await events(2, name="initial starts")
        child = await pid_of(sup, "c")
        ref = kernel.monitor(child)
        await within(supervisor.terminate_child(sup, "c"), "terminate_child")
        assert await reason_of(ref) == "shutdown"
        assert await terminated("c") == "shutdown"
        rows = await children(sup)
        if kept:
            assert list(rows) == ["a", "c"]
            assert rows["c"] is None
            assert (await within(supervisor.get_childspec(sup, "c"), "spec")).id == "c"
        else:
            assert list(rows) == ["a"]
        assert pending_events() == [], "not restarted"

    await node.run_process(body)


async def test_terminate_child_by_pid_and_of_a_stopped_child(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        sup = await start_sup(two(me))
        await events(2, name="initial starts")
        b = await pid_of(sup, "b")
        await within(supervisor.terminate_child(sup, b), "terminate_child by pid")
        assert await terminated("b") == "shutdown"
        assert (await children(sup))["b"] is None
        await within(supervisor.terminate_child(sup, "b"), "terminate a stopped child")
        with pytest.raises(SupervisorError, match="not_found"):
            await supervisor.terminate_child(sup, "nobody")

    await node.run_process(body)


async def test_restart_child(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        sup = await start_sup(two(me))
        await events(2, name="initial starts")
        a = await pid_of(sup, "a")
        with pytest.raises(SupervisorError, match="running"):
            await supervisor.restart_child(sup, "a")
        assert await pid_of(sup, "a") is a, "a running child is left alone"
        with pytest.raises(SupervisorError, match="not_found"):
            await supervisor.restart_child(sup, "nobody")
        await within(supervisor.terminate_child(sup, "a"), "terminate_child")
        await terminated("a")
        new = await within(supervisor.restart_child(sup, "a"), "restart_child")
        assert isinstance(new, Pid)
        assert new is not a
        assert await started("a") is new
        assert list(await children(sup)) == ["a", "b"], "it keeps its place"

    await node.run_process(body)


async def test_restart_child_whose_start_fails_leaves_it_stopped(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(children=[worker_probe.child("f", me, plan=["start", "refuse"])])
        sup = await start_sup(spec)
        await within(supervisor.terminate_child(sup, "f"), "terminate_child")
        with pytest.raises(SupervisorError, match="refused"):
            await supervisor.restart_child(sup, "f")
        assert await children(sup) == {"f": None}
        assert isinstance(await within(supervisor.restart_child(sup, "f"), "again"), Pid)

    await node.run_process(body)


async def test_delete_child(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        sup = await start_sup(two(me))
        await events(2, name="initial starts")
        before = await children(sup)
        with pytest.raises(SupervisorError, match="running"):
            await supervisor.delete_child(sup, "a")
        assert await children(sup) == before, "a running child is neither stopped nor deleted"
        with pytest.raises(SupervisorError, match="not_found"):
            await supervisor.delete_child(sup, "nobody")
        await within(supervisor.terminate_child(sup, "a"), "terminate_child")
        await within(supervisor.delete_child(sup, "a"), "delete_child")
        assert await children(sup) == {"b": before["b"]}
        with pytest.raises(SupervisorError, match="not_found"):
            await supervisor.restart_child(sup, "a")
        pid = await within(supervisor.start_child(sup, worker_probe.child("a", me)), "start again")
        assert list(await children(sup)) == ["b", "a"]
        assert isinstance(pid, Pid)

    await node.run_process(body)


async def test_get_childspec(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        spec = two(me)
        sup = await start_sup(spec)
        assert await within(supervisor.get_childspec(sup, "a"), "by id") == spec.children[0]
        b = await pid_of(sup, "b")
        assert await within(supervisor.get_childspec(sup, b), "by pid") == spec.children[1]
        with pytest.raises(SupervisorError, match="not_found"):
            await supervisor.get_childspec(sup, "nobody")

    await node.run_process(body)


async def test_a_child_spec_with_a_plain_start_function(node: Node) -> None:
    """A ``ChildSpec`` whose start function is not a behaviour (OTP's MFA children)."""

    async def body() -> None:
        async def loop() -> None:
            await kernel.receive(lambda _: False)

        async def start() -> Pid:
            return kernel.spawn_link(loop)

        sup = await start_sup(SupervisorSpec())
        pid = await within(
            supervisor.start_child(sup, ChildSpec(id="raw", start=(start,))), "start"
        )
        assert isinstance(pid, Pid)
        ref = kernel.monitor(pid)
        await within(supervisor.terminate_child(sup, "raw"), "terminate_child")
        assert await reason_of(ref) == "shutdown"

    await node.run_process(body)
