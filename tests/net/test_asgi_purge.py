"""When an ASGI application's old version is purged (issue 15, point 2 and 3).

An ASGI WebSocket coroutine lives in the version it started in: it keeps running across
one install, and is closed with 1012 (service restart) only when its old version must go,
at the next install (the installer purges the code from two versions ago before it loads,
as OTP kills the processes running old code on a second load) or when the application's
``purge_grace`` ends. A request still running old code then gets a 503 (or, answered in
part, its connection closed). A native handler's connections survive any number of purges.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from wsproto.events import CloseConnection, TextMessage

from server import code_server, kernel
from server.behaviours import gen_server
from server.net import _asgi_purger, asgi_lifespan
from server.net._asgi_connection import AsgiConfig
from server.spec.app_spec import AppSpec
from tests._support.waits import within
from tests.code_server._helpers import App, managed_package
from tests.net.test_asgi_connection import Client, connected, get, serving
from tests.net.test_asgi_websocket import WsClient

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from server.kernel import Node, Pid

WEB = """
    from server import kernel

    VSN = "$vsn"


    def tell(what):
        tester = kernel.whereis("purge_tester")
        if tester is not None:
            kernel.send(tester, what)


    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            assert (await receive())["type"] == "lifespan.startup"
            if VSN == "broken":
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            scope["state"]["vsn"] = VSN
            tell(("startup", VSN, kernel.self()))
            await send({"type": "lifespan.startup.complete"})
            assert (await receive())["type"] == "lifespan.shutdown"
            tell(("shutdown", VSN, kernel.self(), scope["state"]["vsn"]))
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            tell(("ws_open", VSN, kernel.self()))
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    tell(("ws_disconnect", VSN, message["code"]))
                    return
                await send({"type": "websocket.send", "text": VSN + ": " + message["text"]})
        if scope["path"] == "/hold":
            tell(("holding", kernel.self()))
            await kernel.receive(lambda m: m == "release")
        body = ('{"vsn": "' + VSN + '"}').encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
"""


@pytest.fixture
def web(tmp_path: Path) -> Iterator[App]:
    with managed_package(tmp_path, "purgeapp", "An ASGI application package", "web", WEB) as tree:
        yield tree


async def install(web: App, vsn: str) -> None:
    """What the release installer does for a module's load: purge the old code, load."""
    name = web.dotted("web")
    if code_server.has_old(name):
        await code_server.purge(name)
    web.load("web", WEB, vsn=vsn)


async def say(client: WsClient, text: str) -> str:
    await client.send(TextMessage(data=text))
    (answer,) = await client.events()
    assert isinstance(answer, TextMessage), answer
    return answer.data


async def closed_with(client: WsClient) -> int:
    """The code of the server's close; answered, then the TCP connection closed (as a
    browser does)."""
    events = await client.events()
    close = next(e for e in events if isinstance(e, CloseConnection))
    await client.send(close.response())
    await client.stream.send_eof()
    return close.code


def _tagged(tag: str) -> Callable[[object], bool]:
    return lambda m: type(m) is tuple and m[0] == tag


async def _told(tag: str, step: str) -> tuple[Any, ...]:
    """The tester's next message tagged ``tag``."""
    message = await within(kernel.receive(_tagged(tag)), step)
    assert isinstance(message, tuple)
    return message


async def test_a_websocket_keeps_its_version_across_one_install_and_gets_1012_at_the_next(
    node: Node, web: App
) -> None:
    name = web.dotted("web")

    async def body() -> None:
        kernel.register("purge_tester", kernel.self())
        async with serving(AsgiConfig(app=f"{name}:app")) as (stream, pid):
            ws = WsClient(stream)
            await ws.handshake()
            await within(kernel.receive(_tagged("ws_open")), "open")
            assert await say(ws, "a") == "v1: a"
            await install(web, "v2")
            assert await say(ws, "b") == "v1: b"  # still the coroutine it started in
            assert code_server.processes_in_old_code(name) == [pid]
            assert not code_server.soft_purge(name)
            ref = kernel.monitor(pid)
            await install(web, "v3")  # v1 must go now: its WebSocket is closed, 1012
            assert await within(closed_with(ws), "close") == 1012
            down = await within(kernel.receive(lambda m: getattr(m, "ref", None) is ref), "end")
            assert getattr(down, "reason", None) == kernel.NORMAL  # it ended, not killed
            assert [slot for slot, _ in web.slots("web")] == ["current", "old"]

    await node.run_process(body)


async def test_a_request_still_in_old_code_at_a_purge_gets_503_and_the_next_runs_new_code(
    node: Node, web: App
) -> None:
    name = web.dotted("web")

    async def body() -> None:
        kernel.register("purge_tester", kernel.self())
        async with connected("", app_name=f"{name}:app") as held:
            await held.send(get("/hold"))
            await within(kernel.receive(_tagged("holding")), "holding")
            await install(web, "v2")
            await install(web, "v3")
            answer = await within(held.answer(), "503")
            assert answer.status == 503
            assert answer.headers["connection"] == "close"
            assert await held.closed()
        async with connected("", app_name=f"{name}:app") as fresh:
            await fresh.send(get("/"))
            assert json.loads((await fresh.answer()).body) == {"vsn": "v3"}

    await node.run_process(body)


async def test_a_keep_alive_connection_idle_at_a_purge_stays_open_on_the_new_code(
    node: Node, web: App
) -> None:
    """The purge notice is the connection's for its life; between requests it runs none of
    the application's code, so a purge neither tells it nor ends it."""
    name = web.dotted("web")

    async def body() -> None:
        async with serving(AsgiConfig(app=f"{name}:app")) as (stream, pid):
            client = Client(stream)
            await client.send(get("/"))
            assert json.loads((await client.answer()).body) == {"vsn": "v1"}
            await install(web, "v2")
            await install(web, "v3")  # v1 purged: the idle connection ran it, earlier
            assert pid not in code_server.processes_in_old_code(name)
            await client.send(get("/"))
            assert json.loads((await client.answer()).body) == {"vsn": "v3"}
            assert kernel.is_alive(pid)

    await node.run_process(body)


async def test_a_lifespan_in_purged_code_is_replaced_by_the_current_versions_first(
    node: Node, web: App
) -> None:
    """The lifespan coroutine lives in the version it started in, as a WebSocket does; when
    that version is purged the current version's lifespan starts up (v2: the install
    purges before it loads v3), requests see its state, and only then the old one shuts
    down (with its own state). The lifespan's process stays, so the listener after it in
    the supervisor does not restart."""
    name = web.dotted("web")

    async def body() -> None:
        kernel.register("purge_tester", kernel.self())
        kernel.trap_exit(True)
        shared: dict[str, object] = {}
        server = await within(
            asgi_lifespan.start_link(f"{name}:app", state=shared), "lifespan start"
        )
        (_, vsn, first) = await _told("startup", "startup v1")
        assert vsn == "v1"
        assert shared == {"vsn": "v1"}
        await install(web, "v2")  # v1 is old code now: its lifespan goes on
        assert code_server.processes_in_old_code(name) == [first]
        await install(web, "v3")  # v1 must go: v2's lifespan first, then v1's shutdown
        (_, vsn, second) = await _told("startup", "startup v2")
        assert vsn == "v2"
        shutdown = await _told("shutdown", "shutdown v1")
        assert shutdown == ("shutdown", "v1", first, "v1"), "the old one saw its own state"
        assert shared == {"vsn": "v2"}
        assert kernel.is_alive(server)
        assert kernel.is_alive(second)
        assert not kernel.is_alive(first)
        assert code_server.processes_in_old_code(name) == [second]  # v2 is old now
        async with connected("", app_name=f"{name}:app", lifespan_state=shared) as client:
            await client.send(get("/"))
            assert json.loads((await client.answer()).body) == {"vsn": "v3"}
        await install(web, "v4")  # and again: v3's lifespan replaces v2's
        (_, vsn, third) = await _told("startup", "startup v3")
        assert vsn == "v3"
        assert await _told("shutdown", "shutdown v2") == (
            "shutdown", "v2", second, "v2",
        )  # fmt: skip
        assert shared == {"vsn": "v3"}
        assert kernel.is_alive(server)
        assert not kernel.is_alive(second)
        assert kernel.is_alive(third)

    await node.run_process(body)


async def test_a_replacement_lifespan_that_fails_its_startup_stops_the_server_with_why(
    node: Node, web: App
) -> None:
    name = web.dotted("web")

    async def body() -> None:
        kernel.register("purge_tester", kernel.self())
        kernel.trap_exit(True)
        server = await within(asgi_lifespan.start_link(f"{name}:app", state={}), "start")
        (_, _, first) = await _told("startup", "startup v1")
        await install(web, "broken")
        await install(web, "v3")  # v1 purged: the current version, broken, cannot start
        shutdown = await _told("shutdown", "shutdown v1")
        assert shutdown[:3] == ("shutdown", "v1", first), "the old one still shut down"
        ended = await within(
            kernel.receive(lambda m: isinstance(m, kernel.ExitMessage) and m.pid == server),
            "the server's end",
        )
        assert isinstance(ended, kernel.ExitMessage)
        assert ended.reason == ("lifespan_startup_failed", "no database")

    await node.run_process(body)


async def _start_purger(module: str, grace: float | None) -> tuple[Pid, str]:
    kernel.trap_exit(True)  # the purger is linked: a crash of it is an exit message here
    name = f"purger_{uuid.uuid4().hex}"
    return await within(_asgi_purger.start_link(module, grace, name=name), "purger"), name


async def test_without_a_grace_the_old_version_goes_once_its_last_request_is_done(
    node: Node, web: App
) -> None:
    name = web.dotted("web")

    async def body() -> None:
        kernel.register("purge_tester", kernel.self())
        purger, purger_name = await _start_purger(name, None)
        config = AsgiConfig(app=f"{name}:app", purger=purger_name)
        async with serving(config) as (ws_stream, ws_pid), serving(config) as (http_stream, _):
            ws = WsClient(ws_stream)
            await ws.handshake()
            await within(kernel.receive(_tagged("ws_open")), "open")
            http = Client(http_stream)
            await http.send(get("/hold"))
            holding = await within(kernel.receive(_tagged("holding")), "holding")
            assert isinstance(holding, tuple)
            await install(web, "v2")
            assert not code_server.soft_purge(name)  # what the installer's commit does
            assert await within(gen_server.call(purger, "lingering"), "lingering") == 2
            kernel.send(holding[1], "release")
            assert json.loads((await http.answer()).body) == {"vsn": "v1"}
            await http.send(get("/"))
            assert json.loads((await http.answer()).body) == {"vsn": "v2"}
            assert await within(gen_server.call(purger, "lingering"), "lingering") == 1
            assert await say(ws, "still") == "v1: still"  # no grace: it stays as long as it likes
            ref = kernel.monitor(ws_pid)
            await ws.send(CloseConnection(code=1000))
            await ws_stream.send_eof()
            await within(kernel.receive(lambda m: getattr(m, "ref", None) is ref), "ws end")
            assert await within(gen_server.call(purger, "lingering"), "lingering") == 0
            assert [slot for slot, _ in web.slots("web")] == [
                "current"
            ]  # soft-purged by the purger
        await within(gen_server.stop(purger), "purger stop")

    await node.run_process(body)


async def test_at_the_end_of_the_grace_lingering_websockets_get_1012(node: Node, web: App) -> None:
    name = web.dotted("web")

    async def body() -> None:
        kernel.register("purge_tester", kernel.self())
        purger, purger_name = await _start_purger(name, 0.0)
        config = AsgiConfig(app=f"{name}:app", purger=purger_name)
        async with serving(config) as (stream, _):
            ws = WsClient(stream)
            await ws.handshake()
            await within(kernel.receive(_tagged("ws_open")), "open")
            await install(web, "v2")
            assert not code_server.soft_purge(name)  # the grace (0 s) starts
            assert await within(closed_with(ws), "close") == 1012
            assert await within(gen_server.call(purger, "lingering"), "lingering") == 0
            assert [slot for slot, _ in web.slots("web")] == ["current"]
        await within(gen_server.stop(purger), "purger stop")

    await node.run_process(body)


def test_purge_grace_is_checked_by_the_spec() -> None:
    def spec(grace: object) -> AppSpec:
        return AppSpec.model_validate(
            {
                "name": "shop",
                "vsn": "1",
                "modules": ["tests.net.asgi_apps"],
                "asgi": {"app": "tests.net.asgi_apps:http_only", "purge_grace": grace},
            }
        )

    assert spec(30).asgi is not None
    assert spec(30).asgi.purge_grace == 30.0  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"purge_grace\n.*greater than or equal to 0"):
        spec(-1.0)
    with pytest.raises(ValueError, match=r"purge_grace\n.*valid number"):
        spec("soon")


HANDLER = """
    from server.net.websocket_handler import Accept, Send

    VSN = "$vsn"


    def on_connect(request, args):
        return Accept(0)


    def on_message(message, count):
        return Send([f"{VSN}: {message} #{count + 1}"], count + 1)
"""


async def test_a_native_handlers_websocket_survives_the_purges_of_installs_in_a_row(
    node: Node, web: App
) -> None:
    name = web.dotted("handler")
    web.first("handler", HANDLER, vsn="v1")
    config = AsgiConfig(app=f"{web.dotted('web')}:app", websocket_handler=name)

    async def body() -> None:
        async with serving(config) as (stream, pid):
            ws = WsClient(stream)
            await ws.handshake()
            assert await say(ws, "a") == "v1: a #1"
            for count, vsn in enumerate(("v2", "v3", "v4"), start=2):
                if code_server.has_old(name):
                    assert not await code_server.purge(name)  # nobody runs the old code
                web.load("handler", HANDLER, vsn=vsn)
                assert await say(ws, "b") == f"{vsn}: b #{count}"
            assert kernel.is_alive(pid)

    await node.run_process(body)
