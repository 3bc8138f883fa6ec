"""gen_statem answers system messages as OTP's does (``sys`` on a state machine).

``get_state`` answers ``(state, data)``; ``replace_state``'s function takes and returns the
pair; while suspended, events wait in order; ``change_code`` (suspended only) runs
``code_change(old_vsn, state, data, extra)``, which may change both, then reads
``callback_mode()`` again; a failing ``code_change`` leaves both unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from server import kernel
from server.behaviours import gen_statem, system_messages
from server.behaviours.gen_statem_callbacks import (
    HANDLE_EVENT_FUNCTION,
    STATE_ENTER,
    NextState,
    Ok,
)
from server.errors import CodeChangeFailed, SystemCallError
from server.kernel import ProcessExit
from tests.behaviours.callbacks import statem_plain
from tests.behaviours.callbacks.statem_scripted import Log, Plan, Start

from ._helpers import drain, reason_of, recv, tagged, within

if TYPE_CHECKING:
    from server.kernel import Node, Pid


async def _start(**fields: Any) -> Pid:
    pid = await within(gen_statem.start(statem_plain, Start(**fields)), "start")
    assert pid is not None
    return pid


async def _log(pid: Pid) -> tuple[Any, ...]:
    log = await within(gen_statem.call(pid, "log"), "log")
    assert isinstance(log, tuple)
    return log


async def test_get_state_answers_the_state_and_the_data(node: Node) -> None:
    async def body() -> None:
        pid = await _start(state="ready")
        gen_statem.cast(pid, "one")
        state, data = await within(system_messages.get_state(pid), "get_state")
        assert state == "ready"
        assert data.events == (("cast", "one", "ready"),)

    await node.run_process(body)


@pytest.mark.parametrize("suspended", [False, True], ids=["running", "suspended"])
async def test_replace_state_takes_and_returns_the_pair(node: Node, suspended: bool) -> None:
    async def body() -> None:
        pid = await _start()
        if suspended:
            await within(system_messages.suspend(pid), "suspend")
        new = await system_messages.replace_state(pid, lambda pair: ("replaced", pair[1]))
        assert new[0] == "replaced"
        assert (await system_messages.get_state(pid))[0] == "replaced"
        if suspended:
            await within(system_messages.resume(pid), "resume")
        gen_statem.cast(pid, "after")
        assert (await _log(pid))[-1] == ("cast", "after", "replaced")

    await node.run_process(body)


@pytest.mark.parametrize(
    "fn",
    [
        pytest.param(lambda pair: "not a pair", id="not-a-pair"),
        pytest.param(lambda pair: (1, 2, 3), id="three"),
        pytest.param(lambda pair: 1 / 0, id="raises"),
    ],
)
async def test_a_bad_replace_state_is_refused_and_changes_nothing(node: Node, fn: Any) -> None:
    async def body() -> None:
        pid = await _start()
        before = await system_messages.get_state(pid)
        with pytest.raises(SystemCallError) as raised:
            await system_messages.replace_state(pid, fn)
        assert raised.value.operation == "replace_state"
        assert await system_messages.get_state(pid) == before

    await node.run_process(body)


async def test_events_sent_while_suspended_are_handled_after_resume_in_order(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        await within(system_messages.suspend(pid), "suspend")
        gen_statem.cast(pid, "a")
        kernel.send(pid, "b")
        gen_statem.cast(pid, "c")
        status = await within(system_messages.get_status(pid), "get_status")
        assert (status.status, status.behaviour, status.message_queue_len) == (
            "suspended",
            "gen_statem",
            3,
        )
        assert status.state[0] == "idle"  # type: ignore[index]
        await within(system_messages.resume(pid), "resume")
        assert [e[1] for e in await _log(pid)] == ["a", "b", "c"]

    await node.run_process(body)


async def test_change_code_while_running_is_refused(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        with pytest.raises(SystemCallError) as raised:
            await system_messages.change_code(pid, "statem_plain", "0", None)
        assert raised.value.reason[0] == "unknown_system_msg"  # type: ignore[index]
        assert (await system_messages.get_state(pid))[0] == "idle"

    await node.run_process(body)


async def test_change_code_changes_the_state_and_the_data(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        await within(system_messages.suspend(pid), "suspend")
        await within(system_messages.change_code(pid, "ignored", "0", "x"), "change_code")
        state, data = await system_messages.get_state(pid)
        assert state == ("migrated", "idle")
        assert data.events[-1] == ("code_change", ("0", "x"), "idle")
        await within(system_messages.resume(pid), "resume")
        gen_statem.cast(pid, "after")
        assert (await _log(pid))[-1] == ("cast", "after", ("migrated", "idle"))

    await node.run_process(body)


@pytest.mark.parametrize(
    "code_change",
    [
        pytest.param(lambda old, state, data, extra: 1 / 0, id="raises"),
        pytest.param(lambda old, state, data, extra: (state, data), id="not-ok"),
        pytest.param(lambda old, state, data, extra: NextState(state, data), id="wrong-record"),
    ],
)
async def test_a_failing_code_change_leaves_state_and_data_suspended(
    node: Node, code_change: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statem_plain, "code_change", code_change)

    async def body() -> None:
        pid = await _start()
        before = await system_messages.get_state(pid)
        await within(system_messages.suspend(pid), "suspend")
        with pytest.raises(CodeChangeFailed):
            await system_messages.change_code(pid, "m", "0", None)
        assert await system_messages.get_state(pid) == before
        assert (await system_messages.get_status(pid)).status == "suspended"
        await within(system_messages.resume(pid), "resume")

    await node.run_process(body)


async def test_a_code_change_that_mutates_then_raises_is_undone_from_the_backup(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the release installer's path: change_code_many backs the pair up first
    def mutating(old: object, state: object, data: dict[str, Any], extra: object) -> Ok:
        data["broken"] = True
        raise RuntimeError("half way")

    async def body() -> None:
        pid = await _start()
        await system_messages.replace_state(pid, lambda pair: (pair[0], {"kept": 1}))
        await within(system_messages.suspend(pid), "suspend")
        monkeypatch.setattr(statem_plain, "code_change", mutating)
        [outcome] = await system_messages.change_code_many([pid], "m", "0")
        assert isinstance(outcome, CodeChangeFailed)
        assert await system_messages.get_state(pid) == ("idle", {"kept": 1})
        monkeypatch.setattr(statem_plain, "code_change", lambda o, s, d, e: Ok(s, {**d, "v": 2}))
        [backup] = await system_messages.change_code_many([pid], "m", "0")
        assert backup == ("idle", {"kept": 1})  # the pair, copied before the change
        assert await system_messages.get_state(pid) == ("idle", {"kept": 1, "v": 2})
        await system_messages.replace_state(pid, lambda _: backup)  # the installer's undo
        assert await system_messages.get_state(pid) == ("idle", {"kept": 1})
        await within(system_messages.resume(pid), "resume")

    await node.run_process(body)


async def test_callback_mode_is_read_again_after_a_code_change(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        pid = await _start()
        await within(system_messages.suspend(pid), "suspend")
        monkeypatch.setattr(
            statem_plain, "callback_mode", lambda: [HANDLE_EVENT_FUNCTION, STATE_ENTER]
        )
        await within(system_messages.change_code(pid, "m", "0", None), "change_code")
        await within(system_messages.resume(pid), "resume")
        gen_statem.cast(pid, Plan("go", lambda et, d: NextState("busy", d)))
        log = await _log(pid)
        assert log[-1] == ("enter", ("migrated", "idle"), "busy")  # enter calls are on now

    await node.run_process(body)


async def test_a_code_change_to_a_bad_callback_mode_is_refused(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        pid = await _start()
        before = await system_messages.get_state(pid)
        await within(system_messages.suspend(pid), "suspend")
        monkeypatch.setattr(statem_plain, "callback_mode", lambda: "gen_fsm")
        with pytest.raises(CodeChangeFailed) as raised:
            await system_messages.change_code(pid, "m", "0", None)
        assert "bad_return_from_callback_mode" in str(raised.value)
        assert await system_messages.get_state(pid) == before
        monkeypatch.undo()
        await within(system_messages.resume(pid), "resume")
        gen_statem.cast(pid, "still")
        assert (await _log(pid))[-1] == ("cast", "still", "idle")

    await node.run_process(body)


async def test_a_trapping_machine_ends_on_its_parents_exit_running_terminate(node: Node) -> None:
    async def parent(owner: Pid) -> None:
        def trap(et: object, d: Log) -> NextState:
            kernel.trap_exit(True)
            return NextState("trapping", d)

        server = await gen_statem.start_link(statem_plain, Start(observer=owner))
        assert server is not None
        await gen_statem.call(server, "log")
        gen_statem.cast(server, Plan("trap", trap))
        kernel.send(owner, ("server", server))
        await kernel.receive()
        raise ProcessExit("shutdown")

    async def body() -> None:
        parent_pid = kernel.spawn(parent, kernel.self())
        message = await recv(tagged("server"), step="server started")
        server = message[1]  # type: ignore[index]
        ref = kernel.monitor(server)
        await recv(lambda m: type(m) is tuple and m[0] == "event" and m[3] == "trap", step="trap")
        kernel.send(parent_pid, "die")
        assert await reason_of(ref) == "shutdown"
        ended = [m for m in drain() if type(m) is tuple and m[0] == "terminated"]
        assert [m[2:4] for m in ended] == [("shutdown", "trapping")]

    await node.run_process(body)


async def test_sys_terminate_runs_terminate_with_state_and_data(node: Node) -> None:
    async def body() -> None:
        pid = await _start(observer=kernel.self())
        await within(system_messages.terminate(pid, ("shutdown", "sys")), "terminate")
        ended = await recv(tagged("terminated", pid), step="terminate")
        assert ended[2:4] == (("shutdown", "sys"), "idle")  # type: ignore[index]

    await node.run_process(body)
