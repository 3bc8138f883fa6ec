"""Shutting a child down: ``brutal_kill``, a timeout, ``infinity`` (OTP semantics 7.5).

On virtual time: a timeout of a few seconds, or a wait that must never end, costs no real
time, and ``anyio.current_time()`` shows exactly when the supervisor gave up waiting.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import anyio
import pytest

from server import kernel
from server.behaviours import supervisor
from server.behaviours.supervisor_callbacks import RestartType, SupervisorSpec, supervisor_child
from tests.behaviours.callbacks import sup_given, worker_probe, worker_stubborn

from ._supervisor_support import (
    children,
    drain,
    events,
    pending_events,
    pid_of,
    reason_of,
    recv,
    reports,
    start_sup,
    terminated,
    within,
)

if TYPE_CHECKING:
    from server.kernel import Node, Pid


pytestmark = pytest.mark.virtual_time


async def exit_signal_of(pid: Pid) -> object:
    """Wait for a stubborn child's report of an exit signal; return its reason."""
    message = await recv(
        lambda m: type(m) is tuple and m[:2] == ("exit_signal", pid), step=f"{pid} got a signal"
    )
    assert type(message) is tuple
    return message[2]


@pytest.mark.parametrize("trap_exit", [True, False], ids=["trapping", "not-trapping"])
async def test_brutal_kill_kills_without_terminate(
    node: Node, caplog: pytest.LogCaptureFixture, trap_exit: bool
) -> None:
    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(
            children=[worker_probe.child("b", me, trap_exit=trap_exit, shutdown="brutal_kill")]
        )
        sup = await start_sup(spec)
        child = await pid_of(sup, "b")
        await events(1, name="initial start")
        ref = kernel.monitor(child)
        await within(supervisor.terminate_child(sup, "b"), "terminate_child")
        assert await reason_of(ref) == "killed"
        assert pending_events() == [], "terminate did not run"
        assert reports(caplog) == [], "killed is the expected reason of brutal_kill"

    await node.run_process(body)


@pytest.mark.parametrize("trap_exit", [True, False], ids=["trapping", "not-trapping"])
async def test_a_timeout_shutdown_ends_a_child_with_shutdown(
    node: Node, caplog: pytest.LogCaptureFixture, trap_exit: bool
) -> None:
    """A trapping child runs ``terminate``; one that does not trap dies at once without."""

    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(
            children=[worker_probe.child("w", me, trap_exit=trap_exit, shutdown=5.0)]
        )
        sup = await start_sup(spec)
        child = await pid_of(sup, "w")
        await events(1, name="initial start")
        ref = kernel.monitor(child)
        await within(supervisor.terminate_child(sup, "w"), "terminate_child")
        assert await reason_of(ref) == "shutdown"
        if trap_exit:
            assert await events(1, name="terminate ran") == [("terminated", "w")]
        assert pending_events() == []
        assert reports(caplog) == []

    await node.run_process(body)


async def test_a_child_that_ignores_shutdown_is_killed_after_its_timeout(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(children=[worker_stubborn.child("s", me, shutdown=2.0)])
        sup = await start_sup(spec)
        child = await pid_of(sup, "s")
        ref = kernel.monitor(child)
        began = anyio.current_time()
        await within(supervisor.terminate_child(sup, "s"), "terminate_child", limit=10)
        assert anyio.current_time() - began == pytest.approx(2.0)
        assert await exit_signal_of(child) == "shutdown", "shutdown came first"
        assert await reason_of(ref) == "killed"
        [report] = reports(caplog, "shutdown_error")
        assert report.child_id == "s"  # type: ignore[attr-defined]
        assert report.reason == repr("killed")  # type: ignore[attr-defined]
        assert (await children(sup))["s"] is None

    await node.run_process(body)


async def test_a_slow_terminate_within_the_timeout_is_not_killed(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(
            children=[worker_probe.child("w", me, trap_exit=True, terminate_delay=1.5, shutdown=2)]
        )
        sup = await start_sup(spec)
        child = await pid_of(sup, "w")
        ref = kernel.monitor(child)
        began = anyio.current_time()
        await within(supervisor.terminate_child(sup, "w"), "terminate_child", limit=10)
        assert anyio.current_time() - began == pytest.approx(1.5)
        assert await terminated("w") == "shutdown"
        assert await reason_of(ref) == "shutdown"

    await node.run_process(body)


async def test_infinity_never_kills(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(children=[worker_stubborn.child("s", me, shutdown=math.inf)])
        sup = await start_sup(spec)
        child = await pid_of(sup, "s")

        async def admin() -> None:
            await supervisor.terminate_child(sup, "s")
            kernel.send(me, "terminate_child returned")

        kernel.spawn(admin)
        assert await exit_signal_of(child) == "shutdown"
        with anyio.move_on_after(10_000):  # virtual seconds: "for ever" costs nothing
            await kernel.receive(lambda m: m == "terminate_child returned")
            raise AssertionError("the supervisor stopped waiting")
        assert kernel.is_alive(child), "never killed"
        ref = kernel.monitor(child)
        kernel.exit(child, kernel.KILL)  # only someone else's kill ends the wait
        assert await reason_of(ref) == "killed"
        await recv(lambda m: m == "terminate_child returned", step="terminate_child returned")
        [report] = reports(caplog, "shutdown_error")
        assert report.reason == repr("killed")  # type: ignore[attr-defined]

    await node.run_process(body)


@pytest.mark.parametrize(
    ("shutdown", "sub_reason"),
    [
        pytest.param(None, "shutdown", id="default-infinity-waits-for-the-subtree"),
        pytest.param(5.0, "killed", id="timeout-5s-kills-the-subtree"),
    ],
)
async def test_a_supervisor_child_waits_for_its_whole_subtree(
    node: Node, shutdown: float | None, sub_reason: str
) -> None:
    """The grandchild's clean-up takes 8 s; a supervisor child's default shutdown waits."""

    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        inner = SupervisorSpec(
            children=[
                worker_probe.child("slow", me, trap_exit=True, terminate_delay=8.0, shutdown=10.0)
            ]
        )
        sub = supervisor_child("sub", sup_given, inner, shutdown=shutdown)
        assert sub.shutdown == (math.inf if shutdown is None else shutdown)
        top = await start_sup(SupervisorSpec(children=[sub]))
        sub_pid = await pid_of(top, "sub")
        sub_ref = kernel.monitor(sub_pid)
        top_ref = kernel.monitor(top)
        began = anyio.current_time()
        kernel.exit(top, kernel.SHUTDOWN)
        assert await reason_of(sub_ref, name="sub ended", limit=20) == sub_reason
        assert await reason_of(top_ref, name="top ended") == "shutdown"
        elapsed = anyio.current_time() - began
        if sub_reason == "shutdown":
            assert elapsed == pytest.approx(8.0)
            assert await terminated("slow") == "shutdown"
        else:
            assert elapsed == pytest.approx(5.0)
            assert [m for m in drain() if type(m) is tuple and m[0] == "terminated"] == []

    await node.run_process(body)


@pytest.mark.parametrize(
    ("restart", "reported"),
    [
        pytest.param("permanent", True, id="permanent-normal-is-a-shutdown-error"),
        pytest.param("transient", False, id="transient-normal-is-expected"),
    ],
)
async def test_which_exit_reasons_on_shutdown_are_reported(
    node: Node, caplog: pytest.LogCaptureFixture, restart: RestartType, reported: bool
) -> None:
    """A child that answers ``shutdown`` by exiting ``normal``."""

    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(
            children=[worker_stubborn.child("s", me, on_exit="normal", restart=restart)]
        )
        sup = await start_sup(spec)
        child = await pid_of(sup, "s")
        ref = kernel.monitor(child)
        await within(supervisor.terminate_child(sup, "s"), "terminate_child")
        assert await reason_of(ref) == "normal"
        errors = reports(caplog, "shutdown_error")
        assert len(errors) == (1 if reported else 0)
        if reported:
            assert errors[0].reason == repr("normal")  # type: ignore[attr-defined]

    await node.run_process(body)
