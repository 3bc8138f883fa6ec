"""Pids and refs: unique for the node's life, never reused, identity kept by copies."""

from __future__ import annotations

import copy
import pickle

import pytest

from server import kernel
from server.kernel import Node, Pid, Ref

from ._helpers import down, idle, recv


async def _return() -> None:
    return None


async def test_spawned_pids_are_all_distinct(node: Node) -> None:
    async def body() -> None:
        pids = [kernel.spawn(idle) for _ in range(500)]
        assert len({pid.number for pid in pids}) == 500
        assert len({id(pid) for pid in pids}) == 500
        assert kernel.self() not in pids

    await node.run_process(body)


async def test_dead_pid_numbers_are_never_reused(node: Node) -> None:
    async def body() -> None:
        first = [kernel.spawn_monitor(_return) for _ in range(300)]
        for _, ref in first:
            await down(ref, step="first generation ended")
        assert not any(kernel.is_alive(pid) for pid, _ in first)
        old = {pid.number for pid, _ in first}
        second = [kernel.spawn(_return) for _ in range(300)]
        new = [pid.number for pid in second]
        assert old.isdisjoint(new)
        assert min(new) > max(old), "numbers only grow"

    await node.run_process(body)


async def test_self_is_the_pid_spawn_returned(node: Node) -> None:
    async def child(parent: Pid) -> None:
        kernel.send(parent, ("me", kernel.self()))

    async def body() -> None:
        pid = kernel.spawn(child, kernel.self())
        message = await recv(step="child's pid")
        assert type(message) is tuple
        assert message[1] is pid

    await node.run_process(body)


async def test_copy_and_deepcopy_of_a_pid_return_the_same_object(node: Node) -> None:
    async def body() -> None:
        pid = kernel.spawn(idle)
        assert copy.copy(pid) is pid
        assert copy.deepcopy(pid) is pid
        workers: list[Pid] = [pid, kernel.self()]
        by_pid: dict[Pid, int] = {pid: 1}
        cloned_workers, cloned_by_pid = copy.deepcopy((workers, by_pid))
        assert cloned_workers[0] is pid
        assert cloned_workers[1] is kernel.self()
        assert cloned_by_pid[pid] == 1

    await node.run_process(body)


async def test_a_pid_cannot_be_pickled(node: Node) -> None:
    async def body() -> None:
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(kernel.self())

    await node.run_process(body)


async def test_pids_compare_by_identity_and_print_like_erlang(node: Node) -> None:
    async def body() -> None:
        a = kernel.spawn(idle)
        b = kernel.spawn(idle)
        assert a != b
        assert a == copy.copy(a)
        assert {a: "a", b: "b"}[a] == "a"
        assert repr(a) == f"<0.{a.number}.0>"

    await node.run_process(body)


def test_refs_are_unique_and_copies_keep_identity() -> None:
    refs = [Ref() for _ in range(1000)]
    assert len({ref.number for ref in refs}) == 1000
    ref = refs[0]
    assert copy.copy(ref) is ref
    assert copy.deepcopy([ref])[0] is ref
    assert ref != refs[1]
