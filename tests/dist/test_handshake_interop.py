"""The handshake against real ``erl`` nodes (Debian's OTP 25), both roles.

Each test starts its own ``epmd`` on a free loopback port and its ``erl`` nodes pointed at
it (``tests/_support/erl_nodes.py``); everything is stopped by its pid. After the handshake
our side just closes the socket: erl then sees a nodedown, which some tests check.
These tests fail, rather than skip, when ``erl`` is missing and ``CI=true``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.streams.buffered import BufferedByteStream

from server.dist.epmd import EpmdClient
from server.dist.flags import HIDDEN_FLAGS, VISIBLE_FLAGS, DistFlag
from server.dist.handshake import Arbitration, Handshake, accept, initiate
from server.errors import HandshakeRefused
from tests._support.erl_nodes import (
    READY,
    WAIT,
    Epmd,
    ErlNode,
    otp_release,
    require_erl,
    running_epmd,
    running_erl,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.node
COOKIE = "interop-secret"
STEP = 20.0


@functools.cache
def otp() -> int:
    return otp_release()


@pytest.fixture
async def epmd() -> AsyncIterator[Epmd]:
    require_erl()
    async with running_epmd() as running:
        yield running


def ok(_: str) -> Arbitration:
    return "ok"


# -- erl dials us: our accept ------------------------------------------------------------


async def erl_dials_us(
    epmd: Epmd, home: Path, *, erl_cookie: str, name: str = "py", host: str = "localhost"
) -> tuple[Handshake | BaseException, ErlNode, list[str]]:
    """Listen, register ``name`` with the test's EPMD, let erl connect_node to us."""
    ours = f"{name}@{host}"
    outcome: Handshake | BaseException
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        await EpmdClient(epmd.host, epmd.port).register(
            name, listener.extra(anyio.abc.SocketAttribute.local_port), hidden=True
        ),
    ):
        inner = listener.listeners[0]
        assert isinstance(inner, anyio.abc.SocketListener)
        expression = (
            f"R = net_kernel:connect_node('{ours}'), "
            'io:format("connect ~w~n", [R]), '
            'io:format("hidden ~w~n", [nodes(hidden)]), '
            f"{WAIT}."
        )
        long = "." in host
        async with running_erl(
            "e1",
            epmd=epmd,
            cookie=erl_cookie,
            expression=expression,
            home=home,
            host=host,
            long=long,
        ) as erl:
            with anyio.fail_after(STEP):
                stream = BufferedByteStream(await inner.accept())
            async with stream:
                try:
                    outcome = await accept(
                        stream,
                        our_name=ours,
                        our_flags=HIDDEN_FLAGS,
                        our_creation=1,
                        cookie_for=lambda _: COOKIE,
                        arbitrate=ok,
                    )
                except HandshakeRefused as exc:
                    outcome = exc
                # keep the connection open until erl has said what it sees
                connect = await erl.expect("connect ", step="connect_node's result")
                hidden = await erl.expect("hidden ", step="nodes(hidden)")
    return outcome, erl, [connect, hidden]


async def test_erl_connects_to_our_accept(epmd: Epmd, tmp_path: Path) -> None:
    outcome, _, (connect, hidden) = await erl_dials_us(epmd, tmp_path, erl_cookie=COOKIE)
    assert isinstance(outcome, Handshake)
    assert outcome.peer_name == "e1@localhost"
    assert not outcome.peer_hidden
    assert outcome.peer_creation != 0
    assert outcome.flags == HIDDEN_FLAGS  # OTP 25 has every flag we advertise
    assert connect == "true"
    assert hidden == "[py@localhost]"


async def test_erl_connects_with_a_long_name(epmd: Epmd, tmp_path: Path) -> None:
    outcome, _, (connect, hidden) = await erl_dials_us(
        epmd, tmp_path, erl_cookie=COOKIE, host="127.0.0.1"
    )
    assert isinstance(outcome, Handshake)
    assert outcome.peer_name == "e1@127.0.0.1"
    assert connect == "true"
    assert hidden == "['py@127.0.0.1']"


async def test_erl_with_the_wrong_cookie_is_refused(epmd: Epmd, tmp_path: Path) -> None:
    outcome, _, (connect, hidden) = await erl_dials_us(epmd, tmp_path, erl_cookie="wrong")
    assert isinstance(outcome, HandshakeRefused)
    assert outcome.reason == "bad digest"
    assert outcome.peer == "e1@localhost"
    assert connect == "false"
    assert hidden == "[]"


# -- we dial erl: our initiate -----------------------------------------------------------

WATCH = (
    "ok = net_kernel:monitor_nodes(true, [{node_type, all}]), "
    f"{READY}, "
    'receive {nodeup, N, _} -> io:format("nodeup ~w~n", [N]) end, '
    'receive {nodedown, D, _} -> io:format("nodedown ~w~n", [D]) end, '
    f"{WAIT}."
)


async def dial_erl(
    epmd: Epmd,
    erl: ErlNode,
    *,
    flags: int = HIDDEN_FLAGS,
    cookie: str = COOKIE,
    our_name: str = "py@localhost",
) -> tuple[Handshake, BufferedByteStream]:
    """Find erl through EPMD and run our initiate against it; the open stream with it."""
    await erl.expect("ready", step="erl is distributed")
    alive, _, _ = erl.name.partition("@")
    with anyio.fail_after(STEP):
        address = await EpmdClient(epmd.host, epmd.port).port_please(alive)
        assert address is not None
        assert address.highest >= 6
        stream = BufferedByteStream(await anyio.connect_tcp("127.0.0.1", address.port))
    done = await initiate(
        stream,
        our_name=our_name,
        peer_name=erl.name,
        our_flags=flags,
        our_creation=7,
        cookie=cookie,
    )
    return done, stream


@pytest.mark.parametrize("flags", [HIDDEN_FLAGS, VISIBLE_FLAGS], ids=["hidden", "visible"])
async def test_our_initiate_against_erl(epmd: Epmd, tmp_path: Path, flags: int) -> None:
    async with running_erl("e1", epmd=epmd, cookie=COOKIE, expression=WATCH, home=tmp_path) as erl:
        done, stream = await dial_erl(epmd, erl, flags=flags)
        async with stream:
            assert done.peer_name == "e1@localhost"
            assert not done.peer_hidden
            assert done.flags == flags
            assert done.peer_flags & DistFlag.PUBLISHED
            assert await erl.expect("nodeup ", step="erl sees us up") == "py@localhost"
        assert await erl.expect("nodedown ", step="erl sees us go") == "py@localhost"


async def test_our_initiate_against_erl_with_a_long_name(epmd: Epmd, tmp_path: Path) -> None:
    async with running_erl(
        "e2", epmd=epmd, cookie=COOKIE, expression=WATCH, home=tmp_path, host="127.0.0.1", long=True
    ) as erl:
        done, stream = await dial_erl(epmd, erl, our_name="py@127.0.0.1")
        async with stream:
            assert done.peer_name == "e2@127.0.0.1"
            assert await erl.expect("nodeup ", step="erl sees us up") == "'py@127.0.0.1'"


async def test_our_initiate_with_the_wrong_cookie(epmd: Epmd, tmp_path: Path) -> None:
    async with running_erl("e1", epmd=epmd, cookie=COOKIE, expression=WATCH, home=tmp_path) as erl:
        with pytest.raises(HandshakeRefused, match="cookies differ") as caught:
            await dial_erl(epmd, erl, cookie="wrong")
        assert caught.value.reason == "bad cookie"
        line = await erl.expect("", step="erl logs the refusal")
        while "Invalid challenge reply" not in line:
            line = await erl.expect("", step="erl logs the refusal")
        assert erl.printed("py@localhost")


async def test_erl_refuses_us_without_map_tag(epmd: Epmd, tmp_path: Path) -> None:
    async with running_erl("e1", epmd=epmd, cookie=COOKIE, expression=WATCH, home=tmp_path) as erl:
        with pytest.raises(HandshakeRefused) as caught:
            await dial_erl(epmd, erl, flags=HIDDEN_FLAGS & ~DistFlag.MAP_TAG)
        assert caught.value.reason == "not_allowed"


async def test_v4_nc_is_mandatory_from_otp_26(epmd: Epmd, tmp_path: Path) -> None:
    async with running_erl("e1", epmd=epmd, cookie=COOKIE, expression=WATCH, home=tmp_path) as erl:
        flags = HIDDEN_FLAGS & ~DistFlag.V4_NC
        if otp() >= 26:
            with pytest.raises(HandshakeRefused) as caught:
                await dial_erl(epmd, erl, flags=flags)
            assert caught.value.reason == "not_allowed"
        else:
            done, stream = await dial_erl(epmd, erl, flags=flags)
            async with stream:
                assert not done.flags & DistFlag.V4_NC


async def test_dialing_the_wrong_host_part_is_refused(epmd: Epmd, tmp_path: Path) -> None:
    async with running_erl("e1", epmd=epmd, cookie=COOKIE, expression=WATCH, home=tmp_path) as erl:
        await erl.expect("ready", step="erl is distributed")
        with anyio.fail_after(STEP):
            address = await EpmdClient(epmd.host, epmd.port).port_please("e1")
            assert address is not None
            stream = BufferedByteStream(await anyio.connect_tcp("127.0.0.1", address.port))
        with pytest.raises(HandshakeRefused, match="calls itself e1@localhost") as caught:
            await initiate(
                stream,
                our_name="py@localhost",
                peer_name="e1@otherhost",
                our_flags=HIDDEN_FLAGS,
                our_creation=7,
                cookie=COOKIE,
            )
        assert caught.value.reason == "name mismatch"
