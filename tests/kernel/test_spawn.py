"""spawn, spawn_link, spawn_monitor and is_alive."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from server import kernel
from server.kernel import ExitMessage, Node, Pid

from ._helpers import down, idle, ping, reason_of, recv, start_peer, trapped


async def _echo_args(tester: Pid, *args: object) -> None:
    kernel.send(tester, (kernel.self(), args))


async def _crash_at_once() -> None:
    raise ValueError("at once")


async def test_spawn_runs_the_function_with_its_arguments(node: Node) -> None:
    async def body() -> None:
        pid = kernel.spawn(_echo_args, kernel.self(), 1, "two", [3])
        assert await recv(step="echo") == (pid, (1, "two", [3]))

    await node.run_process(body)


async def test_spawn_does_not_link_or_monitor(node: Node) -> None:
    async def body() -> str:
        pid = kernel.spawn(_crash_at_once)
        info = kernel.process_info(pid)
        assert info is not None
        assert info.links == ()
        assert info.monitored_by == 0
        ref = kernel.monitor(pid)
        assert isinstance(await reason_of(ref), ValueError)
        return "survived"

    assert await node.run_process(body) == "survived"


async def test_spawn_works_outside_any_process(node: Node) -> None:
    pid = kernel.spawn(idle)
    assert kernel.is_alive(pid)
    assert pid in kernel.processes()


@pytest.mark.parametrize(
    "body",
    [lambda: 42, lambda: None, lambda: "not awaitable"],
    ids=["int", "none", "str"],
)
async def test_spawning_a_function_that_is_not_async_fails_and_leaves_nothing(
    node: Node, body: Any
) -> None:
    before = dict(node.processes)
    spawned = node.spawned
    with pytest.raises(TypeError, match="async function"):
        kernel.spawn(body)
    assert node.processes == before
    assert node.spawned == spawned


async def test_a_failed_spawn_link_leaves_no_link_behind(node: Node) -> None:
    async def body() -> None:
        with pytest.raises(TypeError):
            kernel.spawn_link(lambda: 42)  # type: ignore[arg-type, return-value]
        info = kernel.process_info(kernel.self())
        assert info is not None
        assert info.links == ()

    await node.run_process(body)


# -- spawn_link ---------------------------------------------------------------------------------


async def test_spawn_link_links_both_ways(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        pid = await start_peer(link=True)
        info = kernel.process_info(pid)
        assert info is not None
        assert info.links == (me,)
        mine = kernel.process_info(me)
        assert mine is not None
        assert mine.links == (pid,)

    await node.run_process(body)


async def test_spawn_link_is_atomic_even_when_the_child_dies_at_once(node: Node) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        pid = kernel.spawn_link(_crash_at_once)
        message = await trapped(pid)
        assert isinstance(message.reason, ValueError), "not noproc: the link existed"

    await node.run_process(body)


async def test_a_spawn_linked_child_crash_kills_the_parent(node: Node) -> None:
    async def parent(tester: Pid) -> None:
        kernel.spawn_link(_crash_at_once)
        await kernel.receive()
        kernel.send(tester, "parent survived")

    async def body() -> None:
        _, ref = kernel.spawn_monitor(parent, kernel.self())
        assert isinstance(await reason_of(ref), ValueError)

    await node.run_process(body)


async def test_a_parent_crash_kills_its_spawn_linked_child(node: Node) -> None:
    async def parent(tester: Pid) -> None:
        child = kernel.spawn_link(idle)
        kernel.send(tester, ("child", child))
        await kernel.receive()
        raise kernel.ProcessExit("boom")

    async def body() -> None:
        pid = kernel.spawn(parent, kernel.self())
        message = await recv(step="child pid")
        assert type(message) is tuple
        child = message[1]
        assert isinstance(child, Pid)
        ref = kernel.monitor(child)
        kernel.send(pid, "die")
        assert await reason_of(ref) == "boom"

    await node.run_process(body)


# -- spawn_monitor --------------------------------------------------------------------------------


async def test_spawn_monitor_returns_the_pid_and_its_monitor(node: Node) -> None:
    async def body() -> None:
        pid, ref = kernel.spawn_monitor(_crash_at_once)
        message = await down(ref)
        assert message.pid is pid
        assert isinstance(message.reason, ValueError), "not noproc: the monitor was atomic"

    await node.run_process(body)


async def test_spawn_monitor_does_not_link(node: Node) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        _, ref = kernel.spawn_monitor(_crash_at_once)
        await down(ref)
        with pytest.raises(anyio.WouldBlock):
            kernel.receive_nowait(lambda m: type(m) is ExitMessage)

    await node.run_process(body)


# -- is_alive -------------------------------------------------------------------------------------


async def test_is_alive_follows_the_life_of_a_process(node: Node) -> None:
    async def body() -> None:
        assert kernel.is_alive(kernel.self())
        pid = await start_peer()
        assert kernel.is_alive(pid)
        ref = kernel.monitor(pid)
        kernel.send(pid, ("stop", "normal"))
        await down(ref)
        assert not kernel.is_alive(pid)

    await node.run_process(body)


@pytest.mark.parametrize("reason", ["kill", "boom"])
async def test_is_alive_is_false_at_once_after_a_fatal_exit_signal(node: Node, reason: str) -> None:
    async def body() -> None:
        pid = await start_peer()
        kernel.exit(pid, reason)
        assert not kernel.is_alive(pid)

    await node.run_process(body)


async def test_is_alive_stays_true_after_an_ignored_exit_signal(node: Node) -> None:
    async def body() -> None:
        pid = await start_peer()
        kernel.exit(pid, "normal")
        await ping(pid)
        assert kernel.is_alive(pid)

    await node.run_process(body)
