"""Trapping exits: exit signals become ``ExitMessage``; ``kill`` cannot be trapped."""

from __future__ import annotations

import pytest

from server import kernel
from server.kernel import ExitMessage, Node, Pid

from ._helpers import link_peers, ping, reason_of, recv, start_peer, trapped, trapped_by

BOOM = ValueError("boom")

REASONS: list[object] = ["normal", "shutdown", ("shutdown", "detail"), "boom", "killed", BOOM]
REASON_IDS = ["normal", "shutdown", "shutdown-tuple", "atom", "killed", "exception"]


async def test_trap_exit_returns_the_previous_flag(node: Node) -> None:
    async def body() -> None:
        assert kernel.trap_exit(True) is False
        assert kernel.trap_exit(True) is True
        assert kernel.trap_exit(False) is True
        assert kernel.trap_exit(False) is False

    await node.run_process(body)


async def _ender(tester: Pid, reason: object) -> None:
    """Links to ``tester``, tells it so, and ends with ``reason`` when told to."""
    kernel.link(tester)
    kernel.send(tester, ("linked", kernel.self()))
    await kernel.receive()
    if isinstance(reason, BaseException):
        raise reason
    raise kernel.ProcessExit(reason)


@pytest.mark.parametrize("reason", REASONS, ids=REASON_IDS)
async def test_a_trapping_process_gets_every_exit_as_a_message(node: Node, reason: object) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        pid = kernel.spawn(_ender, kernel.self(), reason)
        await recv(lambda m: m == ("linked", pid), step="ender linked")
        kernel.send(pid, "go")
        message = await trapped(pid)
        assert message == ExitMessage(pid, reason)
        assert message.reason is reason or message.reason == reason

    await node.run_process(body)


@pytest.mark.parametrize("trap", [True, False], ids=["trapping", "plain"])
async def test_kill_cannot_be_trapped_and_neighbours_see_killed(node: Node, trap: bool) -> None:
    async def body() -> None:
        victim = await start_peer(trap=True)
        neighbour = await start_peer(trap=trap)
        await link_peers(neighbour, victim)
        victim_ref = kernel.monitor(victim)
        neighbour_ref = kernel.monitor(neighbour)
        kernel.exit(victim, "kill")
        assert await reason_of(victim_ref) == "killed", "trapping did not save the victim"
        if trap:
            assert await trapped_by(neighbour) == ExitMessage(victim, "killed")
            await ping(neighbour)
        else:
            assert await reason_of(neighbour_ref) == "killed"

    await node.run_process(body)


@pytest.mark.parametrize("trap", [True, False], ids=["trapping", "plain"])
async def test_kill_as_an_ordinary_exit_reason_travels_links_as_kill(
    node: Node, trap: bool
) -> None:
    """OTP: only ``exit(pid, kill)`` is untrappable; a process *ending* with ``kill``
    sends its links an ordinary signal with reason ``kill``."""

    async def body() -> None:
        ender = await start_peer()
        neighbour = await start_peer(trap=trap)
        await link_peers(neighbour, ender)
        neighbour_ref = kernel.monitor(neighbour)
        kernel.send(ender, ("stop", "kill"))
        if trap:
            assert await trapped_by(neighbour) == ExitMessage(ender, "kill")
            await ping(neighbour)
        else:
            assert await reason_of(neighbour_ref) == "kill"

    await node.run_process(body)


async def test_a_trapped_exit_from_a_linked_crash_leaves_the_trapper_running(
    node: Node,
) -> None:
    async def body() -> str:
        kernel.trap_exit(True)
        other = await start_peer(link=True)
        kernel.send(other, ("stop", "boom"))
        assert await trapped(other) == ExitMessage(other, "boom")
        return "survived"

    assert await node.run_process(body) == "survived"


async def test_turning_trapping_off_makes_signals_fatal_again(node: Node) -> None:
    async def body() -> None:
        peer = await start_peer(trap=True)
        ref = kernel.monitor(peer)
        kernel.exit(peer, "first")
        assert await trapped_by(peer) == ExitMessage(kernel.self(), "first")
        kernel.send(peer, ("trap", False))
        await ping(peer)
        kernel.exit(peer, "second")
        assert await reason_of(ref) == "second"

    await node.run_process(body)
