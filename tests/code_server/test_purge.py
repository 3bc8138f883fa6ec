"""soft_purge refuses while a process runs old code; purge kills exactly those processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import code_server, kernel
from server.kernel import DownMessage

from ._helpers import WORKER, down, idle, started

if TYPE_CHECKING:
    from server.kernel import Node

    from ._helpers import App

PURGER = (
    WORKER
    + """

    async def purge_myself(tester):
        from server import code_server

        tell(tester, "ready")
        await kernel.receive(lambda m: m == "purge")
        await code_server.purge(__name__)  # this very frame is old code
        tell(tester, "survived")
"""
)


def test_soft_purge_without_an_old_version_succeeds(app: App) -> None:
    app.first("worker", WORKER, vsn="v1")
    assert code_server.soft_purge(app.dotted("worker"))
    assert code_server.soft_purge(app.dotted("never_loaded"))
    assert app.slots("worker") == [("current", "v1")]


async def test_soft_purge_drops_an_old_version_nobody_runs(app: App, node: Node) -> None:
    app.first("worker", WORKER, vsn="v1")

    async def body() -> None:
        kernel.spawn(idle)
        app.load("worker", WORKER, vsn="v2")
        assert code_server.soft_purge(app.dotted("worker"))
        assert app.slots("worker") == [("current", "v2")]
        app.load("worker", WORKER, vsn="v3")  # room for the next version
        assert app.slots("worker") == [("current", "v3"), ("old", "v2")]

    await node.run_process(body)


async def test_soft_purge_refuses_while_a_process_runs_old_code(app: App, node: Node) -> None:
    worker = app.first("worker", WORKER, vsn="v1").module

    async def body() -> None:
        pid = kernel.spawn(worker.local_loop, kernel.self())
        await started("iteration", pid, "v1", step="looping in v1")
        app.load("worker", WORKER, vsn="v2")
        assert not code_server.soft_purge(app.dotted("worker"))
        assert app.slots("worker") == [("current", "v2"), ("old", "v1")], "nothing changed"
        assert kernel.is_alive(pid)

    await node.run_process(body)


async def test_purge_kills_exactly_the_processes_in_old_code(app: App, node: Node) -> None:
    app.first("worker", WORKER, vsn="v1")
    worker = app.import_("worker")
    name = app.dotted("worker")

    async def body() -> None:
        me = kernel.self()
        in_old = [kernel.spawn_monitor(worker.local_loop, me) for _ in range(2)]
        for pid, _ in in_old:
            await started("iteration", pid, "v1", step="looping in v1")
        in_old.append(kernel.spawn_monitor(worker.park, me))
        await started("parked", in_old[-1][0], "v1", step="parked in v1")
        app.load("worker", WORKER, vsn="v2")
        in_new = kernel.spawn_monitor(worker.local_loop, me)
        await started("iteration", in_new[0], "v2", step="looping in v2")
        bystander = kernel.spawn_monitor(idle)
        assert await code_server.purge(name) is True
        for pid, ref in in_old:
            assert await down(ref, step=f"DOWN of {pid}") == DownMessage(ref, pid, kernel.KILLED)
        for pid, _ in (in_new, bystander):
            assert kernel.is_alive(pid), "processes not in old code are left alone"
        assert app.slots("worker") == [("current", "v2")]
        assert not code_server.check_process_code(in_new[0], name)

    await node.run_process(body)


async def test_purge_with_nobody_in_old_code_drops_it_and_kills_nobody(
    app: App, node: Node
) -> None:
    app.first("worker", WORKER, vsn="v1")

    async def body() -> None:
        pid = kernel.spawn(idle)
        app.load("worker", WORKER, vsn="v2")
        assert await code_server.purge(app.dotted("worker")) is False
        assert app.slots("worker") == [("current", "v2")]
        assert kernel.is_alive(pid)

    await node.run_process(body)


async def test_purge_without_an_old_version_does_nothing(app: App, node: Node) -> None:
    worker = app.first("worker", WORKER, vsn="v1").module

    async def body() -> None:
        pid = kernel.spawn(worker.local_loop, kernel.self())
        await started("iteration", pid, "v1", step="looping")
        assert await code_server.purge(app.dotted("worker")) is False
        assert kernel.is_alive(pid), "current code is never purged"

    await node.run_process(body)


async def test_a_process_purging_its_own_old_code_is_killed_last(app: App, node: Node) -> None:
    worker = app.first("worker", PURGER, vsn="v1").module

    async def body() -> None:
        me = kernel.self()
        purger, purger_ref = kernel.spawn_monitor(worker.purge_myself, me)
        await started("ready", purger, "v1", step="purger ready")
        other, other_ref = kernel.spawn_monitor(worker.local_loop, me)
        await started("iteration", other, "v1", step="other looping")
        app.load("worker", PURGER, vsn="v2")
        kernel.send(purger, "purge")
        assert (await down(other_ref)).reason == kernel.KILLED
        assert (await down(purger_ref)).reason == kernel.KILLED
        assert app.slots("worker") == [("current", "v2")], "the purge was completed"

    await node.run_process(body)
