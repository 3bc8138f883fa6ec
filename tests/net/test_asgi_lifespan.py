"""The ASGI lifespan protocol under a supervisor: startup before serving, shutdown after.

On virtual time: the shutdown timeout costs no real time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.behaviours import gen_server
from server.errors import StartError
from server.net import asgi_lifespan
from tests.behaviours._helpers import within

if TYPE_CHECKING:
    from server.kernel import Node

pytestmark = pytest.mark.virtual_time

APPS = "tests.net.asgi_apps"


async def test_startup_completes_before_start_returns_and_shutdown_runs_at_stop(
    node: Node,
) -> None:
    async def body() -> None:
        kernel.register("asgi_tester", kernel.self())
        pid = await within(asgi_lifespan.start_link(f"{APPS}:lifespan_ok"), "start")
        told = await within(kernel.receive(), "startup told")
        assert isinstance(told, tuple)
        runner = told[1]
        assert kernel.is_alive(runner)
        kernel.unlink(pid)
        await within(gen_server.stop(pid, "shutdown"), "stop")
        assert await within(kernel.receive(), "shutdown told") == ("shutdown", runner)
        assert not kernel.is_alive(runner)

    await node.run_process(body)


@pytest.mark.parametrize(
    ("app", "why"),
    [
        ("lifespan_fails", "the database is unreachable"),
        ("lifespan_raises", "RuntimeError: startup exploded"),
    ],
)
async def test_a_failed_startup_fails_the_start_with_its_reason(
    node: Node, app: str, why: str
) -> None:
    async def body() -> None:
        with pytest.raises(StartError, match="lifespan_startup_failed") as failed:
            await within(asgi_lifespan.start_link(f"{APPS}:{app}"), "start")
        assert why in str(failed.value)

    await node.run_process(body)


async def test_an_application_without_lifespan_starts_without_startup_or_shutdown(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "server.net.asgi")

    async def body() -> None:
        pid = await within(asgi_lifespan.start_link(f"{APPS}:http_only"), "start")
        kernel.unlink(pid)
        await within(gen_server.stop(pid, "shutdown"), "stop")

    await node.run_process(body)
    assert "does not speak the lifespan protocol" in caplog.text
    assert "crash report" not in caplog.text


async def test_a_shutdown_that_never_completes_is_ended_after_its_timeout(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        kernel.register("asgi_tester", kernel.self())
        app = f"{APPS}:lifespan_hangs_at_shutdown"
        pid = await within(asgi_lifespan.start_link(app, shutdown_timeout=3.0), "start")
        kernel.unlink(pid)
        await within(gen_server.stop(pid, "shutdown"), "stop", 10)
        told = await within(kernel.receive(), "hanging told")
        assert isinstance(told, tuple)
        runner = told[1]
        assert not kernel.is_alive(runner)

    await node.run_process(body)
    assert "took more than 3 s" in caplog.text


async def test_an_application_name_is_checked_before_anything_starts(node: Node) -> None:
    async def body() -> None:
        with pytest.raises(ValueError, match="module:attribute"):
            await asgi_lifespan.start_link("no-colon")

    await node.run_process(body)
