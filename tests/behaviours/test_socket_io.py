"""SocketIO's reads: the loop watches the socket while it is read, and lets go when told."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

import anyio
import pytest

from server.behaviours.socket_io import SocketIO

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pair() -> AsyncIterator[tuple[SocketIO, socket.socket]]:
    ours, theirs = socket.socketpair()
    io = SocketIO(ours)
    try:
        yield io, theirs
    finally:
        io.close()
        theirs.close()


def _watched(fd: int) -> bool:
    """Whether the running loop's selector watches ``fd`` for reading."""
    selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
    try:
        key = selector.get_key(fd)
    except KeyError:
        return False
    return key.data[0] is not None  # (reader handle, writer handle)


async def test_a_receive_waits_for_bytes_and_keeps_the_socket_watched(
    pair: tuple[SocketIO, socket.socket],
) -> None:
    io, peer = pair
    fd = io.socket.fileno()
    async with anyio.create_task_group() as group:
        got: list[bytes] = []

        async def read() -> None:
            got.append(await io.receive(100))

        group.start_soon(read)
        await anyio.wait_all_tasks_blocked()
        assert _watched(fd)
        peer.send(b"first")
    assert got == [b"first"]
    assert _watched(fd)  # still watched after the read: no registration per wait
    peer.send(b"second")
    assert await io.receive(100) == b"second"


async def test_readiness_while_nobody_waits_is_noted_and_the_watch_dropped(
    pair: tuple[SocketIO, socket.socket],
) -> None:
    io, peer = pair
    fd = io.socket.fileno()
    peer.send(b"one")
    assert await io.receive(100) == b"one"  # registered, then woken
    peer.send(b"two")
    await anyio.wait_all_tasks_blocked()
    await asyncio.sleep(0)  # one loop iteration: the loop sees the socket readable
    await asyncio.sleep(0)
    assert not _watched(fd)  # told once, not at every iteration while nobody reads
    assert await io.receive(100) == b"two"  # read at once, from the note


async def test_a_receive_reads_at_most_what_it_asks(
    pair: tuple[SocketIO, socket.socket],
) -> None:
    io, peer = pair
    peer.send(b"abcdef")
    assert await io.receive(4) == b"abcd"
    assert await io.receive(4) == b"ef"


async def test_nothing_for_the_timeout_raises_timeout_error_and_it_stays_usable(
    pair: tuple[SocketIO, socket.socket],
) -> None:
    io, peer = pair
    with pytest.raises(TimeoutError):
        await io.receive(100, timeout=0.05)
    peer.send(b"late")
    assert await io.receive(100, timeout=5.0) == b"late"


async def test_a_cancelled_receive_leaves_the_socket_readable_later(
    pair: tuple[SocketIO, socket.socket],
) -> None:
    io, peer = pair
    async with anyio.create_task_group() as group:
        group.start_soon(io.receive, 100)
        await anyio.wait_all_tasks_blocked()
        group.cancel_scope.cancel()
    peer.send(b"after")
    assert await io.receive(100) == b"after"


async def test_a_second_reader_is_refused(pair: tuple[SocketIO, socket.socket]) -> None:
    io, peer = pair
    async with anyio.create_task_group() as group:
        group.start_soon(io.receive, 100)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(anyio.BusyResourceError):
            await io.receive(100)
        peer.send(b"x")


async def test_close_wakes_a_waiting_reader_and_lets_go_of_the_descriptor(
    pair: tuple[SocketIO, socket.socket],
) -> None:
    io, _peer = pair
    fd = io.socket.fileno()
    failed: list[BaseException] = []

    async def read() -> None:
        try:
            await io.receive(100)
        except anyio.ClosedResourceError as exc:
            failed.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(read)
        await anyio.wait_all_tasks_blocked()
        io.close()
    assert len(failed) == 1
    assert not _watched(fd)
    io.close()  # again: nothing happens
    with pytest.raises(anyio.ClosedResourceError):
        await io.receive(100)


async def test_a_reused_descriptor_is_watched_afresh(
    pair: tuple[SocketIO, socket.socket],
) -> None:
    io, peer = pair
    peer.send(b"a")
    assert await io.receive(100) == b"a"
    io.close()  # while the loop watched it
    ours, theirs = socket.socketpair()  # likely the same descriptor numbers
    again = SocketIO(ours)
    try:
        theirs.send(b"b")
        assert await again.receive(100) == b"b"
    finally:
        again.close()
        theirs.close()


async def test_the_peer_closing_reads_as_end_of_stream(
    pair: tuple[SocketIO, socket.socket],
) -> None:
    io, peer = pair
    peer.close()
    assert await io.receive(100) == b""


@pytest.mark.virtual_time
async def test_a_deadline_pushed_later_by_each_wait_still_expires_on_time(
    pair: tuple[SocketIO, socket.socket],
) -> None:
    """Waits with a long deadline leave one timer; a later short wait still times out."""
    io, peer = pair
    for n in range(3):
        peer.send(b"%d" % n)
        assert await io.receive(100, timeout=60.0) == b"%d" % n
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await io.receive(100, timeout=0.05)  # earlier than the timer left by the others
    assert loop.time() - started == pytest.approx(0.05, abs=0.01)  # virtual seconds
    peer.send(b"after")
    assert await io.receive(100, timeout=0.05) == b"after"


@pytest.mark.virtual_time
async def test_a_timer_left_by_an_earlier_wait_moves_on_to_the_later_deadline(
    pair: tuple[SocketIO, socket.socket],
) -> None:
    io, peer = pair
    peer.send(b"a")
    assert await io.receive(100, timeout=0.02) == b"a"  # leaves a timer 20 ms out
    async with anyio.create_task_group() as group:
        got: list[bytes] = []

        async def read() -> None:
            got.append(await io.receive(100, timeout=60.0))

        group.start_soon(read)
        await anyio.wait_all_tasks_blocked()
        await anyio.sleep(0.05)  # virtual: past the old timer, which must not end the wait
        peer.send(b"b")
    assert got == [b"b"]


class _CountingSocket(socket.socket):
    """A socket that counts its ``recv`` calls."""

    recvs = 0

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        self.recvs += 1
        return super().recv(bufsize, flags)


async def test_a_reader_that_answers_and_waits_again_at_once_is_not_woken_for_nothing() -> None:
    """Every wake reads bytes: the readiness it woke for, reported again by the loop's
    next look before the reader ran, does not wake its next wait (one ``recv`` a round)."""
    ours, theirs = socket.socketpair()
    counting = _CountingSocket(fileno=ours.detach())
    io = SocketIO(counting)
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    rounds = 50

    async def serve() -> None:
        for _ in range(rounds):
            assert await io.receive(100) == b"ping"
            io.socket.send(b"pong")  # answered, then straight back to waiting

    async def client() -> None:
        for _ in range(rounds):
            theirs.send(b"ping")
            assert await loop.sock_recv(theirs, 100) == b"pong"

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(serve)
            group.start_soon(client)
        assert counting.recvs == rounds
    finally:
        io.close()
        theirs.close()
