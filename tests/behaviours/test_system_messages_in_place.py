"""Suspended in place: a gen_server parked in its main loop, suspended, migrated and resumed
by the caller without a message round trip (``suspend_in_place``, ``change_code_in_place``,
``resume_in_place``, on the kernel's ``narrow_receive`` / ``widen_receive`` / ``run_as``).

A process anywhere else is left alone (the caller takes the message path); a system message
wakes one suspended in place into an ordinary suspension; messages sent meanwhile are
handled after the resume, in the order sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from server import kernel
from server.behaviours import gen_server, system_messages
from server.errors import CodeChangeFailed
from tests.behaviours.callbacks import in_place, in_place_async, in_place_wrapped

from ._helpers import idle, recv, within

if TYPE_CHECKING:
    from types import ModuleType

    from server.kernel import Node, Pid

MODULE = in_place.__name__


async def _parked(module: ModuleType = in_place) -> Pid:
    """A server of ``module``, parked in its main loop (a call's reply comes from there)."""
    pid = await within(gen_server.start(module, None), "start")
    assert pid is not None
    await within(gen_server.call(pid, "state"), "state")
    return pid


async def _state(pid: Pid) -> dict[str, Any]:
    state = await within(gen_server.call(pid, "state"), "state")
    assert isinstance(state, dict)
    return state


async def test_a_parked_server_is_suspended_migrated_and_resumed_in_place(node: Node) -> None:
    async def body() -> None:
        pid = await _parked()
        assert system_messages.suspend_in_place(pid)
        assert system_messages.is_suspended_in_place(pid)
        assert system_messages.suspend_in_place(pid), "suspending again is a no-op"
        for i in range(3):
            gen_server.cast(pid, ("cast", i))
        kernel.send(pid, "an info")
        assert system_messages.is_suspended_in_place(pid), "ordinary messages do not wake it"
        backup = system_messages.change_code_in_place(pid, MODULE, "0", None)
        assert backup == {"log": [], "ran_as": None, "old_vsn": None}
        assert system_messages.resume_in_place(pid)
        assert not system_messages.is_suspended_in_place(pid)
        state = await _state(pid)
        assert state["ran_as"] is pid, "code_change ran with kernel.self() being the process"
        assert state["old_vsn"] == "0"
        assert state["log"] == [("cast", 0), ("cast", 1), ("cast", 2), ("info", "an info")]
        assert (await within(system_messages.get_status(pid), "status")).status == "running"

    await node.run_process(body)


async def test_a_system_message_wakes_it_into_an_ordinary_suspension(node: Node) -> None:
    async def body() -> None:
        pid = await _parked()
        assert system_messages.suspend_in_place(pid)
        gen_server.cast(pid, "before")
        status = await within(system_messages.get_status(pid), "status")
        assert status.status == "suspended"
        assert not system_messages.is_suspended_in_place(pid)
        assert system_messages.change_code_in_place(pid, MODULE, "0", None) is (
            system_messages.NOT_IN_PLACE
        )
        await within(system_messages.change_code(pid, MODULE, "0", None), "change_code")
        gen_server.cast(pid, "after")
        assert not system_messages.resume_in_place(pid), "it waits for a Resume message now"
        await within(system_messages.resume(pid), "resume")
        state = await _state(pid)
        assert state["log"] == ["before", "after"]
        assert state["ran_as"] is pid

    await node.run_process(body)


async def test_a_failing_code_change_leaves_the_state_as_it_was_still_suspended(
    node: Node,
) -> None:
    async def body() -> None:
        pid = await _parked()
        assert system_messages.suspend_in_place(pid)
        with pytest.raises(CodeChangeFailed) as failed:
            system_messages.change_code_in_place(pid, MODULE, "0", "fail")
        assert failed.value.pid is pid
        assert "RuntimeError: code_change refuses" in failed.value.traceback_text
        assert system_messages.is_suspended_in_place(pid)
        assert system_messages.resume_in_place(pid)
        assert await _state(pid) == {"log": [], "ran_as": None, "old_vsn": None}

    await node.run_process(body)


async def test_an_exit_asked_for_in_code_change_in_place_is_a_failure(node: Node) -> None:
    async def body() -> None:
        pid = await _parked()
        assert system_messages.suspend_in_place(pid)
        with pytest.raises(CodeChangeFailed) as failed:
            system_messages.change_code_in_place(pid, MODULE, "0", "exit")
        assert "asked to end" in str(failed.value)
        assert kernel.is_alive(pid)
        assert system_messages.resume_in_place(pid)
        assert await _state(pid) == {"log": [], "ran_as": None, "old_vsn": None}

    await node.run_process(body)


async def test_state_is_put_back_in_place(node: Node) -> None:
    async def body() -> None:
        pid = await _parked()
        assert not system_messages.replace_state_in_place(pid, "x"), "not suspended"
        assert system_messages.suspend_in_place(pid)
        assert system_messages.replace_state_in_place(pid, {"log": ["put back"]})
        assert system_messages.resume_in_place(pid)
        assert await _state(pid) == {"log": ["put back"]}

    await node.run_process(body)


async def test_a_coroutine_code_change_is_left_to_the_message_path(node: Node) -> None:
    async def body() -> None:
        pid = await _parked(in_place_async)
        assert system_messages.suspend_in_place(pid)
        module = in_place_async.__name__
        assert system_messages.change_code_in_place(pid, module, "0", None) is (
            system_messages.NOT_IN_PLACE
        )
        assert system_messages.is_suspended_in_place(pid), "nothing changed"
        await within(system_messages.change_code(pid, module, "0", None), "change_code")
        await within(system_messages.resume(pid), "resume")
        assert await _state(pid) == {"ran_as": pid}

    await node.run_process(body)


async def test_a_plain_code_change_returning_a_coroutine_is_called_once(node: Node) -> None:
    """Tried in place, it returned a coroutine: the message path awaits that coroutine
    rather than calling the function again (its plain part ran once)."""

    async def body() -> None:
        in_place_wrapped.CALLS.clear()
        pid = await _parked(in_place_wrapped)
        assert system_messages.suspend_in_place(pid)
        module = in_place_wrapped.__name__
        assert system_messages.change_code_in_place(pid, module, "0", None) is (
            system_messages.NOT_IN_PLACE
        )
        await within(system_messages.change_code(pid, module, "0", None), "change_code")
        await within(system_messages.resume(pid), "resume")
        assert await _state(pid) == {"ran_as": pid, "old_vsn": "0"}
        assert in_place_wrapped.CALLS == ["0"], "called once"

    await node.run_process(body)


async def test_a_coroutine_left_by_an_in_place_try_is_not_used_for_another_change(
    node: Node,
) -> None:
    async def body() -> None:
        in_place_wrapped.CALLS.clear()
        pid = await _parked(in_place_wrapped)
        assert system_messages.suspend_in_place(pid)
        module = in_place_wrapped.__name__
        system_messages.change_code_in_place(pid, module, "0", None)
        await within(system_messages.change_code(pid, module, "other", None), "change_code")
        await within(system_messages.resume(pid), "resume")
        assert await _state(pid) == {"ran_as": pid, "old_vsn": "other"}, "called afresh"
        assert in_place_wrapped.CALLS == ["0", "other"]

    await node.run_process(body)


async def test_a_server_busy_in_a_callback_is_not_suspended_in_place(node: Node) -> None:
    async def body() -> None:
        pid = await _parked()
        # parked in a receive of every message, but inside handle_call, not its loop
        assert await within(gen_server.call(pid, "block"), "block") == "blocked"
        assert not system_messages.suspend_in_place(pid)
        kernel.send(pid, "go")
        assert (await _state(pid))["log"] == [("released", "go")]

    await node.run_process(body)


async def test_a_server_waiting_with_a_timeout_is_not_suspended_in_place(node: Node) -> None:
    async def body() -> None:
        pid = await _parked()
        assert await within(gen_server.call(pid, "arm"), "arm") == "armed"
        assert not system_messages.suspend_in_place(pid)
        await within(system_messages.suspend(pid), "suspend by message")
        await within(system_messages.resume(pid), "resume")

    await node.run_process(body)


async def test_other_processes_and_dead_ones_are_not_suspended_in_place(node: Node) -> None:
    async def body() -> None:
        plain = kernel.spawn(idle)
        assert not system_messages.suspend_in_place(plain), "not a behaviour"
        pid = await _parked()
        ref = kernel.monitor(pid)
        kernel.exit(pid, kernel.KILL)
        await recv(lambda m: type(m) is kernel.DownMessage and m.ref is ref, step="down")
        assert not system_messages.suspend_in_place(pid)
        assert not system_messages.resume_in_place(pid)
        assert system_messages.change_code_in_place(pid, MODULE, "0", None) is (
            system_messages.NOT_IN_PLACE
        )
        with pytest.raises(ValueError, match="is not a live process of this node"):
            kernel.run_as(pid, lambda: None)
        kernel.exit(plain, kernel.KILL)

    await node.run_process(body)


async def test_a_server_killed_while_suspended_in_place_is_forgotten(node: Node) -> None:
    async def body() -> None:
        pid = await _parked()
        assert system_messages.suspend_in_place(pid)
        ref = kernel.monitor(pid)
        kernel.exit(pid, kernel.KILL)
        await recv(lambda m: type(m) is kernel.DownMessage and m.ref is ref, step="down")
        assert not system_messages.is_suspended_in_place(pid)
        assert not system_messages.resume_in_place(pid)

    await node.run_process(body)
