"""Links: two-way, idempotent, removable, and how an end travels along them."""

from __future__ import annotations

import itertools

import pytest

from server import kernel
from server.errors import NoProcError
from server.kernel import ExitMessage, Node, Pid

from ._helpers import (
    link_peers,
    ping,
    reason_of,
    recv,
    start_peer,
    trapped,
    unlink_peers,
)


def links_of(pid: Pid) -> tuple[Pid, ...]:
    info = kernel.process_info(pid)
    assert info is not None
    return info.links


# -- shape -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dying", ["linker", "linked"])
async def test_a_link_works_both_ways(node: Node, dying: str) -> None:
    async def body() -> None:
        linker = await start_peer()
        linked = await start_peer()
        await link_peers(linker, linked)
        assert links_of(linker) == (linked,)
        assert links_of(linked) == (linker,)
        victim, other = (linker, linked) if dying == "linker" else (linked, linker)
        ref = kernel.monitor(other)
        kernel.send(victim, ("stop", "boom"))
        assert await reason_of(ref) == "boom"

    await node.run_process(body)


async def test_linking_twice_is_linking_once(node: Node) -> None:
    async def body() -> str:
        me = kernel.self()
        other = await start_peer()
        kernel.link(other)
        kernel.link(other)
        assert links_of(me) == (other,)
        assert links_of(other) == (me,)
        kernel.unlink(other)  # one unlink undoes both links
        assert links_of(other) == ()
        ref = kernel.monitor(other)
        kernel.send(other, ("stop", "boom"))
        assert await reason_of(ref) == "boom"
        return "survived"

    assert await node.run_process(body) == "survived"


@pytest.mark.parametrize("dying", ["unlinker", "unlinked"])
async def test_unlink_removes_both_directions(node: Node, dying: str) -> None:
    async def body() -> None:
        unlinker = await start_peer()
        unlinked = await start_peer()
        await link_peers(unlinker, unlinked)
        await unlink_peers(unlinker, unlinked)
        assert links_of(unlinker) == ()
        assert links_of(unlinked) == ()
        victim, survivor = (unlinker, unlinked) if dying == "unlinker" else (unlinked, unlinker)
        ref = kernel.monitor(victim)
        kernel.send(victim, ("stop", "boom"))
        assert await reason_of(ref) == "boom"
        await ping(survivor)

    await node.run_process(body)


async def test_unlink_without_a_link_or_of_a_dead_pid_is_harmless(node: Node) -> None:
    async def short() -> None:
        return None

    async def body() -> None:
        other = await start_peer()
        kernel.unlink(other)
        dead, ref = kernel.spawn_monitor(short)
        await reason_of(ref)
        kernel.unlink(dead)
        await ping(other)

    await node.run_process(body)


async def test_linking_to_self_does_nothing(node: Node) -> None:
    async def body() -> None:
        kernel.link(kernel.self())
        assert links_of(kernel.self()) == ()

    await node.run_process(body)


async def test_a_link_is_gone_once_the_other_end_has_ended(node: Node) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        other = await start_peer(link=True)
        kernel.send(other, ("stop", "normal"))
        await trapped(other)
        assert links_of(kernel.self()) == ()

    await node.run_process(body)


# -- what travels along links -----------------------------------------------------------------

ABNORMAL: list[object] = ["boom", "shutdown", ("shutdown", "detail"), ("error", 42)]


@pytest.mark.parametrize("reason", ABNORMAL, ids=["atom", "shutdown", "shutdown-tuple", "tuple"])
async def test_a_non_trapping_linked_process_dies_with_the_same_reason(
    node: Node, reason: object
) -> None:
    async def body() -> None:
        a = await start_peer()
        b = await start_peer()
        await link_peers(a, b)
        ref = kernel.monitor(b)
        kernel.send(a, ("stop", reason))
        assert await reason_of(ref) == reason

    await node.run_process(body)


async def test_an_exception_travels_along_a_link_as_the_same_object(node: Node) -> None:
    error = RuntimeError("crash")

    async def crasher(tester: Pid) -> None:
        kernel.send(tester, "linked")
        await kernel.receive()
        raise error

    async def body() -> None:
        b = await start_peer()
        a = kernel.spawn(crasher, kernel.self())
        await recv(lambda m: m == "linked", step="crasher started")
        await link_peers(b, a)
        ref = kernel.monitor(b)
        kernel.send(a, "go")
        assert await reason_of(ref) is error

    await node.run_process(body)


async def test_a_normal_exit_does_not_kill_a_non_trapping_linked_process(node: Node) -> None:
    async def body() -> None:
        a = await start_peer()
        b = await start_peer()
        await link_peers(a, b)
        ref = kernel.monitor(a)
        kernel.send(a, ("stop", "normal"))
        assert await reason_of(ref) == "normal"
        await ping(b)
        assert links_of(b) == ()

    await node.run_process(body)


async def _chain(length: int) -> list[Pid]:
    """Peers p0 - p1 - ... linked in a line."""
    peers = [await start_peer() for _ in range(length)]
    for left, right in itertools.pairwise(peers):
        await link_peers(left, right)
    return peers


async def test_an_abnormal_reason_propagates_along_a_chain_of_links(node: Node) -> None:
    async def body() -> None:
        chain = await _chain(6)
        refs = [kernel.monitor(pid) for pid in chain]
        kernel.send(chain[-1], ("stop", "boom"))
        reasons = [await reason_of(ref, step=f"p{i} ended") for i, ref in enumerate(refs)]
        assert reasons == ["boom"] * 6

    await node.run_process(body)


async def test_a_normal_reason_does_not_propagate_along_a_chain(node: Node) -> None:
    async def body() -> None:
        chain = await _chain(6)
        ref = kernel.monitor(chain[-1])
        kernel.send(chain[-1], ("stop", "normal"))
        assert await reason_of(ref) == "normal"
        for pid in chain[:-1]:
            await ping(pid)

    await node.run_process(body)


async def test_a_trapping_link_in_a_chain_stops_the_propagation(node: Node) -> None:
    async def body() -> None:
        far = await start_peer()
        middle = await start_peer(trap=True)
        near = await start_peer()
        await link_peers(far, middle)
        await link_peers(middle, near)
        ref = kernel.monitor(near)
        kernel.send(near, ("stop", "boom"))
        assert await reason_of(ref) == "boom"
        await ping(middle)
        await ping(far)

    await node.run_process(body)


# -- linking to what is not there -------------------------------------------------------------


async def _dead_pid() -> Pid:
    async def short() -> None:
        return None

    pid, ref = kernel.spawn_monitor(short)
    await reason_of(ref)
    return pid


async def test_linking_a_dead_pid_when_trapping_gives_exit_noproc(node: Node) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        dead = await _dead_pid()
        kernel.link(dead)
        assert await trapped(dead) == ExitMessage(dead, "noproc")
        assert links_of(kernel.self()) == ()

    await node.run_process(body)


async def test_linking_a_dead_pid_when_not_trapping_raises_noproc(node: Node) -> None:
    async def body() -> str:
        dead = await _dead_pid()
        with pytest.raises(NoProcError) as caught:
            kernel.link(dead)
        assert caught.value.target is dead
        return "survived"

    assert await node.run_process(body) == "survived"


async def test_linking_a_doomed_pid_is_linking_a_dead_one(node: Node) -> None:
    async def body() -> None:
        doomed = await start_peer()
        kernel.exit(doomed, "kill")
        with pytest.raises(NoProcError):
            kernel.link(doomed)

    await node.run_process(body)
