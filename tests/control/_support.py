"""Helpers of the control socket tests: test commands and a raw line client.

Everything here runs inside a test process (``node.run_process(body)``); each wait is
bounded (``within`` / ``step``), so a hang fails at once and names the step.
"""

from __future__ import annotations

import json
from collections import deque
from typing import TYPE_CHECKING, Any, Final

import anyio

from server import kernel
from server.control import ControlOptions, ProgressInfo, start_link
from server.control.protocol import ErrorReply, LineDecoder, LineTooLong, Progress, parse_reply
from server.errors import NotPurged
from server.kernel import Pid, ProcessExit
from tests.behaviours._helpers import STEP, step, within

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from anyio.abc import SocketStream
    from pydantic import JsonValue

    from server.control import CommandHandler
    from server.control.protocol import Reply


async def echo(args: dict[str, Any], progress: Callable[[ProgressInfo], None]) -> JsonValue:
    return args


async def steps(args: dict[str, Any], progress: Callable[[ProgressInfo], None]) -> JsonValue:
    """Reports ``args["count"]`` progress steps, without waiting in between."""
    count = int(args["count"])
    for done in range(1, count + 1):
        progress(ProgressInfo(step="copy", done=done, total=count, detail=f"item {done}"))
    return "done"


async def refuse(args: dict[str, Any], progress: Callable[[ProgressInfo], None]) -> JsonValue:
    raise NotPurged(str(args.get("module", "counter")))


async def crash(args: dict[str, Any], progress: Callable[[ProgressInfo], None]) -> JsonValue:
    raise RuntimeError("the handler broke")


async def big(args: dict[str, Any], progress: Callable[[ProgressInfo], None]) -> JsonValue:
    return "x" * int(args["size"])


async def whoami(args: dict[str, Any], progress: Callable[[ProgressInfo], None]) -> JsonValue:
    return str(kernel.self())


async def not_json(args: dict[str, Any], progress: Callable[[ProgressInfo], None]) -> JsonValue:
    return {1, 2}  # type: ignore[return-value]  # deliberately not a JSON value


async def hang(args: dict[str, Any], progress: Callable[[ProgressInfo], None]) -> JsonValue:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover


async def end_process(args: dict[str, Any], progress: Callable[[ProgressInfo], None]) -> JsonValue:
    raise ProcessExit(kernel.NORMAL)


COMMANDS: Final[dict[str, CommandHandler]] = {
    "echo": echo,
    "steps": steps,
    "refuse": refuse,
    "crash": crash,
    "big": big,
    "whoami": whoami,
    "not_json": not_json,
    "hang": hang,
    "end_process": end_process,
}


async def start(
    path: Path,
    commands: dict[str, CommandHandler] | None = None,
    options: ControlOptions | None = None,
) -> Pid:
    """Start a control server linked to the test process."""
    return await within(
        start_link(
            path, COMMANDS if commands is None else commands, options=options or ControlOptions()
        ),
        "start the control server",
    )


def request_line(request_id: int, command: str, args: dict[str, Any] | None = None) -> bytes:
    """A request as the wire carries it."""
    return json.dumps({"id": request_id, "command": command, "args": args or {}}).encode() + b"\n"


class LineClient:
    """A raw client: sends bytes, reads the node's lines one at a time (bounded waits)."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self._decoder = LineDecoder(64 * 1024 * 1024)
        self._lines: deque[bytes] = deque()

    @classmethod
    async def connect(cls, path: Path) -> LineClient:
        return cls(await within(anyio.connect_unix(path), "connect"))

    async def send(self, data: bytes) -> None:
        await within(self.stream.send(data), "send")

    async def line(self, name: str = "a line from the node") -> bytes:
        with step(name):
            while not self._lines:
                for item in self._decoder.feed(await self.stream.receive()):
                    assert not isinstance(item, LineTooLong)
                    self._lines.append(item)
        return self._lines.popleft()

    async def message(self, name: str = "a message from the node") -> Reply | ErrorReply | Progress:
        return parse_reply(await self.line(name))

    async def closed(
        self, name: str = "the node closes the connection", limit: float = STEP
    ) -> list[bytes]:
        """Read until the node closes the connection; returns the lines still to come."""
        rest = list(self._lines)
        self._lines.clear()
        with step(name, limit):
            while True:
                try:
                    chunk = await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                    return rest
                rest.extend(i for i in self._decoder.feed(chunk) if isinstance(i, bytes))

    async def aclose(self) -> None:
        await self.stream.aclose()


async def connection_pid(client: LineClient) -> Pid:
    """The pid of the process serving ``client``'s connection (asks it ``whoami``)."""
    await client.send(request_line(0, "whoami"))
    answer = await client.message()
    assert not isinstance(answer, ErrorReply | Progress)
    for pid in kernel.processes():
        if str(pid) == answer.result:
            return pid
    raise AssertionError(f"no process {answer.result}")
