"""send and receive: never blocking, per-pair order, selective receive, timeouts, fairness.

Runs on virtual time: receive timeouts take no real time.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest

from server import kernel
from server.errors import NotRegisteredError

from ._helpers import down, drain, idle, queue_len, recv

if TYPE_CHECKING:
    from server.kernel import Node, Pid


pytestmark = pytest.mark.virtual_time


def now() -> float:
    return asyncio.get_running_loop().time()


async def _return() -> None:
    return None


# -- send ---------------------------------------------------------------------------------


async def test_send_queues_without_waiting_for_the_receiver(node: Node) -> None:
    async def body() -> None:
        pid = kernel.spawn(idle)
        for i in range(1000):
            kernel.send(pid, i)  # a plain call: nothing to await, nothing to wait for
        assert queue_len(pid) == 1000

    await node.run_process(body)


async def test_send_to_a_dead_pid_neither_raises_nor_blocks(node: Node) -> None:
    async def body() -> None:
        pid, ref = kernel.spawn_monitor(_return)
        await down(ref)
        kernel.send(pid, "into the void")
        doomed = kernel.spawn(idle)
        kernel.exit(doomed, "kill")
        kernel.send(doomed, "too late")

    await node.run_process(body)


async def test_send_to_a_registered_name_delivers(node: Node) -> None:
    async def body() -> None:
        kernel.register("me", kernel.self())
        kernel.send("me", "hello")
        assert await recv(step="message by name") == "hello"

    await node.run_process(body)


async def test_send_to_an_unregistered_name_raises(node: Node) -> None:
    async def body() -> None:
        with pytest.raises(NotRegisteredError) as caught:
            kernel.send("nobody", "hello")
        assert caught.value.name == "nobody"
        assert isinstance(caught.value, LookupError)

    await node.run_process(body)


# -- order --------------------------------------------------------------------------------


async def test_many_messages_from_one_sender_arrive_in_the_order_sent(node: Node) -> None:
    count = 5000

    async def sender(to: Pid) -> None:
        for i in range(count):
            kernel.send(to, i)
            if i % 97 == 0:  # let the receiver run: it sometimes parks, sometimes finds a queue
                await anyio.lowlevel.checkpoint()

    async def body() -> None:
        kernel.spawn(sender, kernel.self())
        got = [await recv(step=f"message {i}") for i in range(count)]
        assert got == list(range(count))

    await node.run_process(body)


# -- selective receive --------------------------------------------------------------------


async def test_selective_receive_takes_the_first_match_and_keeps_the_rest_in_order(
    node: Node,
) -> None:
    async def body() -> None:
        me = kernel.self()
        for i in range(1, 11):
            kernel.send(me, i)
        assert await kernel.receive(lambda m: m % 2 == 0, timeout=0) == 2  # type: ignore[operator]
        assert await kernel.receive(lambda m: m > 5, timeout=0) == 6  # type: ignore[operator]
        assert drain() == [1, 3, 4, 5, 7, 8, 9, 10]

    await node.run_process(body)


async def test_a_parked_selective_receive_skips_non_matching_arrivals(node: Node) -> None:
    async def sender(to: Pid) -> None:
        for message in ("a", "b", "wanted", "c"):
            kernel.send(to, message)

    async def body() -> None:
        kernel.spawn(sender, kernel.self())
        assert await recv(lambda m: m == "wanted", step="the wanted message") == "wanted"
        assert drain() == ["a", "b", "c"]

    await node.run_process(body)


class BrokenMatchError(Exception):
    pass


def broken_match(message: object) -> bool:
    raise BrokenMatchError(message)


async def test_a_broken_match_in_a_queued_receive_raises_in_the_receiver(node: Node) -> None:
    async def body() -> None:
        kernel.send(kernel.self(), "x")
        with pytest.raises(BrokenMatchError):
            await kernel.receive(broken_match)
        assert drain() == ["x"], "the message stays queued"

    await node.run_process(body)


async def test_a_broken_match_in_a_parked_receive_raises_in_the_receiver_not_the_sender(
    node: Node,
) -> None:
    async def receiver(tester: Pid) -> None:
        kernel.send(tester, "parking")
        try:
            await kernel.receive(broken_match)
        except BrokenMatchError:
            kernel.send(tester, ("raised in receiver", drain()))

    async def body() -> None:
        pid = kernel.spawn(receiver, kernel.self())
        await recv(lambda m: m == "parking", step="receiver parking")
        kernel.send(pid, "x")  # the sender is not affected by the receiver's predicate
        report = await recv(step="receiver's report")
        assert report == ("raised in receiver", ["x"])

    await node.run_process(body)


# -- timeouts -----------------------------------------------------------------------------


async def test_receive_times_out_with_timeout_error(node: Node) -> None:
    async def body() -> None:
        start = now()
        with pytest.raises(TimeoutError):
            await kernel.receive(timeout=5)
        assert 5 <= now() - start < 5.5

    await node.run_process(body)


async def test_a_timeout_leaves_the_non_matching_messages_queued(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        kernel.send(me, "a")
        kernel.send(me, "b")
        with pytest.raises(TimeoutError):
            await kernel.receive(lambda m: m == "c", timeout=1)
        assert drain() == ["a", "b"]

    await node.run_process(body)


async def test_a_message_in_time_beats_the_timeout(node: Node) -> None:
    async def body() -> None:
        start = now()
        kernel.send_after(1, kernel.self(), "in time")
        assert await kernel.receive(timeout=5) == "in time"
        assert 1 <= now() - start < 1.5

    await node.run_process(body)


@pytest.mark.parametrize("timeout", [0, -1], ids=["zero", "negative"])
async def test_a_timeout_of_zero_only_polls(node: Node, timeout: float) -> None:
    async def body() -> None:
        me = kernel.self()
        start = now()
        with pytest.raises(TimeoutError):
            await kernel.receive(timeout=timeout)
        kernel.send(me, "a")
        kernel.send(me, "b")
        with pytest.raises(TimeoutError):
            await kernel.receive(lambda m: m == "c", timeout=timeout)
        assert await kernel.receive(lambda m: m == "b", timeout=timeout) == "b"
        assert await kernel.receive(timeout=timeout) == "a"
        assert now() == start, "polling takes no time"

    await node.run_process(body)


async def test_a_zero_timeout_does_not_wait_for_a_message_about_to_arrive(node: Node) -> None:
    async def body() -> None:
        kernel.send_after(0, kernel.self(), "soon")  # due now, but polling must not wait
        with pytest.raises(TimeoutError):
            await kernel.receive(timeout=0)
        assert await recv(step="the message") == "soon"

    await node.run_process(body)


# -- fairness -----------------------------------------------------------------------------


async def test_a_long_mailbox_does_not_starve_other_processes(node: Node) -> None:
    count = 2000
    events: list[object] = []

    async def bystander() -> None:
        await kernel.receive()
        events.append("bystander ran")

    async def consumer(other: Pid) -> None:
        for i in range(count):
            await kernel.receive()  # every message is already queued: no natural yield
            events.append(i)
            if i == 0:
                kernel.send(other, "wake up")

    async def body() -> None:
        other = kernel.spawn(bystander)
        pid, ref = kernel.spawn_monitor(consumer, other)
        for i in range(count):
            kernel.send(pid, i)
        assert (await down(ref)).reason == "normal"
        assert "bystander ran" in events
        assert events.index("bystander ran") < count, "the bystander ran while the queue drained"

    await node.run_process(body)


# -- receive_nowait and flush ---------------------------------------------------------------


async def test_receive_nowait_takes_a_queued_match_or_raises_would_block(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        with pytest.raises(anyio.WouldBlock):
            kernel.receive_nowait()
        kernel.send(me, 1)
        kernel.send(me, 2)
        with pytest.raises(anyio.WouldBlock):
            kernel.receive_nowait(lambda m: m == 3)
        assert kernel.receive_nowait(lambda m: m == 2) == 2
        assert drain() == [1]

    await node.run_process(body)


async def test_flush_drops_matching_messages_and_keeps_the_others_in_order(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        assert kernel.flush() == 0
        for i in range(10):
            kernel.send(me, i)
        assert kernel.flush(lambda m: m % 3 == 0) == 4  # type: ignore[operator]
        assert drain() == [1, 2, 4, 5, 7, 8]
        kernel.send(me, "x")
        assert kernel.flush() == 1
        assert queue_len() == 0

    await node.run_process(body)


# -- known bug ----------------------------------------------------------------------------


async def test_a_message_handed_to_a_receive_cancelled_in_the_same_step_is_kept(
    node: Node,
) -> None:
    # The sender hands the message to the parked receive, then the receiver's task is
    # cancelled before it resumes: the message goes back to the mailbox, in its place.
    async def body() -> None:
        me = kernel.self()
        task = asyncio.current_task()
        assert task is not None
        kernel.send(me, "earlier")

        async def sender() -> None:
            kernel.send(me, "hello")
            kernel.send(me, "later")
            task.cancel()

        kernel.spawn(sender)
        with pytest.raises(asyncio.CancelledError):
            await kernel.receive(lambda m: m == "hello")
        task.uncancel()
        assert drain() == ["earlier", "hello", "later"]

    await node.run_process(body)


async def test_a_receive_in_a_cancelled_scope_keeps_or_returns_the_message(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        got: list[object] = []
        with anyio.CancelScope() as scope:

            async def sender() -> None:
                kernel.send(me, "hello")
                scope.cancel()

            kernel.spawn(sender)
            got.append(await kernel.receive())
        assert got + drain() == ["hello"]

    await node.run_process(body)
