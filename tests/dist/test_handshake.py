"""Both roles of the handshake against each other and against scripted peers."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.streams.buffered import BufferedByteStream

from server.dist import _handshake_wire as wire
from server.dist.flags import HIDDEN_FLAGS, MANDATORY, VISIBLE_FLAGS, DistFlag
from server.dist.handshake import Arbitration, Handshake, accept, initiate
from server.errors import (
    HandshakeError,
    HandshakeRefused,
    HandshakeTimeout,
    SimultaneousConnect,
)
from tests.dist._handshake_support import STEP, ScriptedPeer, stream_pair

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

A, B = "a@localhost", "b@localhost"
COOKIE = "secret"


def ok(_: str) -> Arbitration:
    return "ok"


async def dial(
    stream: BufferedByteStream,
    *,
    peer_name: str = B,
    flags: int = HIDDEN_FLAGS,
    cookie: str = COOKIE,
    alive_answer: Callable[[], bool] = lambda: False,
    setup_timeout: float = STEP,
) -> Handshake:
    return await initiate(
        stream,
        our_name=A,
        peer_name=peer_name,
        our_flags=flags,
        our_creation=11,
        cookie=cookie,
        alive_answer=alive_answer,
        setup_timeout=setup_timeout,
    )


async def answer(
    stream: BufferedByteStream,
    *,
    name: str = B,
    flags: int = VISIBLE_FLAGS,
    cookie: str = COOKIE,
    arbitrate: Callable[[str], Arbitration] = ok,
    allow: Callable[[str], bool] = lambda _: True,
    setup_timeout: float = STEP,
) -> Handshake:
    return await accept(
        stream,
        our_name=name,
        our_flags=flags,
        our_creation=22,
        cookie_for=lambda _: cookie,
        arbitrate=arbitrate,
        allow=allow,
        setup_timeout=setup_timeout,
    )


async def both(
    initiator: Callable[[BufferedByteStream], Awaitable[Handshake]],
    acceptor: Callable[[BufferedByteStream], Awaitable[Handshake]],
) -> tuple[Handshake | BaseException, Handshake | BaseException]:
    """Run the two roles against each other; each one's result or error."""
    results: dict[str, Handshake | BaseException] = {}

    async def run(key: str, role: Callable[[], Awaitable[Handshake]]) -> None:
        try:
            results[key] = await role()
        except Exception as exc:  # each side's outcome is what the test checks
            results[key] = exc

    async with stream_pair() as (left, right):
        with anyio.fail_after(STEP):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, "a", lambda: initiator(left))
                tg.start_soon(run, "b", lambda: acceptor(right))
    return results["a"], results["b"]


# -- Python <-> Python -------------------------------------------------------------------


async def test_python_to_python() -> None:
    a, b = await both(dial, answer)
    assert isinstance(a, Handshake)
    assert isinstance(b, Handshake)
    assert (a.peer_name, a.peer_creation, a.peer_hidden) == (B, 22, False)
    assert (b.peer_name, b.peer_creation, b.peer_hidden) == (A, 11, True)
    assert a.peer_flags == VISIBLE_FLAGS
    assert b.peer_flags == HIDDEN_FLAGS
    assert a.flags == b.flags == HIDDEN_FLAGS
    assert (a.our_name, a.our_creation, a.status) == (A, 11, "ok")
    assert (b.our_name, b.our_creation, b.status) == (B, 22, "ok")


async def test_the_connection_flags_are_the_intersection() -> None:
    a, b = await both(
        lambda s: dial(s, flags=MANDATORY | DistFlag.ALIAS | DistFlag.PUBLISHED),
        lambda s: answer(s, flags=MANDATORY | DistFlag.SPAWN | DistFlag.PUBLISHED),
    )
    assert isinstance(a, Handshake)
    assert isinstance(b, Handshake)
    assert a.flags == b.flags == MANDATORY | DistFlag.PUBLISHED
    assert not a.peer_hidden
    assert not b.peer_hidden


async def test_bytes_sent_after_the_handshake_stay_in_the_buffer() -> None:
    async with stream_pair() as (left, right):
        with anyio.fail_after(STEP):
            async with anyio.create_task_group() as tg:

                async def acceptor() -> None:
                    await answer(right)
                    await right.send(b"\x00\x00\x00\x00")  # a tick, right after the ack

                tg.start_soon(acceptor)
                await dial(left)
            assert await left.receive_exactly(4) == b"\x00\x00\x00\x00"


async def test_wrong_cookie_of_the_initiator(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="server.dist.handshake"):
        a, b = await both(lambda s: dial(s, cookie="wrong"), answer)
    assert isinstance(a, HandshakeRefused)
    assert a.reason == "bad cookie"
    assert "cookies differ" in str(a)
    assert isinstance(b, HandshakeRefused)
    assert b.reason == "bad digest"
    assert b.peer == A
    [record] = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert A in record.getMessage()
    assert record.__dict__["peer"] == A


async def test_per_peer_cookies() -> None:
    cookies = {A: "for-a", "z@localhost": "for-z"}
    a, b = await both(
        lambda s: dial(s, cookie="for-a"),
        lambda s: accept(
            s,
            our_name=B,
            our_flags=HIDDEN_FLAGS,
            our_creation=1,
            cookie_for=cookies.__getitem__,
            arbitrate=ok,
        ),
    )
    assert isinstance(a, Handshake)
    assert isinstance(b, Handshake)


async def test_wrong_digest_in_the_acknowledgement() -> None:
    async with stream_pair() as (left, right):
        peer = ScriptedPeer(right)
        with anyio.fail_after(STEP):
            async with anyio.create_task_group() as tg:

                async def acceptor() -> None:
                    wire.parse_send_name(await peer.receive())
                    await peer.send(wire.pack_status("ok"))
                    await peer.send(wire.pack_challenge(B, HIDDEN_FLAGS, 99, 1))
                    wire.parse_challenge_reply(await peer.receive())
                    await peer.send(wire.pack_challenge_ack(wire.digest("other", 99)))

                tg.start_soon(acceptor)
                with pytest.raises(HandshakeRefused, match="cookies differ") as caught:
                    await dial(left)
            assert caught.value.reason == "bad digest"
            assert await peer.closed()


async def test_name_mismatch() -> None:
    a, b = await both(lambda s: dial(s, peer_name="b@vm"), answer)
    assert isinstance(a, HandshakeRefused)
    assert a.reason == "name mismatch"
    assert "calls itself b@localhost" in str(a)
    assert isinstance(b, HandshakeError)
    assert "closed the connection before its challenge reply" in str(b)


async def test_a_peer_lacking_a_mandatory_flag_is_not_allowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="server.dist.handshake"):
        a, b = await both(lambda s: dial(s, flags=HIDDEN_FLAGS & ~DistFlag.MAP_TAG), answer)
    assert isinstance(a, HandshakeRefused)
    assert a.reason == "not_allowed"
    assert isinstance(b, HandshakeRefused)
    assert b.reason == "not_allowed"
    assert "MAP_TAG" in str(b)
    [record] = caplog.records
    assert "cannot handle MAP_TAG" in record.getMessage()
    assert record.__dict__["missing_flags"] == ["MAP_TAG"]


async def test_an_acceptor_lacking_a_mandatory_flag_is_refused() -> None:
    a, b = await both(dial, lambda s: answer(s, flags=HIDDEN_FLAGS & ~DistFlag.V4_NC))
    assert isinstance(a, HandshakeRefused)
    assert a.reason == "missing flags"
    assert "V4_NC" in str(a)
    assert isinstance(b, HandshakeError)


async def test_a_disallowed_peer() -> None:
    a, b = await both(dial, lambda s: answer(s, allow=lambda name: name != A))
    assert isinstance(a, HandshakeRefused)
    assert a.reason == "not_allowed"
    assert isinstance(b, HandshakeRefused)
    assert "not allowed" in str(b)


async def test_arbitrated_nok() -> None:
    a, b = await both(dial, lambda s: answer(s, arbitrate=lambda _: "nok"))
    assert isinstance(a, SimultaneousConnect)
    assert isinstance(b, SimultaneousConnect)


async def test_arbitrated_ok_simultaneous() -> None:
    a, b = await both(dial, lambda s: answer(s, arbitrate=lambda _: "ok_simultaneous"))
    assert isinstance(a, Handshake)
    assert isinstance(b, Handshake)
    assert a.status == b.status == "ok_simultaneous"


@pytest.mark.parametrize("old_connection_dead", [True, False], ids=["true", "false"])
async def test_alive(old_connection_dead: bool) -> None:
    asked: list[str] = []

    def arbitrate(peer: str) -> Arbitration:
        asked.append(peer)
        return "alive"

    a, b = await both(
        lambda s: dial(s, alive_answer=lambda: old_connection_dead),
        lambda s: answer(s, arbitrate=arbitrate),
    )
    assert asked == [A]
    if old_connection_dead:
        assert isinstance(a, Handshake)
        assert isinstance(b, Handshake)
        assert a.status == b.status == "alive"
    else:
        assert isinstance(a, HandshakeRefused)
        assert isinstance(b, HandshakeRefused)
        assert a.reason == b.reason == "alive"


async def test_arbitrate_must_answer_a_status() -> None:
    a, b = await both(dial, lambda s: answer(s, arbitrate=lambda _: "maybe"))  # type: ignore[arg-type,return-value]
    assert isinstance(b, ValueError)
    assert isinstance(a, HandshakeError)


# -- the initiator against a scripted acceptor --------------------------------------------


async def scripted_acceptor(
    peer: ScriptedPeer,
    status: bytes,
    *,
    alive_answer: list[bytes] | None = None,
    flags: int = HIDDEN_FLAGS,
    old_challenge: bool = False,
) -> None:
    """Plays B until done or until the initiator hangs up."""
    try:
        hello = wire.parse_send_name(await peer.receive())
        assert hello.name == A
        await peer.send(status)
        if alive_answer is not None:
            alive_answer.append(await peer.receive())
            if alive_answer[-1] == b"sfalse":
                return
        if old_challenge:
            await peer.send(wire.pack_old_challenge(B, flags, 1234))
        else:
            await peer.send(wire.pack_challenge(B, flags, 1234, 5))
        reply = wire.parse_challenge_reply(await peer.receive())
        assert reply.digest == wire.digest(COOKIE, 1234)
        await peer.send(wire.pack_challenge_ack(wire.digest(COOKIE, reply.challenge)))
    except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
        return


async def initiate_against(
    status: bytes,
    *,
    flags: int = HIDDEN_FLAGS | DistFlag.NAME_ME,
    peer_flags: int = HIDDEN_FLAGS,
    alive_answer: bool = False,
    answers: list[bytes] | None = None,
    old_challenge: bool = False,
) -> Handshake:
    outcome: Handshake | BaseException
    async with stream_pair() as (left, right):
        peer = ScriptedPeer(right)
        with anyio.fail_after(STEP):
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    lambda: scripted_acceptor(
                        peer,
                        status,
                        alive_answer=answers,
                        flags=peer_flags,
                        old_challenge=old_challenge,
                    )
                )
                try:
                    outcome = await dial(left, flags=flags, alive_answer=lambda: alive_answer)
                except Exception as exc:  # raised below, outside the task group
                    outcome = exc
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


@pytest.mark.parametrize("status", ["ok", "ok_simultaneous"])
async def test_initiator_statuses_that_go_on(status: str) -> None:
    done = await initiate_against(wire.pack_status(status))
    assert done.status == status
    assert done.peer_name == B


async def test_initiator_nok() -> None:
    with pytest.raises(SimultaneousConnect, match="greater node name"):
        await initiate_against(b"snok")


async def test_initiator_not_allowed() -> None:
    with pytest.raises(HandshakeRefused, match="does not allow us") as caught:
        await initiate_against(b"snot_allowed")
    assert caught.value.reason == "not_allowed"


@pytest.mark.parametrize("dead", [True, False], ids=["true", "false"])
async def test_initiator_alive(dead: bool) -> None:
    answers: list[bytes] = []
    if dead:
        done = await initiate_against(b"salive", alive_answer=True, answers=answers)
        assert done.status == "alive"
    else:
        with pytest.raises(HandshakeRefused, match="answered false"):
            await initiate_against(b"salive", alive_answer=False, answers=answers)
    assert answers == [b"strue" if dead else b"sfalse"]


async def test_initiator_named() -> None:
    done = await initiate_against(wire.pack_status("named:", name="given@localhost", creation=3))
    assert (done.our_name, done.our_creation, done.status) == ("given@localhost", 3, "named:")


async def test_initiator_named_without_asking() -> None:
    with pytest.raises(HandshakeError, match="did not ask"):
        await initiate_against(
            wire.pack_status("named:", name="given@localhost", creation=3), flags=HIDDEN_FLAGS
        )


async def test_initiator_unknown_status() -> None:
    with pytest.raises(HandshakeError, match="unknown status 'maybe'"):
        await initiate_against(b"smaybe")


async def test_initiator_refuses_an_old_version_5_challenge() -> None:
    with pytest.raises(HandshakeRefused, match="V4_NC") as caught:
        await initiate_against(b"sok", old_challenge=True)
    assert caught.value.reason == "missing flags"


# -- the acceptor against a scripted initiator ------------------------------------------


async def accept_from(
    script: Callable[[ScriptedPeer], Coroutine[object, object, None]], **options: object
) -> tuple[Handshake | BaseException, ScriptedPeer]:
    async with stream_pair() as (left, right):
        peer = ScriptedPeer(left)
        result: Handshake | BaseException
        with anyio.fail_after(STEP):
            async with anyio.create_task_group() as tg:
                tg.start_soon(script, peer)
                try:
                    result = await answer(right, **options)  # type: ignore[arg-type]
                except Exception as exc:  # the outcome is what the test checks
                    result = exc
            closed = isinstance(result, BaseException) and await peer.closed()
        assert closed == isinstance(result, BaseException)  # a failed handshake closes
        return result, peer
    raise AssertionError("unreachable")


async def old_form_initiator(peer: ScriptedPeer, high_flags: int = HIDDEN_FLAGS) -> None:
    await peer.send(wire.pack_old_send_name(A, HIDDEN_FLAGS))
    assert wire.parse_status(await peer.receive()).status == "ok"
    challenge = wire.parse_challenge(await peer.receive())
    assert not challenge.old_form  # a version-6 acceptor answers with the new form
    await peer.send(wire.pack_complement(high_flags, 33))
    try:
        await peer.send(wire.pack_challenge_reply(777, wire.digest(COOKIE, challenge.challenge)))
        ack = wire.parse_challenge_ack(await peer.receive())
    except (anyio.IncompleteRead, anyio.BrokenResourceError):
        return  # refused
    assert ack == wire.digest(COOKIE, 777)


async def test_acceptor_takes_the_old_send_name_and_the_complement() -> None:
    result, _ = await accept_from(old_form_initiator)
    assert isinstance(result, Handshake)
    assert result.peer_flags == HIDDEN_FLAGS
    assert result.peer_creation == 33


async def test_acceptor_refuses_an_old_form_peer_whose_complement_lacks_flags() -> None:
    result, _ = await accept_from(lambda p: old_form_initiator(p, high_flags=0))
    assert isinstance(result, HandshakeRefused)
    assert "V4_NC" in str(result)


async def test_acceptor_refuses_a_reflected_challenge() -> None:
    async def reflect(peer: ScriptedPeer) -> None:
        await peer.send(wire.pack_send_name(A, HIDDEN_FLAGS, 1))
        await peer.receive()
        challenge = wire.parse_challenge(await peer.receive())
        digest = wire.digest(COOKIE, challenge.challenge)
        await peer.send(wire.pack_challenge_reply(challenge.challenge, digest))

    result, _ = await accept_from(reflect)
    assert isinstance(result, HandshakeRefused)
    assert result.reason == "bad digest"


@pytest.mark.parametrize(
    "first",
    [b"X", b"N\x00", wire.pack_send_name("no-host", HIDDEN_FLAGS, 1)],
    ids=["bad tag", "short", "not a node name"],
)
async def test_acceptor_garbage(first: bytes) -> None:
    async def send_garbage(peer: ScriptedPeer) -> None:
        await peer.send(first)

    result, _ = await accept_from(send_garbage)
    assert type(result) is HandshakeError


async def test_acceptor_overlong_length() -> None:
    async def send_huge(peer: ScriptedPeer) -> None:
        await peer.stream.send(b"\xff\xff")

    result, _ = await accept_from(send_huge)
    assert type(result) is HandshakeError
    assert "65535 bytes" in str(result)


async def test_acceptor_peer_hangs_up() -> None:
    async def hang_up(peer: ScriptedPeer) -> None:
        await peer.stream.send(b"\x00\x10N")
        await peer.stream.send_eof()

    result, _ = await accept_from(hang_up)
    assert type(result) is HandshakeError
    assert "before its send_name" in str(result)


# -- setup timeout -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["initiate", "accept"])
async def test_a_silent_peer_fails_within_the_setup_time(role: str) -> None:
    async with stream_pair() as (ours, theirs):
        start = anyio.current_time()
        run = dial if role == "initiate" else answer
        with anyio.fail_after(STEP), pytest.raises(HandshakeTimeout) as caught:
            await run(ours, setup_timeout=0.2)
        elapsed = anyio.current_time() - start
        assert 0.2 <= elapsed < 1.5  # the bound plus closing, with room for a loaded CI machine
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.timeout == 0.2
        assert await ScriptedPeer(theirs).closed()


async def test_no_timeout_means_wait_for_ever() -> None:
    a, b = await both(
        lambda s: dial(s, setup_timeout=math.inf), lambda s: answer(s, setup_timeout=math.inf)
    )
    assert isinstance(a, Handshake)
    assert isinstance(b, Handshake)


# -- simultaneous connect -----------------------------------------------------------------


class MiniNode:
    """Just enough of a net kernel to arbitrate: pending attempts and live connections."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pending: set[str] = set()
        self.connections: dict[str, str] = {}  # peer -> "in" or "out"
        self.failures: list[BaseException] = []
        self.streams: list[BufferedByteStream] = []

    async def aclose(self) -> None:
        for stream in self.streams:
            await stream.aclose()

    def arbitrate(self, peer: str) -> Arbitration:
        """The rule: the greater name's own attempt wins."""
        if peer in self.connections:
            return "alive"
        if peer in self.pending:
            if self.name > peer:
                return "nok"
            self.pending.discard(peer)  # our attempt gives way to the peer's
            return "ok_simultaneous"
        return "ok"

    async def accept_one(self, listener: anyio.abc.Listener[anyio.abc.SocketStream]) -> None:
        assert isinstance(listener, anyio.abc.SocketListener)
        stream = BufferedByteStream(await listener.accept())
        self.streams.append(stream)
        try:
            done = await accept(
                stream,
                our_name=self.name,
                our_flags=HIDDEN_FLAGS,
                our_creation=1,
                cookie_for=lambda _: COOKIE,
                arbitrate=self.arbitrate,
                setup_timeout=STEP,
            )
        except HandshakeError as exc:
            self.failures.append(exc)
        else:
            self.connections[done.peer_name] = "in"

    async def dial(self, peer: str, port: int) -> None:
        stream = BufferedByteStream(await anyio.connect_tcp("127.0.0.1", port))
        self.streams.append(stream)
        try:
            done = await initiate(
                stream,
                our_name=self.name,
                peer_name=peer,
                our_flags=HIDDEN_FLAGS,
                our_creation=1,
                cookie=COOKIE,
                alive_answer=lambda: peer not in self.connections,
                setup_timeout=STEP,
            )
        except HandshakeError as exc:
            self.failures.append(exc)
        else:
            self.connections[done.peer_name] = "out"
        finally:
            self.pending.discard(peer)


@pytest.mark.parametrize("repeat", range(5))
async def test_simultaneous_connect_leaves_exactly_one_connection(repeat: int) -> None:
    a, b = MiniNode(A), MiniNode(B)
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listen_a,
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listen_b,
    ):
        port_a = listen_a.extra(anyio.abc.SocketAttribute.local_port)
        port_b = listen_b.extra(anyio.abc.SocketAttribute.local_port)
        a.pending.add(B)  # both have decided to connect before either hears of the other
        b.pending.add(A)
        with anyio.fail_after(STEP):
            async with anyio.create_task_group() as tg:
                tg.start_soon(a.accept_one, listen_a.listeners[0])
                tg.start_soon(b.accept_one, listen_b.listeners[0])
                tg.start_soon(a.dial, B, port_b)
                tg.start_soon(b.dial, A, port_a)
        await a.aclose()
        await b.aclose()
    # b@ > a@: b's dial survives, as an outgoing connection of b and an incoming one of a
    assert a.connections == {B: "in"}
    assert b.connections == {A: "out"}
    assert len(a.failures) == len(b.failures) == 1
    assert all(isinstance(f, HandshakeRefused) for f in a.failures + b.failures)
