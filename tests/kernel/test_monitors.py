"""Monitors: one-way, independent, ``DownMessage`` with the reason, ``noproc``, demonitor."""

from __future__ import annotations

import anyio
import pytest

from server import kernel
from server.kernel import DownMessage, Node, Pid

from ._helpers import down, down_of, drain, idle, ping, reason_of, recv, start_peer

BOOM = ValueError("boom")


def monitored_by(pid: Pid) -> int:
    info = kernel.process_info(pid)
    assert info is not None
    return info.monitored_by


async def _dead_pid() -> Pid:
    async def short() -> None:
        return None

    pid, ref = kernel.spawn_monitor(short)
    await down(ref)
    return pid


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("stop", "normal"),
        ("stop", "shutdown"),
        ("stop", "boom"),
        ("stop", BOOM),
        ("exit", "boom"),
        ("exit", "kill"),
    ],
    ids=["normal", "shutdown", "atom", "exception", "exit-boom", "exit-kill"],
)
async def test_the_watcher_gets_down_with_the_reason(node: Node, how: str, reason: object) -> None:
    async def body() -> None:
        target = await start_peer()
        ref = kernel.monitor(target)
        if how == "stop":
            kernel.send(target, ("stop", reason))
        else:
            kernel.exit(target, reason)
        message = await down(ref)
        assert message == DownMessage(ref, target, "killed" if reason == "kill" else reason)

    await node.run_process(body)


async def test_a_monitor_is_one_way(node: Node) -> None:
    async def watcher(tester: Pid, target: Pid) -> None:
        kernel.monitor(target)
        kernel.send(tester, "watching")
        await kernel.receive()
        raise kernel.ProcessExit("boom")

    async def body() -> None:
        target = await start_peer()
        pid, ref = kernel.spawn_monitor(watcher, kernel.self(), target)
        await recv(lambda m: m == "watching", step="watcher set up")
        assert monitored_by(target) == 1
        kernel.send(pid, "die")
        assert await reason_of(ref) == "boom"
        await ping(target)
        assert monitored_by(target) == 0, "the dead watcher's monitor is gone"

    await node.run_process(body)


async def test_a_monitor_does_not_link(node: Node) -> None:
    async def body() -> str:
        target = await start_peer()
        ref = kernel.monitor(target)
        kernel.send(target, ("stop", "boom"))
        assert await reason_of(ref) == "boom"
        return "survived"

    assert await node.run_process(body) == "survived"


async def test_monitoring_twice_gives_two_independent_monitors(node: Node) -> None:
    async def body() -> None:
        target = await start_peer()
        first = kernel.monitor(target)
        second = kernel.monitor(target)
        assert first is not second
        assert monitored_by(target) == 2
        kernel.send(target, ("stop", "boom"))
        assert (await down(second)).reason == "boom"
        assert (await down(first)).reason == "boom"

    await node.run_process(body)


async def test_demonitoring_one_of_two_monitors_keeps_the_other(node: Node) -> None:
    async def body() -> None:
        target = await start_peer()
        first = kernel.monitor(target)
        second = kernel.monitor(target)
        assert kernel.demonitor(first) is True
        assert monitored_by(target) == 1
        kernel.send(target, ("stop", "boom"))
        assert (await down(second)).reason == "boom"
        assert drain() == [], "no DOWN for the removed monitor"

    await node.run_process(body)


async def test_demonitor_reports_whether_the_monitor_was_active(node: Node) -> None:
    async def body() -> None:
        target = await start_peer()
        ref = kernel.monitor(target)
        assert kernel.demonitor(ref) is True
        assert kernel.demonitor(ref) is False
        fired = kernel.monitor(target)
        kernel.send(target, ("stop", "boom"))
        await down(fired)
        assert kernel.demonitor(fired) is False

    await node.run_process(body)


# -- noproc ------------------------------------------------------------------------------------


async def test_monitoring_a_dead_pid_gives_down_noproc_at_once(node: Node) -> None:
    async def body() -> None:
        dead = await _dead_pid()
        ref = kernel.monitor(dead)
        assert kernel.receive_nowait() == DownMessage(ref, dead, "noproc")

    await node.run_process(body)


async def test_monitoring_a_doomed_pid_gives_down_noproc_at_once(node: Node) -> None:
    async def body() -> None:
        doomed = kernel.spawn(idle)
        kernel.exit(doomed, "kill")
        ref = kernel.monitor(doomed)
        assert kernel.receive_nowait(down_of(ref)) == DownMessage(ref, doomed, "noproc")

    await node.run_process(body)


async def test_monitoring_an_unheld_name_gives_down_noproc_with_the_name(node: Node) -> None:
    async def body() -> None:
        ref = kernel.monitor("nobody")
        assert kernel.receive_nowait() == DownMessage(ref, "nobody", "noproc")

    await node.run_process(body)


async def test_a_monitor_by_name_watches_the_holder_at_that_moment(node: Node) -> None:
    async def body() -> None:
        first = await start_peer()
        kernel.register("svc", first)
        by_name = kernel.monitor("svc")
        kernel.unregister("svc")
        second = await start_peer()
        kernel.register("svc", second)
        second_ref = kernel.monitor(second)
        kernel.send(second, ("stop", "second"))
        assert (await down(second_ref)).reason == "second"
        with pytest.raises(anyio.WouldBlock):
            kernel.receive_nowait(down_of(by_name))  # the new holder is not watched
        kernel.send(first, ("stop", "first"))
        assert (await down(by_name)).reason == "first"

    await node.run_process(body)


# -- demonitor(flush) --------------------------------------------------------------------------


async def test_demonitor_with_flush_drops_a_queued_down(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        target = await start_peer()
        first = kernel.monitor(target)
        second = kernel.monitor(target)
        kernel.send(me, "before")
        kernel.send(target, ("stop", "boom"))
        await down(second)  # both DOWNs are delivered together: the first is now queued
        kernel.send(me, "after")
        assert kernel.demonitor(first, flush=True) is False
        assert drain() == ["before", "after"], "only the DOWN was dropped"

    await node.run_process(body)


async def test_demonitor_without_flush_leaves_a_queued_down(node: Node) -> None:
    async def body() -> None:
        target = await start_peer()
        first = kernel.monitor(target)
        second = kernel.monitor(target)
        kernel.send(target, ("stop", "boom"))
        await down(second)
        assert kernel.demonitor(first) is False
        assert drain() == [DownMessage(first, target, "boom")]

    await node.run_process(body)


async def test_demonitor_with_flush_drops_an_immediate_noproc(node: Node) -> None:
    async def body() -> None:
        ref = kernel.monitor("nobody")
        kernel.demonitor(ref, flush=True)
        assert drain() == []

    await node.run_process(body)
