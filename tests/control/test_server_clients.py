"""Clients that misbehave or wait: never reading, never sending, too many, foreign users.

On virtual time: the write and idle timeouts are seconds long and cost no real time (every
socket here is in this OS process, so the loop only jumps its clock when nothing is ready).
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from server import kernel
from server.control import ControlOptions, ProgressInfo, request
from server.control._connection import peer_allowed
from server.control.protocol import BUSY, FORBIDDEN, IDLE_TIMEOUT, ErrorReply, Reply, parse_reply
from server.errors import ControlTimeout, RemoteError
from tests.behaviours._helpers import reason_of, within

from ._support import COMMANDS, LineClient, connection_pid, request_line, start

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from pydantic import JsonValue

    from server.kernel import Node


pytestmark = pytest.mark.virtual_time


async def test_a_client_that_never_reads_does_not_block_others(
    node: Node, socket_path: Path
) -> None:
    async def body() -> None:
        await start(socket_path, options=ControlOptions(write_timeout=2.0))
        stuck = await LineClient.connect(socket_path)
        ref = kernel.monitor(await connection_pid(stuck))
        # 8 MiB of replies it will not read: its connection's writer blocks on it
        await stuck.send(b"".join(request_line(n, "big", {"size": 1 << 20}) for n in range(1, 9)))
        for n in range(3):  # meanwhile another client is served
            assert await within(request(socket_path, "echo", {"n": n}), "echo") == {"n": n}
        # and the stuck connection is closed once a write has waited write_timeout
        assert await reason_of(ref, step="the stuck connection ends") == kernel.NORMAL
        await stuck.closed()
        await stuck.aclose()
        assert await within(request(socket_path, "echo"), "echo after") == {}

    await node.run_process(body)


async def test_a_client_that_never_sends_is_closed_after_the_idle_timeout(
    node: Node, socket_path: Path
) -> None:
    async def body() -> None:
        await start(socket_path, options=ControlOptions(idle_timeout=30.0))
        silent = await LineClient.connect(socket_path)
        assert await within(request(socket_path, "echo"), "another client") == {}
        before = anyio.current_time()
        lines = await silent.closed(limit=60.0)
        assert anyio.current_time() - before >= 30.0
        [line] = lines
        answer = parse_reply(line)
        assert isinstance(answer, ErrorReply)
        assert (answer.id, answer.error.type) == (None, IDLE_TIMEOUT)
        await silent.aclose()

    await node.run_process(body)


async def test_a_request_that_never_ends_its_line_counts_as_idle(
    node: Node, socket_path: Path
) -> None:
    async def body() -> None:
        await start(socket_path, options=ControlOptions(idle_timeout=30.0))
        slow = await LineClient.connect(socket_path)
        await slow.send(b'{"id": 1, "command": "ec')
        [line] = await slow.closed(limit=60.0)
        answer = parse_reply(line)
        assert isinstance(answer, ErrorReply)
        assert answer.error.type == IDLE_TIMEOUT
        await slow.aclose()

    await node.run_process(body)


@pytest.mark.parametrize("filler", [b"\n", b"not json\n"], ids=["blank", "malformed"])
async def test_lines_that_are_not_requests_do_not_count_as_activity(
    node: Node, socket_path: Path, filler: bytes
) -> None:
    async def body() -> None:
        await start(socket_path, options=ControlOptions(idle_timeout=30.0))
        chatty = await LineClient.connect(socket_path)
        before = anyio.current_time()

        async def keep_sending_blank_lines() -> None:
            with contextlib.suppress(anyio.BrokenResourceError, OSError):  # once closed
                while True:
                    await chatty.send(filler)
                    await anyio.sleep(5.0)  # virtual seconds: the attacker's cadence

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(keep_sending_blank_lines)
            lines = await chatty.closed(limit=60.0)
            tasks.cancel_scope.cancel()
        assert 30.0 <= anyio.current_time() - before < 35.0
        answer = parse_reply(lines[-1])
        assert isinstance(answer, ErrorReply)
        assert answer.error.type == IDLE_TIMEOUT
        await chatty.aclose()

    await node.run_process(body)


async def test_a_completed_request_restarts_the_idle_timer(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        await start(socket_path, options=ControlOptions(idle_timeout=30.0))
        client = await LineClient.connect(socket_path)
        await anyio.sleep(20.0)  # virtual seconds
        await client.send(request_line(1, "echo", {}))
        await anyio.sleep(20.0)  # 40 s after connecting, 20 s after the request: still open
        await client.send(request_line(2, "echo", {}))
        lines = await client.closed(limit=60.0)
        assert [parse_reply(line).id for line in lines] == [1, 2, None]
        await client.aclose()

    await node.run_process(body)


async def test_the_client_times_out_on_a_command_that_never_answers(
    node: Node, socket_path: Path
) -> None:
    async def body() -> None:
        await start(socket_path)
        before = anyio.current_time()
        with pytest.raises(ControlTimeout, match="did not answer 'hang' within 2 s") as caught:
            await within(request(socket_path, "hang", timeout=2.0), "hang", limit=10.0)
        assert caught.value.timeout == 2.0
        assert anyio.current_time() - before >= 2.0
        assert isinstance(caught.value, TimeoutError)
        assert await within(request(socket_path, "echo"), "echo after") == {}

    await node.run_process(body)


async def _slow_steps(args: dict[str, Any], progress: Callable[[ProgressInfo], None]) -> JsonValue:
    for done in range(1, 6):
        await anyio.sleep(1.0)  # one second of (virtual) work per step
        progress(ProgressInfo(step="work", done=done, total=5))
    return "finished"


async def test_progress_keeps_a_long_command_within_its_timeout(
    node: Node, socket_path: Path
) -> None:
    """The client's timeout bounds each wait, not the whole command."""

    async def body() -> None:
        await start(socket_path, {"slow_steps": _slow_steps})
        seen: list[int] = []
        before = anyio.current_time()
        result = await within(
            request(
                socket_path, "slow_steps", timeout=2.0, on_progress=lambda p: seen.append(p.done)
            ),
            "slow_steps",
            limit=10.0,
        )
        assert result == "finished"
        assert seen == [1, 2, 3, 4, 5]
        assert anyio.current_time() - before >= 5.0

    await node.run_process(body)


async def test_when_full_a_new_connection_closes_the_one_idle_longest(
    node: Node, socket_path: Path
) -> None:
    async def body() -> None:
        await start(socket_path, options=ControlOptions(max_connections=2))
        held = [await LineClient.connect(socket_path) for _ in range(2)]
        for client in held:
            await connection_pid(client)  # both are being served
        await held[1].send(request_line(1, "echo"))  # held[1] was active more recently
        assert await held[1].message() == Reply(id=1, result={})
        operator = await LineClient.connect(socket_path)
        assert await held[0].closed() == []  # the longest idle one made room
        await operator.send(request_line(2, "echo"))
        assert await operator.message() == Reply(id=2, result={})
        await held[1].send(request_line(3, "echo"))
        assert await held[1].message() == Reply(id=3, result={})
        for client in [*held, operator]:
            await client.aclose()

    await node.run_process(body)


async def test_when_every_connection_runs_a_command_a_new_one_is_answered_busy(
    node: Node, socket_path: Path
) -> None:
    async def body() -> None:
        await start(socket_path, options=ControlOptions(max_connections=2))
        held = [await LineClient.connect(socket_path) for _ in range(2)]
        for n, client in enumerate(held, start=1):
            await connection_pid(client)
            await client.send(request_line(n, "hang"))
        await anyio.wait_all_tasks_blocked()  # both connections are inside "hang"
        extra = await LineClient.connect(socket_path)
        [line] = await extra.closed()
        answer = parse_reply(line)
        assert isinstance(answer, ErrorReply)
        assert answer.error.type == BUSY
        await extra.aclose()
        for client in held:
            await client.aclose()

    await node.run_process(body)


async def test_sixty_four_idle_connections_cannot_lock_the_operator_out(
    node: Node, socket_path: Path
) -> None:
    async def body() -> None:
        await start(socket_path)  # the default cap, 64
        squatters = [await LineClient.connect(socket_path) for _ in range(64)]
        for client in squatters:
            await connection_pid(client)
            await client.send(b"\n")  # blank lines: not activity
        for n in range(3):
            assert await within(request(socket_path, "echo", {"n": n}), "operator") == {"n": n}
        for client in squatters:
            await client.aclose()

    await node.run_process(body)


@pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="SO_PEERCRED is Linux's")
async def test_a_peer_of_another_uid_is_refused(node: Node, socket_path: Path) -> None:
    """Seen from the server: our own uid is made a foreign one by ``allowed_uids``."""
    others = frozenset({os.geteuid() + 4242})

    async def body() -> None:
        await start(socket_path, COMMANDS, ControlOptions(allowed_uids=others))
        client = await LineClient.connect(socket_path)
        await client.send(request_line(1, "echo"))
        [line] = await client.closed()
        answer = parse_reply(line)
        assert isinstance(answer, ErrorReply)
        assert (answer.id, answer.error.type) == (None, FORBIDDEN)
        assert f"uid {os.geteuid()}" in answer.error.message
        await client.aclose()
        with pytest.raises(RemoteError) as caught:
            await within(request(socket_path, "echo"), "echo")
        assert caught.value.type == FORBIDDEN

    await node.run_process(body)


def test_the_default_peers_are_the_node_user_and_root() -> None:
    me = os.geteuid()
    assert peer_allowed(me, None)
    assert peer_allowed(0, None)
    assert not peer_allowed(me + 4242, None)
    assert peer_allowed(None, None)  # no credentials to check (not Linux): the file modes gate
    assert not peer_allowed(0, frozenset({me + 1}))
