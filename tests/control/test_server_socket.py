"""The control socket file: its modes, stale and live sockets, refusals, removal at the end."""

from __future__ import annotations

import os
import socket
import stat
from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.behaviours import supervisor
from server.behaviours.supervisor_callbacks import ChildSpec, SupervisorSpec
from server.control import request, start_link
from server.errors import ControlSocketError, NodeNotRunning, SocketInUse
from tests.behaviours._helpers import reason_of, within
from tests.behaviours.callbacks import sup_given

from ._support import COMMANDS, LineClient, request_line, start

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Node


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _exists(path: Path) -> bool:
    return path.exists()


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _read(path: Path) -> str:
    return path.read_text()


async def test_the_socket_is_0600_in_a_folder_made_0700(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        assert not socket_path.parent.exists()
        await start(socket_path)
        assert stat.S_ISSOCK(os.lstat(socket_path).st_mode)
        assert _mode(socket_path) == 0o600
        assert _mode(socket_path.parent) == 0o700

    old = os.umask(0o000)  # even with the loosest umask
    try:
        await node.run_process(body)
    finally:
        os.umask(old)


async def test_an_existing_private_folder_is_kept_as_it_is(node: Node, socket_path: Path) -> None:
    socket_path.parent.mkdir(mode=0o750)
    os.chmod(socket_path.parent, 0o750)

    async def body() -> None:
        await start(socket_path)
        assert _mode(socket_path.parent) == 0o750
        assert _mode(socket_path) == 0o600

    await node.run_process(body)


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o703], ids=oct)
async def test_a_folder_writable_by_everyone_is_refused(
    node: Node, socket_path: Path, mode: int
) -> None:
    socket_path.parent.mkdir()
    os.chmod(socket_path.parent, mode)

    async def body() -> None:
        with pytest.raises(ControlSocketError, match="writable by every user") as caught:
            await within(start_link(socket_path, COMMANDS), "start")
        assert type(caught.value) is ControlSocketError
        assert caught.value.path == str(socket_path)

    await node.run_process(body)
    assert os.listdir(socket_path.parent) == []  # nothing made, not even the lock
    assert _mode(socket_path.parent) == mode


async def test_something_that_is_not_a_socket_is_never_removed(
    node: Node, socket_path: Path
) -> None:
    socket_path.parent.mkdir(mode=0o700)
    _write(socket_path, "precious")

    async def body() -> None:
        with pytest.raises(ControlSocketError, match="not a socket"):
            await within(start_link(socket_path, COMMANDS), "start")

    await node.run_process(body)
    assert _read(socket_path) == "precious"


async def test_a_path_too_long_for_a_unix_socket_is_refused(node: Node, socket_path: Path) -> None:
    long_path = socket_path.parent / ("d" * 120) / "control.sock"

    async def body() -> None:
        with pytest.raises(ControlSocketError, match="bytes long"):
            await within(start_link(long_path, COMMANDS), "start")

    await node.run_process(body)
    assert not long_path.parent.exists()


async def test_a_stale_socket_file_is_replaced(node: Node, socket_path: Path) -> None:
    socket_path.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(socket_path))  # a node that died: the file stays, nobody listens
    # a second name keeps the stale inode allocated, so the new socket cannot reuse it
    os.link(socket_path, socket_path.parent.parent / "stale")
    stale = os.lstat(socket_path).st_ino

    async def body() -> None:
        await start(socket_path)
        assert os.lstat(socket_path).st_ino != stale
        assert await within(request(socket_path, "echo", {"a": 1}), "echo") == {"a": 1}

    await node.run_process(body)


async def test_a_second_server_on_a_live_socket_is_refused(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        first = await start(socket_path)
        inode = os.lstat(socket_path).st_ino
        with pytest.raises(SocketInUse, match="another node is listening"):
            await within(start_link(socket_path, {}), "second start")
        assert kernel.is_alive(first)
        assert os.lstat(socket_path).st_ino == inode
        assert await within(request(socket_path, "echo", {"a": 1}), "echo") == {"a": 1}

    await node.run_process(body)


async def test_a_live_listener_that_takes_no_lock_is_refused(node: Node, socket_path: Path) -> None:
    """Say a node of an older version: it answers, so its socket is left alone."""
    socket_path.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(socket_path))
        other.listen(1)

        async def body() -> None:
            with pytest.raises(SocketInUse):
                await within(start_link(socket_path, {}), "start")

        await node.run_process(body)
        assert stat.S_ISSOCK(os.lstat(socket_path).st_mode)


@pytest.mark.parametrize("reason", ["shutdown", "kill", "upgrade_failed"])
async def test_the_socket_file_is_removed_when_the_server_ends(
    node: Node, socket_path: Path, reason: str
) -> None:
    async def body() -> None:
        server = await start(socket_path)
        kernel.unlink(server)
        ref = kernel.monitor(server)
        kernel.exit(server, reason)
        assert await reason_of(ref) == ("killed" if reason == "kill" else reason)
        assert not _exists(socket_path)
        with pytest.raises(NodeNotRunning):
            await within(request(socket_path, "echo"), "echo")
        # and the same path can be served again at once
        await start(socket_path)
        assert await within(request(socket_path, "echo"), "echo again") == {}

    await node.run_process(body)


async def test_open_connections_end_with_the_server(node: Node, socket_path: Path) -> None:
    async def body() -> None:
        server = await start(socket_path)
        kernel.unlink(server)
        client = await LineClient.connect(socket_path)
        await client.send(request_line(1, "echo"))
        await client.message()  # its connection process is running
        ref = kernel.monitor(server)
        kernel.exit(server, kernel.SHUTDOWN)
        await reason_of(ref)
        assert await client.closed() == []
        await client.aclose()

    await node.run_process(body)


async def test_under_a_supervisor(node: Node, socket_path: Path) -> None:
    """start_link is a supervisor's start function: terminate removes the socket, restart
    makes it again."""

    async def body() -> None:
        child = ChildSpec(id="control", start=(start_link, socket_path, COMMANDS))
        sup = await within(
            supervisor.start_link(sup_given, SupervisorSpec(children=[child])), "start sup"
        )
        assert sup is not None
        assert await within(request(socket_path, "echo"), "echo") == {}
        await within(supervisor.terminate_child(sup, "control"), "terminate")
        assert not _exists(socket_path)
        await within(supervisor.restart_child(sup, "control"), "restart")
        assert await within(request(socket_path, "echo"), "echo after restart") == {}
        kernel.unlink(sup)
        ref = kernel.monitor(sup)
        kernel.exit(sup, kernel.SHUTDOWN)
        await reason_of(ref)
        assert not _exists(socket_path)

    await node.run_process(body)


async def test_command_names_no_request_could_name_are_refused(
    node: Node, socket_path: Path
) -> None:
    async def body() -> None:
        commands = {"echo": COMMANDS["echo"], "Install": COMMANDS["echo"]}
        with pytest.raises(ValueError, match="'Install'"):
            await within(start_link(socket_path, commands), "start")

    await node.run_process(body)
    assert not _exists(socket_path.parent)
