"""One connection to another node, after the handshake: frames, ticks, signals in and out.

How this works:

1. The connection is the ``Channel`` the kernel's ``RemoteNode`` sends through. Each
   signal is encoded at once, in the sending process (so a message that is not a term fails
   its sender with ``TypeError``, and what is sent is a snapshot, as Erlang copies at
   send), and queued as one frame. One writer task drains the queue in order: one TCP
   connection and one writer keep OTP's per-pair order.
2. One reader task reads frames and hands each decoded signal to the ``RemoteNode`` at
   once, in arrival order (never a task per message), so the kernel delivers into
   mailboxes in the order the peer sent.
3. Ticks: when nothing was written for ``net_ticktime / 4`` the ticker queues an empty
   frame; when nothing at all was read for four such periods in a row the peer is
   declared down (OTP's ``net_tick_timeout``).
4. Frames in: pass-through (``'p'``, each term with its version byte), the distribution
   header with its atom cache (``131, 68``: the cache lives as long as the connection), and
   fragments (``131, 69`` then ``131, 70`` with the same sequence, ids counting down to 1,
   sequences may interleave). Out: the distribution header with no cache refs when the
   peer asked for it, else pass-through. Every length is checked against the limits
   before anything is allocated.
5. Back-pressure: the queue is measured. Above ``busy_limit`` bytes the connection is busy
   and ``drained()`` gives callers something to wait on (remote calls wait before they
   send); above ``max_queue`` bytes the peer is not reading at all and the connection is
   dropped (its links and monitors fire ``noconnection``) rather than exhaust memory.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections import deque
from typing import TYPE_CHECKING, Final, final

import anyio

from server.dist import etf
from server.dist._records import WireForms, reason_to_term, reply_tag
from server.dist.flags import DistFlag
from server.dist.terms import Atom, ExternalRef, ImproperList
from server.errors import DistributionError, TermDecodeError
from server.kernel import Pid, Ref, RemoteTag

if TYPE_CHECKING:
    from anyio.streams.buffered import BufferedByteStream

    from server.dist._identities import KernelIdentities
    from server.dist.handshake import Handshake
    from server.kernel import RemoteNode

__all__ = ["Connection", "ConnectionLimits", "ConnectionStats"]

logger = logging.getLogger("server.dist")

_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")
_U32X3: Final = struct.Struct(">III")
_U32X4: Final = struct.Struct(">IIII")
_REF_HEAD: Final = struct.Struct(">BH")


_TICK: Final = b"\0\0\0\0"
_ATOM_CACHE_SIZE: Final = 2048
_READ_SIZE: Final = 256 * 1024
#: The control messages (``erl_dist_protocol``), by opcode.
LINK, SEND, EXIT, UNLINK, REG_SEND, GROUP_LEADER, EXIT2 = 1, 2, 3, 4, 6, 7, 8
SEND_TT, EXIT_TT, REG_SEND_TT, EXIT2_TT = 12, 13, 16, 18
MONITOR_P, DEMONITOR_P, MONITOR_P_EXIT = 19, 20, 21
SEND_SENDER, SEND_SENDER_TT = 22, 23
PAYLOAD_EXIT, PAYLOAD_EXIT_TT, PAYLOAD_EXIT2, PAYLOAD_EXIT2_TT = 24, 25, 26, 27
PAYLOAD_MONITOR_P_EXIT = 28
SPAWN_REQUEST, SPAWN_REQUEST_TT, SPAWN_REPLY, SPAWN_REPLY_TT = 29, 30, 31, 32
ALIAS_SEND, ALIAS_SEND_TT = 33, 34
UNLINK_ID, UNLINK_ID_ACK = 35, 36
_EMPTY_ATOM: Final = Atom("")


@final
class ConnectionLimits:
    """Bounds on what a peer may make this node hold."""

    __slots__ = ("busy_limit", "max_frame", "max_queue", "term_limits")

    def __init__(
        self,
        *,
        max_frame: int = 256 * 1024 * 1024,
        busy_limit: int = 1024 * 1024,
        max_queue: int = 256 * 1024 * 1024,
        term_limits: etf.Limits | None = None,
    ) -> None:
        self.max_frame = max_frame
        self.busy_limit = busy_limit
        self.max_queue = max_queue
        self.term_limits = term_limits or etf.Limits(max_bytes=max_frame)


@final
class ConnectionStats:
    """Counters of one connection (``server nodes`` shows them)."""

    __slots__ = ("bytes_in", "bytes_out", "frames_in", "frames_out", "ticks_in", "ticks_out")

    def __init__(self) -> None:
        self.frames_in = self.frames_out = 0
        self.bytes_in = self.bytes_out = 0
        self.ticks_in = self.ticks_out = 0


class _Fragments:
    __slots__ = ("atoms", "chunks", "next_id")

    def __init__(self, atoms: list[Atom], first: bytes, next_id: int) -> None:
        self.atoms = atoms
        self.chunks = [first]
        self.next_id = next_id


@final
class Connection:
    """The connected state of one node pair: the kernel's ``Channel`` to ``remote``."""

    def __init__(
        self,
        remote: RemoteNode,
        stream: BufferedByteStream,
        handshake: Handshake,
        identities: KernelIdentities,
        *,
        net_ticktime: float,
        limits: ConnectionLimits | None = None,
        on_spawn_request: object = None,
    ) -> None:
        self.remote = remote
        self.stream = stream
        self.handshake = handshake
        self.flags = handshake.flags
        self.identities = identities
        self.net_ticktime = net_ticktime
        self.limits = limits or ConnectionLimits()
        self.stats = ConnectionStats()
        self.forms = WireForms(alias=bool(self.flags & DistFlag.ALIAS))
        self.on_spawn_request = on_spawn_request
        self._header = bool(self.flags & DistFlag.DIST_HDR_ATOM_CACHE)
        self._send_sender = bool(self.flags & DistFlag.SEND_SENDER)
        self._payload_exit = bool(self.flags & DistFlag.EXIT_PAYLOAD)
        self._unlink_id = bool(self.flags & DistFlag.UNLINK_ID)
        self._alias = bool(self.flags & DistFlag.ALIAS)
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._wake = anyio.Event()
        self._drained: anyio.Event | None = None
        self._wrote = False
        self._closed = False
        self._wire: _TransportWire | None = None
        self._scope: anyio.CancelScope | None = None
        self._atom_cache: list[Atom | None] = [None] * _ATOM_CACHE_SIZE
        self._fragments: dict[int, _Fragments] = {}
        self.down_reason: str | None = None

    # -- the Channel: outgoing signals -----------------------------------------------------

    def send(self, sender: Pid | None, to: Pid, message: object) -> None:
        """A message to a pid of the peer."""
        if self._send_sender and sender is not None:
            self._queue_frame((SEND_SENDER, sender, to), message)
        else:
            self._queue_frame((SEND, _EMPTY_ATOM, to), message)

    def send_named(self, sender: Pid | None, name: str, message: object) -> None:
        """A message to a name registered on the peer."""
        self._queue_frame((REG_SEND, sender or self._anonymous(), _EMPTY_ATOM, Atom(name)), message)

    def reply(self, sender: Pid | None, to: Pid, tag: RemoteTag, value: object) -> None:
        """The answer to a remote caller, routed as its tag asks (alias or pid)."""
        try:
            message = self.forms.reply_term(tag, value)
            payload = self._encode(message)
        except (TypeError, ValueError) as exc:
            logger.warning(
                "a reply to %r cannot cross nodes: %s", to, exc, extra={"peer": self.remote.name}
            )
            message = (tag.term, (Atom("error"), (Atom("unencodable_reply"), str(exc))))
            payload = self._encode(message)
        alias = _alias_of(tag.term) if self._alias else None
        control: tuple[object, ...]
        if alias is not None:
            control = (ALIAS_SEND, sender or self._anonymous(), alias)
        elif self._send_sender and sender is not None:
            control = (SEND_SENDER, sender, to)
        else:
            control = (SEND, _EMPTY_ATOM, to)
        self._queue_encoded(control, payload)

    def link(self, sender: Pid, to: Pid) -> None:
        """LINK."""
        self._queue_frame((LINK, sender, to))

    def unlink(self, unlink_id: int, sender: Pid, to: Pid) -> None:
        """UNLINK_ID (the old UNLINK to a peer without the flag)."""
        if self._unlink_id:
            self._queue_frame((UNLINK_ID, unlink_id, sender, to))
        else:
            self._queue_frame((UNLINK, sender, to))

    def unlink_ack(self, unlink_id: int, sender: Pid, to: Pid) -> None:
        """UNLINK_ID_ACK."""
        if self._unlink_id:
            self._queue_frame((UNLINK_ID_ACK, unlink_id, sender, to))

    def exit(self, sender: Pid, to: Pid, reason: object, *, from_link: bool) -> None:
        """EXIT (a link broke) or EXIT2 (``exit/2``), with the reason as payload if asked."""
        term = reason_to_term(reason)
        if self._payload_exit:
            self._queue_frame((PAYLOAD_EXIT if from_link else PAYLOAD_EXIT2, sender, to), term)
        else:
            self._queue_frame((EXIT if from_link else EXIT2, sender, to, term))

    def monitor(self, watcher: Pid, target: Pid | str, ref: Ref) -> None:
        """MONITOR_P by pid or by name."""
        self._queue_frame((MONITOR_P, watcher, _proc(target), ref))

    def demonitor(self, watcher: Pid, target: Pid | str, ref: Ref) -> None:
        """DEMONITOR_P."""
        self._queue_frame((DEMONITOR_P, watcher, _proc(target), ref))

    def monitor_exit(self, target: Pid | str, watcher: Pid, ref: object, reason: object) -> None:
        """MONITOR_P_EXIT (the payload form when the peer asked for it)."""
        term = reason_to_term(reason)
        if self._payload_exit:
            self._queue_frame((PAYLOAD_MONITOR_P_EXIT, _proc(target), watcher, ref), term)
        else:
            self._queue_frame((MONITOR_P_EXIT, _proc(target), watcher, ref, term))

    def spawn_reply(self, req_id: object, to: Pid, flags: int, result: object) -> None:
        """SPAWN_REPLY: the pid of the process a SPAWN_REQUEST started, or an error atom."""
        self._queue_frame((SPAWN_REPLY, req_id, to, flags, result))

    def _anonymous(self) -> Pid:
        # a signal sent from outside any process still needs a sender pid on the wire
        return self.identities.kernel_node.dead_pid(0)

    # -- framing out -----------------------------------------------------------------------

    def _encode_control(self, out: bytearray, control: tuple[object, ...]) -> None:
        """A control tuple written directly (small ints, atoms, pids and local refs).

        The general encoder's dispatch is skipped; the bytes are the ones it writes, and
        anything else in the tuple goes through it.
        """
        start = len(out)
        out.append(104)  # SMALL_TUPLE_EXT
        out.append(len(control))
        identities = self.identities
        for item in control:
            kind = type(item)
            if kind is int and 0 <= item < 256:  # type: ignore[operator]
                out.append(97)
                out.append(item)  # type: ignore[arg-type]
            elif kind is Atom:
                out += etf.atom_bytes(item)  # type: ignore[arg-type]
            elif kind is Pid:
                parts = identities.pid_parts(item)
                assert parts is not None
                node, id_, serial, creation = parts
                out.append(88)
                out += etf.atom_bytes(node)
                out += _U32X3.pack(id_, serial, creation)
            elif kind is Ref:
                node, creation, words = identities.ref_parts(item)  # type: ignore[misc]
                out += _REF_HEAD.pack(90, 3)
                out += etf.atom_bytes(node)
                out += _U32X4.pack(creation, *words)
            else:  # anything else (remote refs, reasons, ...): the general encoder
                del out[start:]
                etf.encode_into(out, control, identities=identities, fallback=self.forms.to_term)
                return

    def _encode(self, term: object) -> bytes:
        out = bytearray()
        etf.encode_into(out, term, identities=self.identities, fallback=self.forms.to_term)
        return bytes(out)

    def _queue_frame(self, control: tuple[object, ...], message: object = _TICK) -> None:
        payload = None if message is _TICK else self._encode(message)
        self._queue_encoded(control, payload)

    def _queue_encoded(self, control: tuple[object, ...], payload: bytes | None) -> None:
        if self._closed:
            return
        out = bytearray(4)
        if self._header:
            out += b"\x83D\x00"
            self._encode_control(out, control)
            if payload is not None:
                out += payload
        else:
            out += b"p\x83"
            self._encode_control(out, control)
            if payload is not None:
                out.append(131)
                out += payload
        _U32.pack_into(out, 0, len(out) - 4)
        self._push(bytes(out))

    def _push(self, frame: bytes) -> None:
        self.stats.frames_out += 1
        wire = self._wire
        if wire is not None:
            wire.write(frame)
            if wire.queued > self.limits.max_queue:
                logger.error(
                    "connection to %s dropped: %d bytes queued and not read",
                    self.remote.name,
                    wire.queued,
                    extra={"peer": self.remote.name, "queued": wire.queued},
                )
                self.abort("the peer reads nothing: the send queue passed its limit")
            return
        self._queue.append(frame)
        self._queued += len(frame)
        self._wake.set()
        if self._queued > self.limits.max_queue:
            logger.error(
                "connection to %s dropped: %d bytes queued and not read",
                self.remote.name,
                self._queued,
                extra={"peer": self.remote.name, "queued": self._queued},
            )
            self.abort("the peer reads nothing: the send queue passed its limit")

    def abort(self, why: str) -> None:
        """End the connection now: its links and monitors fire ``noconnection`` at once."""
        self.down_reason = self.down_reason or why
        self._closed = True
        self._queue.clear()
        self._queued = 0
        if self.remote.channel is self:
            self.remote.connection_lost()
        if self._wire is not None:
            self._wire.end(why)
        if self._scope is not None:
            self._scope.cancel()

    @property
    def busy(self) -> bool:
        """True while more than ``busy_limit`` bytes wait to be written."""
        return self.queued_bytes > self.limits.busy_limit

    @property
    def queued_bytes(self) -> int:
        """Bytes encoded and not yet written."""
        wire = self._wire
        return wire.queued if wire is not None else self._queued

    async def drained(self) -> None:
        """Wait until the queue is back under ``busy_limit`` (or the connection is gone)."""
        while self.busy and not self._closed:
            if self._drained is None:
                self._drained = anyio.Event()
            await self._drained.wait()

    def _wrote_some(self) -> None:
        """Bytes left the queue: wake who waits for it to drain, once it is under the limit."""
        self._wrote = True
        drained = self._drained
        if drained is not None and not self.busy:
            self._drained = None
            drained.set()

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> str:
        """Read, write and tick until the connection ends; returns why it ended."""
        wire = _TransportWire.take_over(self)
        self._wire = wire  # first: the signals queued while connecting go out through it
        self.remote.attach(self, self.handshake.peer_creation, hidden=self.handshake.peer_hidden)
        if wire is not None:
            return await self._run_on_transport(wire)
        reason = "closed"
        try:
            async with anyio.create_task_group() as group:

                async def ended(part: object) -> None:
                    nonlocal reason
                    try:
                        reason = await part  # type: ignore[misc]
                    except (
                        anyio.EndOfStream,
                        anyio.IncompleteRead,
                        anyio.BrokenResourceError,
                        anyio.ClosedResourceError,
                        OSError,
                    ) as exc:
                        reason = f"connection lost ({type(exc).__name__})"
                    except (TermDecodeError, DistributionError) as exc:
                        reason = f"protocol error: {exc}"
                        logger.warning(
                            "distribution connection to %s broken: %s",
                            self.remote.name,
                            exc,
                            extra={"peer": self.remote.name},
                        )
                    group.cancel_scope.cancel()

                self._scope = group.cancel_scope
                group.start_soon(ended, self._read_loop())
                group.start_soon(ended, self._write_loop())
                group.start_soon(ended, self._tick_loop())
        finally:
            self._closed = True
            if self.remote.channel is self:
                self.remote.connection_lost()
            with anyio.CancelScope(shield=True):
                await self.stream.aclose()
        return self.down_reason or reason

    async def _write_loop(self) -> str:
        stream = self.stream
        queue = self._queue
        while True:
            while not queue:
                if self._closed:
                    return self.down_reason or "closed"
                self._wake = anyio.Event()
                await self._wake.wait()
            batch = []
            size = 0
            while queue and size < 1 << 20:
                frame = queue.popleft()
                batch.append(frame)
                size += len(frame)
            await stream.send(b"".join(batch) if len(batch) > 1 else batch[0])
            self._wrote = True
            self._queued -= size
            self.stats.bytes_out += size
            drained = self._drained
            if drained is not None and not self.busy:
                self._drained = None
                drained.set()
            if self._closed and not queue:
                return self.down_reason or "closed"

    async def _tick_loop(self) -> str:
        if self.net_ticktime == math.inf:
            await anyio.sleep_forever()
        period = self.net_ticktime / 4
        silent = 0
        seen = self.stats.frames_in + self.stats.ticks_in
        while True:
            await anyio.sleep(period)
            if not self._wrote and not self._queue:
                self.stats.ticks_out += 1
                if self._wire is not None:
                    self._wire.write(_TICK)
                else:
                    self._queue.append(_TICK)
                    self._queued += 4
                    self._wake.set()
            self._wrote = False
            now_seen = self.stats.frames_in + self.stats.ticks_in
            silent = silent + 1 if now_seen == seen else 0
            seen = now_seen
            if silent >= 4:
                self.down_reason = "net_tick_timeout"
                logger.warning(
                    "node %s not responding: nothing received for %.1f s (net_ticktime)",
                    self.remote.name,
                    self.net_ticktime,
                    extra={"peer": self.remote.name, "reason": "net_tick_timeout"},
                )
                return "net_tick_timeout"

    async def _read_loop(self) -> str:
        # Whatever the socket has is read at once and every whole frame in it handled in
        # order before the next read (one receive per read, not two per frame: each of the
        # stream's receives is a trip through the event loop).
        stream = self.stream
        buffer = bytearray()
        wanted = 4  # bytes needed before the next frame can be handled
        while True:
            buffer += await stream.receive(max(wanted - len(buffer), _READ_SIZE))
            wanted = self._consume(buffer)
            if self._closed:
                return self.down_reason or "closed"

    def _consume(self, buffer: bytearray) -> int:
        """Handle every whole frame at the start of ``buffer`` (and remove them), in order.

        Returns:
            How many bytes the buffer needs before the next frame can be handled.

        Raises:
            DistributionError: a frame is over the limit or malformed (then the
                connection ends).
        """
        limit = self.limits.max_frame
        stats = self.stats
        unpack = _U32.unpack_from
        end = len(buffer)
        offset = 0
        try:
            while end - offset >= 4:
                (size,) = unpack(buffer, offset)
                if size == 0:
                    stats.ticks_in += 1
                    offset += 4
                    continue
                if size > limit:
                    raise DistributionError(f"a frame of {size} bytes is over the limit of {limit}")
                if end - offset - 4 < size:
                    break
                start = offset + 4
                offset = start + size
                stats.frames_in += 1
                stats.bytes_in += size + 4
                with memoryview(buffer) as view:  # one copy of the frame, not two
                    frame = bytes(view[start:offset])
                self._frame(frame)
                if self._closed:
                    break
        finally:
            del buffer[:offset]
        return 4 + unpack(buffer)[0] if len(buffer) >= 4 else 4

    # -- plain TCP: straight from the transport --------------------------------------------

    async def _run_on_transport(self, wire: _TransportWire) -> str:
        """Run on the socket's transport (the fast path of plain TCP).

        Frames in are handled as their bytes arrive, frames out are written once per turn
        of the event loop, and a task ticks.
        """
        try:
            wire.start()
            async with anyio.create_task_group() as group:

                async def ticks() -> None:
                    reason = await self._tick_loop()
                    wire.end(reason)

                async def ended() -> None:
                    await wire.ended.wait()
                    group.cancel_scope.cancel()

                self._scope = group.cancel_scope
                group.start_soon(ticks)
                group.start_soon(ended)
        finally:
            self._closed = True
            if self.remote.channel is self:
                self.remote.connection_lost()
            wire.close()
            with anyio.CancelScope(shield=True):
                await self.stream.aclose()
        return self.down_reason or wire.reason

    # -- framing in ------------------------------------------------------------------------

    def _frame(self, frame: bytes) -> None:
        kind = frame[0]
        if kind == 112:  # 'p': pass-through, each term with its version byte
            self._terms(frame, 1, None, versioned=True)
            return
        if kind != 131 or len(frame) < 2:
            raise DistributionError(f"a frame starts with {kind}: not a distribution message")
        header = frame[1]
        if header == 68:
            atoms, offset = self._atom_header(frame, 2)
            self._terms(frame, offset, atoms, versioned=False)
        elif header == 69:
            if len(frame) < 18:
                raise DistributionError("a fragment header is cut short")
            sequence = _U64.unpack_from(frame, 2)[0]
            fragment = _U64.unpack_from(frame, 10)[0]
            atoms, offset = self._atom_header(frame, 18)
            if fragment <= 1:
                self._terms(frame, offset, atoms, versioned=False)
                return
            if len(self._fragments) >= 64:
                raise DistributionError("more than 64 fragmented messages in flight")
            self._fragments[sequence] = _Fragments(atoms, frame[offset:], fragment - 1)
        elif header == 70:
            if len(frame) < 18:
                raise DistributionError("a fragment header is cut short")
            sequence = _U64.unpack_from(frame, 2)[0]
            fragment = _U64.unpack_from(frame, 10)[0]
            pending = self._fragments.get(sequence)
            if pending is None or fragment != pending.next_id:
                raise DistributionError(f"fragment {fragment} of sequence {sequence} is unexpected")
            pending.chunks.append(frame[18:])
            if sum(len(chunk) for chunk in pending.chunks) > self.limits.max_frame:
                raise DistributionError("a fragmented message is over the frame limit")
            if fragment == 1:
                del self._fragments[sequence]
                self._terms(b"".join(pending.chunks), 0, pending.atoms, versioned=False)
            else:
                pending.next_id = fragment - 1
        else:
            raise DistributionError(f"unknown distribution header {header}")

    def _atom_header(self, frame: bytes, offset: int) -> tuple[list[Atom], int]:
        """Parse the atom-cache part of a distribution header; returns its atoms."""
        try:
            count = frame[offset]
            offset += 1
            if count == 0:
                return [], offset
            flag_bytes = count // 2 + 1
            flags = frame[offset : offset + flag_bytes]
            if len(flags) != flag_bytes:
                raise DistributionError("an atom cache header is cut short")
            offset += flag_bytes
            long_atoms = bool(_half_byte(flags, count) & 1)
            atoms: list[Atom] = []
            cache = self._atom_cache
            for index in range(count):
                half = _half_byte(flags, index)
                slot = (half & 7) * 256 + frame[offset]
                offset += 1
                if half & 8:
                    if long_atoms:
                        length = int.from_bytes(frame[offset : offset + 2], "big")
                        offset += 2
                    else:
                        length = frame[offset]
                        offset += 1
                    text = frame[offset : offset + length]
                    if len(text) != length:
                        raise DistributionError("an atom cache entry is cut short")
                    offset += length
                    atom = Atom(text.decode("utf-8"))
                    cache[slot] = atom
                else:
                    cached = cache[slot]
                    if cached is None:
                        raise DistributionError(f"atom cache slot {slot} used before it was set")
                    atom = cached
                atoms.append(atom)
            return atoms, offset
        except (IndexError, UnicodeDecodeError, ValueError) as exc:
            if isinstance(exc, DistributionError):
                raise
            raise DistributionError(f"a malformed atom cache header: {exc}") from None

    def _terms(
        self, data: bytes, offset: int, atoms: list[Atom] | None, *, versioned: bool
    ) -> None:
        limits = self.limits.term_limits
        control, offset = etf.decode_at(
            data,
            offset,
            atom_cache=atoms,
            identities=self.identities,
            limits=limits,
            versioned=versioned,
        )
        payload: object = _TICK
        if offset < len(data):
            payload, offset = etf.decode_at(
                data,
                offset,
                atom_cache=atoms,
                identities=self.identities,
                limits=limits,
                versioned=versioned,
            )
            if offset != len(data):
                raise DistributionError("bytes left over after a distribution message")
        if type(control) is not tuple or not control or type(control[0]) is not int:
            raise DistributionError(f"a control message that is not an operation: {control!r}")
        self._dispatch(control, payload)

    def _dispatch(self, control: tuple[object, ...], payload: object) -> None:
        op = control[0]
        remote = self.remote
        size = len(control)
        try:
            if op in (SEND, SEND_SENDER, SEND_TT, SEND_SENDER_TT):
                self._deliver(_pid(control[2]), _needs(payload))
            elif op in (REG_SEND, REG_SEND_TT):
                remote.incoming_send_named(
                    str(_atom(control[3])), self.forms.to_message(_needs(payload))
                )
            elif op in (ALIAS_SEND, ALIAS_SEND_TT):
                message = _needs(payload)
                alias = control[2]
                if type(alias) is Ref and type(message) is tuple and len(message) == 2:
                    remote.incoming_reply(alias, self.forms.to_message(message[1]))
                # an alias that is not one of our calls' is inactive: dropped, as in OTP
            elif op == LINK and size == 3:
                remote.incoming_link(_pid(control[1]), _pid(control[2]))
            elif op == UNLINK_ID and size == 4:
                remote.incoming_unlink(_int(control[1]), _pid(control[2]), _pid(control[3]))
            elif op == UNLINK_ID_ACK and size == 4:
                remote.incoming_unlink_ack(_int(control[1]), _pid(control[2]), _pid(control[3]))
            elif op == UNLINK and size == 3:
                remote.incoming_unlink(0, _pid(control[1]), _pid(control[2]))
            elif op in (EXIT, EXIT2) and size == 4:
                remote.incoming_exit(
                    _pid(control[1]), _pid(control[2]), control[3], from_link=op == EXIT
                )
            elif op in (EXIT_TT, EXIT2_TT) and size == 5:
                remote.incoming_exit(
                    _pid(control[1]), _pid(control[2]), control[4], from_link=op == EXIT_TT
                )
            elif op in (PAYLOAD_EXIT, PAYLOAD_EXIT2, PAYLOAD_EXIT_TT, PAYLOAD_EXIT2_TT):
                remote.incoming_exit(
                    _pid(control[1]),
                    _pid(control[2]),
                    _needs(payload),
                    from_link=op in (PAYLOAD_EXIT, PAYLOAD_EXIT_TT),
                )
            elif op == MONITOR_P and size == 4:
                remote.incoming_monitor(_pid(control[1]), _target(control[2]), control[3])
            elif op == DEMONITOR_P and size == 4:
                remote.incoming_demonitor(control[3])
            elif op == MONITOR_P_EXIT and size == 5:
                self._monitor_exit(control[1], control[2], control[3], control[4])
            elif op == PAYLOAD_MONITOR_P_EXIT and size == 4:
                self._monitor_exit(control[1], control[2], control[3], _needs(payload))
            elif op in (SPAWN_REQUEST, SPAWN_REQUEST_TT):
                self._spawn_request(control, _needs(payload))
            elif op in (GROUP_LEADER, SPAWN_REPLY, SPAWN_REPLY_TT):
                pass  # no remote group leaders; this node sends no SPAWN_REQUEST
            else:
                raise DistributionError(f"unknown or malformed control message {control!r}")
        except _Malformed as exc:
            raise DistributionError(f"malformed control message {control!r}: {exc}") from None

    def _deliver(self, to: Pid, message: object) -> None:
        if type(message) is tuple and len(message) == 2:
            ref = reply_tag(message[0])
            if ref is not None and self.remote.incoming_reply(
                ref, self.forms.to_message(message[1])
            ):
                return
        self.remote.incoming_send(to, self.forms.to_message(message))

    def _monitor_exit(self, target: object, watcher: object, ref: object, reason: object) -> None:
        if type(ref) is not Ref:
            return  # not a monitor of ours (a ref of an earlier incarnation)
        self.remote.incoming_monitor_exit(
            _target(target), _pid(watcher), ref, self.forms.to_message(reason)
        )

    def _spawn_request(self, control: tuple[object, ...], args: object) -> None:
        handler = self.on_spawn_request
        if len(control) < 6:
            raise _Malformed("SPAWN_REQUEST has too few elements")
        req_id, from_ = control[1], _pid(control[2])
        if handler is None:
            self.spawn_reply(req_id, from_, 0, Atom("notsup"))
            return
        handler(self, req_id, from_, control[4], control[5], args)  # type: ignore[operator]


class _Malformed(Exception):
    pass


@final
class _TransportWire(asyncio.Protocol):
    """The fast path of a plain TCP connection: the socket's asyncio transport calls it.

    After the handshake it replaces the stream's protocol on the same transport (bytes the
    stream had already read are handled first), so each arrival is parsed and delivered in
    the transport's callback, with no task in between, and frames out are joined and
    written once per turn of the event loop, in order. The transport's write buffer is the
    queue: ``pause_writing`` and ``resume_writing`` drive back-pressure.
    """

    def __init__(self, connection: Connection, transport: asyncio.Transport) -> None:
        self.connection = connection
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray()
        self.out: list[bytes] = []
        self.pending = 0
        self.scheduled = False
        self.ended = anyio.Event()
        self.reason = "closed"

    @classmethod
    def take_over(cls, connection: Connection) -> _TransportWire | None:
        """The fast path for ``connection``'s stream, or None when it is not plain TCP."""
        stream = connection.stream
        inner = getattr(stream, "receive_stream", None)
        transport = getattr(inner, "_transport", None)
        protocol = getattr(inner, "_protocol", None)
        if not isinstance(transport, asyncio.Transport) or not hasattr(protocol, "read_queue"):
            return None  # TLS, or another stream: the general path
        wire = cls(connection, transport)
        wire.buffer += stream.buffer
        for chunk in protocol.read_queue:  # type: ignore[union-attr]
            wire.buffer += chunk
        protocol.read_queue.clear()  # type: ignore[union-attr]
        if getattr(protocol, "is_at_eof", False) or transport.is_closing():
            wire.end("connection lost (EndOfStream)")
        return wire

    def start(self) -> None:
        limit = self.connection.limits.busy_limit
        self.transport.set_protocol(self)
        self.transport.set_write_buffer_limits(high=limit, low=limit // 2)
        if self.buffer:
            self._handle()
        if not self.ended.is_set():
            self.transport.resume_reading()

    # -- in --

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._handle()

    def _handle(self) -> None:
        connection = self.connection
        try:
            connection._consume(self.buffer)
        except (TermDecodeError, DistributionError) as exc:
            logger.warning(
                "distribution connection to %s broken: %s",
                connection.remote.name,
                exc,
                extra={"peer": connection.remote.name},
            )
            self.end(f"protocol error: {exc}")
        except Exception as exc:  # a bug must end this connection, not the event loop
            logger.exception("distribution connection to %s failed", connection.remote.name)
            self.end(f"internal error: {exc!r}")
        if connection._closed:
            self.end(connection.down_reason or "closed")

    def eof_received(self) -> bool:
        self.end("connection lost (EndOfStream)")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.end(f"connection lost ({type(exc).__name__ if exc else 'closed'})")

    # -- out --

    @property
    def queued(self) -> int:
        return self.pending + self.transport.get_write_buffer_size()

    def write(self, frame: bytes) -> None:
        if self.ended.is_set():
            return
        self.out.append(frame)
        self.pending += len(frame)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.scheduled = False
        if not self.out or self.ended.is_set():
            return
        frames, self.out = self.out, []
        size, self.pending = self.pending, 0
        self.connection.stats.bytes_out += size
        self.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
        self.connection._wrote_some()

    def pause_writing(self) -> None:
        pass  # ``queued`` reads the buffer's size; ``busy`` follows it

    def resume_writing(self) -> None:
        self.connection._wrote_some()

    # -- the end --

    def end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.reason = reason
            self.ended.set()

    def close(self) -> None:
        self.end("closed")
        self.out.clear()
        self.pending = 0
        if not self.transport.is_closing():
            self.transport.abort()


def _half_byte(flags: bytes, index: int) -> int:
    byte = flags[index // 2]
    return byte >> 4 if index % 2 else byte & 0x0F


def _alias_of(tag: object) -> object:
    """The alias a reply tag names: ``[alias | Ref]``, or ``[[alias | Ref] | _]``."""
    if type(tag) is ImproperList:
        if tag.items == (Atom("alias"),) and type(tag.tail) in (ExternalRef, Ref):
            return tag.tail
        if len(tag.items) == 1:
            return _alias_of(tag.items[0])
    return None


def _proc(target: Pid | str) -> object:
    return target if type(target) is Pid else Atom(str(target))


def _pid(value: object) -> Pid:
    if type(value) is not Pid:
        raise _Malformed(f"{value!r} is not a pid")
    return value


def _target(value: object) -> Pid | str:
    if type(value) is Pid:
        return value
    if type(value) is Atom:
        return str(value)
    raise _Malformed(f"{value!r} is neither a pid nor a name")


def _atom(value: object) -> Atom:
    if type(value) is not Atom:
        raise _Malformed(f"{value!r} is not an atom")
    return value


def _int(value: object) -> int:
    if type(value) is not int:
        raise _Malformed(f"{value!r} is not an integer")
    return value


def _needs(payload: object) -> object:
    if payload is _TICK:
        raise _Malformed("the message part is missing")
    return payload
