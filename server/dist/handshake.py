"""Both roles of the distribution handshake (protocol version 6), over any byte stream.

How this works:

1. Node A dials and calls ``initiate``; node B accepts and calls ``accept``. The messages and
   their order are in ``_handshake_wire`` (pure, no I/O); this module only sends, receives
   and decides.
2. The whole setup runs under one deadline, ``setup_timeout`` (Erlang's ``net_setuptime``,
   7 s by default); a peer too slow or silent fails with ``HandshakeTimeout``.
3. On any failure the stream is closed before the error is raised; on success it is left
   open, with whatever the peer sent after the handshake still in its buffer. From then on
   the connection speaks 4-byte-length frames (not this module's business).
4. The acceptor (B):
   a. refuses with ``not_allowed`` a peer ``allow`` rejects or one lacking a mandatory flag
      (logged, naming the missing flags);
   b. lets the caller's ``arbitrate`` choose the status. The rule for a simultaneous connect
      (both nodes dialing each other): **the greater node name wins** (string comparison of
      the full names). When B has its own attempt pending to A: if B's name is greater, answer
      ``nok`` (A's attempt loses, B's own goes on); else answer ``ok_simultaneous`` and drop
      B's own attempt. With an old connection to A still up, answer ``alive``: A then says
      ``true`` (its old connection is gone: replace it, the result's ``status`` is
      ``"alive"``) or ``false`` (A gives up);
   c. checks A's digest against ``cookie_for(A)``; a wrong digest closes the connection
      without a word (a warning is logged) and raises ``HandshakeRefused``.
5. The initiator (A) checks that B calls itself exactly the name dialed, that B has the
   mandatory flags, and B's digest. A closed connection where B's ack was due means B
   refused our digest: the cookies differ.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, NoReturn, TypeVar, final, get_args

import anyio

from server.dist import _handshake_wire as wire
from server.dist.flags import MANDATORY, DistFlag, describe, missing_mandatory
from server.errors import (
    HandshakeError,
    HandshakeRefused,
    HandshakeTimeout,
    SimultaneousConnect,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.streams.buffered import BufferedByteStream

__all__ = [
    "Arbitration",
    "Handshake",
    "accept",
    "initiate",
]

logger = logging.getLogger(__name__)

#: What ``arbitrate`` may answer for a peer that dials us (the status B sends).
Arbitration = Literal["ok", "ok_simultaneous", "nok", "alive"]
_ARBITRATIONS: Final = frozenset(get_args(Arbitration))
_ALIVE_ANSWERS: Final = frozenset({"true", "false"})
_LOW_32: Final = 0xFFFFFFFF
_T = TypeVar("_T")


@final
@dataclass(frozen=True, slots=True)
class Handshake:
    """A finished handshake: who the peer is and what the connection may use.

    Attributes:
        peer_name: the peer's full node name.
        peer_flags: the flags the peer advertised.
        peer_creation: the peer's creation (0 when a version-5 peer sent none).
        flags: the flags of the connection: ours intersected with the peer's.
        peer_hidden: the peer is a hidden node (it did not set PUBLISHED).
        our_name: our node name (the one given by the peer after ``named:``).
        our_creation: our creation (likewise).
        status: the status of step 2: ``ok``, ``ok_simultaneous``, ``alive`` (the old
            connection to the peer is dead and this one replaces it) or ``named:``.
    """

    peer_name: str
    peer_flags: DistFlag
    peer_creation: int
    flags: DistFlag
    peer_hidden: bool
    our_name: str
    our_creation: int
    status: str = "ok"


@final
class _Conversation:
    """One handshake's stream: framed send and receive, errors that name the peer."""

    def __init__(self, stream: BufferedByteStream, peer: str, length_size: int = 2) -> None:
        self.stream = stream
        self.peer = peer
        self.length_size = length_size

    def fail(self, why: str) -> NoReturn:
        raise HandshakeError(self.peer, why)

    async def send(self, body: bytes) -> None:
        try:
            await self.stream.send(wire.frame(body, self.length_size))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.fail(f"the connection broke while sending ({exc})")

    async def receive(self, step: str, parse: Callable[[bytes], _T]) -> _T:
        """The next message, read by ``parse``; a missing or malformed one fails."""
        try:
            size = self.length_size
            length = wire.parse_length(await self.stream.receive_exactly(size), size)
            body = await self.stream.receive_exactly(length)
            return parse(body)
        except (anyio.EndOfStream, anyio.IncompleteRead):
            raise _PeerClosed(step) from None
        except wire.WireError as exc:
            self.fail(f"{step}: {exc}")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.fail(f"the connection broke while waiting for the {step} ({exc})")


class _PeerClosed(Exception):
    """The peer closed the connection where ``step`` was due (turned into an error above)."""

    def __init__(self, step: str) -> None:
        self.step = step
        super().__init__(step)


async def _run(
    stream: BufferedByteStream,
    peer: str,
    setup_timeout: float,
    steps: Callable[[_Conversation], Awaitable[Handshake]],
    length_size: int = 2,
) -> Handshake:
    """Run ``steps`` under the setup deadline; close the stream if they fail."""
    conversation = _Conversation(stream, peer, length_size)
    try:
        with anyio.move_on_after(setup_timeout):
            return await steps(conversation)
        raise HandshakeTimeout(conversation.peer, setup_timeout)
    except _PeerClosed as closed:
        await _close(stream)
        raise HandshakeError(
            conversation.peer, f"the peer closed the connection before its {closed.step}"
        ) from None
    except BaseException:
        await _close(stream)
        raise


async def _close(stream: BufferedByteStream) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
        await stream.aclose()


def _new_challenge(avoid: int | None = None) -> int:
    while True:
        challenge = secrets.randbits(32)
        if challenge != avoid:
            return challenge


def _missing_text(missing: DistFlag) -> str:
    return ", ".join(describe(missing))


async def initiate(
    stream: BufferedByteStream,
    *,
    our_name: str,
    peer_name: str,
    our_flags: int,
    our_creation: int,
    cookie: str,
    alive_answer: Callable[[], bool] = lambda: False,
    setup_timeout: float = 7.0,
    length_size: int = 2,
) -> Handshake:
    """Run the handshake as the dialing node (A) on a freshly connected ``stream``.

    Args:
        stream: the connection to the peer, buffered (a TLS stream works as well).
        our_name: our full node name, as the peer will know us.
        peer_name: the full name dialed; the peer must call itself exactly that.
        our_flags: the flags we advertise (``HIDDEN_FLAGS`` or ``VISIBLE_FLAGS``).
        our_creation: our creation, from the EPMD registration.
        cookie: the cookie we share with this peer.
        alive_answer: asked when the peer answers ``alive`` (it still has a connection to a
            node of our name): return True if our old connection is dead, so this one
            replaces it, False to give up.
        setup_timeout: the bound on the whole handshake, in seconds.
        length_size: the bytes of each message's length: 2 over TCP, 4 over TLS (OTP's
            ``inet_tls`` frames the handshake as ``{packet, 4}``).

    Returns:
        The peer's identity and the connection's flags; the stream stays open.

    Raises:
        SimultaneousConnect: the peer answered ``nok``: its own connection to us wins.
        HandshakeRefused: the peer refused us (``not_allowed``, ``alive`` answered false,
            our digest), or we refused it (another name, missing flags, its digest).
        HandshakeTimeout: the handshake did not finish within ``setup_timeout``.
        HandshakeError: the peer sent a malformed message or the connection broke.
    """

    async def steps(talk: _Conversation) -> Handshake:
        name, creation = our_name, our_creation
        await talk.send(wire.pack_send_name(our_name, our_flags, our_creation))
        status = await talk.receive("status", wire.parse_status)
        if status.status == "nok":
            raise SimultaneousConnect(peer_name)
        if status.status == "not_allowed":
            raise HandshakeRefused(
                peer_name,
                "not_allowed",
                "the peer does not allow us: it lacks a flag it needs from us, or does not "
                "accept our node name (see its log)",
            )
        if status.status == "alive":
            answer = alive_answer()
            await talk.send(wire.pack_status("true" if answer else "false"))
            if not answer:
                raise HandshakeRefused(
                    peer_name,
                    "alive",
                    "the peer still has a connection to a node of our name and we answered "
                    "false (our old connection is alive)",
                )
        if status.status == "named:":
            if not our_flags & DistFlag.NAME_ME:
                talk.fail("the peer named us although we did not ask (no NAME_ME flag)")
            assert status.name is not None
            assert status.creation is not None
            name, creation = status.name, status.creation
        challenge = await talk.receive("challenge", wire.parse_challenge)
        if challenge.name != peer_name:
            raise HandshakeRefused(
                peer_name,
                "name mismatch",
                f"we dialed {peer_name} but the peer calls itself {challenge.name}; dial the "
                "exact name the node was started with (short vs long names, host part)",
            )
        missing = missing_mandatory(challenge.flags)
        if missing:
            raise HandshakeRefused(
                peer_name,
                "missing flags",
                f"the peer lacks mandatory capabilities: {_missing_text(missing)}",
            )
        ours = _new_challenge(avoid=challenge.challenge)
        await talk.send(wire.pack_challenge_reply(ours, wire.digest(cookie, challenge.challenge)))
        try:
            answer_digest = await talk.receive("challenge ack", wire.parse_challenge_ack)
        except _PeerClosed:
            raise HandshakeRefused(
                peer_name,
                "bad cookie",
                "the peer closed the connection instead of acknowledging our digest: our "
                "cookies differ; set the same cookie on both nodes",
            ) from None
        if not wire.digest_matches(cookie, ours, answer_digest):
            raise HandshakeRefused(
                peer_name,
                "bad digest",
                "the peer's answer to our challenge is wrong: our cookies differ",
            )
        peer_flags = DistFlag(challenge.flags)
        return Handshake(
            peer_name=challenge.name,
            peer_flags=peer_flags,
            peer_creation=challenge.creation or 0,
            flags=DistFlag(our_flags & challenge.flags),
            peer_hidden=not peer_flags & DistFlag.PUBLISHED,
            our_name=name,
            our_creation=creation,
            status=status.status,
        )

    return await _run(stream, peer_name, setup_timeout, steps, length_size)


async def accept(
    stream: BufferedByteStream,
    *,
    our_name: str,
    our_flags: int,
    our_creation: int,
    cookie_for: Callable[[str], str],
    arbitrate: Callable[[str], Arbitration],
    allow: Callable[[str], bool] = lambda name: True,
    setup_timeout: float = 7.0,
    length_size: int = 2,
) -> Handshake:
    """Run the handshake as the accepting node (B) on a freshly accepted ``stream``.

    Args:
        stream: the accepted connection, buffered (a TLS stream works as well).
        our_name: our full node name.
        our_flags: the flags we advertise.
        our_creation: our creation, from the EPMD registration.
        cookie_for: the cookie shared with the peer of that name.
        arbitrate: the status for a peer that passed the checks: ``"ok"``; on a simultaneous
            connect, ``"nok"`` if our name is the greater (our own attempt wins) else
            ``"ok_simultaneous"`` (drop our own attempt); ``"alive"`` if a connection to
            that peer is still up (the peer decides; on ``true`` the result's status is
            ``"alive"``: replace the old connection).
        allow: whether a peer of that name may connect at all (``not_allowed`` if not).
        setup_timeout: the bound on the whole handshake, in seconds.
        length_size: the bytes of each message's length: 2 over TCP, 4 over TLS (OTP's
            ``inet_tls`` frames the handshake as ``{packet, 4}``).

    Returns:
        The peer's identity and the connection's flags; the stream stays open.

    Raises:
        SimultaneousConnect: ``arbitrate`` said ``nok``: our own connection wins.
        HandshakeRefused: we refused the peer (``allow``, missing flags, wrong digest) or
            it gave up after ``alive``.
        HandshakeTimeout: the handshake did not finish within ``setup_timeout``.
        HandshakeError: the peer sent a malformed message or the connection broke.
    """

    async def steps(talk: _Conversation) -> Handshake:
        hello = await talk.receive("send_name", wire.parse_send_name)
        peer = talk.peer = hello.name
        if "@" not in peer:
            talk.fail(f"the peer's name {peer!r} is not a node name (alive@host)")
        required = MANDATORY & _LOW_32 if hello.old_form else MANDATORY
        missing = missing_mandatory(hello.flags, required)
        if missing or not allow(peer):
            await talk.send(wire.pack_status("not_allowed"))
            if missing:
                _log_missing(peer, missing)
                why = f"it lacks mandatory capabilities: {_missing_text(missing)}"
            else:
                logger.warning(
                    "connection attempt from disallowed node %s", peer, extra={"peer": peer}
                )
                why = "it is not allowed to connect"
            raise HandshakeRefused(peer, "not_allowed", why)
        status = arbitrate(peer)
        if status not in _ARBITRATIONS:
            raise ValueError(
                f"arbitrate() must answer one of {sorted(_ARBITRATIONS)}, not {status!r}"
            )
        await talk.send(wire.pack_status(status))
        if status == "nok":
            raise SimultaneousConnect(peer)
        if status == "alive":
            answer = await talk.receive(
                "answer to alive", lambda body: wire.parse_status(body, _ALIVE_ANSWERS)
            )
            if answer.status == "false":
                raise HandshakeRefused(
                    peer, "alive", "the peer gave up: it says its old connection is alive"
                )
        challenge = _new_challenge()
        await talk.send(wire.pack_challenge(our_name, our_flags, challenge, our_creation))
        flags, creation = hello.flags, hello.creation
        if hello.old_form:
            complement = await talk.receive("complement", wire.parse_complement)
            flags |= complement.flags_high << 32
            creation = complement.creation
            missing = missing_mandatory(flags)
            if missing:
                _log_missing(peer, missing)
                raise HandshakeRefused(
                    peer,
                    "missing flags",
                    f"it lacks mandatory capabilities: {_missing_text(missing)}",
                )
        reply = await talk.receive("challenge reply", wire.parse_challenge_reply)
        cookie = cookie_for(peer)
        if reply.challenge == challenge or not wire.digest_matches(cookie, challenge, reply.digest):
            logger.warning(
                "connection attempt from node %s rejected: invalid challenge reply "
                "(the cookies differ)",
                peer,
                extra={"peer": peer},
            )
            raise HandshakeRefused(
                peer, "bad digest", "its answer to our challenge is wrong: the cookies differ"
            )
        await talk.send(wire.pack_challenge_ack(wire.digest(cookie, reply.challenge)))
        peer_flags = DistFlag(flags)
        return Handshake(
            peer_name=peer,
            peer_flags=peer_flags,
            peer_creation=creation or 0,
            flags=DistFlag(our_flags & flags),
            peer_hidden=not peer_flags & DistFlag.PUBLISHED,
            our_name=our_name,
            our_creation=our_creation,
            status=status,
        )

    return await _run(stream, "?", setup_timeout, steps, length_size)


def _log_missing(peer: str, missing: DistFlag) -> None:
    logger.warning(
        "connection attempt from node %s rejected since it cannot handle %s",
        peer,
        _missing_text(missing),
        extra={"peer": peer, "missing_flags": describe(missing)},
    )
