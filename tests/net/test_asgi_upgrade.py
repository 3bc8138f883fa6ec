"""An ASGI application's module loaded anew while connections are open (point 2 of issue 15).

Each new request runs the current version, keep-alive connections included; a request in
flight finishes on the version it started on, and the connection process counts as running
old code only while that request runs (so a soft purge waits for it, then succeeds).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from server import code_server, kernel
from tests.code_server._helpers import App, managed_package
from tests.net.test_asgi_connection import Client, connected, get

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from server.kernel import Node

pytestmark = pytest.mark.usefixtures("asgi_parser")  # each HTTP/1.1 parser in turn

WEB = """
    from server import kernel

    VSN = "$vsn"


    async def app(scope, receive, send):
        if scope["path"] == "/hold":
            kernel.send(kernel.whereis("asgi_tester"), ("holding", kernel.self()))
            await kernel.receive(lambda m: m == "release")
        body = ('{"vsn": "' + VSN + '"}').encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
"""


@pytest.fixture
def web(tmp_path: Path) -> Iterator[App]:
    with managed_package(tmp_path, "asgiapp", "An ASGI application package", "web", WEB) as tree:
        yield tree


async def _vsn(client: Client, path: str = "/") -> str:
    await client.send(get(path))
    answer = await client.answer()
    assert answer.status == 200
    return str(json.loads(answer.body)["vsn"])


async def test_new_requests_run_the_new_version_and_one_in_flight_finishes_on_its_own(
    node: Node, web: App
) -> None:
    async def body() -> None:
        kernel.register("asgi_tester", kernel.self())
        name = web.dotted("web")
        served = f"{name}:app"
        async with (
            connected("", app_name=served) as first,
            connected("", app_name=served) as second,
        ):
            assert await _vsn(first) == "v1"
            await second.send(get("/hold"))  # in flight on v1
            holding = await kernel.receive(lambda m: type(m) is tuple and m[0] == "holding")
            assert isinstance(holding, tuple)
            held = holding[1]
            web.load("web", WEB, vsn="v2")
            assert await _vsn(first) == "v2"  # the same keep-alive connection, new code
            assert code_server.check_process_code(held, name)  # still in v1's frames
            assert not code_server.soft_purge(name)
            kernel.send(held, "release")
            answer = await second.answer()
            assert json.loads(answer.body)["vsn"] == "v1"  # finished where it started
            assert await _vsn(second) == "v2"
            assert not code_server.check_process_code(held, name)
            assert code_server.soft_purge(name)

    await node.run_process(body)
