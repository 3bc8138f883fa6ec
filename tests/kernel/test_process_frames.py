"""process_frames: the suspended await chain of a process, outermost first."""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

from server import kernel

from ._helpers import down, recv

if TYPE_CHECKING:
    from collections.abc import Generator

    from server.kernel import Node, Pid


def frame_names(pid: Pid) -> list[str]:
    return [frame.f_code.co_name for frame in kernel.process_frames(pid)]


async def _innermost(tester: Pid) -> object:
    marker = "deep inside"
    kernel.send(tester, "parked")
    message = await kernel.receive(lambda m: m != "ignored")
    return (marker, message)


async def _middle(tester: Pid) -> object:
    return await _innermost(tester)


async def _outer(tester: Pid) -> None:
    await _middle(tester)
    kernel.send(tester, "moved on")
    await kernel.receive()


@types.coroutine
def _generator_based_inner() -> Generator[Any, None, object]:
    return (yield from kernel.receive().__await__())


@types.coroutine
def _generator_based_outer() -> Generator[Any, None, object]:
    return (yield from _generator_based_inner())


async def _legacy(tester: Pid) -> None:
    kernel.send(tester, "parked")
    await _generator_based_outer()


async def test_frames_follow_the_await_chain_outermost_first(node: Node) -> None:
    async def body() -> None:
        pid = kernel.spawn(_outer, kernel.self())
        await recv(lambda m: m == "parked", step="parked")
        assert frame_names(pid) == ["_outer", "_middle", "_innermost"]
        innermost = kernel.process_frames(pid)[-1]
        assert innermost.f_locals["marker"] == "deep inside"

    await node.run_process(body)


async def test_frames_change_as_the_process_moves_on(node: Node) -> None:
    async def body() -> None:
        pid = kernel.spawn(_outer, kernel.self())
        await recv(lambda m: m == "parked", step="parked")
        kernel.send(pid, "go")
        await recv(lambda m: m == "moved on", step="moved on")
        assert frame_names(pid) == ["_outer"]

    await node.run_process(body)


async def test_frames_follow_generator_based_awaitables(node: Node) -> None:
    async def body() -> None:
        pid = kernel.spawn(_legacy, kernel.self())
        await recv(lambda m: m == "parked", step="parked")
        assert frame_names(pid) == ["_legacy", "_generator_based_outer", "_generator_based_inner"]

    await node.run_process(body)


async def test_a_dead_process_has_no_frames(node: Node) -> None:
    async def body() -> None:
        pid, ref = kernel.spawn_monitor(_outer, kernel.self())
        await recv(lambda m: m == "parked", step="parked")
        kernel.exit(pid, "kill")
        await down(ref)
        assert kernel.process_frames(pid) == []

    await node.run_process(body)
