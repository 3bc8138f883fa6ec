"""A receive parked in a known loop: narrow_receive, widen_receive, is_narrowed, parked_on
and run_as, seen from another process of the node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import kernel

from ._helpers import down, recv

if TYPE_CHECKING:
    from server.kernel import Node, Pid


async def _echo_loop(owner: Pid) -> None:
    """Forward every message to ``owner``, for ever (its receive takes every message)."""
    kernel.send(owner, ("ready", kernel.self()))
    while True:
        message = await kernel.receive()
        kernel.send(owner, ("got", message))


LOOP_CODE = _echo_loop.__code__


def _wanted(message: object) -> bool:
    return message == "wanted"


async def _started() -> Pid:
    pid = kernel.spawn(_echo_loop, kernel.self())
    await recv(lambda m: m == ("ready", pid), step="ready")
    return pid


async def test_a_narrowed_receive_queues_the_rest_in_order_until_widened(node: Node) -> None:
    async def body() -> None:
        pid = await _started()
        assert not kernel.narrow_receive(pid, _started.__code__, _wanted), "another loop"
        assert kernel.narrow_receive(pid, LOOP_CODE, _wanted)
        assert kernel.is_narrowed(pid, _wanted)
        for i in range(3):
            kernel.send(pid, i)
        assert kernel.is_narrowed(pid, _wanted), "rejected messages queue"
        assert kernel.widen_receive(pid, _wanted)
        assert not kernel.is_narrowed(pid, _wanted)
        got = [await recv(step=f"got {i}") for i in range(3)]
        assert got == [("got", 0), ("got", 1), ("got", 2)]

    await node.run_process(body)


async def test_a_message_the_narrow_matcher_accepts_wakes_it(node: Node) -> None:
    async def body() -> None:
        pid = await _started()
        assert kernel.narrow_receive(pid, LOOP_CODE, _wanted)
        kernel.send(pid, "other")
        kernel.send(pid, "wanted")
        assert await recv(step="wanted") == ("got", "wanted")
        assert not kernel.is_narrowed(pid, _wanted)
        assert not kernel.widen_receive(pid, _wanted), "no longer waits there"
        assert await recv(step="other") == ("got", "other"), "queued, taken next"

    await node.run_process(body)


async def test_parked_on_stays_the_same_until_the_process_runs(node: Node) -> None:
    async def body() -> None:
        pid = await _started()
        token = kernel.parked_on(pid)
        assert token is not None
        assert kernel.parked_on(pid) is token
        kernel.send(pid, "run")
        await recv(step="got")
        assert kernel.parked_on(pid) is not token
        assert kernel.parked_on(kernel.self()) is None, "running, not parked"
        again = kernel.parked_on(pid)
        assert kernel.parked_tokens([pid, kernel.self()]) == [again, None]
        kernel.send(pid, "wake")  # handed, not run yet: the token is gone from the record
        assert kernel.parked_tokens([pid]) == [None]
        await recv(step="got wake")

    await node.run_process(body)


async def test_run_as_runs_a_function_as_another_process(node: Node) -> None:
    async def body() -> None:
        pid = await _started()
        assert kernel.run_as(pid, kernel.self) is pid
        assert kernel.self() is not pid
        ref = kernel.monitor(pid)
        kernel.exit(pid, kernel.KILL)
        await down(ref)
        assert not kernel.narrow_receive(pid, LOOP_CODE, _wanted)
        assert kernel.parked_on(pid) is None

    await node.run_process(body)
