"""check_process_code: a process runs old code while a frame of its stack is in the old version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from server import code_server, kernel
from server.behaviours import gen_server

from ._helpers import WORKER, down, idle, reply_of, started, within

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from server.kernel import Node, Pid

    from ._helpers import App


async def _outer(body: Callable[[Pid], Any], tester: Pid) -> None:
    """A frame outside the application: only the frames it awaits are in the module."""
    await body(tester)


async def _consume(ticks: Callable[[], AsyncIterator[str]], tester: Pid) -> None:
    async for vsn in ticks():
        kernel.send(tester, ("tick", kernel.self(), vsn))


async def test_without_an_old_version_no_process_runs_old_code(app: App, node: Node) -> None:
    worker = app.first("worker", WORKER, vsn="v1").module

    async def body() -> None:
        pid = kernel.spawn(worker.park, kernel.self())
        await started("parked", pid, "v1", step="parked")
        assert not code_server.check_process_code(pid, app.dotted("worker"))
        assert not code_server.check_process_code(pid, app.dotted("never_loaded"))

    await node.run_process(body)


async def test_a_frame_deep_in_the_await_chain_is_old_code(app: App, node: Node) -> None:
    app.first("worker", WORKER, vsn="v1")
    worker = app.import_("worker")
    name = app.dotted("worker")

    async def body() -> None:
        me = kernel.self()
        parked = kernel.spawn(_outer, worker.park, me)
        await started("parked", parked, "v1", step="parked in v1")
        bystander = kernel.spawn(idle)
        assert not code_server.check_process_code(parked, name), "v1 is current yet"
        app.load("worker", WORKER, vsn="v2")
        fresh = kernel.spawn(_outer, worker.park, me)
        await started("parked", fresh, "v2", step="parked in v2")
        assert code_server.check_process_code(parked, name)
        assert not code_server.check_process_code(fresh, name), "current code is not old"
        assert not code_server.check_process_code(bystander, name)
        assert not code_server.check_process_code(parked, app.dotted("")), "other module"

    await node.run_process(body)


async def test_a_dead_process_runs_no_code(app: App, node: Node) -> None:
    worker = app.first("worker", WORKER, vsn="v1").module

    async def body() -> None:
        pid, ref = kernel.spawn_monitor(worker.park, kernel.self())
        await started("parked", pid, "v1", step="parked")
        app.load("worker", WORKER, vsn="v2")
        kernel.exit(pid, kernel.KILL)
        await down(ref, step="killed")
        assert not code_server.check_process_code(pid, app.dotted("worker"))

    await node.run_process(body)


async def test_a_trampolining_process_leaves_old_code_at_its_next_iteration(
    app: App, node: Node
) -> None:
    app.first("worker", WORKER, vsn="v1")
    worker = app.import_("worker")
    name = app.dotted("worker")

    async def body() -> None:
        pid = kernel.spawn(worker.trampoline, kernel.self())
        await started("iteration", pid, "v1", step="first iteration")
        app.load("worker", WORKER, vsn="v2")
        assert code_server.check_process_code(pid, name), "parked in its v1 frame"
        kernel.send(pid, "next")
        await started("iteration", pid, "v2", step="next iteration runs v2")
        assert not code_server.check_process_code(pid, name)
        assert [f.f_code.co_name for f in kernel.process_frames(pid)][:1] == ["trampoline"]

    await node.run_process(body)


@pytest.mark.parametrize(
    ("entry", "runs_next"),
    [("local_loop", "v1"), ("local_recursion", "v1"), ("qualified_recursion", "v2")],
    ids=["while-loop", "local-name-recursion", "awaited-qualified-call"],
)
async def test_a_process_that_never_returns_stays_in_old_code(
    app: App, node: Node, entry: str, runs_next: str
) -> None:
    app.first("worker", WORKER, vsn="v1")
    worker = app.import_("worker")
    name = app.dotted("worker")

    async def body() -> None:
        pid = kernel.spawn(getattr(worker, entry), kernel.self())
        await started("iteration", pid, "v1", step="first iteration")
        app.load("worker", WORKER, vsn="v2")
        for round_ in range(3):
            kernel.send(pid, "next")
            await started("iteration", pid, runs_next, step=f"iteration {round_}")
            assert code_server.check_process_code(pid, name)
        assert not code_server.soft_purge(name)

    await node.run_process(body)


async def test_an_async_for_suspended_in_an_old_generator_is_old_code(app: App, node: Node) -> None:
    app.first("worker", WORKER, vsn="v1")
    worker = app.import_("worker")
    name = app.dotted("worker")

    async def body() -> None:
        me = kernel.self()
        pid = kernel.spawn(_consume, worker.ticks, me)
        kernel.send(pid, "next")
        await started("tick", pid, "v1", step="first tick")
        app.load("worker", WORKER, vsn="v2")
        assert code_server.check_process_code(pid, name), "suspended inside the v1 generator"

    await node.run_process(body)


SLOW_SERVER = """
    from server import kernel
    from server.behaviours.gen_server_callbacks import Ok, Reply

    __vsn__ = "$vsn"


    def init(tester):
        return Ok(tester)


    async def handle_call(request, from_, tester):
        kernel.send(tester, ("in_call", kernel.self(), __vsn__))
        await kernel.receive(lambda m: m == "finish")  # suspended inside this version
        return Reply(__vsn__, tester)
"""


async def test_a_server_mid_callback_during_a_load_runs_old_code_until_it_returns(
    app: App, node: Node
) -> None:
    app.first("slow", SLOW_SERVER, vsn="v1")
    name = app.dotted("slow")

    async def caller(server: Pid, tester: Pid) -> None:
        kernel.send(tester, ("answer", kernel.self(), await gen_server.call(server, "q")))

    async def body() -> None:
        me = kernel.self()
        server = await within(gen_server.start(name, me), "start")
        assert server is not None
        client = kernel.spawn(caller, server, me)
        await started("in_call", server, "v1", step="inside handle_call of v1")
        app.load("slow", SLOW_SERVER, vsn="v2")
        assert code_server.check_process_code(server, name)
        kernel.send(server, "finish")
        assert await reply_of("answer", client, step="v1 answers") == ("answer", client, "v1")
        assert not code_server.check_process_code(server, name), "back in the library loop"
        client = kernel.spawn(caller, server, me)
        await started("in_call", server, "v2", step="the next call runs v2")
        kernel.send(server, "finish")
        assert await reply_of("answer", client, step="v2 answers") == ("answer", client, "v2")

    await node.run_process(body)


async def test_processes_in_old_code_lists_exactly_those(app: App, node: Node) -> None:
    app.first("worker", WORKER, vsn="v1")
    worker = app.import_("worker")
    name = app.dotted("worker")

    async def body() -> None:
        me = kernel.self()
        in_old = [kernel.spawn(worker.local_loop, me) for _ in range(2)]
        for pid in in_old:
            await started("iteration", pid, "v1", step="looping in v1")
        assert code_server.processes_in_old_code(name) == [], "no old version yet"
        app.load("worker", WORKER, vsn="v2")
        in_new = kernel.spawn(worker.local_loop, me)
        await started("iteration", in_new, "v2", step="looping in v2")
        kernel.spawn(idle)
        assert sorted(code_server.processes_in_old_code(name), key=repr) == sorted(in_old, key=repr)
        assert app.slots("worker") == [("current", "v2"), ("old", "v1")], "nothing changed"
        assert all(kernel.is_alive(pid) for pid in in_old)
        assert await code_server.purge(name)
        assert code_server.processes_in_old_code(name) == []

    await node.run_process(body)


def test_processes_in_old_code_of_an_unknown_module_is_empty(app: App) -> None:
    assert code_server.processes_in_old_code("colorsys") == []
    assert code_server.processes_in_old_code(app.dotted("never_loaded")) == []
    assert code_server.which_versions(app.dotted("never_loaded")) == [], "no entry made up"
