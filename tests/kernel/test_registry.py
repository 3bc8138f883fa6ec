"""Registered names: one name per process, one process per name, freed when it ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.errors import NotRegisteredError, RegistrationError

from ._helpers import down, idle, ping, recv, start_peer

if TYPE_CHECKING:
    from server.kernel import Node, Pid


def name_of(pid: Pid) -> str | None:
    info = kernel.process_info(pid)
    assert info is not None
    return info.registered_name


async def test_register_whereis_and_registered(node: Node) -> None:
    async def body() -> None:
        pid = await start_peer()
        assert kernel.whereis("svc") is None
        kernel.register("svc", pid)
        kernel.register("me", kernel.self())
        assert kernel.whereis("svc") is pid
        assert kernel.registered() == ["me", "svc"]
        assert name_of(pid) == "svc"
        kernel.send("svc", ("ping", kernel.self()))
        assert await recv(step="pong by name") == ("pong", pid)

    await node.run_process(body)


async def test_a_taken_name_cannot_be_registered(node: Node) -> None:
    async def body() -> None:
        holder = await start_peer()
        other = await start_peer()
        kernel.register("svc", holder)
        with pytest.raises(RegistrationError) as caught:
            kernel.register("svc", other)
        assert caught.value.name == "svc"
        assert kernel.whereis("svc") is holder, "nothing changed"
        assert name_of(other) is None

    await node.run_process(body)


async def test_a_process_cannot_take_a_second_name(node: Node) -> None:
    async def body() -> None:
        pid = await start_peer()
        kernel.register("first", pid)
        with pytest.raises(RegistrationError):
            kernel.register("second", pid)
        assert kernel.whereis("second") is None
        assert name_of(pid) == "first"
        assert kernel.registered() == ["first"]

    await node.run_process(body)


async def test_re_registering_the_same_name_for_its_holder_is_an_error(node: Node) -> None:
    async def body() -> None:
        pid = await start_peer()
        kernel.register("svc", pid)
        with pytest.raises(RegistrationError):
            kernel.register("svc", pid)
        assert kernel.whereis("svc") is pid

    await node.run_process(body)


async def test_a_dead_pid_cannot_be_registered(node: Node) -> None:
    async def short() -> None:
        return None

    async def body() -> None:
        pid, ref = kernel.spawn_monitor(short)
        await down(ref)
        with pytest.raises(RegistrationError):
            kernel.register("svc", pid)
        doomed = kernel.spawn(idle)
        kernel.exit(doomed, "kill")
        with pytest.raises(RegistrationError):
            kernel.register("svc", doomed)
        assert kernel.whereis("svc") is None
        assert kernel.registered() == []

    await node.run_process(body)


async def test_an_empty_name_is_refused(node: Node) -> None:
    async def body() -> None:
        with pytest.raises(RegistrationError):
            kernel.register("", kernel.self())
        assert kernel.registered() == []

    await node.run_process(body)


@pytest.mark.parametrize("reason", ["normal", "boom", "kill"])
async def test_the_name_is_freed_when_the_process_ends(node: Node, reason: str) -> None:
    async def body() -> None:
        pid = await start_peer()
        kernel.register("svc", pid)
        ref = kernel.monitor(pid)
        if reason == "kill":
            kernel.exit(pid, "kill")
        else:
            kernel.send(pid, ("stop", reason))
        await down(ref)
        assert kernel.whereis("svc") is None
        assert "svc" not in kernel.registered()
        with pytest.raises(NotRegisteredError):
            kernel.send("svc", "hello")
        successor = await start_peer()
        kernel.register("svc", successor)
        assert kernel.whereis("svc") is successor

    await node.run_process(body)


async def test_unregister_frees_the_name_and_the_process(node: Node) -> None:
    async def body() -> None:
        pid = await start_peer()
        kernel.register("svc", pid)
        kernel.unregister("svc")
        assert kernel.whereis("svc") is None
        assert name_of(pid) is None
        kernel.register("other", pid)  # it may take a name again
        kernel.register("svc", kernel.self())  # and the name may go to another process
        assert kernel.whereis("other") is pid
        await ping(pid)

    await node.run_process(body)


async def test_unregistering_an_unheld_name_raises(node: Node) -> None:
    async def body() -> None:
        with pytest.raises(NotRegisteredError):
            kernel.unregister("nobody")

    await node.run_process(body)


async def test_a_name_registered_then_unregistered_is_not_freed_again_at_exit(
    node: Node,
) -> None:
    """The old holder ending must not free the name its successor now holds."""

    async def body() -> None:
        old = await start_peer()
        kernel.register("svc", old)
        kernel.unregister("svc")
        new = await start_peer()
        kernel.register("svc", new)
        ref = kernel.monitor(old)
        kernel.send(old, ("stop", "boom"))
        await down(ref)
        assert kernel.whereis("svc") is new

    await node.run_process(body)
