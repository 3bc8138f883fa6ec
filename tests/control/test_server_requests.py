"""The control server answering requests: replies, progress, errors, garbage, load.

Each test runs a real node, a real control server process and real Unix sockets.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import tracemalloc
from typing import TYPE_CHECKING

import anyio
import pytest

from server import kernel
from server.control import ControlOptions, request
from server.control.protocol import (
    BAD_REQUEST,
    EXPIRED,
    INTERNAL,
    LINE_TOO_LONG,
    UNKNOWN_COMMAND,
    ErrorReply,
    Progress,
    ProgressInfo,
    Reply,
    parse_reply,
)
from server.errors import ControlTimeout, RemoteError
from tests.behaviours._helpers import within

from . import _support
from ._support import LineClient, connection_pid, request_line, start

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic import JsonValue

    from server.kernel import Node


async def test_a_round_trip(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        await start(socket_path)
        args: dict[str, JsonValue] = {
            "vsn": "2.0.0",
            "list": [1, 2.5, None, True],
            "nested": {"a": "é"},
        }
        assert await within(request(socket_path, "echo", args), "echo") == args

    await node.run_process(body)


async def test_progress_lines_come_before_the_reply(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        await start(socket_path)
        client = await LineClient.connect(socket_path)
        await client.send(request_line(5, "steps", {"count": 3}))
        messages = [await client.message() for _ in range(4)]
        assert messages == [
            Progress(id=5, progress=ProgressInfo(step="copy", done=n, total=3, detail=f"item {n}"))
            for n in (1, 2, 3)
        ] + [Reply(id=5, result="done")]
        await client.aclose()

        seen: list[ProgressInfo] = []
        result = await within(
            request(socket_path, "steps", {"count": 2}, on_progress=seen.append), "steps"
        )
        assert result == "done"
        assert [info.done for info in seen] == [1, 2]

    await node.run_process(body)


async def test_an_unknown_command_lists_the_known_ones(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        await start(socket_path)
        with pytest.raises(RemoteError) as caught:
            await within(request(socket_path, "instal"), "instal")
        assert caught.value.type == UNKNOWN_COMMAND
        assert "'instal'" in caught.value.message
        assert "echo, end_process, hang" in caught.value.message

    await node.run_process(body)


async def test_a_server_error_is_replied_under_its_class_name(
    node: Node, socket_path: Path
) -> None:
    async def body() -> None:
        await start(socket_path)
        client = await LineClient.connect(socket_path)
        await client.send(request_line(1, "refuse", {"module": "counter"}))
        answer = await client.message()
        assert isinstance(answer, ErrorReply)
        assert answer.id == 1
        assert answer.error.type == "NotPurged"
        assert "cannot load counter" in answer.error.message
        await client.send(request_line(2, "echo", {"still": "serving"}))
        assert await client.message() == Reply(id=2, result={"still": "serving"})
        await client.aclose()

    await node.run_process(body)


async def test_an_unexpected_exception_is_internal_logged_and_serving_goes_on(
    node: Node, socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        await start(socket_path)
        client = await LineClient.connect(socket_path)
        await client.send(request_line(1, "crash"))
        answer = await client.message()
        assert isinstance(answer, ErrorReply)
        assert answer.id == 1
        assert answer.error.type == INTERNAL
        assert "RuntimeError: the handler broke" in answer.error.message
        await client.send(request_line(2, "echo", {"n": 2}))
        assert await client.message() == Reply(id=2, result={"n": 2})
        await client.aclose()

    with caplog.at_level(logging.ERROR, logger="server.control"):
        await node.run_process(body)
    logged = [r for r in caplog.records if r.name == "server.control"]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert getattr(logged[0], "command", None) == "crash"


async def test_a_result_that_is_not_json_is_internal(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        await start(socket_path)
        with pytest.raises(RemoteError) as caught:
            await within(request(socket_path, "not_json"), "not_json")
        assert caught.value.type == INTERNAL
        assert "set" in caught.value.message

    await node.run_process(body)


async def test_garbage_bytes_are_answered_and_the_connection_goes_on(
    node: Node, socket_path: Path
) -> None:
    async def body() -> None:
        await start(socket_path)
        client = await LineClient.connect(socket_path)
        await client.send(b"\x00\xff\xfe garbage \x1b[31m\n")
        answer = await client.message()
        assert isinstance(answer, ErrorReply)
        assert answer.id is None
        assert answer.error.type == BAD_REQUEST
        assert "UTF-8" in answer.error.message
        await client.send(request_line(2, "echo"))
        assert await client.message() == Reply(id=2, result={})
        await client.aclose()

    await node.run_process(body)


@pytest.mark.parametrize(
    ("line", "request_id", "fragment"),
    [
        pytest.param(b'{"id": "1", "command": "echo"}', None, "id:", id="id-string"),
        pytest.param(b'{"id": 4, "command": "echo", "args": [1]}', 4, "args:", id="args-array"),
        pytest.param(b'{"id": 4, "command": "Echo"}', 4, "command:", id="command-pattern"),
        pytest.param(b'{"id": 4, "command": "echo", "x": 1}', 4, "x: Extra", id="unknown-key"),
        pytest.param(b"[1, 2, 3]", None, "an array", id="not-an-object"),
    ],
)
async def test_valid_json_with_wrong_types_is_a_bad_request(
    node: Node, socket_path: Path, line: bytes, request_id: int | None, fragment: str
) -> None:
    async def body() -> None:
        await start(socket_path)
        client = await LineClient.connect(socket_path)
        await client.send(line + b"\n" + request_line(9, "echo"))
        answer = await client.message()
        assert isinstance(answer, ErrorReply)
        assert (answer.id, answer.error.type) == (request_id, BAD_REQUEST)
        assert fragment in answer.error.message
        assert await client.message() == Reply(id=9, result={})
        await client.aclose()

    await node.run_process(body)


async def test_blank_lines_are_ignored(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        await start(socket_path)
        client = await LineClient.connect(socket_path)
        await client.send(b"\n\r\n   \n" + request_line(1, "echo"))
        assert await client.message() == Reply(id=1, result={})
        await client.aclose()

    await node.run_process(body)


async def test_a_partial_line_then_a_disconnect(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        await start(socket_path)
        client = await LineClient.connect(socket_path)
        ref = kernel.monitor(await connection_pid(client))
        await client.send(b'{"id": 2, "command": "ec')
        await client.aclose()
        down = await within(kernel.receive(lambda m: getattr(m, "ref", None) is ref), "DOWN")
        assert getattr(down, "reason", None) == kernel.NORMAL
        assert await within(request(socket_path, "echo", {"after": 1}), "echo") == {"after": 1}

    await node.run_process(body)


async def test_pipelined_requests_are_answered_in_order(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        await start(socket_path)
        client = await LineClient.connect(socket_path)
        commands = ["echo", "refuse", "steps", "crash", "nope", "echo"] * 4
        lines = b"".join(
            request_line(n, command, {"count": 1, "n": n}) for n, command in enumerate(commands)
        )
        await client.send(lines)
        finals: list[int | None] = []
        while len(finals) < len(commands):
            message = await client.message()
            if not isinstance(message, Progress):
                finals.append(message.id)
        assert finals == list(range(len(commands)))
        await client.aclose()

    await node.run_process(body)


async def test_each_connection_has_its_own_process(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        server = await start(socket_path)
        first = await LineClient.connect(socket_path)
        second = await LineClient.connect(socket_path)
        one, two = await connection_pid(first), await connection_pid(second)
        assert one is not two
        assert server not in (one, two)
        assert await connection_pid(first) is one  # and it stays the same for the connection
        await first.aclose()
        await second.aclose()

    await node.run_process(body)


async def test_fifty_concurrent_clients(node: Node, socket_path: Path) -> None:
    async def client(index: int) -> None:
        if index % 2:
            for n in range(5):
                args = {"client": index, "n": n}
                assert await request(socket_path, "echo", args) == args
            return
        line_client = await LineClient.connect(socket_path)
        await line_client.send(
            b"".join(request_line(n, "echo", {"client": index, "n": n}) for n in range(5))
        )
        for n in range(5):
            assert await line_client.message() == Reply(id=n, result={"client": index, "n": n})
        await line_client.aclose()

    async def body() -> None:
        await start(socket_path)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                for index in range(50):
                    tasks.start_soon(client, index)

    await node.run_process(body)


async def test_a_100_mb_line_is_dropped_without_being_held(node: Node, socket_path: Path) -> None:
    """The server answers ``line_too_long`` at once, drops the line as it comes, goes on."""
    chunk = b"x" * (1 << 20)

    def send_a_huge_line() -> list[bytes]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5.0)  # every blocking step is bounded
            sock.connect(str(socket_path))
            for _ in range(100):
                sock.sendall(chunk)
            sock.sendall(b"\n" + request_line(2, "echo", {"after": "the long line"}))
            received = b""
            while received.count(b"\n") < 2:
                data = sock.recv(65536)
                assert data, "the node closed the connection"
                received += data
            return received.splitlines()

    async def body() -> None:
        await start(socket_path)
        tracing = tracemalloc.is_tracing()
        if not tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        try:
            lines = await within(anyio.to_thread.run_sync(send_a_huge_line), "100 MB", 10.0)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            if not tracing:
                tracemalloc.stop()
        first, second = (parse_reply(line) for line in lines)
        assert isinstance(first, ErrorReply)
        assert (first.id, first.error.type) == (None, LINE_TOO_LONG)
        assert second == Reply(id=2, result={"after": "the long line"})
        assert peak < 16 * (1 << 20), f"the node held {peak} bytes at its peak"
        assert await within(request(socket_path, "echo", {"next": 1}), "echo") == {"next": 1}

    await node.run_process(body)


async def test_a_lower_line_limit_is_honoured(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        await start(socket_path, options=ControlOptions(max_line=64))
        client = await LineClient.connect(socket_path)
        await client.send(request_line(1, "echo", {"pad": "y" * 100}) + request_line(2, "echo"))
        first = await client.message()
        assert isinstance(first, ErrorReply)
        assert (first.id, first.error.type) == (None, LINE_TOO_LONG)
        assert await client.message() == Reply(id=2, result={})
        await client.aclose()

    await node.run_process(body)


async def test_progress_to_a_slow_reader_is_dropped_never_the_reply(
    node: Node, socket_path: Path
) -> None:
    async def body() -> None:
        await start(socket_path, options=ControlOptions(outbox=8))
        client = await LineClient.connect(socket_path)
        await client.send(request_line(1, "steps", {"count": 10_000}))
        progress = 0
        while isinstance(message := await client.message(), Progress):
            progress += 1
        assert message == Reply(id=1, result="done")
        assert 0 < progress < 10_000
        await client.aclose()

    await node.run_process(body)


async def test_a_request_read_after_its_client_stopped_waiting_is_not_run(
    node: Node, socket_path: Path
) -> None:
    ran: list[object] = []

    async def record(args: dict[str, JsonValue], progress: object) -> JsonValue:
        ran.append(args)
        return "ran"

    async def body() -> None:
        await start(socket_path, {"record": record, "whoami": _support.whoami})
        client = await LineClient.connect(socket_path)
        late = json.dumps({"id": 1, "command": "record", "args": {}, "not_after": time.time() - 1})
        await client.send(late.encode() + b"\n")
        answer = await client.message()
        assert isinstance(answer, ErrorReply)
        assert answer.error.type == EXPIRED
        assert "not run" in answer.error.message
        assert ran == []
        in_time = json.dumps(
            {"id": 2, "command": "record", "args": {}, "not_after": time.time() + 60}
        )
        await client.send(in_time.encode() + b"\n")
        assert await client.message() == Reply(id=2, result="ran")
        assert ran == [{}]
        await client.aclose()

    await node.run_process(body)


def test_a_timeout_says_whether_the_command_may_have_run() -> None:
    unsent = str(ControlTimeout("run/control.sock", "install", 5, sent=False))
    assert "did not run" in unsent
    sent = str(ControlTimeout("run/control.sock", "install", 5, sent=True))
    assert "refuses it" in sent
    assert "server releases" in sent
