"""The listener process: start and its failures, its port, its connections, its end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import anyio
import pytest

from server import kernel
from server.behaviours import supervisor, system_messages
from server.behaviours.acceptor import AcceptorState
from server.behaviours.supervisor_callbacks import SupervisorSpec
from server.errors import AlreadyStarted, StartError
from server.kernel import ExitMessage
from server.net import http_server

from ._support import Client, reason_of, within

if TYPE_CHECKING:
    from server.kernel import Node, Pid

HANDLER: Final = "tests.net._handlers"


async def start(port: int = 0, **options: object) -> Pid:
    return await within(
        http_server.start_link("127.0.0.1", port, HANDLER, **options),  # type: ignore[arg-type]
        "start the listener",
    )


async def assert_refused(port: int) -> None:
    with pytest.raises(OSError):  # noqa: PT011 - refused, however the platform words it
        await within(anyio.connect_tcp("127.0.0.1", port), "connect")


async def test_port_0_binds_a_free_port_that_is_known_when_start_returns(node: Node) -> None:
    async def body() -> None:
        listener = await start()
        port = http_server.listening_port(listener)
        assert port > 0
        assert http_server.count_connections(listener) == 0
        info = kernel.process_info(listener)
        assert info is not None
        assert kernel.self() in info.links
        assert dict(info.labels)["behaviour"] == "http_listener"
        status = await within(system_messages.get_status(listener), "get_status")
        assert (status.behaviour, status.status, status.parent) == (
            "http_listener",
            "running",
            kernel.self(),
        )
        assert isinstance(status.state, AcceptorState)
        assert status.state.max_connections >= 1
        with pytest.raises(LookupError):
            http_server.listening_port(kernel.self())

    await node.run_process(body)


async def test_a_port_in_use_is_a_start_error_and_changes_nothing(node: Node) -> None:
    async def body() -> None:
        listener = await start()
        port = http_server.listening_port(listener)
        before = kernel.processes()
        with pytest.raises(StartError, match=rf"127\.0\.0\.1:{port}.*in use") as caught:
            await start(port)
        assert "cannot listen" in str(caught.value.reason)
        assert kernel.processes() == before
        assert kernel.flush() == 0  # no exit signal, no stray acknowledgement
        async with await Client.connect(port) as client:
            assert (await client.get("/hello")).status == 200

    await node.run_process(body)


async def test_a_name_is_registered_and_a_taken_name_is_already_started(node: Node) -> None:
    async def body() -> None:
        listener = await start(name="web")
        assert kernel.whereis("web") is listener
        assert http_server.listening_port("web") == http_server.listening_port(listener)
        before = kernel.processes()
        with pytest.raises(AlreadyStarted) as caught:
            await start(name="web")
        assert caught.value.pid is listener
        assert kernel.processes() == before
        with pytest.raises(LookupError):
            http_server.count_connections("nobody")

    await node.run_process(body)


async def test_killing_the_listener_closes_its_socket_and_ends_its_connections(
    node: Node,
) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        listener = await start()
        port = http_server.listening_port(listener)
        async with await Client.connect(port) as first, await Client.connect(port) as second:
            assert (await first.get("/hello")).status == 200
            assert (await second.get("/hello")).status == 200
            connections = http_server.which_connections(listener)
            assert len(connections) == 2
            refs = [kernel.monitor(pid) for pid in connections]
            listener_ref = kernel.monitor(listener)
            kernel.exit(listener, kernel.KILL)
            assert await reason_of(listener_ref, step="listener ends") == kernel.KILLED
            for ref in refs:
                assert await reason_of(ref, step="connection ends") == kernel.SHUTDOWN
            assert await first.closed_by_peer()
            assert await second.closed_by_peer()
        await assert_refused(port)
        message = await within(kernel.receive(lambda m: type(m) is ExitMessage), "EXIT")
        assert message == ExitMessage(listener, kernel.KILLED)

    await node.run_process(body)


async def test_a_connection_that_crashes_or_is_killed_leaves_the_listener_serving(
    node: Node,
) -> None:
    async def body() -> None:
        listener = await start()
        port = http_server.listening_port(listener)
        async with await Client.connect(port) as client:
            assert (await client.get("/hello")).status == 200
            (connection,) = http_server.which_connections(listener)
            ref = kernel.monitor(connection)
            kernel.exit(connection, kernel.KILL)
            assert await reason_of(ref, step="connection killed") == kernel.KILLED
            assert await client.closed_by_peer()
        async with await Client.connect(port) as client:
            assert (await client.get("/hello")).status == 200
            assert kernel.is_alive(listener)
            assert http_server.count_connections(listener) == 1

    await node.run_process(body)


async def test_the_parent_ending_normally_ends_the_listener_and_its_connections(
    node: Node,
) -> None:
    async def parent(test: Pid) -> None:
        kernel.send(test, ("listener", await start()))
        await kernel.receive(lambda m: m == "return")

    async def body() -> None:
        owner = kernel.spawn(parent, kernel.self())
        message = await within(kernel.receive(), "listener started")
        assert type(message) is tuple
        listener = message[1]
        port = http_server.listening_port(listener)
        async with await Client.connect(port) as client:
            assert (await client.get("/hello")).status == 200
            (connection,) = http_server.which_connections(listener)
            connection_ref = kernel.monitor(connection)
            listener_ref = kernel.monitor(listener)
            kernel.send(owner, "return")
            assert await reason_of(listener_ref, step="listener ends") == kernel.NORMAL
            assert await reason_of(connection_ref, step="connection ends") == kernel.SHUTDOWN
            assert await client.closed_by_peer()
        await assert_refused(port)

    await node.run_process(body)


async def test_a_supervisor_starts_and_shuts_the_listener_down(node: Node) -> None:
    async def body() -> None:
        spec = http_server.child_spec("web", "127.0.0.1", 0, HANDLER, idle_timeout=30.0)
        sup = await within(
            supervisor.start_link("tests.net._sup", SupervisorSpec(children=(spec,))), "start"
        )
        assert sup is not None
        (child,) = await within(supervisor.which_children(sup), "which_children")
        listener = child.pid
        assert isinstance(listener, kernel.Pid)
        port = http_server.listening_port(listener)
        async with await Client.connect(port) as client:
            assert (await client.get("/hello")).status == 200
            (connection,) = http_server.which_connections(listener)
            connection_ref = kernel.monitor(connection)
            listener_ref = kernel.monitor(listener)
            await within(supervisor.terminate_child(sup, "web"), "terminate_child")
            assert await reason_of(listener_ref, step="listener ends") == kernel.SHUTDOWN
            assert await reason_of(connection_ref, step="connection ends") == kernel.SHUTDOWN
            assert await client.closed_by_peer()
        await assert_refused(port)
        again = await within(supervisor.restart_child(sup, "web"), "restart_child")
        assert again is not None
        assert http_server.listening_port(again) > 0

    await node.run_process(body)
