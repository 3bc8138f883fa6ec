"""A plain process follows an upgrade by returning ``Continue(this.loop, state)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import code_server, kernel

from ._helpers import reply_of

if TYPE_CHECKING:
    from server.kernel import Node

    from ._helpers import App

COUNTER_LOOP = """
    from server import kernel
    from server.code_server import module_proxy

    __vsn__ = "$vsn"
    this = module_proxy(__name__)


    async def loop(tester, count):
        kernel.send(tester, ("ready", kernel.self(), __vsn__, count))
        await kernel.receive(lambda m: m == "tick")  # parked here when "ready" arrives
        return kernel.Continue(this.loop, tester, count $step)
"""


def test_module_proxy_is_the_stable_proxy_in_sys_modules(app: App) -> None:
    app.first("loop", COUNTER_LOOP, vsn="v1", step="+ 1")
    proxy = code_server.module_proxy(app.dotted("loop"))
    assert proxy is app.import_("loop")
    assert app.import_("loop").this is proxy


async def test_the_next_iteration_runs_the_new_version_with_the_same_state(
    app: App, node: Node
) -> None:
    app.first("loop", COUNTER_LOOP, vsn="v1", step="+ 1")
    loop = app.import_("loop")
    name = app.dotted("loop")

    async def body() -> None:
        pid = kernel.spawn(loop.loop, kernel.self(), 0)
        assert await reply_of("ready", pid, step="started") == ("ready", pid, "v1", 0)
        assert await _tick(pid) == ("ready", pid, "v1", 1)
        app.load("loop", COUNTER_LOOP, vsn="v2", step="+ 10")
        assert code_server.check_process_code(pid, name), "parked in v1's loop"
        assert await _tick(pid) == ("ready", pid, "v2", 2), "v1 stepped, v2 runs next"
        assert not code_server.check_process_code(pid, name)
        assert await _tick(pid) == ("ready", pid, "v2", 12), "same pid, same state, new code"
        assert code_server.soft_purge(name)

    await node.run_process(body)


async def test_trampolining_does_not_grow_the_stack(app: App, node: Node) -> None:
    app.first("loop", COUNTER_LOOP, vsn="v1", step="+ 1")
    loop = app.import_("loop")

    async def body() -> None:
        pid = kernel.spawn(loop.loop, kernel.self(), 0)
        await reply_of("ready", pid, step="started")
        for _ in range(200):
            await _tick(pid)
        assert [frame.f_code.co_name for frame in kernel.process_frames(pid)] == ["loop"]

    await node.run_process(body)


async def _tick(pid: kernel.Pid) -> tuple[object, ...]:
    kernel.send(pid, "tick")
    return await reply_of("ready", pid, step="tick")
