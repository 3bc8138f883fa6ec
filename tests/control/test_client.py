"""The client: what it raises for each way a request can fail, and its sync wrapper."""

from __future__ import annotations

import functools
import socket
from typing import TYPE_CHECKING

import anyio
import pytest

from server.control import request, request_sync
from server.control.protocol import BAD_REQUEST, UNKNOWN_COMMAND, encode, error_reply
from server.errors import (
    ConnectionLost,
    ControlError,
    ControlSocketError,
    NodeNotRunning,
    ProtocolViolation,
    RemoteError,
)
from tests.behaviours._helpers import within

from ._support import start

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from anyio.abc import SocketStream

    from server.kernel import Node


async def test_no_socket_file_is_node_not_running(socket_path: Path) -> None:
    with pytest.raises(NodeNotRunning, match="no socket file") as caught:
        await within(request(socket_path, "echo"), "request")
    assert caught.value.path == str(socket_path)
    assert "server run --root" in str(caught.value)  # says how to start one


async def test_a_stale_socket_file_is_node_not_running(socket_path: Path) -> None:
    socket_path.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(socket_path))
    with pytest.raises(NodeNotRunning, match="stale"):
        await within(request(socket_path, "echo"), "request")


async def test_a_path_too_long_is_refused_before_connecting(socket_path: Path) -> None:
    with pytest.raises(ControlSocketError, match="longer than"):
        await within(request(socket_path.parent / ("d" * 120) / "c.sock", "echo"), "request")


@pytest.mark.parametrize(
    ("command", "args"),
    [("Install", None), ("install", {"when": {1, 2}})],
    ids=["bad-command-name", "args-not-json"],
)
async def test_what_cannot_be_sent_is_a_value_error(
    socket_path: Path, command: str, args: dict[str, object] | None
) -> None:
    with pytest.raises(ValueError, match="cannot send"):
        await request(socket_path, command, args)  # type: ignore[arg-type]


async def test_error_replies_become_remote_errors(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        await start(socket_path)
        with pytest.raises(RemoteError) as caught:
            await within(request(socket_path, "refuse", {"module": "counter"}), "refuse")
        assert caught.value.type == "NotPurged"
        assert caught.value.message.startswith("cannot load counter")
        assert str(caught.value) == f"NotPurged: {caught.value.message}"
        assert isinstance(caught.value, ControlError)

        with pytest.raises(RemoteError) as unknown:
            await within(request(socket_path, "nope"), "nope")
        assert unknown.value.type == UNKNOWN_COMMAND

    await node.run_process(body)


async def test_a_connection_that_ends_before_its_reply_is_lost(
    node: Node, socket_path: Path
) -> None:
    async def body() -> None:
        await start(socket_path)
        with pytest.raises(ConnectionLost, match="before answering 'end_process'"):
            await within(request(socket_path, "end_process"), "end_process")
        assert await within(request(socket_path, "echo"), "echo after") == {}

    await node.run_process(body)


async def _fake_node(path: Path, answer: bytes, run: Callable[[], Awaitable[None]]) -> None:
    """A listener that reads one line and answers ``answer``, while ``run`` runs."""
    path.parent.mkdir(mode=0o700)
    listener = await anyio.create_unix_listener(path)

    async def serve_one(stream: SocketStream) -> None:
        async with stream:
            data = b""
            while b"\n" not in data:
                data += await stream.receive()
            await stream.send(answer)

    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, serve_one)
        await run()
        tasks.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("answer", "error", "match"),
    [
        pytest.param(b"garbage\n", ProtocolViolation, "not JSON", id="garbage"),
        pytest.param(b'{"id": 1}\n', ProtocolViolation, "not a reply", id="not-a-reply"),
        pytest.param(
            b'{"id": 2, "ok": true, "result": 1}\n', ProtocolViolation, "another", id="other-id"
        ),
        pytest.param(b'{"id": 1, "ok": true, "res', ConnectionLost, "before", id="cut-short"),
        pytest.param(
            encode(error_reply(None, BAD_REQUEST, "no")), RemoteError, "bad_request", id="no-id"
        ),
        pytest.param(b'\n{"id": 1, "ok": true, "result": 7}\n', None, "", id="blank-then-ok"),
    ],
)
async def test_what_the_client_makes_of_each_answer(
    socket_path: Path, answer: bytes, error: type[Exception] | None, match: str
) -> None:
    async def run() -> None:
        if error is None:
            assert await within(request(socket_path, "echo"), "request") == 7
            return
        with pytest.raises(error, match=match):
            await within(request(socket_path, "echo"), "request")

    await _fake_node(socket_path, answer, run)


async def test_request_sync_from_a_thread(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        await start(socket_path)
        call = functools.partial(request_sync, socket_path, "echo", {"sync": True})
        assert await within(anyio.to_thread.run_sync(call), "request_sync") == {"sync": True}
        missing = functools.partial(request_sync, socket_path.with_name("none.sock"), "echo")
        with pytest.raises(NodeNotRunning):
            await within(anyio.to_thread.run_sync(missing), "request_sync, no node")

    await node.run_process(body)
