"""Callbacks may be ``async`` functions: every callback of a server awaits, all work."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import kernel
from server.behaviours import gen_server, system_messages
from tests.behaviours.callbacks import async_counter

from ._helpers import drain, reason_of, within

if TYPE_CHECKING:
    from server.kernel import Node


async def test_every_callback_may_be_an_async_function(node: Node) -> None:
    async def body() -> None:
        pid = await within(gen_server.start(async_counter, kernel.self()), "start")
        assert pid is not None
        ref = kernel.monitor(pid)
        assert await within(gen_server.call(pid, "get"), "init, continue") == 1
        gen_server.cast(pid, 4)
        kernel.send(pid, 3)
        assert await within(gen_server.call(pid, "get"), "cast, info") == 15
        await within(system_messages.suspend(pid), "suspend")
        await within(system_messages.change_code(pid, async_counter.__name__, "0", 5), "change")
        await within(system_messages.resume(pid), "resume")
        assert await within(gen_server.call(pid, "get"), "code_change") == 20
        assert await within(gen_server.call(pid, ("stop", "normal")), "stop") == "stopping"
        assert await reason_of(ref) == "normal"
        assert drain() == [("terminate", pid, "normal", 20)]

    await node.run_process(body)
