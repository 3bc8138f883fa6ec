"""The release handler's view of a child spec's ``modules="dynamic"``: ask the event manager.

On virtual time: the bounded wait on a suspended manager costs no real time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.behaviours import gen_event, gen_server, system_messages
from server.release import _processes
from tests.behaviours._helpers import reason_of, within
from tests.behaviours.callbacks import counter, event_log, event_tally

if TYPE_CHECKING:
    from server.kernel import Node

pytestmark = pytest.mark.virtual_time


async def test_an_event_manager_names_the_modules_of_its_handlers_each_once(node: Node) -> None:
    async def body() -> None:
        manager = await within(gen_event.start_link(), "start")
        assert await _processes._dynamic_modules(manager) == ()
        await gen_event.add_handler(manager, (event_log, 1), kernel.self())
        await gen_event.add_handler(manager, (event_log, 2), kernel.self())
        await gen_event.add_handler(manager, event_tally, kernel.self())
        assert await _processes._dynamic_modules(manager) == (
            event_log.__name__,
            event_tally.__name__,
        )

    await node.run_process(body)


async def test_any_other_dynamic_process_uses_no_module_and_is_not_asked(node: Node) -> None:
    async def body() -> None:
        server = await within(gen_server.start(counter, 0), "start a gen_server")
        assert server is not None
        assert await _processes._dynamic_modules(server) == ()
        assert await gen_server.call(server, "get") == 0, "it got no stray request"

    await node.run_process(body)


async def test_a_manager_that_cannot_answer_uses_no_module(node: Node) -> None:
    async def body() -> None:
        manager = await within(gen_event.start(), "start")
        await gen_event.add_handler(manager, event_tally, kernel.self())
        await system_messages.suspend(manager)
        assert await within(_processes._dynamic_modules(manager), "suspended", 10) == ()
        await system_messages.resume(manager)
        ref = kernel.monitor(manager)
        await gen_event.stop(manager)
        assert await reason_of(ref) == "normal"
        assert await _processes._dynamic_modules(manager) == (), "ended"

    await node.run_process(body)
