"""Live upgrade of the handler: a new version answers the next request on an open connection.

The connection processes run library code only; the handler module is found through its
current version at each request. So after a load the next request on a keep-alive
connection is served by the new version, and between requests no connection process runs
the old version (``check_process_code`` is False, ``soft_purge`` succeeds). A request in
flight in the old version does count, until it has been answered.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final

from server import code_server, kernel
from server.net import http_server

from ._support import Client, within

if TYPE_CHECKING:
    from server.kernel import Node

    from .conftest import HandlerModule

VERSION: Final = """
    from server import kernel
    from server.net import text_response

    __vsn__ = "{vsn}"


    async def handle_request(request, args):
        if request.path == "/wait":
            kernel.send(args, ("parked", kernel.self()))
            await kernel.receive(lambda m: m == "go")
        return text_response("served by {vsn}")
"""


def version(vsn: str) -> str:
    return VERSION.replace("{vsn}", vsn)


async def test_a_reloaded_handler_serves_the_next_request_on_the_same_connection(
    node: Node, handler_module: HandlerModule
) -> None:
    handler_module.write(version("1"))
    importlib.import_module(handler_module.name)
    name = handler_module.name

    async def body() -> None:
        listener = await within(http_server.start_link("127.0.0.1", 0, name), "start")
        async with await Client.connect(http_server.listening_port(listener)) as client:
            assert (await client.get("/")).body == b"served by 1"
            (connection,) = http_server.which_connections(listener)

            handler_module.write(version("2"))
            code_server.load(name)
            assert [v.vsn for v in code_server.which_versions(name)] == ["2", "1"]
            assert code_server.check_process_code(connection, name) is False

            assert (await client.get("/")).body == b"served by 2"
            assert http_server.which_connections(listener) == [connection]  # same process
            assert code_server.soft_purge(name) is True
            assert (await client.get("/")).body == b"served by 2"

    await node.run_process(body)


async def test_a_request_in_flight_in_the_old_version_counts_until_answered(
    node: Node, handler_module: HandlerModule
) -> None:
    handler_module.write(version("1"))
    importlib.import_module(handler_module.name)
    name = handler_module.name

    async def body() -> None:
        listener = await within(
            http_server.start_link("127.0.0.1", 0, name, kernel.self()), "start"
        )
        async with await Client.connect(http_server.listening_port(listener)) as client:
            await client.send(b"GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
            parked = await within(kernel.receive(), "the handler runs")
            assert type(parked) is tuple
            assert parked[0] == "parked"
            connection = parked[1]

            handler_module.write(version("2"))
            code_server.load(name)
            assert code_server.check_process_code(connection, name) is True
            assert code_server.soft_purge(name) is False  # refused: nothing changed
            assert code_server.check_process_code(listener, name) is False

            kernel.send(connection, "go")
            assert (await client.read_response()).body == b"served by 1"  # finished in v1
            assert code_server.check_process_code(connection, name) is False
            assert (await client.get("/")).body == b"served by 2"
            assert code_server.soft_purge(name) is True

    await node.run_process(body)
