"""gen_statem state transitions: postpone, inserted events, state enter calls (OTP's rules).

- A postponed event is retried after the next *state change* (``NextState`` to another
  state), oldest first, before the events queued behind it; never after a transition that
  keeps the state (``KeepState``, ``NextState`` to the same state, ``RepeatState``).
- ``NextEvent`` events are handled next, before any queued or retried event, in their order.
- With ``"state_enter"``: an enter call on the initial state, on each state change and on
  ``RepeatState*`` (not on ``KeepState``), with the state before the event; it may not change
  the state, postpone or insert events; its actions join the transition's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from server import kernel
from server.behaviours import gen_statem, system_messages
from server.behaviours.gen_statem_callbacks import (
    KeepState,
    KeepStateAndData,
    NextEvent,
    NextState,
    Postpone,
    RepeatState,
    RepeatStateAndData,
    Reply,
    Timeout,
)
from tests.behaviours.callbacks import statem_door, statem_plain, statem_scripted
from tests.behaviours.callbacks.statem_scripted import Log, Plan, Start

from ._helpers import reason_of, recv, tagged, within

if TYPE_CHECKING:
    from server.kernel import Node, Pid


async def _start(module: object = statem_plain, **fields: object) -> Pid:
    pid = await within(gen_statem.start(module, Start(**fields)), "start")  # type: ignore[arg-type]
    assert pid is not None
    return pid


async def _log(pid: Pid) -> tuple[Any, ...]:
    log = await within(gen_statem.call(pid, "log"), "log")
    assert isinstance(log, tuple)
    return log


def _go(state: object, *actions: object) -> Plan:
    return Plan(f"go {state}", lambda et, d: NextState(state, d, actions))  # type: ignore[arg-type]


def _postpone(label: str) -> Plan:
    return Plan(label, lambda et, d: KeepState(d, [Postpone()]))


async def _suspended_with(pid: Pid, *messages: object) -> None:
    """Queue ``messages`` (casts) while suspended, then resume: all are queued together."""
    await within(system_messages.suspend(pid), "suspend")
    for message in messages:
        gen_statem.cast(pid, message)
    await within(system_messages.resume(pid), "resume")


# -- postpone ------------------------------------------------------------------------------


async def test_a_postponed_event_is_retried_after_a_state_change(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        await _suspended_with(pid, _postpone("p1"), _postpone("p2"), "x", _go("busy"), "y")
        assert await _log(pid) == (
            ("cast", "p1", "idle"),
            ("cast", "p2", "idle"),
            ("cast", "x", "idle"),
            ("cast", "go busy", "idle"),
            # retried oldest first, before "y" that was queued behind the state change
            ("cast", "p1", "busy"),
            ("cast", "p2", "busy"),
            ("cast", "y", "busy"),
        )

    await node.run_process(body)


@pytest.mark.parametrize(
    "keeping",
    [
        pytest.param(Plan("keep", lambda et, d: KeepState(d)), id="keep_state"),
        pytest.param(Plan("keep", lambda et, d: NextState("idle", d)), id="next_state-same"),
        pytest.param(Plan("keep", lambda et, d: RepeatState(d)), id="repeat_state"),
        pytest.param(Plan("keep", lambda et, d: RepeatStateAndData()), id="repeat_and_data"),
    ],
)
async def test_a_postponed_event_is_not_retried_while_the_state_stays(
    node: Node, keeping: Plan
) -> None:
    async def body() -> None:
        pid = await _start()
        await _suspended_with(pid, _postpone("p"), keeping, "after")
        log = await _log(pid)
        assert isinstance(log, tuple)
        # (repeat_state_and_data keeps the data: its own event is not journalled)
        assert [e[1] for e in log if e[1] != "keep"] == ["p", "after"]
        gen_statem.cast(pid, _go("other"))
        assert (await _log(pid))[-1] == ("cast", "p", "other")

    await node.run_process(body)


async def test_a_postponed_call_is_answered_in_the_state_that_handles_it(node: Node) -> None:
    async def client(server: Pid, owner: Pid) -> None:
        kernel.send(owner, ("answer", kernel.self(), await gen_statem.call(server, "open?")))

    async def body() -> None:
        pid = await within(gen_statem.start(statem_door, "12"), "start")
        assert pid is not None
        kernel.spawn(client, pid, kernel.self())
        assert await gen_statem.call(pid, "state") == "locked"  # the call is postponed by now
        for digit in "12":
            gen_statem.cast(pid, ("button", digit))
        answer = await recv(tagged("answer"), step="answer")
        assert answer[2] is True  # type: ignore[index]

    await node.run_process(body)


async def test_postpone_false_undoes_an_earlier_postpone(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        gen_statem.cast(pid, Plan("p", lambda et, d: KeepState(d, [Postpone(), Postpone(False)])))
        gen_statem.cast(pid, _go("busy"))
        assert await _log(pid) == (("cast", "p", "idle"), ("cast", "go busy", "idle"))

    await node.run_process(body)


# -- next_event ----------------------------------------------------------------------------


async def test_inserted_events_come_first_in_order_then_retried_then_queued(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        change = _go("busy", NextEvent("internal", "n1"), NextEvent("cast", "n2"))
        await _suspended_with(pid, _postpone("p"), change, "queued")
        assert await _log(pid) == (
            ("cast", "p", "idle"),
            ("cast", "go busy", "idle"),
            ("internal", "n1", "busy"),
            ("cast", "n2", "busy"),
            ("cast", "p", "busy"),
            ("cast", "queued", "busy"),
        )

    await node.run_process(body)


async def test_an_inserted_event_may_itself_insert_and_init_may_insert(node: Node) -> None:
    async def body() -> None:
        again = Plan("again", lambda et, d: KeepState(d, [NextEvent("internal", "last")]))
        pid = await _start(actions=(NextEvent("internal", again),))
        gen_statem.cast(pid, "external")
        assert await _log(pid) == (
            ("internal", "again", "idle"),
            ("internal", "last", "idle"),
            ("cast", "external", "idle"),
        )

    await node.run_process(body)


@pytest.mark.parametrize("event_type", ["enter", "bogus", 3])
async def test_a_next_event_of_an_unknown_type_stops_the_machine(
    node: Node, event_type: object
) -> None:
    async def body() -> None:
        pid = await _start()
        ref = kernel.monitor(pid)
        bad = NextEvent(event_type, "x")  # type: ignore[arg-type]
        gen_statem.cast(pid, Plan("bad", lambda et, d: KeepState(d, [bad])))
        assert await reason_of(ref) == ("bad_action_from_state_function", bad)

    await node.run_process(body)


# -- state enter calls ---------------------------------------------------------------------


async def test_enter_calls_on_the_initial_state_and_each_state_change(node: Node) -> None:
    async def body() -> None:
        pid = await _start(statem_scripted)
        gen_statem.cast(pid, "stay")  # keep_state: no enter call
        gen_statem.cast(pid, _go("busy"))
        gen_statem.cast(pid, _go("busy"))  # the same state: no enter call
        gen_statem.cast(pid, Plan("repeat", lambda et, d: RepeatState(d)))
        assert await _log(pid) == (
            ("enter", "idle", "idle"),  # the initial state: old state == state
            ("cast", "stay", "idle"),
            ("cast", "go busy", "idle"),
            ("enter", "idle", "busy"),
            ("cast", "go busy", "busy"),
            ("cast", "repeat", "busy"),
            ("enter", "busy", "busy"),
        )

    await node.run_process(body)


async def test_without_state_enter_there_is_no_enter_call(node: Node) -> None:
    async def body() -> None:
        pid = await _start(statem_plain)
        gen_statem.cast(pid, _go("busy"))
        assert await _log(pid) == (("cast", "go busy", "idle"),)

    await node.run_process(body)


async def test_enter_actions_join_the_transition_of_the_event(node: Node) -> None:
    # The event postpones and inserts; the enter call of the new state sets a state time-out
    # of 0: all of it happens, in the one transition, the time-out after the queued events.
    async def body() -> None:
        def enter_busy(et: object, d: Log) -> KeepState:
            return KeepState(d, [Timeout("state_timeout", 0, "from enter")])

        def change(et: object, d: Log) -> KeepState | NextState:
            if d.events[-1][2] != "idle":  # the retry, in busy
                return KeepState(d)
            return NextState("busy", d, [Postpone(), NextEvent("internal", "inserted")])

        pid = await _start(statem_scripted, on_enter={"busy": Plan("enter", enter_busy)})
        gen_statem.cast(pid, Plan("change", change))
        assert await _log(pid) == (
            ("enter", "idle", "idle"),
            ("cast", "change", "idle"),
            ("enter", "idle", "busy"),
            ("internal", "inserted", "busy"),
            ("cast", "change", "busy"),  # the postponed event, retried in the new state
            ("state_timeout", "from enter", "busy"),
        )

    await node.run_process(body)


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        pytest.param(
            lambda et, d: NextState("elsewhere", d),
            "bad_state_enter_return_from_state_function",
            id="changes-state",
        ),
        pytest.param(
            lambda et, d: KeepState(d, [Postpone()]),
            "bad_state_enter_action_from_state_function",
            id="postpones",
        ),
        pytest.param(
            lambda et, d: KeepState(d, [NextEvent("internal", 1)]),
            "bad_state_enter_action_from_state_function",
            id="inserts",
        ),
    ],
)
async def test_an_enter_call_may_not_change_state_postpone_or_insert(
    node: Node, result: object, reason: str
) -> None:
    async def body() -> None:
        pid = await _start(statem_scripted, on_enter={"busy": Plan("enter", result)})  # type: ignore[arg-type]
        ref = kernel.monitor(pid)
        gen_statem.cast(pid, _go("busy"))
        ended = await reason_of(ref)
        assert type(ended) is tuple
        assert ended[0] == reason

    await node.run_process(body)


async def test_an_enter_call_may_go_to_its_own_state_and_reply(node: Node) -> None:
    async def body() -> None:
        held: list[object] = []

        def hold(et: object, d: Log) -> NextState:
            held.append(et.from_)  # type: ignore[attr-defined]
            return NextState("busy", d)

        def enter_busy(et: object, d: Log) -> NextState:
            return NextState("busy", d, [Reply(held[0], "entered")])  # type: ignore[arg-type]

        pid = await _start(statem_scripted, on_enter={"busy": Plan("enter", enter_busy)})
        assert await within(gen_statem.call(pid, Plan("hold", hold)), "call") == "entered"
        state, _ = await system_messages.get_state(pid)
        assert state == "busy"

    await node.run_process(body)


async def test_keep_state_and_data_in_an_enter_call_is_allowed(node: Node) -> None:
    async def body() -> None:
        plan = Plan("enter", lambda et, d: KeepStateAndData())
        pid = await _start(statem_scripted, on_enter={"busy": plan})
        gen_statem.cast(pid, _go("busy"))
        gen_statem.cast(pid, "after")
        log = await _log(pid)
        assert log[-1] == ("cast", "after", "busy")

    await node.run_process(body)
