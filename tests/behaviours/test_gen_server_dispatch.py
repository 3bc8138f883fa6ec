"""Callbacks are resolved through ``_dispatch`` at each message: new code runs at once.

This is OTP's fully qualified call: a server keeps its callback module by name and asks
``_dispatch.resolve`` for its current version before every callback, so replacing the
module (as the code server does on a load) takes effect at the next message.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.behaviours import gen_server, system_messages
from server.behaviours.gen_server_callbacks import Reply
from tests.behaviours.callbacks import counter, counter_v2

from ._helpers import within

if TYPE_CHECKING:
    from server.kernel import From, Node, Pid

COUNTER = counter.__name__


class SysModules(dict[str, ModuleType]):
    """Module names pointed at other modules through ``sys.modules``, which the code
    server's lookup answers from for a module it does not manage."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        self.monkeypatch = monkeypatch
        self.originals = dict(sys.modules)

    def __setitem__(self, name: str, module: ModuleType) -> None:
        self.monkeypatch.setitem(sys.modules, name, module)

    def __delitem__(self, name: str) -> None:
        sys.modules[name] = self.originals[name]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """Point module names at other modules; ``sys.modules`` is restored afterwards."""
    return SysModules(monkeypatch)


async def _start_counter(state: int) -> Pid:
    pid = await within(gen_server.start(counter, state), "start")
    assert pid is not None
    return pid


async def _get(pid: Pid) -> object:
    return await within(gen_server.call(pid, "get"), "get")


async def test_a_swapped_function_answers_the_next_message(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    def patched_handle_call(request: object, from_: From, state: int) -> Reply:
        return Reply(("patched", request, state), state)

    async def body() -> None:
        pid = await _start_counter(5)
        assert await _get(pid) == 5
        monkeypatch.setattr(counter, "handle_call", patched_handle_call)
        assert await _get(pid) == ("patched", "get", 5)
        monkeypatch.undo()
        assert await _get(pid) == 5

    await node.run_process(body)


async def test_a_resolver_pointing_the_name_elsewhere_takes_effect_at_the_next_message(
    node: Node, resolver: dict[str, ModuleType]
) -> None:
    async def body() -> None:
        pid = await _start_counter(5)
        assert await _get(pid) == 5
        resolver[COUNTER] = counter_v2
        assert await _get(pid) == ("v2", 5), "the next call runs the new module"
        gen_server.cast(pid, ("add", 1))  # v2 adds twice the amount
        assert await _get(pid) == ("v2", 7)
        del resolver[COUNTER]
        assert await _get(pid) == 7
        status = await within(system_messages.get_status(pid), "get_status")
        assert status.module == COUNTER, "the server keeps the module's name, not the module"

    await node.run_process(body)


async def test_an_upgrade_and_a_downgrade_through_suspend_change_code_resume(
    node: Node, resolver: dict[str, ModuleType]
) -> None:
    async def body() -> None:
        pid = await _start_counter(5)
        # upgrade: load the new version, then its code_change migrates the state
        await within(system_messages.suspend(pid), "suspend")
        resolver[COUNTER] = counter_v2
        await within(system_messages.change_code(pid, COUNTER, counter.__vsn__), "upgrade")
        await within(system_messages.resume(pid), "resume")
        assert await _get(pid) == ("v2", 1005)
        # downgrade: the newer code migrates back with ("down", vsn), then the old one loads
        await within(system_messages.suspend(pid), "suspend")
        await within(
            system_messages.change_code(pid, COUNTER, ("down", counter.__vsn__)), "downgrade"
        )
        del resolver[COUNTER]
        await within(system_messages.resume(pid), "resume")
        assert await _get(pid) == 5
        assert kernel.is_alive(pid)

    await node.run_process(body)
