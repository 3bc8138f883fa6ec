"""Restart intensity in a running supervisor, on virtual time (OTP semantics 7.4, scenario 19).

More than ``intensity`` restart attempts within ``period`` seconds (whole seconds, inclusive
window) make the supervisor stop every child and end with ``shutdown``. ``anyio.sleep``
moves the virtual clock between crashes; it takes no real time.
"""

from __future__ import annotations

import math

import anyio
import pytest

from server import kernel
from server.behaviours import gen_server, supervisor, system_messages
from server.behaviours.supervisor_callbacks import Strategy, SupervisorSpec
from server.kernel import Node, Pid
from tests.behaviours.callbacks import worker_probe

from ._supervisor_support import (
    children,
    events,
    kill_and_wait,
    pending_events,
    pid_of,
    reason_of,
    recv,
    start_sup,
    stop_child,
    within,
)

pytestmark = pytest.mark.virtual_time


async def crash(sup: Pid, child_id: str) -> None:
    """Kill a running child and wait until it has ended."""
    assert await kill_and_wait(await pid_of(sup, child_id)) == "killed"


async def test_the_third_crash_within_the_period_stops_the_supervisor(node: Node) -> None:
    """intensity 2, period 5: two restarts, then the third crash ends it with shutdown."""

    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        spec = SupervisorSpec(
            children=[
                worker_probe.child("bystander", me, trap_exit=True),
                worker_probe.child("x", me),
            ],
            intensity=2,
            period=5,
        )
        sup = await start_sup(spec)
        await events(2, name="initial starts")
        ref = kernel.monitor(sup)
        for n in (1, 2):
            await crash(sup, "x")
            assert await events(1, name=f"restart {n}") == [("started", "x")]
            await anyio.sleep(1)
        await crash(sup, "x")
        assert await reason_of(ref, name="supervisor gave up") == "shutdown"
        assert await events(1, name="bystander stopped") == [("terminated", "bystander")]
        assert pending_events() == [], "no third restart"

    await node.run_process(body)


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(("stop", "normal"), id="normal"),
        pytest.param(("stop", "shutdown"), id="shutdown"),
        pytest.param(("stop", ("shutdown", "bye")), id="shutdown-tuple"),
        pytest.param(("raise", "boom"), id="exception"),
    ],
)
async def test_intensity_zero_stops_at_the_first_exit_even_normal(
    node: Node, how: tuple[str, object]
) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        sup = await start_sup(
            SupervisorSpec(children=[worker_probe.child("x", me)], intensity=0, period=5)
        )
        child = await pid_of(sup, "x")
        ref = kernel.monitor(sup)
        gen_server.cast(child, how)
        assert await reason_of(ref, name="supervisor gave up") == "shutdown"
        exit_message = await recv(
            lambda m: isinstance(m, kernel.ExitMessage) and m.pid is sup, step="EXIT"
        )
        assert isinstance(exit_message, kernel.ExitMessage)
        assert exit_message.reason == "shutdown"

    await node.run_process(body)


@pytest.mark.parametrize(
    ("gap", "survives"),
    [
        pytest.param(1.0, False, id="gap-1s-stops"),
        pytest.param(4.0, False, id="gap-4s-stops"),
        pytest.param(5.0, False, id="gap-5s-stops-window-inclusive"),
        pytest.param(5.9, False, id="gap-5.9s-stops-whole-seconds"),
        pytest.param(6.0, True, id="gap-6s-survives"),
        pytest.param(60.0, True, id="gap-60s-survives"),
    ],
)
async def test_two_crashes_under_intensity_one(node: Node, gap: float, survives: bool) -> None:
    """intensity 1, period 5; the first crash falls on a whole second of the clock."""

    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        sup = await start_sup(
            SupervisorSpec(children=[worker_probe.child("x", me)], intensity=1, period=5)
        )
        await events(1, name="initial start")
        ref = kernel.monitor(sup)
        now = anyio.current_time()
        await anyio.sleep(math.floor(now) + 1 - now)
        await crash(sup, "x")
        assert await events(1, name="first restart") == [("started", "x")]
        await anyio.sleep(gap)
        await crash(sup, "x")
        if survives:
            assert await events(1, name="second restart") == [("started", "x")]
            assert kernel.is_alive(sup)
        else:
            assert await reason_of(ref, name="supervisor gave up") == "shutdown"
            assert pending_events() == []

    await node.run_process(body)


async def test_crashes_further_apart_than_the_period_never_accumulate(node: Node) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        sup = await start_sup(
            SupervisorSpec(children=[worker_probe.child("x", me)], intensity=1, period=5)
        )
        await events(1, name="initial start")
        for n in range(6):
            await anyio.sleep(6)
            await crash(sup, "x")
            assert await events(1, name=f"restart {n}") == [("started", "x")]
        assert kernel.is_alive(sup)
        state = await within(system_messages.get_state(sup), "get_state")
        assert len(state.restarts) == 1, "only the last restart is inside the window"

    await node.run_process(body)


async def test_the_count_is_per_supervisor_not_per_child(node: Node) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        spec = SupervisorSpec(
            children=[worker_probe.child("x1", me), worker_probe.child("x2", me)],
            intensity=1,
            period=5,
        )
        sup = await start_sup(spec)
        await events(2, name="initial starts")
        ref = kernel.monitor(sup)
        await crash(sup, "x1")
        assert await events(1, name="x1 restarted") == [("started", "x1")]
        await crash(sup, "x2")
        assert await reason_of(ref, name="supervisor gave up") == "shutdown"

    await node.run_process(body)


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
async def test_a_group_restart_counts_once(node: Node, strategy: Strategy) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        spec = SupervisorSpec(
            children=[worker_probe.child(i, me) for i in ("x1", "x2", "x3")],
            strategy=strategy,
            intensity=1,
            period=5,
        )
        sup = await start_sup(spec)
        await events(3, name="initial starts")
        await crash(sup, "x1")
        assert await events(3, name="group restarted") == [
            ("started", "x1"),
            ("started", "x2"),
            ("started", "x3"),
        ]
        assert kernel.is_alive(sup)
        state = await within(system_messages.get_state(sup), "get_state")
        assert len(state.restarts) == 1

    await node.run_process(body)


@pytest.mark.parametrize(
    ("intensity", "survives"),
    [
        pytest.param(1, False, id="intensity1-retry-is-the-second-attempt-stops"),
        pytest.param(2, True, id="intensity2-retry-succeeds"),
    ],
)
async def test_each_restart_attempt_counts_even_a_failed_one(
    node: Node, intensity: int, survives: bool
) -> None:
    """A restart whose start fails is retried later, and the retry is another attempt."""

    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        spec = SupervisorSpec(
            children=[worker_probe.child("flaky", me, plan=["start", "refuse"])],
            intensity=intensity,
            period=5,
        )
        sup = await start_sup(spec)
        await events(1, name="initial start")
        ref = kernel.monitor(sup)
        await crash(sup, "flaky")
        assert await recv(lambda m: m == ("refused", "flaky"), step="restart refused")
        if survives:
            new = await events(1, name="retry")
            assert new == [("started", "flaky")]
            assert isinstance((await children(sup))["flaky"], Pid)
        else:
            assert await reason_of(ref, name="supervisor gave up") == "shutdown"
            assert pending_events() == []

    await node.run_process(body)


async def test_administrative_operations_never_count(node: Node) -> None:
    """intensity 0: a single counted restart would stop the supervisor."""

    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        spec = SupervisorSpec(
            children=[
                worker_probe.child("x", me, trap_exit=True),
                worker_probe.child("tmp", me, restart="temporary"),
            ],
            intensity=0,
            period=5,
        )
        sup = await start_sup(spec)
        await events(2, name="initial starts")
        for n in range(3):
            await within(supervisor.terminate_child(sup, "x"), f"terminate_child {n}")
            await within(supervisor.restart_child(sup, "x"), f"restart_child {n}")
        await within(supervisor.terminate_child(sup, "tmp"), "terminate temporary")
        await within(supervisor.terminate_child(sup, "x"), "terminate_child")
        await within(supervisor.delete_child(sup, "x"), "delete_child")
        await within(
            supervisor.start_child(sup, worker_probe.child("x", me, trap_exit=True)),
            "start_child",
        )
        assert kernel.is_alive(sup)
        state = await within(system_messages.get_state(sup), "get_state")
        assert state.restarts == ()
        ref = kernel.monitor(sup)
        assert await stop_child(await pid_of(sup, "x"), "crash") == "crash"
        assert await reason_of(ref, name="the first real exit stops it") == "shutdown"

    await node.run_process(body)
