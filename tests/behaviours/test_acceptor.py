"""The shared acceptor: its cap, refusals, room making, sockets it owns, sys, its failures."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import socket
from typing import TYPE_CHECKING

import anyio
import pytest

from server import kernel
from server.behaviours import acceptor, system_messages
from server.behaviours.acceptor import (
    MAX_REFUSERS,
    AcceptorSpec,
    AcceptorState,
    ConnectionBudget,
)
from server.errors import AlreadyStarted, SystemCallError
from server.net._listener import open_tcp
from tests._support.waits import reason_of, within

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from server.behaviours.socket_io import SocketIO
    from server.kernel import Node, Pid


class _Sockets:
    def __init__(self, sockets: list[socket.socket]) -> None:
        self.sockets = sockets
        self.closed = 0

    def close(self) -> None:
        self.closed += 1
        for sock in self.sockets:
            sock.close()


def _listening() -> _Sockets:
    return _Sockets(open_tcp([(socket.AF_INET, ("127.0.0.1", 0))], 0, 128))


def _port(pid: Pid) -> int:
    port = kernel.get_label(pid, "port")
    assert isinstance(port, int)
    return port


async def echo(io: SocketIO) -> None:
    """Answer every chunk with itself, until the peer closes."""
    while data := await io.receive():
        await io.send(data)


async def refuse_busy(io: SocketIO) -> None:
    await io.send(b"busy\n")


async def start(
    serve: Callable[[SocketIO], Awaitable[None]] = echo,
    *,
    limit: int = 8,
    listening: _Sockets | None = None,
    **options: object,
) -> Pid:
    opened = listening or _listening()
    port = opened.sockets[0].getsockname()[1]
    spec = AcceptorSpec(
        what=f"test acceptor on {port}",
        behaviour="test_acceptor",
        open=lambda: opened,
        serve=serve,
        budget=ConnectionBudget(limit),
        labels={"port": port},
        **options,  # type: ignore[arg-type]
    )
    return await within(acceptor.start_link(spec), "start the acceptor")


class Peer:
    """A client connection."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream

    @classmethod
    async def connect(cls, port: int) -> Peer:
        return cls(await within(anyio.connect_tcp("127.0.0.1", port), "connect"))

    async def echoes(self, data: bytes = b"ping") -> bool:
        await within(self.stream.send(data), "send")
        got = b""
        while len(got) < len(data):
            got += await within(self.stream.receive(), "echo")
        return got == data

    async def read_all(self) -> bytes:
        """Everything until the node closes the connection."""
        got = b""
        while True:
            try:
                got += await within(self.stream.receive(), "read until closed")
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                return got

    async def aclose(self) -> None:
        await self.stream.aclose()


async def test_over_the_cap_a_connection_is_refused_and_a_freed_slot_serves_again(
    node: Node,
) -> None:
    async def body() -> None:
        pid = await start(limit=2, refuse=refuse_busy)
        port = _port(pid)
        first, second = await Peer.connect(port), await Peer.connect(port)
        assert await first.echoes()
        assert await second.echoes()
        third = await Peer.connect(port)
        assert await third.read_all() == b"busy\n"
        assert len(acceptor.which_connections(pid)) == 2
        (gone,) = list(acceptor.which_connections(pid))[:1]
        ref = kernel.monitor(gone)
        await first.aclose()
        await second.aclose()
        await reason_of(ref, step="a connection ends")
        fourth = await Peer.connect(port)
        assert await fourth.echoes()
        await fourth.aclose()
        await third.aclose()

    await node.run_process(body)


async def test_with_no_refuse_a_connection_over_the_cap_is_closed_at_once(node: Node) -> None:
    async def body() -> None:
        pid = await start(limit=1)
        port = _port(pid)
        first = await Peer.connect(port)
        assert await first.echoes()
        second = await Peer.connect(port)
        assert await second.read_all() == b""
        assert await first.echoes()
        await first.aclose()
        await second.aclose()

    await node.run_process(body)


async def test_at_most_max_refusers_refuse_at_once_and_the_rest_are_closed(node: Node) -> None:
    async def hang(io: SocketIO) -> None:
        await anyio.sleep_forever()

    async def body() -> None:
        pid = await start(limit=1, refuse=hang)
        port = _port(pid)
        first = await Peer.connect(port)
        assert await first.echoes()
        waiting = [await Peer.connect(port) for _ in range(MAX_REFUSERS)]
        # the state is read after the acceptor took all of them: it answers in order
        while (await system_messages.get_state(pid)).refusing < MAX_REFUSERS:
            await anyio.wait_all_tasks_blocked()
        extra = await Peer.connect(port)
        assert await extra.read_all() == b""  # closed at once: no refuser was free
        state = await system_messages.get_state(pid)
        assert state.refusing == MAX_REFUSERS
        assert state.connections == 1
        for peer in (first, extra, *waiting):
            await peer.aclose()

    await node.run_process(body)


async def test_make_room_frees_a_slot_for_the_new_connection(node: Node) -> None:
    evicted: list[Pid] = []

    async def body() -> None:
        def make_room() -> Pid | None:
            (oldest, *_) = acceptor.which_connections(pid)
            kernel.exit(oldest, kernel.SHUTDOWN)
            evicted.append(oldest)
            return oldest

        pid = await start(limit=1, make_room=make_room)
        port = _port(pid)
        first = await Peer.connect(port)
        assert await first.echoes()
        (old,) = acceptor.which_connections(pid)
        ref = kernel.monitor(old)
        second = await Peer.connect(port)
        assert await second.echoes()
        assert await reason_of(ref, step="the old connection ends") == kernel.SHUTDOWN
        assert evicted == [old]
        assert await first.read_all() == b""
        (new,) = acceptor.which_connections(pid)
        assert new != old
        await first.aclose()
        await second.aclose()

    await node.run_process(body)


async def test_the_acceptor_closes_a_connection_socket_its_process_did_not(node: Node) -> None:
    """A connection that ignores its ``shutdown``: the acceptor's end closes its socket."""

    async def stubborn(io: SocketIO) -> None:
        kernel.trap_exit(True)
        await io.send(b"hi")
        await kernel.receive(lambda m: False)

    async def body() -> None:
        kernel.trap_exit(True)
        pid = await start(stubborn)
        peer = await Peer.connect(_port(pid))
        assert await within(peer.stream.receive(), "hi") == b"hi"
        (connection,) = acceptor.which_connections(pid)
        ref = kernel.monitor(pid)
        kernel.exit(pid, kernel.KILL)
        assert await reason_of(ref, step="acceptor killed") == kernel.KILLED
        assert await peer.read_all() == b""
        assert kernel.is_alive(connection)  # its process lives on, its socket does not
        kernel.exit(connection, kernel.KILL)
        await peer.aclose()

    await node.run_process(body)


async def test_an_ended_connection_process_has_its_socket_closed_whatever_it_did(
    node: Node,
) -> None:
    async def leaves_it_open(io: SocketIO) -> None:
        await io.send(b"bye")

    async def body() -> None:
        pid = await start(leaves_it_open)
        peer = await Peer.connect(_port(pid))
        assert await peer.read_all() == b"bye"
        await peer.aclose()

    await node.run_process(body)


async def test_sys_get_status_get_state_and_replace_state(node: Node) -> None:
    async def body() -> None:
        pid = await start(limit=3, name="test_acceptor")
        peer = await Peer.connect(_port(pid))
        assert await peer.echoes()
        status = await system_messages.get_status(pid)
        assert status.behaviour == "test_acceptor"
        assert status.module == "server.behaviours.acceptor"
        assert status.registered_name == "test_acceptor"
        assert status.parent == kernel.self()
        assert status.status == "running"
        state = status.state
        assert isinstance(state, AcceptorState)
        assert (state.connections, state.max_connections, state.accepting) == (1, 3, True)
        assert state.addresses == (f"127.0.0.1:{_port(pid)}",)
        with pytest.raises(SystemCallError, match="cannot be replaced"):
            await system_messages.replace_state(pid, lambda s: s)
        assert await peer.echoes()
        await peer.aclose()

    await node.run_process(body)


async def test_suspended_it_accepts_nothing_until_resumed(node: Node) -> None:
    async def body() -> None:
        pid = await start()
        port = _port(pid)
        await system_messages.suspend(pid)
        waiting = await Peer.connect(port)  # the kernel's backlog takes it
        await within(waiting.stream.send(b"ping"), "send")
        status = await system_messages.get_status(pid)
        assert status.status == "suspended"
        assert isinstance(status.state, AcceptorState)
        assert (status.state.connections, status.state.accepting) == (0, False)
        await system_messages.resume(pid)
        got = await within(waiting.stream.receive(), "echo after resume")
        assert got == b"ping"
        await waiting.aclose()

    await node.run_process(body)


class _Seen(logging.Handler):
    """Sets an event when the acceptor logs an accept failure."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.event = anyio.Event()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.event.set()


async def test_out_of_descriptors_it_backs_off_logs_and_accepts_once_there_are_some(
    node: Node,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    seen = _Seen()
    logger = logging.getLogger("server.acceptor")

    async def body() -> None:
        pid = await start()
        port = _port(pid)
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # its descriptor first
        client.setblocking(False)
        in_use = len(os.listdir("/proc/self/fd")) - 1  # less listdir's own
        logger.addHandler(seen)
        resource.setrlimit(resource.RLIMIT_NOFILE, (in_use, hard))  # not one to spare
        try:
            with contextlib.suppress(BlockingIOError):
                client.connect(("127.0.0.1", port))
            await within(seen.event.wait(), "the acceptor logs that accept failed")
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            logger.removeHandler(seen)
        await within(anyio.wait_writable(client), "connected")
        client.send(b"ping")
        await within(anyio.wait_readable(client), "echo once descriptors are back")
        assert client.recv(10) == b"ping"
        client.close()
        (record, *_) = seen.records
        assert "accept failed" in record.getMessage()
        assert getattr(record, "errno", None) == errno.EMFILE
        assert kernel.is_alive(pid)

    await node.run_process(body)


async def test_a_listening_socket_closed_under_it_ends_the_acceptor_with_accept_failed(
    node: Node,
) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        opened = _listening()
        pid = await start(listening=opened)
        peer = await Peer.connect(_port(pid))
        assert await peer.echoes()
        (connection,) = acceptor.which_connections(pid)
        ref, cref = kernel.monitor(pid), kernel.monitor(connection)
        sock = opened.sockets[0]
        anyio.notify_closing(sock)
        sock.close()
        reason = await reason_of(ref, step="the acceptor ends")
        assert type(reason) is tuple
        assert reason[0] == "accept_failed"
        assert await reason_of(cref, step="its connection ends") == kernel.SHUTDOWN
        assert await peer.read_all() == b""
        await peer.aclose()

    await node.run_process(body)


async def test_a_name_taken_fails_the_start_and_closes_what_it_opened(node: Node) -> None:
    async def body() -> None:
        kernel.register("taken", kernel.self())
        opened = _listening()
        port = opened.sockets[0].getsockname()[1]
        with pytest.raises(AlreadyStarted):
            await start(listening=opened, name="taken")
        assert opened.closed >= 1
        again = open_tcp([(socket.AF_INET, ("127.0.0.1", port))], port, 8)  # the port is free
        for sock in again:
            sock.close()

    await node.run_process(body)


async def test_an_open_that_raises_fails_the_start_with_its_own_error(node: Node) -> None:
    def broken() -> _Sockets:
        raise PermissionError("not yours")

    async def body() -> None:
        before = kernel.processes()
        spec = AcceptorSpec(
            what="nothing",
            behaviour="test_acceptor",
            open=broken,
            serve=echo,
            budget=ConnectionBudget(1),
        )
        with pytest.raises(PermissionError, match="not yours"):
            await acceptor.start_link(spec)
        assert kernel.processes() == before

    await node.run_process(body)


def test_a_budget_counts_and_refuses_a_bad_limit() -> None:
    budget = ConnectionBudget(2)
    assert budget.take()
    assert budget.take()
    assert not budget.take()
    budget.give_back()
    assert budget.take()
    with pytest.raises(ValueError, match=">= 1"):
        ConnectionBudget(0)
    assert acceptor.descriptor_budget(reserve=10) == max(
        1, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 10
    )
