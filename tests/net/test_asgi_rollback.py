"""A failing ``code_change`` rolled back with WebSockets of both kinds open (issue 15).

The demo's ``counter.store`` also serves WebSockets here: an ASGI ``websocket`` coroutine
(``ws_app``, which lives in the version it started in) and a native handler
(``on_connect`` / ``on_message``, looked up at each message). An install of a release
whose ``counter.store.code_change`` raises loads the new version, fails, and is rolled
back: both WebSockets are still open afterwards and answer from the version they ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from wsproto.events import TextMessage

from server import code_server, kernel
from server.errors import InstallFailed
from server.net._asgi_connection import AsgiConfig
from server.release import handler
from tests._support.waits import within
from tests.net.test_asgi_connection import serving
from tests.net.test_asgi_websocket import WsClient
from tests.release._live import boot_demo, stop_demo
from tests.release._variants import make_variant

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Node

WEBSOCKETS = '''
async def ws_app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI WebSocket that echoes with this version's vsn."""
    await receive()
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": f"asgi {__vsn__}: {message['text']}"})


def on_connect(request: Any, args: Any) -> Any:
    from server.net.websocket_handler import Accept

    return Accept(0)


def on_message(message: Any, count: Any) -> Any:
    from server.net.websocket_handler import Send

    return Send([f"native {__vsn__}: {message} #{count + 1}"], count + 1)


'''

RAISES_IN_PLACE = """
from server import kernel
if kernel.whereis("counter_store") == kernel.self():
    raise ValueError("migration bug")
return dict(state)
"""


def _serve_websockets_from_the_store(demo_tree: Path) -> None:
    store = demo_tree / "apps" / "counter-1.0.0" / "counter" / "store.py"
    text = store.read_text()
    assert "def code_change(" in text
    store.write_text(text.replace("def code_change(", WEBSOCKETS + "def code_change(", 1))


async def _say(client: WsClient, text: str) -> str:
    await client.send(TextMessage(data=text))
    (answer,) = await client.events()
    assert isinstance(answer, TextMessage), answer
    return answer.data


async def test_a_failing_code_change_is_rolled_back_with_both_kinds_of_websocket_open(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    _serve_websockets_from_the_store(demo_tree)
    make_variant(demo_tree, "1.0.1", RAISES_IN_PLACE)

    async def run() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        asgi = AsgiConfig(app="counter.store:ws_app")
        native = AsgiConfig(app="counter.store:ws_app", websocket_handler="counter.store")
        try:
            async with serving(asgi) as (a_stream, a_pid), serving(native) as (n_stream, _):
                a, n = WsClient(a_stream), WsClient(n_stream)
                await a.handshake()
                await n.handshake()
                assert await _say(a, "one") == "asgi 1.0.0: one"
                assert await _say(n, "one") == "native 1.0.0: one #1"
                await within(handler.unpack(demo.package("1.0.1")), "unpack", 30)
                with pytest.raises(InstallFailed, match="migration bug") as info:
                    await within(handler.install("1.0.1"), "install", 30)
                assert info.value.outcome == "rolled_back"
                assert kernel.is_alive(a_pid)
                assert await _say(a, "two") == "asgi 1.0.0: two"
                assert await _say(n, "two") == "native 1.0.0: two #2"
                versions = code_server.which_versions("counter.store")
                assert [(v.slot, v.vsn) for v in versions] == [("current", "1.0.0")]
                assert not code_server.check_process_code(a_pid, "counter.store")
        finally:
            await stop_demo(demo)

    await node.run_process(run)
