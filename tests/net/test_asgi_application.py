"""An application spec's ``[asgi]`` table: the controller starts the lifespan, then serves."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import anyio
import pytest

from server import kernel
from server.app import controller
from server.errors import ApplicationError
from server.spec.app_spec import AppSpec
from tests._support.nodes import free_port
from tests.behaviours._helpers import within
from tests.net.test_asgi_connection import Client, get

if TYPE_CHECKING:
    from server.kernel import Node


async def _boot() -> None:
    kernel.trap_exit(True)
    await within(controller.start_link(None), "controller start")


def _spec(app: str, port: int) -> AppSpec:
    return AppSpec.model_validate(
        {
            "name": "shop",
            "vsn": "1.0.0",
            "modules": ["tests.net.asgi_apps"],
            "asgi": {"app": f"tests.net.asgi_apps:{app}", "port": 1},
            "env": {"port": port},
        }
    )


async def test_an_asgi_application_starts_its_lifespan_serves_and_shuts_down(node: Node) -> None:
    async def body() -> None:
        await _boot()
        kernel.register("asgi_tester", kernel.self())
        port = free_port()
        await within(controller.load_application(_spec("combined", port)), "load")
        await within(controller.start_application("shop", "temporary"), "start")
        told = await within(kernel.receive(), "startup")
        assert isinstance(told, tuple)
        assert told[0] == "startup"
        purger = kernel.whereis("asgi_purger_shop")  # the app module's purger, in the tree
        assert purger is not None
        assert kernel.get_label(purger, "module") == "tests.net.asgi_apps"
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:  # env's port won
            client = Client(stream)
            await client.send(get("/hello"))
            assert json.loads((await client.answer()).body) == {"path": "/hello"}
        await within(controller.stop_application("shop"), "stop")
        assert await within(kernel.receive(), "shutdown") == ("shutdown", told[1])
        with pytest.raises(OSError, match=r"refused|connect"):
            await anyio.connect_tcp("127.0.0.1", port)

    await node.run_process(body)


async def test_a_failing_lifespan_startup_fails_the_applications_start(node: Node) -> None:
    async def body() -> None:
        await _boot()
        await within(controller.load_application(_spec("lifespan_fails", free_port())), "load")
        with pytest.raises(ApplicationError, match="the database is unreachable"):
            await within(controller.start_application("shop", "temporary"), "start")
        running = await within(controller.which_applications(), "which")
        assert "shop" not in [row.name for row in running]

    await node.run_process(body)


@pytest.mark.parametrize(
    ("asgi", "why"),
    [
        ({"app": "no_colon"}, "String should match pattern"),
        ({"app": "elsewhere.mod:app"}, "asgi: module elsewhere.mod must be listed in modules"),
        ({"app": "tests.net.asgi_apps:app", "port": 70000}, "less than or equal to 65535"),
    ],
)
def test_a_bad_asgi_table_is_refused_naming_the_field(asgi: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        AppSpec.model_validate(
            {"name": "shop", "vsn": "1", "modules": ["tests.net.asgi_apps"], "asgi": asgi}
        )


async def test_what_the_lifespan_puts_in_its_state_is_copied_into_every_request(
    node: Node,
) -> None:
    async def body() -> None:
        await _boot()
        port = free_port()
        await within(controller.load_application(_spec("lifespan_state", port)), "load")
        await within(controller.start_application("shop", "temporary"), "start")
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            client = Client(stream)
            for _ in range(2):  # a request's change to its copy is not seen by the next
                await client.send(get("/"))
                assert json.loads((await client.answer()).body) == {"greeting": "hello"}
        await within(controller.stop_application("shop"), "stop")

    await node.run_process(body)
