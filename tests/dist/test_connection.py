"""The connected state over a real socket pair: frames in and out, the atom cache, fragments,
ticks, and what a malformed or hostile peer gets (the connection ends, nothing else).

The test plays the peer by hand on one end of a socket pair; the other end is a
``Connection`` of this node, run in a process.
"""

from __future__ import annotations

import socket
import struct
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.streams.buffered import BufferedByteStream

from server import dist, kernel
from server.dist import HIDDEN_FLAGS, Atom, DistFlag, etf
from server.dist._connection import Connection, ConnectionLimits
from server.dist._identities import KernelIdentities
from server.dist.handshake import Handshake
from server.kernel import DownMessage, ExitMessage, Node, Pid
from tests._support.waits import recv, step

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import SocketStream

PEER = "peer@host"
HERE = "here@host"
CREATION = 11


def _handshake(flags: int) -> Handshake:
    return Handshake(
        peer_name=PEER,
        peer_flags=DistFlag(flags),
        peer_creation=CREATION,
        flags=DistFlag(flags),
        peer_hidden=True,
        our_name=HERE,
        our_creation=3,
    )


class Peer:
    """The test's end of the socket: raw frames."""

    def __init__(self, stream: SocketStream, identities: KernelIdentities) -> None:
        self.stream = BufferedByteStream(stream)
        self.identities = identities

    async def send_frame(self, body: bytes) -> None:
        await self.stream.send(struct.pack(">I", len(body)) + body)

    async def send_terms(
        self, control: object, message: object = None, *, header: bool = True
    ) -> None:
        if header:
            body = bytearray(b"\x83D\x00")
            etf.encode_into(body, control, identities=self.identities)
            if message is not None:
                etf.encode_into(body, message, identities=self.identities)
        else:
            body = bytearray(b"p")
            body += etf.encode(control, identities=self.identities)
            if message is not None:
                body += etf.encode(message, identities=self.identities)
        await self.send_frame(bytes(body))

    async def read_frame(self) -> bytes:
        (size,) = struct.unpack(">I", await self.stream.receive_exactly(4))
        return await self.stream.receive_exactly(size) if size else b""


@asynccontextmanager
async def _pair(
    node: Node, flags: int, *, ticktime: float = 60.0, limits: ConnectionLimits | None = None
) -> AsyncIterator[tuple[Connection, Peer]]:
    ours, theirs = socket.socketpair()
    here = await anyio.abc.SocketStream.from_socket(ours)
    there = await anyio.abc.SocketStream.from_socket(theirs)
    identities = KernelIdentities(node, HERE, 3)
    remote = node.remote_node(PEER)
    connection = Connection(
        remote,
        BufferedByteStream(here),
        _handshake(flags),
        identities,
        net_ticktime=ticktime,
        limits=limits,
    )
    peer = Peer(there, identities)
    try:
        yield connection, peer
    finally:
        await peer.stream.aclose()
        await connection.stream.aclose()


async def _running(connection: Connection) -> Pid:
    """Run the connection in a process; returns once it is attached to its node."""

    async def run() -> None:
        kernel.send(owner, "started")  # taken once run() has attached and waits
        kernel.send(owner, ("ended", await connection.run()))

    owner = kernel.self()
    pid = kernel.spawn(run)
    await recv(lambda m: m == "started", step="connection started")
    assert connection.remote.connected
    return pid


async def _ended(*, step_name: str = "connection ends") -> object:
    message = await recv(lambda m: type(m) is tuple and m[0] == "ended", step=step_name)
    assert isinstance(message, tuple)
    return message[1]


async def test_messages_in_both_framings_reach_the_mailbox_in_order(node: Node) -> None:
    async def body() -> None:
        async with _pair(node, HIDDEN_FLAGS) as (connection, peer):
            await _running(connection)
            me = kernel.self()
            await peer.send_terms((2, Atom(""), me), (Atom("first"), 1))
            await peer.send_terms((2, Atom(""), me), (Atom("second"), 2), header=False)
            first = await recv(lambda m: type(m) is tuple and m[0] == "first", step="first")
            second = await recv(lambda m: type(m) is tuple and m[0] == "second", step="second")
            assert first == ("first", 1)
            assert second == ("second", 2)
            await peer.stream.aclose()
            assert "connection lost" in str(await _ended())

    await node.run_process(body)


def _cache_header(entries: list[tuple[int, int, bytes | None]]) -> bytes:
    """A distribution header with atom cache refs ``(segment, index, new text or None)``."""
    count = len(entries)
    flags = bytearray(count // 2 + 1)
    for i, (segment, _index, text) in enumerate(entries):
        half = segment | (8 if text is not None else 0)
        flags[i // 2] |= half << (4 if i % 2 else 0)
    out = bytearray(b"\x83D") + bytes([count]) + flags
    for segment, index, text in entries:
        del segment
        out.append(index)
        if text is not None:
            out.append(len(text))
            out += text
    return bytes(out)


async def test_the_atom_cache_is_read_and_kept_for_the_connection(node: Node) -> None:
    async def body() -> None:
        async with _pair(node, HIDDEN_FLAGS) as (connection, peer):
            await _running(connection)
            me = kernel.self()
            # control {2, '', Me} with '' from cache ref 0 and the message the atom 'cached'
            header = _cache_header([(0, 5, b""), (2, 7, b"cached")])
            control = bytearray(b"h\x03a\x02R\x00")
            etf.encode_into(control, me, identities=peer.identities)
            await peer.send_frame(header + bytes(control) + b"R\x01")
            assert await recv(lambda m: m == "cached", step="cached atom") == "cached"
            # the next frame names both only by their slots
            header = _cache_header([(0, 5, None), (2, 7, None)])
            await peer.send_frame(header + bytes(control) + b"h\x02R\x01a\x02")
            assert await recv(lambda m: type(m) is tuple, step="tuple") == ("cached", 2)
            # a slot that was never set breaks the connection
            await peer.send_frame(_cache_header([(1, 1, None)]) + bytes(control) + b"R\x00")
            assert "atom cache slot" in str(await _ended())

    await node.run_process(body)


async def test_fragments_are_reassembled_even_interleaved(node: Node) -> None:
    async def body() -> None:
        async with _pair(node, HIDDEN_FLAGS) as (connection, peer):
            await _running(connection)
            me = kernel.self()
            payloads = []
            for text in (b"A" * 3000, b"B" * 2000):
                whole = bytearray(b"\x00")  # an atom cache part with no refs
                etf.encode_into(whole, (2, Atom(""), me), identities=peer.identities)
                etf.encode_into(whole, text)
                payloads.append(bytes(whole))
            a_parts = [payloads[0][i : i + 1000] for i in range(0, len(payloads[0]), 1000)]
            b_parts = [payloads[1][i : i + 900] for i in range(0, len(payloads[1]), 900)]

            def first(seq: int, parts: list[bytes]) -> bytes:
                return b"\x83E" + struct.pack(">QQ", seq, len(parts)) + parts[0]

            def more(seq: int, parts: list[bytes], n: int) -> bytes:
                return b"\x83F" + struct.pack(">QQ", seq, len(parts) - n) + parts[n]

            await peer.send_frame(first(1, a_parts))
            await peer.send_frame(first(2, b_parts))
            for n in range(1, max(len(a_parts), len(b_parts))):
                if n < len(b_parts):
                    await peer.send_frame(more(2, b_parts, n))
                if n < len(a_parts):
                    await peer.send_frame(more(1, a_parts, n))
            got = [await recv(lambda m: isinstance(m, str), step=f"message {i}") for i in range(2)]
            assert sorted(got) == sorted(["A" * 3000, "B" * 2000])  # type: ignore[type-var]
            # a fragment out of its order breaks the connection
            await peer.send_frame(first(3, a_parts))
            await peer.send_frame(more(3, a_parts, 2))
            assert "unexpected" in str(await _ended())

    await node.run_process(body)


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"\x84", "not a distribution message"),
        (b"\x83\x47", "unknown distribution header"),
        (b"p\x83h\x01a\x63", "unknown or malformed control"),
        (b"p\x83a\x02", "not an operation"),
        (b"p\x83h\x03a\x02w\x00a\x01", "not a pid"),
        (b"p\x83h\x03a\x02w\x00", "truncated"),
    ],
    ids=["no-version", "bad-header", "unknown-op", "not-a-tuple", "bad-pid", "truncated"],
)
async def test_a_malformed_frame_ends_the_connection_with_noconnection(
    node: Node, frame: bytes, why: str
) -> None:
    async def body() -> None:
        async with _pair(node, HIDDEN_FLAGS) as (connection, peer):
            remote = connection.remote
            pid = remote.pid(9, 0, CREATION)
            await _running(connection)
            kernel.trap_exit(True)
            kernel.link(pid)
            await peer.send_frame(frame)
            reason = await _ended()
            assert "protocol error" in str(reason)
            assert (
                why.split()[0] in str(reason)
                or why in str(reason)
                or "malformed" in str(reason)
                or "offset" in str(reason)
            )
            assert await recv(lambda m: type(m) is ExitMessage, step="noconnection") == ExitMessage(
                pid, "noconnection"
            )
            assert not remote.connected

    await node.run_process(body)


async def test_a_frame_over_the_limit_ends_the_connection(node: Node) -> None:
    async def body() -> None:
        async with _pair(node, HIDDEN_FLAGS, limits=ConnectionLimits(max_frame=4096)) as (
            connection,
            peer,
        ):
            await _running(connection)
            await peer.stream.send(struct.pack(">I", 1 << 30))  # claims a gigabyte, sends nothing
            assert "over the limit" in str(await _ended())

    await node.run_process(body)


async def test_signals_out_are_framed_in_order_with_the_header(node: Node) -> None:
    async def body() -> None:
        async with _pair(node, HIDDEN_FLAGS) as (connection, peer):
            await _running(connection)
            remote = connection.remote
            pid = remote.pid(9, 0, CREATION)
            me = kernel.self()
            kernel.send(pid, "one")
            ref = kernel.monitor(pid)
            kernel.send(pid, {"two": 2})
            seen = []
            for _ in range(3):
                with step("a frame"):
                    frame = await peer.read_frame()
                assert frame[:3] == b"\x83D\x00"
                control, offset = etf.decode_at(
                    frame, 3, versioned=False, identities=peer.identities
                )
                message = None
                if offset < len(frame):
                    message, _ = etf.decode_at(
                        frame, offset, versioned=False, identities=peer.identities
                    )
                seen.append((control, message))
            assert seen[0] == ((22, me, pid), "one")
            monitor = seen[1][0]
            assert isinstance(monitor, tuple)
            assert monitor[0] == 19
            assert monitor[3] is ref
            assert seen[2] == ((22, me, pid), {"two": 2})
            with pytest.raises(TypeError, match="cannot send"):
                kernel.send(pid, object())
            await peer.stream.aclose()
            await _ended()
            assert await recv(lambda m: type(m) is DownMessage, step="DOWN") == DownMessage(
                ref, pid, "noconnection"
            )

    await node.run_process(body)


async def test_ticks_keep_it_up_and_silence_takes_it_down(node: Node) -> None:
    async def body() -> None:
        async with _pair(node, HIDDEN_FLAGS, ticktime=0.4) as (connection, peer):
            await _running(connection)
            with step("our tick"):
                assert await peer.read_frame() == b""
            for _ in range(6):  # answer with ticks for longer than the tick time: still up
                await peer.stream.send(b"\0\0\0\0")
                with step("our tick"):
                    assert await peer.read_frame() == b""
            assert connection.remote.connected
            # now the peer says nothing at all
            with step("net_tick_timeout", 3.0):
                assert await _ended() == "net_tick_timeout"

    await node.run_process(body)


async def test_a_peer_that_does_not_read_makes_the_connection_busy_until_it_drains(
    node: Node,
) -> None:
    async def body() -> None:
        limits = ConnectionLimits(busy_limit=256 * 1024, max_queue=64 * 1024 * 1024)
        async with _pair(node, HIDDEN_FLAGS, limits=limits) as (connection, peer):
            await _running(connection)
            pid = connection.remote.pid(9, 0, CREATION)
            chunk = b"\x01" * 65536
            for _ in range(64):  # 4 MB: far more than the socket buffers hold
                kernel.send(pid, chunk)
            assert connection.busy
            assert connection.queued_bytes > limits.busy_limit

            async def waiter() -> None:
                await dist.drained(PEER)
                kernel.send(owner, "drained")

            owner = kernel.self()
            kernel.spawn(waiter)
            for _ in range(64):
                with step("the peer reads"):
                    frame = await peer.read_frame()
                assert frame.endswith(chunk)
            await recv(lambda m: m == "drained", step="drained")
            assert not connection.busy

    await node.run_process(body)


async def test_control_tuples_are_written_as_the_general_encoder_writes_them(node: Node) -> None:
    async def body() -> None:
        async with _pair(node, HIDDEN_FLAGS) as (connection, _peer):
            remote = connection.remote
            other = remote.pid(5, 1, CREATION)
            me = kernel.self()
            ref = kernel.Ref()
            controls: list[tuple[object, ...]] = [
                (19, me, Atom("echo"), ref),
                (6, me, Atom(""), Atom("echo")),
                (22, me, other),
                (35, 12_345_678_901, me, other),  # a big int: the general path
                (20, other, me, ref),
                (3, me, other, Atom("normal")),
                (29, 7, me, me, (Atom("m"), Atom("f"), 1), []),  # nested: the general path
            ]
            for control in controls:
                fast = bytearray()
                connection._encode_control(fast, control)
                general = bytearray()
                etf.encode_into(
                    general,
                    control,
                    identities=connection.identities,
                    fallback=connection.forms.to_term,
                )
                assert fast == general, control

    await node.run_process(body)
