"""``server dev``: a real node process, real edits on disk, answers from the new code."""

from __future__ import annotations

import sys
import uuid
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.node

GREETER = """
from server import kernel

__vsn__ = "{vsn}"


def greeting() -> str:
    return "hello {vsn}"


async def linger() -> None:
    while True:  # a local loop: stays in this version until purged
        await kernel.receive()
"""

MAIN = """
import anyio

from server import kernel

import {app}.greeter as greeter


async def main() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    print(f"PORT {{port}}", flush=True)
    kernel.spawn(greeter.linger)

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.send(greeter.greeting().encode())  # a qualified call

    await listener.serve(serve)
"""


class DevNode:
    def __init__(self, process: anyio.abc.Process, root: Path, app: str) -> None:
        self.process = process
        self.root = root
        self.app = app
        assert process.stdout is not None
        self.lines = _lines(process.stdout)
        self.port = 0

    async def expect(self, prefix: str) -> str:
        with anyio.fail_after(20):
            async for line in self.lines:
                if line.startswith(prefix):
                    return line
        raise AssertionError(f"the node ended before printing {prefix!r}")

    async def ask(self) -> str:
        with anyio.fail_after(10):
            async with await anyio.connect_tcp("127.0.0.1", self.port) as stream:
                chunks = []
                while True:
                    try:
                        chunks.append(await stream.receive())
                    except anyio.EndOfStream:
                        break
                return b"".join(chunks).decode()

    def edit_greeter(self, text: str) -> None:
        (self.root / self.app / "greeter.py").write_text(text)


async def _lines(stream: anyio.abc.ByteReceiveStream) -> AsyncIterator[str]:
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode()


@pytest.fixture
async def dev_node(tmp_path: Path) -> AsyncIterator[DevNode]:
    app = f"devapp_{uuid.uuid4().hex[:8]}"
    package = tmp_path / app
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "greeter.py").write_text(GREETER.format(vsn="v1"))
    (package / "main.py").write_text(MAIN.format(app=app))
    command = [sys.executable, "-m", "server", "dev", "--path", str(tmp_path)]
    command += ["--start", f"{app}.main", "--grace", "0.5"]
    process = await anyio.open_process(command, stderr=None)
    node = DevNode(process, tmp_path, app)
    try:
        node.port = int((await node.expect("PORT ")).split()[1])
        await node.expect("ready")
        yield node
    finally:
        process.terminate()
        with anyio.fail_after(10):
            await process.wait()


async def test_an_edit_is_reloaded_in_place_and_answers_with_the_new_code(
    dev_node: DevNode,
) -> None:
    assert await dev_node.ask() == "hello v1"
    dev_node.edit_greeter(GREETER.format(vsn="v2"))
    line = await dev_node.expect("reloaded")
    assert f"{dev_node.app}.greeter" in line
    assert "vsn v2" in line
    assert await dev_node.ask() == "hello v2"


async def test_a_syntax_error_is_refused_and_the_working_code_keeps_running(
    dev_node: DevNode,
) -> None:
    dev_node.edit_greeter("def greeting(:\n    return 'broken'\n")
    line = await dev_node.expect("refused")
    assert f"{dev_node.app}.greeter" in line
    assert "greeter.py:1" in line
    assert await dev_node.ask() == "hello v1"
    dev_node.edit_greeter(GREETER.format(vsn="v3"))
    await dev_node.expect("reloaded")
    assert await dev_node.ask() == "hello v3"


async def test_a_process_left_in_old_code_is_purged_after_the_grace_period(
    dev_node: DevNode,
) -> None:
    dev_node.edit_greeter(GREETER.format(vsn="v2"))
    await dev_node.expect("reloaded")
    line = await dev_node.expect("purged")
    assert "killed 1 process(es) still in old code" in line
    assert await dev_node.ask() == "hello v2"


async def test_an_edit_of_the_start_module_restarts_the_start_function_the_purge_killed(
    dev_node: DevNode,
) -> None:
    main = dev_node.root / dev_node.app / "main.py"
    main.write_text(main.read_text() + "\n# edited\n")
    await dev_node.expect(f"reloaded {dev_node.app}.main")
    line = await dev_node.expect("restarted")
    assert f"{dev_node.app}.main:main: the purge of {dev_node.app}.main killed it" in line
    dev_node.port = int((await dev_node.expect("PORT ")).split()[1])  # it listens again
    assert await dev_node.ask() == "hello v1"


async def test_a_start_function_that_cannot_be_found_is_one_server_line(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "server", "dev", "--path", str(tmp_path)]
    done = await anyio.run_process([*command, "--start", "nosuch.main"], check=False)
    assert done.returncode == 1
    assert done.stderr.decode().startswith("server: module nosuch.main cannot be imported")
    assert done.stderr.decode().count("\n") == 1
