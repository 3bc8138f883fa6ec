"""``reuse_port``: listeners that share one port, and the refusal when one does not ask."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import pytest

from server import kernel
from server.errors import StartError
from server.net import http_server
from server.net.http_server import HttpDefaults

from ._support import Client, within

if TYPE_CHECKING:
    from server.kernel import Node, Pid

HANDLER: Final = "tests.net._handlers"
CONNECTIONS: Final = 32  # every one on the same listener by chance: 2 ** -31


async def start(port: int = 0, **options: object) -> Pid:
    return await within(
        http_server.start_link("127.0.0.1", port, HANDLER, **options),  # type: ignore[arg-type]
        "start the listener",
    )


async def test_two_listeners_share_a_port_and_the_kernel_spreads_connections(
    node: Node,
) -> None:
    async def body() -> None:
        first = await start(reuse_port=True)
        port = http_server.listening_port(first)
        second = await start(port, reuse_port=True)
        assert http_server.listening_port(second) == port
        clients = [await Client.connect(port) for _ in range(CONNECTIONS)]
        try:
            for client in clients:  # answered: accepted by one of the two
                assert (await client.get("/hello")).status == 200
            counts = [http_server.count_connections(p) for p in (first, second)]
            assert sum(counts) == CONNECTIONS
            assert min(counts) > 0, counts
        finally:
            for client in clients:
                await client.stream.aclose()

    await node.run_process(body)


@pytest.mark.parametrize(
    ("first", "second"),
    [(False, False), (True, False), (False, True)],
    ids=["neither", "only-the-first", "only-the-second"],
)
async def test_without_reuse_port_on_both_the_second_is_refused_naming_the_setting(
    node: Node, first: bool, second: bool
) -> None:
    async def body() -> None:
        holder = await start(reuse_port=first)
        port = http_server.listening_port(holder)
        before = kernel.processes()
        with pytest.raises(StartError, match=rf"127\.0\.0\.1:{port}.*in use") as caught:
            await start(port, reuse_port=second)
        assert ("[node.http] reuse_port" in str(caught.value)) is second  # asked to share
        assert kernel.processes() == before
        async with await Client.connect(port) as client:
            assert (await client.get("/hello")).status == 200

    await node.run_process(body)


async def test_the_node_default_applies_to_listeners_that_do_not_say(node: Node) -> None:
    async def body() -> None:
        http_server.configure(HttpDefaults(reuse_port=True))
        try:
            first = await start()
            second = await start(http_server.listening_port(first))
            assert http_server.listening_port(second) == http_server.listening_port(first)
        finally:
            http_server.configure(HttpDefaults())

    await node.run_process(body)
