"""Serving requests on real sockets: GET, POST, keep-alive, pipelining, errors, timeouts."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Final

import pytest

from server import kernel
from server.net import HttpLimits, http_server

from ._support import Client, reason_of, within

if TYPE_CHECKING:
    from server.kernel import Node, Pid

HANDLER: Final = "tests.net._handlers"


async def start(**options: object) -> Pid:
    return await within(
        http_server.start_link("127.0.0.1", 0, HANDLER, **options),  # type: ignore[arg-type]
        "start the listener",
    )


async def test_get_is_answered_by_the_handler(node: Node) -> None:
    async def body() -> None:
        listener = await start()
        async with await Client.connect(http_server.listening_port(listener)) as client:
            reply = await client.get("/hello")
            assert (reply.status, reply.body) == (200, b"hello")
            assert reply.header("content-type") == "text/plain; charset=utf-8"
            assert reply.header("content-length") == "5"
            assert reply.header("date") is not None
            assert reply.header("connection") is None
            missing = await client.get("/nowhere")
            assert (missing.status, missing.body) == (404, b"no such page")

    await node.run_process(body)


async def test_post_bodies_reach_the_handler(node: Node) -> None:
    async def body() -> None:
        listener = await start()
        async with await Client.connect(http_server.listening_port(listener)) as client:
            reply = await client.post("/echo?x=1", b"payload")
            assert reply.status == 200
            seen = json.loads(reply.body)
            assert (seen["method"], seen["query"], seen["body"]) == ("POST", "x=1", "payload")
            large = b"z" * 200_000  # many reads of the socket
            reply = await client.post("/echo", large)
            assert json.loads(reply.body)["body"] == large.decode()

    await node.run_process(body)


async def test_keep_alive_serves_many_requests_from_one_connection_process(node: Node) -> None:
    async def body() -> None:
        listener = await start()
        async with await Client.connect(http_server.listening_port(listener)) as client:
            pids = set()
            for n in range(5):
                reply = await client.post("/echo", str(n).encode())
                seen = json.loads(reply.body)
                assert (seen["body"], seen["keep_alive"]) == (str(n), True)
                pids.add(seen["pid"])
            assert len(pids) == 1
            assert http_server.count_connections(listener) == 1
            assert [repr(pid) for pid in http_server.which_connections(listener)] == list(pids)

    await node.run_process(body)


async def test_pipelined_requests_are_answered_in_order(node: Node) -> None:
    async def body() -> None:
        listener = await start()
        async with await Client.connect(http_server.listening_port(listener)) as client:
            await client.send(
                b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\na"
                b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n"
                b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nb"
            )
            first, second, third = [await client.read_response() for _ in range(3)]
            assert json.loads(first.body)["body"] == "a"
            assert second.body == b"hello"
            assert json.loads(third.body)["body"] == "b"

    await node.run_process(body)


async def test_connection_close_and_http_1_0_end_the_connection_after_the_answer(
    node: Node,
) -> None:
    async def body() -> None:
        port = http_server.listening_port(await start())
        async with await Client.connect(port) as client:
            reply = await client.get("/hello", "Connection: close")
            assert (reply.body, reply.header("connection")) == (b"hello", "close")
            assert await client.closed_by_peer()
        async with await Client.connect(port) as client:
            await client.send(b"GET /hello HTTP/1.0\r\n\r\n")
            reply = await client.read_response()
            assert (reply.body, reply.header("connection")) == (b"hello", "close")
            assert await client.closed_by_peer()
        async with await Client.connect(port) as client:
            reply = await client.get("/bye")  # the handler asks to close
            assert (reply.body, reply.header("connection")) == (b"bye", "close")
            assert await client.closed_by_peer()

    await node.run_process(body)


async def test_http_1_0_keep_alive_is_honoured(node: Node) -> None:
    async def body() -> None:
        listener = await start()
        async with await Client.connect(http_server.listening_port(listener)) as client:
            for _ in range(2):
                await client.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                reply = await client.read_response()
                assert (reply.body, reply.header("connection")) == (b"hello", "keep-alive")

    await node.run_process(body)


async def test_head_gets_no_body(node: Node) -> None:
    async def body() -> None:
        listener = await start()
        async with await Client.connect(http_server.listening_port(listener)) as client:
            await client.send(b"HEAD /hello HTTP/1.1\r\nHost: h\r\n\r\n")
            reply = await client.read_response(head_only=True)
            assert (reply.status, reply.header("content-length")) == (200, "5")
            assert (await client.get("/hello")).body == b"hello"  # nothing left over

    await node.run_process(body)


async def test_expect_100_continue_gets_the_interim_answer(node: Node) -> None:
    async def body() -> None:
        listener = await start()
        async with await Client.connect(http_server.listening_port(listener)) as client:
            await client.send(
                b"POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                b"Content-Length: 4\r\n\r\n"
            )
            interim = await client.read_response(head_only=True)
            assert interim.status == 100
            await client.send(b"data")
            reply = await client.read_response()
            assert json.loads(reply.body)["body"] == "data"

    await node.run_process(body)


@pytest.mark.parametrize("path", ["/boom", "/junk"])
async def test_a_failing_handler_gets_500_and_the_connection_goes_on(
    node: Node, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        listener = await start()
        async with await Client.connect(http_server.listening_port(listener)) as client:
            with caplog.at_level(logging.ERROR, logger="server.net"):
                failed = await client.get(path)
            assert (failed.status, failed.header("connection")) == (500, None)
            assert (await client.get("/hello")).body == b"hello"
            (connection,) = http_server.which_connections(listener)
        (record,) = [r for r in caplog.records if r.name.startswith("server.net")]
        assert record.__dict__["report"] == "http_handler_error"
        assert record.__dict__["handler"] == HANDLER
        assert record.__dict__["target"] == path
        assert record.__dict__["pid"] == repr(connection)
        assert record.exc_info is not None

    await node.run_process(body)


async def test_garbage_gets_400_and_closes_that_connection_only(node: Node) -> None:
    async def body() -> None:
        listener = await start()
        port = http_server.listening_port(listener)
        async with await Client.connect(port) as bystander, await Client.connect(port) as bad:
            assert (await bystander.get("/hello")).status == 200
            await bad.send(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
            refused = await bad.read_response()
            assert (refused.status, refused.header("connection")) == (400, "close")
            assert refused.body == b"Bad Request\n"
            assert await bad.closed_by_peer()
            assert (await bystander.get("/hello")).status == 200

    await node.run_process(body)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(b"GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505, id="505"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 501, id="501"
        ),
        pytest.param(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n", 413, id="413"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 300, 431, id="431"),
    ],
)
async def test_protocol_errors_are_answered_with_their_status(
    node: Node, request_bytes: bytes, status: int
) -> None:
    async def body() -> None:
        listener = await start(limits=HttpLimits(max_head_bytes=256, max_body_bytes=100))
        async with await Client.connect(http_server.listening_port(listener)) as client:
            await client.send(request_bytes)
            assert (await client.read_response()).status == status
            assert await client.closed_by_peer()

    await node.run_process(body)


async def test_an_idle_connection_is_closed_after_the_idle_timeout(node: Node) -> None:
    async def body() -> None:
        listener = await start(idle_timeout=0.05)
        port = http_server.listening_port(listener)
        async with await Client.connect(port) as client:
            assert (await client.get("/hello")).status == 200
            assert await client.closed_by_peer()  # quietly: nothing was pending
        async with await Client.connect(port) as client:
            await client.send(b"GET /hello HTTP/1.1\r\n")  # and nothing more
            reply = await client.read_response()
            assert (reply.status, reply.header("connection")) == (408, "close")
            assert await client.closed_by_peer()

    await node.run_process(body)


async def test_a_client_that_disconnects_ends_its_connection_process(node: Node) -> None:
    async def body() -> None:
        listener = await start()
        async with await Client.connect(http_server.listening_port(listener)) as client:
            assert (await client.get("/hello")).status == 200
            (connection,) = http_server.which_connections(listener)
            ref = kernel.monitor(connection)
            await client.stream.aclose()
            assert await reason_of(ref, step="connection ends") == kernel.NORMAL
        assert http_server.count_connections(listener) == 0

    await node.run_process(body)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"backlog": 0}, "backlog"),
    ],
)
async def test_bad_options_are_refused_before_anything_starts(
    node: Node, options: dict[str, object], message: str
) -> None:
    async def body() -> None:
        with pytest.raises(ValueError, match=message):
            await start(**options)

    await node.run_process(body)


@pytest.mark.parametrize("handler", ["", "not a module", "a..b"])
async def test_a_handler_must_be_a_dotted_name(node: Node, handler: str) -> None:
    async def body() -> None:
        with pytest.raises(ValueError, match="dotted module name"):
            await http_server.start_link("127.0.0.1", 0, handler)

    await node.run_process(body)


async def test_an_unknown_handler_module_is_a_500_per_request(node: Node) -> None:
    async def body() -> None:
        listener = await within(
            http_server.start_link("127.0.0.1", 0, "tests.net.no_such_handler"), "start"
        )
        async with await Client.connect(http_server.listening_port(listener)) as client:
            assert (await client.get("/")).status == 500
            assert (await client.get("/")).status == 500

    await node.run_process(body)
