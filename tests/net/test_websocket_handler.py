"""A native WebSocket handler moves to new code at its next message, across upgrades.

The handler module is managed by the code server; each test loads new versions of it while
a WebSocket is open and checks what the next message runs, and that the connection process
holds no frame of an old version between messages (so a soft purge succeeds at once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from wsproto.events import CloseConnection, RejectConnection, TextMessage

from server import code_server, kernel
from server.net._asgi_connection import AsgiConfig
from tests.code_server._helpers import App, managed_package
from tests.net.test_asgi_connection import serving
from tests.net.test_asgi_websocket import WsClient

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from server.kernel import Node

pytestmark = pytest.mark.usefixtures("asgi_parser")  # each HTTP/1.1 parser in turn

HANDLER = """
    from server import kernel
    from server.net.websocket_handler import Accept, Close, Keep, Refuse, Send

    VSN = "$vsn"


    def on_connect(request, args):
        if request.path == "/no":
            return Refuse()
        return Accept(state=0, subprotocol=None)


    def on_message(message, count):
        if message == "boom":
            raise RuntimeError("the handler failed")
        if message == "bye":
            return Close(4001, count)
        if message == "quiet":
            return Keep(count + 1)
        return Send([f"{VSN}: {message} #{count + 1}"], count + 1)


    def on_close(code, count):
        tester = kernel.whereis("ws_tester")
        if tester is not None:
            kernel.send(tester, ("closed", code, count))
"""


@pytest.fixture
def handler(tmp_path: Path) -> Iterator[App]:
    with managed_package(tmp_path, "wsapp", "A WebSocket handler package", "ws", HANDLER) as tree:
        yield tree


def _config(handler: App) -> AsgiConfig:
    return AsgiConfig(app="tests.net.asgi_apps:http_only", websocket_handler=handler.dotted("ws"))


async def _say(client: WsClient, text: str) -> str:
    await client.send(TextMessage(data=text))
    (answer,) = await client.events()
    assert isinstance(answer, TextMessage), answer
    return answer.data


async def test_an_open_websocket_runs_each_new_version_at_its_next_message(
    node: Node, handler: App
) -> None:
    name = handler.dotted("ws")

    async def body() -> None:
        kernel.register("ws_tester", kernel.self())
        async with serving(_config(handler)) as (stream, pid):
            client = WsClient(stream)
            await client.handshake()
            assert await _say(client, "a") == "v1: a #1"
            for vsn in ("v2", "v3"):
                handler.load("ws", HANDLER, vsn=vsn)
                assert not code_server.check_process_code(pid, name)  # no old frame between
                assert code_server.soft_purge(name)
                assert await _say(client, "b") == f"{vsn}: b #{2 if vsn == 'v2' else 3}"
            await client.send(TextMessage(data="bye"))
            (close,) = await client.events()
            assert isinstance(close, CloseConnection)
            assert close.code == 4001
            assert await kernel.receive() == ("closed", 4001, 3)

    await node.run_process(body)


async def test_a_failing_handler_closes_with_1011_and_on_close_still_runs(
    node: Node, handler: App
) -> None:
    async def body() -> None:
        kernel.register("ws_tester", kernel.self())
        async with serving(_config(handler)) as (stream, _):
            client = WsClient(stream)
            await client.handshake()
            await client.send(TextMessage(data="quiet"))
            await client.send(TextMessage(data="boom"))
            (close,) = await client.events()
            assert isinstance(close, CloseConnection)
            assert close.code == 1011
            assert await kernel.receive() == ("closed", 1011, 1)

    await node.run_process(body)


async def test_a_refused_websocket_gets_403(node: Node, handler: App) -> None:
    async def body() -> None:
        async with serving(_config(handler)) as (stream, _):
            client = WsClient(stream)
            refused = await client.handshake("/no")
            assert isinstance(refused, RejectConnection)
            assert refused.status_code == 403

    await node.run_process(body)


async def test_a_client_that_closes_is_seen_by_on_close_with_its_code(
    node: Node, handler: App
) -> None:
    async def body() -> None:
        kernel.register("ws_tester", kernel.self())
        async with serving(_config(handler)) as (stream, _):
            client = WsClient(stream)
            await client.handshake()
            assert await _say(client, "x") == "v1: x #1"
            await client.send(CloseConnection(code=1001))
            assert await kernel.receive() == ("closed", 1001, 1)

    await node.run_process(body)
