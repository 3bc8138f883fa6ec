"""request and reply: a call with a monitor; no stray message ever reaches the caller.

Runs on virtual time: call timeouts take no real time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.errors import CalleeExited, CallTimeout, NoProcessError
from server.kernel import From, Node, Pid, ProcessExit

from ._helpers import down, drain

if TYPE_CHECKING:
    from collections.abc import Callable


pytestmark = pytest.mark.virtual_time


async def _server(delay: float | None, replies: int) -> None:
    """Answers each ``(from_, value)`` with ``value * 2``, after ``delay``, ``replies`` times.

    ``(from_, "crash")`` ends the server with ``"crashed"`` before any reply.
    """
    while True:
        message = await kernel.receive()
        assert type(message) is tuple
        from_, value = message
        assert isinstance(from_, From)
        if value == "crash":
            raise ProcessExit("crashed")
        if delay is not None:
            with pytest.raises(TimeoutError):
                await kernel.receive(lambda _: False, timeout=delay)
        for _ in range(replies):
            kernel.reply(from_, value * 2)


def ask(value: object) -> Callable[[From], object]:
    return lambda from_: (from_, value)


def monitored_by(pid: Pid) -> int:
    info = kernel.process_info(pid)
    assert info is not None
    return info.monitored_by


async def test_a_request_returns_the_reply(node: Node) -> None:
    async def body() -> None:
        server = kernel.spawn(_server, None, 1)
        assert await kernel.request(server, ask(21), timeout=5) == 42
        assert monitored_by(server) == 0, "the reply ended the call's monitor"
        assert drain() == []

    await node.run_process(body)


async def test_a_request_by_name(node: Node) -> None:
    async def body() -> None:
        kernel.register("doubler", kernel.spawn(_server, None, 1))
        assert await kernel.request("doubler", ask(5), timeout=None) == 10

    await node.run_process(body)


@pytest.mark.parametrize("dest", ["dead-pid", "unheld-name"])
async def test_a_request_to_nobody_fails_with_noproc(node: Node, dest: str) -> None:
    async def short() -> None:
        return None

    async def body() -> None:
        target: Pid | str = "nobody"
        if dest == "dead-pid":
            target, ref = kernel.spawn_monitor(short)
            await down(ref)
        with pytest.raises(CalleeExited) as caught:
            await kernel.request(target, ask(1), timeout=5)
        assert caught.value.reason == "noproc"
        assert drain() == []

    await node.run_process(body)


async def test_a_server_that_ends_before_replying_fails_the_call_with_its_reason(
    node: Node,
) -> None:
    async def body() -> None:
        server = kernel.spawn(_server, None, 1)
        with pytest.raises(CalleeExited) as caught:
            await kernel.request(server, ask("crash"), timeout=5)
        assert caught.value.reason == "crashed"
        assert drain() == []

    await node.run_process(body)


async def test_a_late_reply_is_dropped_after_a_timeout(node: Node) -> None:
    async def body() -> None:
        server = kernel.spawn(_server, 10, 1)
        with pytest.raises(CallTimeout):
            await kernel.request(server, ask(1), timeout=1)
        assert monitored_by(server) == 0
        assert await kernel.request(server, ask(2), timeout=60) == 4, "the late reply was dropped"
        assert drain() == []

    await node.run_process(body)


async def test_a_reply_arriving_with_the_timeout_leaves_no_stray_message(node: Node) -> None:
    async def body() -> None:
        # the server's wait ends a hair before the caller's timeout, in the same loop step
        server = kernel.spawn(_server, 1 - 1e-10, 1)
        try:
            result = await kernel.request(server, ask(1), timeout=1)
        except CallTimeout:
            result = "timeout"
        assert result in (2, "timeout")
        assert drain() == []

    await node.run_process(body)


async def test_a_second_reply_to_the_same_request_is_dropped(node: Node) -> None:
    async def body() -> None:
        server = kernel.spawn(_server, None, 2)
        assert await kernel.request(server, ask(1), timeout=5) == 2
        assert await kernel.request(server, ask(2), timeout=5) == 4
        assert drain() == []

    await node.run_process(body)


async def test_a_request_outside_a_process_raises_no_process_error(node: Node) -> None:
    with pytest.raises(NoProcessError):
        await kernel.request("anyone", ask(1), timeout=1)
