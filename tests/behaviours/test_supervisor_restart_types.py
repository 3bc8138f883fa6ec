"""Restart types: what a child's own exit leads to (OTP semantics 7.3, scenario 19).

The grid is restart type x exit reason. ``permanent`` is always restarted (and the exit
reported); ``transient`` is restarted only after an abnormal exit, otherwise its spec stays
with pid None; ``temporary`` is never restarted and its spec is deleted.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server import kernel
from server.behaviours import gen_server, supervisor
from server.behaviours.supervisor_callbacks import RestartType, SupervisorSpec
from server.errors import SupervisorError
from server.kernel import Node, Pid
from tests.behaviours.callbacks import worker_probe

from ._supervisor_support import (
    children,
    events,
    pending_events,
    reason_of,
    reports,
    start_sup,
    started,
    within,
)

Ending = Callable[[Pid], None]


def stop_with(reason: object) -> Ending:
    return lambda pid: gen_server.cast(pid, ("stop", reason))


def raise_exception(pid: Pid) -> None:
    gen_server.cast(pid, ("raise", "boom"))


def kill(pid: Pid) -> None:
    kernel.exit(pid, kernel.KILL)


def is_reason(expected: object) -> Callable[[object], bool]:
    return lambda reason: reason == expected


def is_boom(reason: object) -> bool:
    return isinstance(reason, RuntimeError) and str(reason) == "boom"


# (id, how the child ends, what its exit reason must be, is it a normal exit)
REASONS = [
    ("normal", stop_with("normal"), is_reason("normal"), True),
    ("shutdown", stop_with("shutdown"), is_reason("shutdown"), True),
    ("shutdown-tuple", stop_with(("shutdown", "x")), is_reason(("shutdown", "x")), True),
    ("exception", raise_exception, is_boom, False),
    ("killed", kill, is_reason("killed"), False),
]

RESTARTED: dict[str, Callable[[bool], bool]] = {
    "permanent": lambda normal: True,
    "transient": lambda normal: not normal,
    "temporary": lambda normal: False,
}

GRID = [
    pytest.param(
        restart,
        ending,
        check,
        restart != "temporary" and RESTARTED[restart](normal),
        restart == "permanent" or not normal,
        id=f"{restart}-{name}",
    )
    for restart in ("permanent", "transient", "temporary")
    for name, ending, check, normal in REASONS
]


@pytest.mark.parametrize(("restart", "ending", "check", "restarted", "reported"), GRID)
async def test_a_child_exit_by_restart_type_and_reason(
    node: Node,
    caplog: pytest.LogCaptureFixture,
    restart: RestartType,
    ending: Ending,
    check: Callable[[object], bool],
    restarted: bool,
    reported: bool,
) -> None:
    async def body() -> None:
        me = kernel.self()
        spec = SupervisorSpec(
            children=[
                worker_probe.child("c", me, restart=restart),
                worker_probe.child("other", me),
            ],
            intensity=5,
        )
        sup = await start_sup(spec)
        await events(2, name="initial starts")
        before = await children(sup)
        child = before["c"]
        assert isinstance(child, Pid)
        ref = kernel.monitor(child)
        ending(child)
        assert check(await reason_of(ref, name="child ended"))
        after = await children(sup)  # answered after the supervisor handled the EXIT
        assert after["other"] is before["other"]
        if restarted:
            assert isinstance(after["c"], Pid)
            assert after["c"] is not child
            assert kernel.is_alive(after["c"])
            assert await started("c") is after["c"]
        elif restart == "transient":
            assert list(after) == ["c", "other"], "the spec is kept"
            assert after["c"] is None
            spec_c = await within(supervisor.get_childspec(sup, "c"), "get_childspec")
            assert spec_c.restart == "transient"
        else:
            assert list(after) == ["other"], "the temporary spec is deleted"
            with pytest.raises(SupervisorError):
                await within(supervisor.get_childspec(sup, "c"), "get_childspec")
        assert [e for e in pending_events() if e[0] == "started"] == [], "no other start"  # type: ignore[index]
        terminated = reports(caplog, "child_terminated")
        assert len(terminated) == (1 if reported else 0)
        if reported:
            assert terminated[0].child_id == "c"  # type: ignore[attr-defined]
        counts = await within(supervisor.count_children(sup), "count_children")
        assert counts.active == (2 if restarted else 1)
        assert counts.specs == (1 if restart == "temporary" and not restarted else 2)

    await node.run_process(body)


async def test_a_transient_child_stopped_normally_can_be_restarted_by_hand(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        sup = await start_sup(
            SupervisorSpec(children=[worker_probe.child("t", me, restart="transient")])
        )
        await events(1, name="initial start")
        child = (await children(sup))["t"]
        assert isinstance(child, Pid)
        ref = kernel.monitor(child)
        gen_server.cast(child, ("stop", "normal"))
        assert await reason_of(ref) == "normal"
        assert (await children(sup))["t"] is None
        new = await within(supervisor.restart_child(sup, "t"), "restart_child")
        assert isinstance(new, Pid)
        assert (await children(sup))["t"] is new

    await node.run_process(body)
