"""The EPMD client against a real ``epmd`` of the test's own (loopback, a free port)."""

from __future__ import annotations

import os
import signal
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from server.dist.epmd import (
    DEFAULT_EPMD_PORT,
    EpmdClient,
    NodeAddress,
    _parse_names,
    _parse_port2,
    default_epmd_port,
    ensure_epmd,
)
from server.errors import EpmdError, NodeNameTaken
from tests._support.erl_nodes import Epmd, require_erl, running_epmd
from tests._support.nodes import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.node
STEP = 10.0


@pytest.fixture
async def epmd() -> AsyncIterator[Epmd]:
    async with running_epmd() as running:
        yield running


def client(epmd: Epmd) -> EpmdClient:
    return EpmdClient(epmd.host, epmd.port, timeout=STEP)


async def wait_names(epmd: Epmd, expected: list[tuple[str, int]]) -> None:
    """EPMD learns of a closed registration when it reads the close: ask until it has."""
    with anyio.fail_after(STEP):
        for _ in range(200):
            if await client(epmd).names() == expected:
                return
            await anyio.sleep(0.01)  # polling EPMD's state, a fact only it knows
    raise AssertionError(f"EPMD still lists {await client(epmd).names()}, not {expected}")


def test_the_port_comes_from_erl_epmd_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ERL_EPMD_PORT", raising=False)
    assert default_epmd_port() == DEFAULT_EPMD_PORT == 4369
    monkeypatch.setenv("ERL_EPMD_PORT", "14369")
    assert default_epmd_port() == 14369
    assert EpmdClient().port == 14369
    for junk in ("", "x", "0", "70000"):
        monkeypatch.setenv("ERL_EPMD_PORT", junk)
        assert default_epmd_port() == 4369


async def test_register_names_port_please_unregister(epmd: Epmd) -> None:
    epmd_client = client(epmd)
    with anyio.fail_after(STEP):
        assert await epmd_client.names() == []
        registration = await epmd_client.register("py", 5555, hidden=True, extra=b"xy")
        async with registration:
            assert registration.creation != 0
            assert registration.creation < 2**32
            assert await epmd_client.names() == [("py", 5555)]
            address = await epmd_client.port_please("py")
            assert address == NodeAddress(5555, 72, 0, 6, 6, b"xy")
            assert address.hidden
            assert await epmd_client.port_please("nobody") is None
    await wait_names(epmd, [])
    with anyio.fail_after(STEP):
        assert await epmd_client.port_please("py") is None


async def test_two_normal_nodes(epmd: Epmd) -> None:
    epmd_client = client(epmd)
    with anyio.fail_after(STEP):
        first = await epmd_client.register("n1", 6001, hidden=False)
        second = await epmd_client.register("n2", 6002, hidden=False)
        try:
            address = await epmd_client.port_please("n1")
            assert address is not None
            assert not address.hidden
            assert first.creation != 0
            assert second.creation != 0
            assert sorted(await epmd_client.names()) == [("n1", 6001), ("n2", 6002)]
        finally:
            await first.aclose()
            await second.aclose()


async def test_a_name_taken_is_refused_and_the_holder_keeps_it(epmd: Epmd) -> None:
    epmd_client = client(epmd)
    with anyio.fail_after(STEP):
        async with await epmd_client.register("py", 5555, hidden=True):
            with pytest.raises(NodeNameTaken, match="already registered") as caught:
                await epmd_client.register("py", 6666, hidden=True)
            assert caught.value.name == "py"
            assert await epmd_client.names() == [("py", 5555)]


async def test_a_name_freed_can_be_taken_again(epmd: Epmd) -> None:
    epmd_client = client(epmd)
    with anyio.fail_after(STEP):
        registration = await epmd_client.register("py", 5555, hidden=True)
        await registration.aclose()
    await wait_names(epmd, [])
    with anyio.fail_after(STEP):
        async with await epmd_client.register("py", 7777, hidden=True) as again:
            assert again.creation != registration.creation


@pytest.mark.parametrize("name", ["", "py@host", "x" * 256])
async def test_a_bad_name_is_misuse(epmd: Epmd, name: str) -> None:
    with pytest.raises(ValueError, match="alive part"):
        await client(epmd).register(name, 1, hidden=True)


async def test_no_epmd_is_a_clear_error() -> None:
    port = free_port()
    with anyio.fail_after(STEP), pytest.raises(EpmdError, match="is epmd running") as caught:
        await EpmdClient("127.0.0.1", port).names()
    assert caught.value.port == port


@pytest.mark.parametrize(
    ("request_kind", "reply", "fragment"),
    [
        ("register", b"\x77\x00", "not 118 or 121"),
        ("register", b"\x76\x00\x00\x00", "before its reply was complete"),
        ("register", b"\x76\x00\x00\x00\x00\x00", "creation 0"),
        ("port_please", b"\x77\x00\x00", "malformed PORT2_RESP"),
        ("port_please", b"\x78\x00", "malformed PORT2_RESP"),
        ("names", b"\x00\x00\x11\x11garbage\n", "malformed NAMES"),
        ("names", b"\x00", "malformed NAMES"),
    ],
)
async def test_malformed_replies(request_kind: str, reply: bytes, fragment: str) -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        inner = listener.listeners[0]
        assert isinstance(inner, anyio.abc.SocketListener)
        epmd_client = EpmdClient("127.0.0.1", port, timeout=STEP)
        with anyio.fail_after(STEP):
            async with anyio.create_task_group() as tg:

                async def serve() -> None:
                    async with await inner.accept() as stream:
                        await stream.receive()
                        await stream.send(reply)

                tg.start_soon(serve)
                requests = {
                    "register": lambda: epmd_client.register("py", 1, hidden=True),
                    "port_please": lambda: epmd_client.port_please("py"),
                    "names": epmd_client.names,
                }
                with pytest.raises(EpmdError, match=fragment):
                    await requests[request_kind]()


async def test_a_silent_epmd_times_out() -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        inner = listener.listeners[0]
        assert isinstance(inner, anyio.abc.SocketListener)
        with anyio.fail_after(STEP):
            async with anyio.create_task_group() as tg:

                async def accept_and_wait() -> None:
                    async with await inner.accept() as stream:
                        await stream.receive()
                        await anyio.sleep_forever()

                tg.start_soon(accept_and_wait)
                with pytest.raises(EpmdError, match=r"no reply within 0\.2 s"):
                    await EpmdClient("127.0.0.1", port, timeout=0.2).register("py", 1, hidden=True)
                tg.cancel_scope.cancel()


def test_parse_port2() -> None:
    body = b"\x77\x00" + struct.pack(">HBBHHH", 9, 77, 0, 6, 5, 2) + b"e1" + b"\x00\x00"
    assert _parse_port2(body) == NodeAddress(9, 77, 0, 6, 5, b"")
    assert _parse_port2(b"\x77\x01") is None
    with pytest.raises(ValueError, match="extra"):
        _parse_port2(body + b"!")


def test_parse_names() -> None:
    body = b"\x00\x00\x11\x11name a at port 1\nname b at port 22\n"
    assert _parse_names(body) == [("a", 1), ("b", 22)]


async def test_ensure_epmd_leaves_a_running_one_alone(epmd: Epmd) -> None:
    with anyio.fail_after(STEP):
        assert await ensure_epmd(epmd.host, epmd.port) is False
    assert epmd.process.returncode is None


async def test_ensure_epmd_starts_a_daemon_when_none_answers() -> None:
    require_erl()
    port = free_port()
    try:
        with anyio.fail_after(STEP):
            assert await ensure_epmd("127.0.0.1", port) is True
            epmd_client = EpmdClient("127.0.0.1", port, timeout=STEP)
            async with await epmd_client.register("py", 5555, hidden=True) as registration:
                assert registration.creation != 0
    finally:
        await kill_epmd(port)


async def kill_epmd(port: int) -> None:
    """Stop the daemon ``ensure_epmd`` started on the test's own port.

    The daemon detached itself (it is not our child): find its pid by its command line
    (``-port <port>``, which only this test uses), signal that pid, and wait for its end
    through a pidfd.
    """
    for pid in _daemons_on(port):
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
            with anyio.fail_after(STEP):
                await anyio.wait_readable(pidfd)  # readable once the process has ended
        finally:
            os.close(pidfd)


async def test_ensure_epmd_reports_a_missing_executable() -> None:
    with anyio.fail_after(STEP), pytest.raises(EpmdError, match="cannot run"):
        await ensure_epmd("127.0.0.1", free_port(), epmd="/nonexistent/epmd")


def _daemons_on(port: int) -> list[int]:
    """The pids of ``epmd -daemon`` processes started with ``-port <port>``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-daemon" in argv and str(port).encode() in argv and argv[0].endswith(b"epmd"):
            found.append(int(entry.name))
    return found
