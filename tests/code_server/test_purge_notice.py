"""A purge tells the processes that asked (``on_purge``) before it kills them; a refused
soft purge is told to the processes that watch the module (``watch_old_code``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from server import code_server, kernel
from server.code_server._table import PURGE_NOTICE_TIMEOUT
from server.kernel import DownMessage

from ._helpers import WORKER, down, recv, started

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from server.kernel import Node, Pid

    from ._helpers import App

pytestmark = pytest.mark.virtual_time


async def _leaves_on_notice(park: Callable[[Pid], Awaitable[object]], tester: Pid) -> None:
    """Runs ``park`` (old code) under a purge notice that cancels it; then waits in here."""
    left = anyio.Event()
    me = kernel.self()
    with anyio.CancelScope() as scope:

        def notice(module: str) -> anyio.Event:  # called by the purging process
            kernel.send(tester, ("noticed", me, module))
            scope.cancel()
            return left

        code_server.on_purge(notice)
        await park(tester)
    code_server.on_purge(None)
    left.set()
    await kernel.receive(lambda m: m == "stop")


async def _ignores_the_notice(park: Callable[[Pid], Awaitable[object]], tester: Pid) -> None:
    code_server.on_purge(lambda module: None)  # None: wait for my end (which never comes)
    await park(tester)


async def test_a_process_that_leaves_the_old_code_on_notice_is_not_killed(
    app: App, node: Node
) -> None:
    app.first("worker", WORKER, vsn="v1")
    worker = app.import_("worker")
    name = app.dotted("worker")

    async def body() -> None:
        me = kernel.self()
        pid, ref = kernel.spawn_monitor(_leaves_on_notice, worker.park, me)
        await started("parked", pid, "v1", step="parked in v1")
        app.load("worker", WORKER, vsn="v2")
        assert await code_server.purge(name) is False  # nobody killed
        assert await recv(lambda m: type(m) is tuple and m[0] == "noticed", step="notice") == (
            "noticed",
            pid,
            name,
        )
        assert kernel.is_alive(pid)
        assert not code_server.check_process_code(pid, name)
        assert [slot for slot, _ in app.slots("worker")] == ["current"]
        kernel.send(pid, "stop")
        assert await down(ref, step="end") == DownMessage(ref, pid, kernel.NORMAL)

    await node.run_process(body)


async def test_a_process_still_in_old_code_after_the_notice_timeout_is_killed(
    app: App, node: Node
) -> None:
    app.first("worker", WORKER, vsn="v1")
    worker = app.import_("worker")
    name = app.dotted("worker")

    async def body() -> None:
        me = kernel.self()
        pid, ref = kernel.spawn_monitor(_ignores_the_notice, worker.park, me)
        await started("parked", pid, "v1", step="parked in v1")
        app.load("worker", WORKER, vsn="v2")
        began = anyio.current_time()
        assert await code_server.purge(name) is True
        assert anyio.current_time() - began >= PURGE_NOTICE_TIMEOUT  # virtual seconds
        assert await down(ref, step="killed") == DownMessage(ref, pid, kernel.KILLED)

    await node.run_process(body)


async def test_a_refused_soft_purge_is_told_to_the_watchers_of_the_module(
    app: App, node: Node
) -> None:
    app.first("worker", WORKER, vsn="v1")
    worker = app.import_("worker")
    name = app.dotted("worker")

    async def body() -> None:
        me = kernel.self()
        code_server.watch_old_code(name)
        pid, _ = kernel.spawn_monitor(worker.park, me)
        await started("parked", pid, "v1", step="parked in v1")
        app.load("worker", WORKER, vsn="v2")
        assert not code_server.soft_purge(name)
        assert await recv(lambda m: type(m) is tuple and m[0] == "old_code_lingers",
                          step="told") == ("old_code_lingers", name)  # fmt: skip
        code_server.watch_old_code(name, watch=False)
        assert not code_server.soft_purge(name)
        assert kernel.flush(lambda m: type(m) is tuple and m[0] == "old_code_lingers") == 0
        await code_server.purge(name)

    await node.run_process(body)
