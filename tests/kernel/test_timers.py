"""send_after and cancel_timer, on virtual time (no test waits real seconds)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from server import kernel

from ._helpers import down, drain, recv, start_peer

if TYPE_CHECKING:
    from server.kernel import Node


pytestmark = pytest.mark.virtual_time


def now() -> float:
    return asyncio.get_running_loop().time()


async def test_send_after_delivers_after_the_delay(node: Node) -> None:
    async def body() -> None:
        start = now()
        real_start = time.monotonic()
        kernel.send_after(30, kernel.self(), "tick")
        with pytest.raises(TimeoutError):
            await kernel.receive(timeout=29.5)  # not early
        assert await recv(step="tick", limit=60) == "tick"
        assert 30 <= now() - start < 30.5
        assert time.monotonic() - real_start < 1, "virtual time: no real wait"

    await node.run_process(body)


async def test_timers_fire_in_the_order_of_their_deadlines(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        for delay in (3, 1, 2):
            kernel.send_after(delay, me, delay)
        got = [await recv(step=f"tick {i}", limit=10) for i in range(3)]
        assert got == [1, 2, 3]

    await node.run_process(body)


async def test_send_after_to_a_name_resolves_the_name_when_it_fires(node: Node) -> None:
    async def body() -> None:
        kernel.send_after(5, "later", "tick")
        kernel.register("later", kernel.self())  # registered after the timer was set
        assert await recv(step="tick by name", limit=10) == "tick"

    await node.run_process(body)


async def test_send_after_to_a_name_nobody_holds_is_dropped(node: Node) -> None:
    async def body() -> None:
        timer = kernel.send_after(1, "nobody", "tick")
        kernel.send_after(2, kernel.self(), "after")
        assert await recv(step="the later timer", limit=10) == "after"
        assert kernel.cancel_timer(timer) is False, "it fired (and was dropped) without error"

    await node.run_process(body)


async def test_send_after_to_a_dead_process_is_dropped(node: Node) -> None:
    async def body() -> None:
        pid = await start_peer()
        ref = kernel.monitor(pid)
        kernel.send_after(1, pid, "tick")
        kernel.send(pid, ("stop", "normal"))
        await down(ref)
        kernel.send_after(2, kernel.self(), "after")
        assert await recv(step="the later timer", limit=10) == "after"

    await node.run_process(body)


async def test_cancel_timer_prevents_the_delivery(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        timer = kernel.send_after(1, me, "cancelled")
        assert kernel.cancel_timer(timer) is True
        assert kernel.cancel_timer(timer) is False, "a second cancel finds nothing to cancel"
        with pytest.raises(TimeoutError):
            await kernel.receive(timeout=10)
        assert drain() == []

    await node.run_process(body)


async def test_cancel_timer_after_it_fired_returns_false(node: Node) -> None:
    async def body() -> None:
        timer = kernel.send_after(1, kernel.self(), "tick")
        assert await recv(step="tick", limit=10) == "tick"
        assert kernel.cancel_timer(timer) is False

    await node.run_process(body)


async def test_cancelling_one_timer_leaves_the_others(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        first = kernel.send_after(1, me, "first")
        kernel.send_after(2, me, "second")
        assert kernel.cancel_timer(first) is True
        assert await recv(step="second", limit=10) == "second"
        assert drain() == []

    await node.run_process(body)


async def test_a_marked_module_runs_on_virtual_time() -> None:
    import asyncio

    from server.kernel.virtual_time import VirtualTimeEventLoop

    assert isinstance(asyncio.get_running_loop(), VirtualTimeEventLoop)
