"""Signal order between a pair of processes, and a process's end coming after its cleanup."""

from __future__ import annotations

import anyio.lowlevel
import pytest

from server import kernel
from server.kernel import DownMessage, ExitMessage, Node, Pid

from ._helpers import down, drain, idle, recv

COUNT = 200


async def _send_then_end(to: Pid, how: str) -> None:
    for i in range(COUNT):
        kernel.send(to, i)
    if how == "crash":
        raise ValueError("crash")
    if how == "exit":
        raise kernel.ProcessExit("boom")


@pytest.mark.parametrize("how", ["return", "crash", "exit"])
async def test_messages_sent_before_an_end_arrive_before_the_down(node: Node, how: str) -> None:
    async def body() -> None:
        pid, ref = kernel.spawn_monitor(_send_then_end, kernel.self(), how)
        waiter = kernel.monitor(pid)
        await down(waiter)  # the end is signalled; nothing else has been taken yet
        got = drain()
        assert got[:COUNT] == list(range(COUNT))
        [down_message] = got[COUNT:]
        assert isinstance(down_message, DownMessage)
        assert down_message.ref is ref

    await node.run_process(body)


async def test_messages_taken_as_they_come_are_all_taken_before_the_down(node: Node) -> None:
    async def body() -> None:
        pid, ref = kernel.spawn_monitor(_send_then_end, kernel.self(), "return")
        got = [await recv(step=f"message {i}") for i in range(COUNT + 1)]
        assert got == [*range(COUNT), DownMessage(ref, pid, "normal")]

    await node.run_process(body)


@pytest.mark.parametrize("how", ["return", "crash", "exit"])
async def test_messages_sent_before_an_end_arrive_before_the_exit_message(
    node: Node, how: str
) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        pid = kernel.spawn_link(_send_then_end, kernel.self(), how)
        ref = kernel.monitor(pid)
        await down(ref)  # the end is signalled; nothing else has been taken yet
        got = drain()
        assert got[:COUNT] == list(range(COUNT))
        [exit_message] = got[COUNT:]
        assert isinstance(exit_message, ExitMessage)
        assert exit_message.pid is pid

    await node.run_process(body)


async def test_a_message_then_an_exit_signal_arrive_in_the_order_sent(node: Node) -> None:
    async def trapper(tester: Pid) -> None:
        kernel.trap_exit(True)
        kernel.send(tester, "trapping")
        await kernel.receive(lambda m: m == "go")  # the others queue up meanwhile
        kernel.send(tester, drain())

    async def body() -> None:
        me = kernel.self()
        pid = kernel.spawn(trapper, me)
        await recv(lambda m: m == "trapping", step="trapping")
        kernel.send(pid, "first")
        kernel.exit(pid, "signal")
        kernel.send(pid, "last")
        kernel.send(pid, "go")
        assert await recv(step="report") == ["first", ExitMessage(me, "signal"), "last"]

    await node.run_process(body)


# -- an end is signalled only after the process's own cleanup ----------------------------------


async def _cleaner(tester: Pid, partner: Pid | None) -> None:
    if partner is not None:
        kernel.link(partner)
    try:
        kernel.send(tester, "ready")
        await kernel.receive(lambda m: m == "crash")
        raise ValueError("crash")
    finally:
        await anyio.lowlevel.checkpoint()  # cleanup that itself waits
        await anyio.lowlevel.checkpoint()
        kernel.send(tester, "cleaned up")


def _end_or_cleanup(message: object) -> bool:
    return message == "cleaned up" or type(message) in (DownMessage, ExitMessage)


@pytest.mark.parametrize("how", ["kill", "exit", "crash", "link"])
async def test_links_and_monitors_hear_of_an_end_only_after_finally_blocks_ran(
    node: Node, how: str
) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        partner = kernel.spawn(idle) if how == "link" else None
        pid = kernel.spawn_link(_cleaner, kernel.self(), partner)
        kernel.monitor(pid)
        await recv(lambda m: m == "ready", step="ready")
        if how == "kill":
            kernel.exit(pid, "kill")
        elif how == "exit":
            kernel.exit(pid, "boom")
        elif how == "crash":
            kernel.send(pid, "crash")
        else:
            assert partner is not None
            kernel.exit(partner, "boom")
        got = [await recv(_end_or_cleanup, step=f"event {i}") for i in range(3)]
        assert got[0] == "cleaned up"
        assert {type(m) for m in got[1:]} == {ExitMessage, DownMessage}

    await node.run_process(body)
