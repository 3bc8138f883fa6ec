"""The system-message protocol on a gen_server (OTP's ``sys``, section 2; scenarios 6 and 7).

On virtual time: calls to a suspended server time out without waiting real seconds.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import anyio
import pytest

from server import kernel
from server.behaviours import gen_server, system_messages
from server.errors import CalleeExited, CallTimeout, CodeChangeFailed, SystemCallError
from server.kernel import Node, Pid, ProcessExit
from tests.behaviours.callbacks import counter, journal, observed, stubborn
from tests.behaviours.callbacks.journal import Journal

from ._helpers import drain, reason_of, recv, tagged, within

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

JOURNAL = journal.__name__


pytestmark = pytest.mark.virtual_time


async def _start_journal(*, name: str | None = None) -> Pid:
    pid = await within(gen_server.start(journal, None, name=name), "start journal")
    assert pid is not None
    return pid


async def _status(pid: Pid | str) -> str:
    return (await within(system_messages.get_status(pid), "get_status")).status


async def _state(pid: Pid | str) -> Journal:
    state = await within(system_messages.get_state(pid), "get_state")
    assert isinstance(state, Journal)
    return state


async def _events(pid: Pid) -> object:
    return await within(gen_server.call(pid, "journal"), "journal")


async def _suspend(pid: Pid) -> None:
    await within(system_messages.suspend(pid), "suspend")


async def _resume(pid: Pid) -> None:
    await within(system_messages.resume(pid), "resume")


async def _call_times_out(pid: Pid, request: object) -> None:
    began = anyio.current_time()
    with pytest.raises(CallTimeout):
        await within(gen_server.call(pid, request, timeout=1.0), "call while suspended")
    assert anyio.current_time() - began == pytest.approx(1.0)


# -- suspend and resume (scenario 6) -------------------------------------------------------


async def test_suspend_and_resume_follow_sys_suspend(node: Node) -> None:
    async def body() -> None:
        pid = await _start_journal()
        assert await _status(pid) == "running"
        await _suspend(pid)
        await _call_times_out(pid, ("note", "while suspended"))
        assert await _status(pid) == "suspended"
        await _suspend(pid)  # suspending twice is fine
        assert await _status(pid) == "suspended"
        await _resume(pid)
        assert await _status(pid) == "running"
        assert await within(gen_server.call(pid, ("note", "after")), "call") == "after"
        await _resume(pid)  # resuming a running server is fine
        assert await _status(pid) == "running"
        assert await within(gen_server.call(pid, ("note", "again")), "call") == "again"

    await node.run_process(body)


async def test_a_call_that_timed_out_while_suspended_still_runs_and_its_reply_is_dropped(
    node: Node,
) -> None:
    async def body() -> None:
        pid = await _start_journal()
        await _suspend(pid)
        await _call_times_out(pid, ("note", "late"))
        await _resume(pid)
        assert await _events(pid) == ("init", ("call", "late"))
        assert drain() == [], "no late reply"

    await node.run_process(body)


async def test_casts_sent_while_suspended_are_handled_after_resume_in_order(
    node: Node,
) -> None:
    async def body() -> None:
        pid = await _start_journal()
        await _suspend(pid)
        for n in range(5):
            gen_server.cast(pid, n)
        kernel.send(pid, "info")
        gen_server.cast(pid, 5)
        assert (await _state(pid)).events == ("init",), "nothing handled while suspended"
        status = await within(system_messages.get_status(pid), "get_status")
        assert status.message_queue_len == 7
        await _resume(pid)
        assert await _events(pid) == (
            "init",
            *[("cast", n) for n in range(5)],
            ("info", "info"),
            ("cast", 5),
        )

    await node.run_process(body)


CLIENTS = 25
PER_CLIENT = 40


async def _client(server: Pid, owner: Pid, number: int) -> None:
    """Sends PER_CLIENT numbered casts and calls; reports the call answers."""
    answers: list[object] = []
    for seq in range(PER_CLIENT):
        item = (number, seq)
        if seq % 4 == 3:
            if seq == 3:
                # Tell the owner just before the first call: there is no await between this
                # send and the call's delivery, so once the owner sees it the call is queued.
                kernel.send(owner, ("first call", kernel.self()))
            answers.append(await gen_server.call(server, ("note", item), timeout=math.inf))
        else:
            gen_server.cast(server, ("note", item))
    kernel.send(owner, ("done", kernel.self(), answers))


async def test_a_flood_during_a_suspension_loses_nothing_and_keeps_each_senders_order(
    node: Node,
) -> None:
    async def body() -> None:
        pid = await _start_journal()
        await _suspend(pid)
        clients = [kernel.spawn(_client, pid, kernel.self(), n) for n in range(CLIENTS)]
        for client in clients:
            await recv(tagged("first call", client), step="client blocked in its first call")
        # Every client has queued 3 casts and 1 call, and none was handled.
        status = await within(system_messages.get_status(pid), "get_status")
        assert status.status == "suspended"
        assert status.message_queue_len == CLIENTS * 4
        assert (await _state(pid)).events == ("init",)
        await _resume(pid)
        for client in clients:
            message = await recv(tagged("done", client), step="client done")
            assert type(message) is tuple
            number = clients.index(client)
            calls = [(number, seq) for seq in range(PER_CLIENT) if seq % 4 == 3]
            assert message[2] == calls, "every call answered, with its own answer"
        events = await _events(pid)
        assert isinstance(events, tuple)
        assert len(events) == 1 + CLIENTS * PER_CLIENT, "none lost, none doubled"
        for number in range(CLIENTS):
            mine = [e[1] for e in events if type(e) is tuple and e[1][0] == number]
            assert mine == [(number, seq) for seq in range(PER_CLIENT)], "sender order kept"
        assert drain() == []

    await node.run_process(body)


# -- change_code (scenario 7) --------------------------------------------------------------


async def test_change_code_while_running_is_refused_and_changes_nothing(node: Node) -> None:
    async def body() -> None:
        pid = await _start_journal()
        gen_server.cast(pid, "before")
        before = await _state(pid)
        with pytest.raises(SystemCallError) as refused:
            await within(system_messages.change_code(pid, JOURNAL, "0", "extra"), "change_code")
        assert type(refused.value) is SystemCallError, "refused, not a failed code_change"
        assert isinstance(refused.value.reason, tuple)
        assert refused.value.reason[0] == "unknown_system_msg"
        assert await _state(pid) == before
        assert await _status(pid) == "running"

    await node.run_process(body)


@pytest.mark.parametrize(
    "old_vsn",
    [
        pytest.param("1", id="upgrade"),
        pytest.param(("down", "1"), id="downgrade"),
        pytest.param({"vsn": ["1", 2]}, id="any-term"),
    ],
)
@pytest.mark.parametrize("extra", [None, "extra", ("a", 1)], ids=["no-extra", "str", "tuple"])
async def test_change_code_while_suspended_passes_old_vsn_and_extra_unchanged(
    node: Node, old_vsn: object, extra: object
) -> None:
    async def body() -> None:
        pid = await _start_journal()
        await _suspend(pid)
        await within(system_messages.change_code(pid, JOURNAL, old_vsn, extra), "change_code")
        assert (await _state(pid)).events == ("init", ("code_change", old_vsn, extra))
        assert await _status(pid) == "suspended", "change_code does not resume"
        await _resume(pid)
        assert await _events(pid) == ("init", ("code_change", old_vsn, extra))

    await node.run_process(body)


async def test_change_code_ignores_the_module_argument(node: Node) -> None:
    async def body() -> None:
        pid = await _start_journal()
        await _suspend(pid)
        await within(system_messages.change_code(pid, "some.other.module", "1"), "change_code")
        assert (await _state(pid)).events == ("init", ("code_change", "1", None))

    await node.run_process(body)


async def test_a_code_change_that_raises_leaves_the_server_alive_suspended_unchanged(
    node: Node,
) -> None:
    async def body() -> None:
        pid = await _start_journal()
        gen_server.cast(pid, "before")
        await _suspend(pid)
        before = await _state(pid)
        with pytest.raises(CodeChangeFailed) as failed:
            await within(system_messages.change_code(pid, JOURNAL, "1", "fail"), "change_code")
        error = failed.value
        assert isinstance(error.reason, RuntimeError)
        assert str(error.reason) == "refusing to migrate"
        assert error.module == JOURNAL
        assert error.pid is pid
        assert "RuntimeError: refusing to migrate" in error.traceback_text
        assert kernel.is_alive(pid)
        assert await _state(pid) == before
        assert await _status(pid) == "suspended"
        await _call_times_out(pid, ("note", "queued"))
        # a second attempt that succeeds, then resume: the queued call runs after it
        await within(system_messages.change_code(pid, JOURNAL, "1", "ok"), "change_code")
        await _resume(pid)
        assert await _events(pid) == (
            "init",
            ("cast", "before"),
            ("code_change", "1", "ok"),
            ("call", "queued"),
        )

    await node.run_process(body)


# -- get_state, replace_state, get_status ----------------------------------------------------


@pytest.mark.parametrize("suspended", [False, True], ids=["running", "suspended"])
async def test_get_state_and_replace_state(node: Node, suspended: bool) -> None:
    async def body() -> None:
        pid = await _start_journal()
        if suspended:
            await _suspend(pid)
        assert await _state(pid) == Journal(("init",))
        new = await within(
            system_messages.replace_state(pid, lambda s: s.add("replaced")), "replace_state"
        )
        assert new == Journal(("init", "replaced"))
        assert await _state(pid) == new
        if suspended:
            await _resume(pid)
        assert await _events(pid) == ("init", "replaced")

    await node.run_process(body)


@pytest.mark.parametrize("suspended", [False, True], ids=["running", "suspended"])
async def test_a_replace_state_function_that_raises_leaves_the_state_unchanged(
    node: Node, suspended: bool
) -> None:
    def refuse(state: Journal) -> Journal:
        raise ValueError("no new state")

    async def body() -> None:
        pid = await _start_journal()
        gen_server.cast(pid, "before")
        if suspended:
            await _suspend(pid)
        before = await _state(pid)
        with pytest.raises(SystemCallError) as failed:
            await within(system_messages.replace_state(pid, refuse), "replace_state")
        assert failed.value.operation == "replace_state"
        assert isinstance(failed.value.reason, ValueError)
        assert await _state(pid) == before
        assert await _status(pid) == ("suspended" if suspended else "running")
        assert kernel.is_alive(pid)

    await node.run_process(body)


async def test_get_status_describes_the_server(node: Node) -> None:
    async def body() -> None:
        pid = await within(gen_server.start_link(journal, None, name="described"), "start")
        assert pid is not None
        status = await within(system_messages.get_status("described"), "get_status")
        assert status.pid is pid
        assert status.status == "running"
        assert status.behaviour == "gen_server"
        assert status.module == JOURNAL
        assert status.registered_name == "described"
        assert status.parent is kernel.self()
        assert status.state == Journal(("init",))
        assert status.message_queue_len == 0
        await _suspend(pid)
        gen_server.cast(pid, "waiting")
        status = await within(system_messages.get_status(pid), "get_status")
        assert status.status == "suspended"
        assert status.message_queue_len == 1
        kernel.unlink(pid)

    await node.run_process(body)


# -- errors: a missing process, a hung answer ------------------------------------------------


def _noop(state: object) -> object:
    return state


SYS_OPERATIONS = [
    pytest.param(lambda t: system_messages.suspend(t), id="suspend"),
    pytest.param(lambda t: system_messages.resume(t), id="resume"),
    pytest.param(lambda t: system_messages.get_state(t), id="get_state"),
    pytest.param(lambda t: system_messages.replace_state(t, _noop), id="replace_state"),
    pytest.param(lambda t: system_messages.get_status(t), id="get_status"),
    pytest.param(lambda t: system_messages.change_code(t, JOURNAL, "1"), id="change_code"),
    pytest.param(lambda t: system_messages.terminate(t), id="terminate"),
    pytest.param(lambda t: gen_server.stop(t), id="gen_server.stop"),
]


@pytest.mark.parametrize("operation", SYS_OPERATIONS)
@pytest.mark.parametrize("target_kind", ["dead-pid", "unknown-name"])
async def test_a_sys_call_to_a_missing_process_raises_noproc_at_once(
    node: Node, operation: Callable[[Pid | str], Awaitable[object]], target_kind: str
) -> None:
    async def body() -> None:
        target: Pid | str = "nobody"
        if target_kind == "dead-pid":
            target = await _start_journal()
            await within(gen_server.stop(target), "stop")
        began = anyio.current_time()
        with pytest.raises(CalleeExited) as failed:
            await within(operation(target), "sys call")
        assert failed.value.reason == kernel.NOPROC
        assert anyio.current_time() == began
        assert drain() == []

    await node.run_process(body)


async def test_a_sys_call_to_a_busy_server_times_out(node: Node) -> None:
    async def client(server: Pid, owner: Pid) -> None:
        kernel.send(owner, ("calling", kernel.self()))
        await gen_server.call(server, ("slow_add", 10.0, 1), timeout=math.inf)

    async def body() -> None:
        pid = await within(gen_server.start(counter, 0), "start")
        assert pid is not None
        kernel.spawn(client, pid, kernel.self())
        await recv(tagged("calling"), step="client calling")
        began = anyio.current_time()
        with pytest.raises(CallTimeout):
            await within(system_messages.get_state(pid, timeout=1.0), "get_state")
        assert anyio.current_time() - began == pytest.approx(1.0)
        assert await within(system_messages.get_state(pid, timeout=math.inf), "get", 20) == 1
        assert drain() == [], "the late answer to the first get_state was dropped"

    await node.run_process(body)


# -- terminate -----------------------------------------------------------------------------


@pytest.mark.parametrize("suspended", [False, True], ids=["running", "suspended"])
@pytest.mark.parametrize("reason", ["normal", "shutdown", ("shutdown", "x")])
async def test_sys_terminate_runs_terminate_and_returns_once_the_server_has_ended(
    node: Node, suspended: bool, reason: object
) -> None:
    async def body() -> None:
        pid = await within(
            gen_server.start(observed, (kernel.self(), False), name="ending"), "start"
        )
        assert pid is not None
        ref = kernel.monitor(pid)
        if suspended:
            await _suspend(pid)
        await within(system_messages.terminate("ending", reason), "terminate")
        assert not kernel.is_alive(pid)
        assert kernel.whereis("ending") is None
        assert await reason_of(ref) == reason
        assert drain() == [("terminate", pid, reason)]

    await node.run_process(body)


async def test_stop_with_a_timeout_raises_when_terminate_does_not_return(node: Node) -> None:
    async def body() -> None:
        pid = await within(gen_server.start(stubborn), "start")
        assert pid is not None
        began = anyio.current_time()
        with pytest.raises(CallTimeout):
            await within(gen_server.stop(pid, timeout=2.0), "stop", limit=10)
        assert anyio.current_time() - began == pytest.approx(2.0)
        assert drain() == [], "no DOWN or reply left behind"

    await node.run_process(body)


async def test_a_trapping_server_suspended_still_ends_on_its_parents_exit(node: Node) -> None:
    async def parent(owner: Pid) -> None:
        server = await gen_server.start_link(observed, (owner, True))
        kernel.send(owner, ("server", server))
        await kernel.receive()
        raise ProcessExit("shutdown")

    async def body() -> None:
        parent_pid = kernel.spawn(parent, kernel.self())
        message = await recv(tagged("server"), step="server started")
        assert type(message) is tuple
        server = message[1]
        ref = kernel.monitor(server)
        await _suspend(server)
        kernel.send(parent_pid, "die")
        assert await reason_of(ref) == "shutdown"
        assert drain() == [("terminate", server, "shutdown")]

    await node.run_process(body)
