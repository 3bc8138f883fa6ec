"""gen_statem: starting, both callback modes, call/cast/info events, replies, stopping.

OTP's rules from the gen_statem manual: ``init`` results; ``callback_mode()`` read once at
start; each message becomes an event of its type; a ``Reply`` action answers at once and a
call may be answered from a later state; ``Stop`` and ``StopAndReply`` run ``terminate``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pytest

from server import errors as gen_statem_errors
from server import kernel
from server.behaviours import gen_server, gen_statem, system_messages
from server.behaviours.gen_statem_callbacks import (
    Call,
    Hibernate,
    Ignore,
    KeepState,
    KeepStateAndData,
    NextState,
    Postpone,
    RepeatState,
    Reply,
    Stop,
    StopAndReply,
)
from server.errors import AlreadyStarted, CalleeExited, StartError
from tests.behaviours.callbacks import statem_door, statem_plain, statem_scripted
from tests.behaviours.callbacks.statem_scripted import Log, Plan, Start

from ._helpers import reason_of, recv, tagged, within

if TYPE_CHECKING:
    from server.kernel import Node, Pid


async def _start(module: object = statem_scripted, **fields: object) -> Pid:
    pid = await within(gen_statem.start(module, Start(**fields)), "start")  # type: ignore[arg-type]
    assert pid is not None
    return pid


async def _log(pid: Pid) -> tuple[Any, ...]:
    log = await within(gen_statem.call(pid, "log"), "log")
    assert isinstance(log, tuple)
    return log


# -- starting ------------------------------------------------------------------------------


async def test_init_ok_starts_in_its_state_with_its_data(node: Node) -> None:
    async def body() -> None:
        pid = await _start(statem_plain, state="ready")
        state, data = await within(system_messages.get_state(pid), "get_state")
        assert state == "ready"
        assert isinstance(data, Log)
        assert kernel.get_label(pid, "behaviour") == "gen_statem"

    await node.run_process(body)


async def test_init_ignore_gives_none_and_stop_gives_start_error(node: Node) -> None:
    async def body() -> None:
        assert await gen_statem.start(statem_plain, Start(result=Ignore())) is None
        with pytest.raises(StartError) as raised:
            await gen_statem.start(statem_plain, Start(result=Stop("no_config")))
        assert raised.value.reason == "no_config"

    await node.run_process(body)


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        pytest.param(
            ("ok", "idle", None), ("bad_return_from_init", ("ok", "idle", None)), id="tuple"
        ),
        pytest.param(KeepState(None), ("bad_return_from_init", KeepState(None)), id="event-result"),
    ],
)
async def test_a_bad_init_result_fails_the_start_naming_it(
    node: Node, result: object, reason: object
) -> None:
    async def body() -> None:
        with pytest.raises(StartError) as raised:
            await gen_statem.start(statem_plain, Start(result=result))  # type: ignore[arg-type]
        assert raised.value.reason == reason

    await node.run_process(body)


@pytest.mark.parametrize(
    "mode",
    ["state_enter", "gen_server", ["state_enter"], 42, ["state_functions", "typo"]],
    ids=["enter-alone", "unknown", "no-mode", "not-a-string", "unknown-item"],
)
async def test_a_bad_callback_mode_fails_the_start(
    node: Node, mode: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statem_plain, "callback_mode", lambda: mode)

    async def body() -> None:
        with pytest.raises(StartError) as raised:
            await gen_statem.start(statem_plain, Start())
        assert raised.value.reason == ("bad_return_from_callback_mode", mode)

    await node.run_process(body)


async def test_a_taken_name_fails_the_start_and_start_link_links(node: Node) -> None:
    async def body() -> None:
        pid = await within(gen_statem.start_link(statem_plain, Start(), name="door"), "start")
        assert pid is not None
        assert kernel.whereis("door") is pid
        assert pid in kernel.process_info(kernel.self()).links  # type: ignore[union-attr]
        with pytest.raises(AlreadyStarted):
            await gen_statem.start(statem_plain, Start(), name="door")
        kernel.unlink(pid)
        await within(gen_statem.stop("door"), "stop")

    await node.run_process(body)


# -- callback modes ------------------------------------------------------------------------


async def test_state_functions_call_the_function_named_as_the_state(node: Node) -> None:
    async def body() -> None:
        pid = await within(gen_statem.start(statem_door, "12"), "start")
        assert pid is not None
        assert await gen_statem.call(pid, "state") == "locked"
        for digit in "312":
            gen_statem.cast(pid, ("button", digit))
        assert await gen_statem.call(pid, "state") == "open"
        state, data = await system_messages.get_state(pid)
        assert (state, data["opened"]) == ("open", 1)

    await node.run_process(body)


@pytest.mark.parametrize("state", [("not", "a name"), "terminate", "missing_state"])
async def test_state_functions_need_a_state_naming_a_function(node: Node, state: object) -> None:
    async def body() -> None:
        pid = await within(gen_statem.start(statem_door, "12"), "start")
        assert pid is not None
        ref = kernel.monitor(pid)
        await system_messages.replace_state(pid, lambda pair: (state, pair[1]))
        gen_statem.cast(pid, "poke")
        reason = await reason_of(ref)
        if state == "missing_state":
            assert isinstance(reason, AttributeError)
            assert "no state function missing_state()" in str(reason)
        else:
            assert reason == ("bad_state", state)

    await node.run_process(body)


async def test_handle_event_function_gets_any_state(node: Node) -> None:
    async def body() -> None:
        pid = await _start(statem_plain, state=("any", 1))
        go = Plan("go", lambda et, d: NextState({"a": "dict"}, d))
        gen_statem.cast(pid, go)
        gen_statem.cast(pid, "after")
        assert await _log(pid) == (("cast", "go", ("any", 1)), ("cast", "after", {"a": "dict"}))

    await node.run_process(body)


# -- event types and replies -----------------------------------------------------------------


def _answer(label: str, value: object) -> Plan:
    """A plan answering the call it arrives in with ``value`` (a ``Reply`` action)."""
    return Plan(label, lambda et, d: KeepState(d, [Reply(et.from_, value)]))


async def test_call_cast_and_plain_messages_are_events_of_their_types(node: Node) -> None:
    async def body() -> None:
        pid = await _start(statem_plain)
        gen_statem.cast(pid, "a cast")
        kernel.send(pid, "a message")
        assert await gen_statem.call(pid, _answer("a call", "answered")) == "answered"
        # gen_server's call reaches a gen_statem as a call event too (OTP's '$gen_call')
        assert await gen_server.call(pid, _answer("via gen_server", 2)) == 2
        assert await _log(pid) == (
            ("cast", "a cast", "idle"),
            ("info", "a message", "idle"),
            ("call", "a call", "idle"),
            ("call", "via gen_server", "idle"),
        )

    await node.run_process(body)


async def test_a_call_may_be_answered_from_a_later_state(node: Node) -> None:
    held: list[object] = []

    def hold(et: object, d: Log) -> NextState:
        assert type(et) is Call
        held.append(et.from_)
        return NextState("waiting", d)

    def release(et: object, d: Log) -> NextState:
        return NextState("idle", d, [Reply(held[0], "later")])  # type: ignore[arg-type]

    async def client(server: Pid, owner: Pid) -> None:
        kernel.send(
            owner, ("answer", kernel.self(), await gen_statem.call(server, Plan("hold", hold)))
        )

    async def body() -> None:
        pid = await _start(statem_plain, observer=kernel.self())
        kernel.spawn(client, pid, kernel.self())
        await recv(lambda m: type(m) is tuple and m[0] == "event" and m[3] == "hold", step="held")
        gen_statem.cast(pid, Plan("release", release))
        answer = await recv(tagged("answer"), step="answer")
        assert answer[2] == "later"  # type: ignore[index]

    await node.run_process(body)


async def test_reply_answers_outside_the_callback_result(node: Node) -> None:
    def answer_now(et: object, d: Log) -> KeepState:
        gen_statem.reply(et.from_, "direct")  # type: ignore[attr-defined]
        return KeepState(d)

    async def body() -> None:
        pid = await _start(statem_plain)
        assert await gen_statem.call(pid, Plan("direct", answer_now)) == "direct"

    await node.run_process(body)


async def test_a_call_never_answered_times_out_and_the_machine_goes_on(node: Node) -> None:
    async def body() -> None:
        pid = await _start(statem_plain)
        with pytest.raises(gen_statem_errors.CallTimeout):
            await gen_statem.call(pid, "unanswered", timeout=0.05)
        assert await _log(pid) == (("call", "unanswered", "idle"),)

    await node.run_process(body)


# -- stopping ------------------------------------------------------------------------------


async def test_stop_runs_terminate_with_the_reason_state_and_new_data(node: Node) -> None:
    async def body() -> None:
        pid = await _start(statem_plain, observer=kernel.self())
        ref = kernel.monitor(pid)
        gen_statem.cast(
            pid, Plan("stop", lambda et, d: Stop(("shutdown", "asked"), d.add("x", 1, 2)))
        )
        ended = await recv(tagged("terminated", pid), step="terminate")
        assert ended[2:4] == (("shutdown", "asked"), "idle")  # type: ignore[index]
        assert ended[4][-1] == ("x", 1, 2)  # type: ignore[index]
        assert await reason_of(ref) == ("shutdown", "asked")

    await node.run_process(body)


async def test_stop_and_reply_answers_every_caller_then_stops(node: Node) -> None:
    held: list[object] = []

    def hold(et: object, d: Log) -> KeepState:
        held.append(et.from_)  # type: ignore[attr-defined]
        return KeepState(d)

    def finish(et: object, d: Log) -> StopAndReply:
        replies = [Reply(held[0], "first"), Reply(et.from_, "second")]  # type: ignore[arg-type, attr-defined]
        return StopAndReply("normal", replies)

    async def client(server: Pid, owner: Pid) -> None:
        kernel.send(
            owner, ("answer", kernel.self(), await gen_statem.call(server, Plan("hold", hold)))
        )

    async def body() -> None:
        pid = await _start(statem_plain, observer=kernel.self())
        ref = kernel.monitor(pid)
        kernel.spawn(client, pid, kernel.self())
        await recv(lambda m: type(m) is tuple and m[0] == "event" and m[3] == "hold", step="held")
        assert await gen_statem.call(pid, Plan("finish", finish)) == "second"
        assert (await recv(tagged("answer"), step="first answer"))[2] == "first"  # type: ignore[index]
        assert await reason_of(ref) == "normal"

    await node.run_process(body)


async def test_gen_statem_stop_runs_terminate(node: Node) -> None:
    async def body() -> None:
        pid = await _start(statem_plain, observer=kernel.self())
        await within(gen_statem.stop(pid, "shutdown"), "stop")
        assert (await recv(tagged("terminated", pid), step="terminate"))[2] == "shutdown"  # type: ignore[index]
        with pytest.raises(CalleeExited):
            await gen_statem.stop(pid)

    await node.run_process(body)


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        pytest.param(
            Plan("junk", lambda et, d: ("next_state", "x", d)),  # type: ignore[arg-type, return-value]
            "bad_return_from_state_function",
            id="bad-return",
        ),
        pytest.param(
            Plan("junk", lambda et, d: KeepState(d, ["postpone"])),  # type: ignore[list-item]
            "bad_action_from_state_function",
            id="bad-action",
        ),
        pytest.param(
            Plan("junk", lambda et, d: KeepState(d, [Reply("nobody", 1)])),  # type: ignore[arg-type]
            "bad_action_from_state_function",
            id="reply-to-no-caller",
        ),
        pytest.param(
            Plan("junk", lambda et, d: StopAndReply("normal", ["x"])),  # type: ignore[list-item]
            "bad_reply_action_from_state_function",
            id="bad-reply",
        ),
    ],
)
async def test_a_bad_result_or_action_stops_the_machine_naming_it(
    node: Node, plan: Plan, reason: str
) -> None:
    async def body() -> None:
        pid = await _start(statem_plain, observer=kernel.self())
        ref = kernel.monitor(pid)
        gen_statem.cast(pid, plan)
        ended = await reason_of(ref)
        assert type(ended) is tuple
        assert ended[0] == reason
        assert (await recv(tagged("terminated", pid), step="terminate"))[2] == ended  # type: ignore[index]

    await node.run_process(body)


async def test_a_crash_in_a_state_callback_runs_terminate_with_the_exception(node: Node) -> None:
    def boom(et: object, d: Log) -> KeepState:
        raise ValueError("boom")

    async def body() -> None:
        pid = await _start(statem_plain, observer=kernel.self())
        ref = kernel.monitor(pid)
        gen_statem.cast(pid, Plan("boom", boom))
        reason = await reason_of(ref)
        assert isinstance(reason, ValueError)
        assert (await recv(tagged("terminated", pid), step="terminate"))[2] is reason  # type: ignore[index]

    await node.run_process(body)


async def test_keep_state_and_data_and_repeat_state_keep_the_state(node: Node) -> None:
    async def body() -> None:
        pid = await _start(statem_plain)
        gen_statem.cast(pid, Plan("keep", lambda et, d: KeepStateAndData()))
        gen_statem.cast(pid, Plan("repeat", lambda et, d: RepeatState(d)))
        state, data = await system_messages.get_state(pid)
        assert state == "idle"
        assert data.events == (("cast", "repeat", "idle"),)  # keep_state_and_data kept the old data

    await node.run_process(body)


async def test_an_ok_action_from_init_runs_and_a_postpone_from_init_is_ignored(node: Node) -> None:
    async def body() -> None:
        pid = await _start(statem_plain, actions=(Postpone(),))
        gen_statem.cast(pid, "first")
        assert await _log(pid) == (("cast", "first", "idle"),)

    await node.run_process(body)


async def test_calling_with_an_infinite_timeout_waits(node: Node) -> None:
    async def body() -> None:
        pid = await _start(statem_plain)
        assert await gen_statem.call(pid, _answer("x", 1), timeout=math.inf) == 1

    await node.run_process(body)


async def test_hibernate_is_accepted_and_the_machine_goes_on(node: Node) -> None:
    async def body() -> None:
        pid = await _start(statem_plain)
        gen_statem.cast(pid, Plan("sleep", lambda et, d: KeepState(d, [Hibernate()])))
        gen_statem.cast(pid, "after")
        assert [e[1] for e in await _log(pid)] == ["sleep", "after"]

    await node.run_process(body)


async def test_each_event_uses_the_current_code_and_callbacks_may_be_async(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def newer(event_type: object, content: object, state: object, data: Log) -> object:
        if content == "log":
            return KeepStateAndData([Reply(event_type.from_, "newer code")])  # type: ignore[attr-defined]
        return Stop()

    async def body() -> None:
        pid = await _start(statem_plain)
        ref = kernel.monitor(pid)
        monkeypatch.setattr(statem_plain, "handle_event", newer)
        assert await gen_statem.call(pid, "log") == "newer code"
        gen_statem.cast(pid, "anything")
        assert await reason_of(ref) == "normal"  # Stop()'s default reason

    await node.run_process(body)
