"""soft_purge_in_slices: soft_purge's answer, the processes looked at between turns of the
event loop, and those that ran since looked at again in its last step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server import code_server, kernel

from ._helpers import WORKER, idle, started

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.kernel import Node, Pid

    from ._helpers import App


async def _enters_on_go(old_park: Callable[[Pid], Any], tester: Pid) -> None:
    """Waits outside the application; on ``go``, parks in ``old_park``'s version."""
    kernel.send(tester, ("ready", kernel.self()))
    await kernel.receive(lambda m: m == "go")
    await old_park(tester)


async def test_no_process_in_old_code_drops_it(app: App, node: Node) -> None:
    name = app.dotted("worker")
    app.first("worker", WORKER, vsn="v1")

    async def body() -> None:
        bystanders = [kernel.spawn(idle) for _ in range(200)]
        app.load("worker", WORKER, vsn="v2")
        assert await code_server.soft_purge_in_slices(name, slice_seconds=0.0)
        assert [v.slot for v in code_server.which_versions(name)] == ["current"]
        assert await code_server.soft_purge_in_slices(name), "no old version: True"
        for pid in bystanders:
            kernel.exit(pid, kernel.KILL)

    await node.run_process(body)


async def test_a_process_parked_in_old_code_keeps_it(app: App, node: Node) -> None:
    name = app.dotted("worker")
    worker = app.first("worker", WORKER, vsn="v1").module

    async def body() -> None:
        pid = kernel.spawn(worker.park, kernel.self())
        await started("parked", pid, "v1", step="parked")
        app.load("worker", WORKER, vsn="v2")
        assert not await code_server.soft_purge_in_slices(name, slice_seconds=0.0)
        assert len(code_server.which_versions(name)) == 2, "nothing changed"
        kernel.exit(pid, kernel.KILL)

    await node.run_process(body)


async def test_a_process_that_entered_old_code_after_its_look_is_looked_at_again(
    app: App, node: Node
) -> None:
    name = app.dotted("worker")
    worker = app.first("worker", WORKER, vsn="v1").module

    async def body() -> None:
        me = kernel.self()
        pid = kernel.spawn(_enters_on_go, worker.park, me)
        assert await kernel.receive(lambda m: m == ("ready", pid)) == ("ready", pid)
        # after it in the process list: the first slice ends among them, so it runs then
        bystanders = [kernel.spawn(idle) for _ in range(100)]
        app.load("worker", WORKER, vsn="v2")
        kernel.send(pid, "go")  # woken, not run yet: looked at in the first slice, clean
        assert not await code_server.soft_purge_in_slices(name, slice_seconds=0.0)
        assert code_server.check_process_code(pid, name), "it ran into v1 meanwhile"
        assert len(code_server.which_versions(name)) == 2
        for other in [pid, *bystanders]:
            kernel.exit(other, kernel.KILL)

    await node.run_process(body)
