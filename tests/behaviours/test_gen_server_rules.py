"""Two of OTP's rules a gen_server keeps: a server that calls itself fails at once
(``calling_self``), and a ``code_change`` that mutates its state and then raises leaves the
state as it was on the plain ``sys`` path too (issue 16, section 3).

On virtual time: an infinite wait that would hang is seen as a test timeout, not a stall.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server.behaviours import gen_server, system_messages
from server.errors import CodeChangeFailed
from tests.behaviours.callbacks import self_caller

from ._helpers import within

if TYPE_CHECKING:
    from server.kernel import Node, Pid

pytestmark = pytest.mark.virtual_time


async def _start() -> Pid:
    pid = await within(gen_server.start(self_caller, None, name="self_caller"), "start")
    assert pid is not None
    return pid


@pytest.mark.parametrize("how", ["pid", "name", "sys"])
async def test_a_server_that_calls_itself_fails_at_once_with_calling_self(
    node: Node, how: str
) -> None:
    async def body() -> None:
        pid = await _start()
        kind, text = await within(gen_server.call(pid, ("call_self", how)), f"self call by {how}")
        assert kind == "CallingSelf"
        assert "calling_self" in text
        # the server goes on serving
        assert await within(gen_server.call(pid, "get"), "get") == {"items": ["first"]}

    await node.run_process(body)


async def test_a_failing_code_change_that_mutated_the_state_leaves_it_as_it_was(
    node: Node,
) -> None:
    async def body() -> None:
        pid = await _start()
        await within(system_messages.suspend(pid), "suspend")
        with pytest.raises(CodeChangeFailed, match="refusing to migrate"):
            await within(
                system_messages.change_code(pid, self_caller.__name__, "1", "fail"), "change"
            )
        assert await within(system_messages.get_state(pid), "get_state") == {"items": ["first"]}
        await within(system_messages.change_code(pid, self_caller.__name__, "1", "ok"), "ok")
        await within(system_messages.resume(pid), "resume")
        state = await within(gen_server.call(pid, "get"), "get")
        assert state == {"items": ["first", "migrated"], "marked": True}

    await node.run_process(body)
