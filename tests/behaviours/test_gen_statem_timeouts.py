"""gen_statem time-outs (OTP's rules), on virtual time: no test waits real seconds.

- Event time-out (``"timeout"``): cancelled by any event, inserted and retried ones too; of
  time 0 it fires only when no event is queued.
- State time-out: survives transitions that keep the state; a state change cancels it, and
  one set in the transition of a state change runs in the new state.
- Generic time-outs (``NamedTimeout(name)``): survive state changes; one per name; setting
  a running one restarts it.
- ``math.inf`` or ``CancelTimeout`` cancels; ``UpdateTimeout`` changes a running one's content
  and keeps its expiry, or fires at once when none runs; of each kind the last action wins.
- A time-out of 0 is handled after the queued events, before messages not yet received.
- System messages are not events: they cancel nothing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from server import kernel
from server.behaviours import gen_statem, system_messages
from server.behaviours.gen_statem_callbacks import (
    CancelTimeout,
    KeepState,
    NamedTimeout,
    NextEvent,
    NextState,
    Postpone,
    Timeout,
    TimeoutKind,
    UpdateTimeout,
)
from tests.behaviours.callbacks import statem_door, statem_plain
from tests.behaviours.callbacks.statem_scripted import Plan, Start

from ._helpers import reason_of, recv, within

if TYPE_CHECKING:
    from server.kernel import Node, Pid

pytestmark = pytest.mark.virtual_time

KINDS: list[TimeoutKind] = ["timeout", "state_timeout", NamedTimeout("retry")]
KIND_IDS = ["event", "state", "generic"]


async def _start(**fields: object) -> Pid:
    start = Start(observer=kernel.self(), **fields)  # type: ignore[arg-type]
    pid = await within(gen_statem.start(statem_plain, start), "start")
    assert pid is not None
    return pid


async def _log(pid: Pid) -> tuple[Any, ...]:
    log = await within(gen_statem.call(pid, "log"), "log")
    assert isinstance(log, tuple)
    return log


def _fired(kind: object, content: object | None = None):  # type: ignore[no-untyped-def]
    def match(m: object) -> bool:
        return (
            type(m) is tuple
            and m[0] == "event"
            and m[2] == kind
            and (content is None or m[3] == content)
        )

    return match


async def _no_timeout_within(seconds: float, kind: object) -> None:
    with pytest.raises(TimeoutError):
        await kernel.receive(_fired(kind), timeout=seconds)


def _keep(label: str, *actions: object) -> Plan:
    return Plan(label, lambda et, d: KeepState(d, actions))  # type: ignore[arg-type]


def _go(state: object, *actions: object) -> Plan:
    return Plan(f"go {state}", lambda et, d: NextState(state, d, actions))  # type: ignore[arg-type]


# -- every kind ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_a_time_out_fires_after_its_seconds_with_its_content(
    node: Node, kind: TimeoutKind
) -> None:
    async def body() -> None:
        pid = await _start()
        began = anyio.current_time()
        gen_statem.cast(pid, _keep("arm", Timeout(kind, 3.0, "ding")))
        await recv(_fired(kind, "ding"), step="fired", limit=10)
        assert anyio.current_time() - began == pytest.approx(3.0)
        assert (await _log(pid))[-1] == (kind, "ding", "idle")

    await node.run_process(body)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize(
    "cancel",
    [
        pytest.param(lambda kind: CancelTimeout(kind), id="cancel"),
        pytest.param(lambda kind: Timeout(kind, math.inf), id="infinity"),
    ],
)
async def test_cancel_or_infinity_cancels_a_time_out(node: Node, kind: TimeoutKind, cancel) -> None:  # type: ignore[no-untyped-def]
    async def body() -> None:
        pid = await _start()
        # (the event time-out is cancelled by the second event anyway; the rule holds)
        gen_statem.cast(pid, _keep("arm", Timeout(kind, 3.0, "ding")))
        gen_statem.cast(pid, _keep("cancel", cancel(kind)))
        await _no_timeout_within(60.0, kind)

    await node.run_process(body)


@pytest.mark.parametrize("kind", ["state_timeout", NamedTimeout("retry")], ids=["state", "generic"])
async def test_update_changes_the_content_and_keeps_the_expiry(
    node: Node, kind: TimeoutKind
) -> None:
    async def body() -> None:
        pid = await _start()
        began = anyio.current_time()
        gen_statem.cast(pid, _keep("arm", Timeout(kind, 5.0, "old")))
        await anyio.sleep(2.0)  # virtual seconds: time passes on the machine's clock
        gen_statem.cast(pid, _keep("update", UpdateTimeout(kind, "new")))
        await recv(_fired(kind), step="fired", limit=10)
        assert anyio.current_time() - began == pytest.approx(5.0)
        assert (await _log(pid))[-1] == (kind, "new", "idle")

    await node.run_process(body)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_update_with_none_running_fires_at_once(node: Node, kind: TimeoutKind) -> None:
    async def body() -> None:
        pid = await _start()
        began = anyio.current_time()
        gen_statem.cast(pid, _keep("update", UpdateTimeout(kind, "now")))
        await recv(_fired(kind, "now"), step="fired")
        assert anyio.current_time() == began

    await node.run_process(body)


@pytest.mark.parametrize("kind", ["state_timeout", NamedTimeout("retry")], ids=["state", "generic"])
async def test_setting_a_running_time_out_restarts_it(node: Node, kind: TimeoutKind) -> None:
    async def body() -> None:
        pid = await _start()
        began = anyio.current_time()
        gen_statem.cast(pid, _keep("arm", Timeout(kind, 5.0, "first")))
        await anyio.sleep(4.0)
        gen_statem.cast(pid, _keep("again", Timeout(kind, 5.0, "second")))
        await recv(_fired(kind), step="fired", limit=20)
        assert anyio.current_time() - began == pytest.approx(9.0)
        log = await _log(pid)
        assert [e for e in log if e[0] == kind] == [(kind, "second", "idle")]

    await node.run_process(body)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_of_each_kind_the_last_action_wins(node: Node, kind: TimeoutKind) -> None:
    async def body() -> None:
        pid = await _start()
        began = anyio.current_time()
        gen_statem.cast(pid, _keep("arm", Timeout(kind, 1.0, "first"), Timeout(kind, 7.0, "last")))
        await recv(_fired(kind), step="fired", limit=10)
        assert anyio.current_time() - began == pytest.approx(7.0)
        assert (await _log(pid))[-1] == (kind, "last", "idle")

    await node.run_process(body)


async def test_time_outs_of_different_kinds_and_names_run_side_by_side(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        gen_statem.cast(
            pid,
            _keep(
                "arm",
                Timeout(NamedTimeout("a"), 3.0, "a"),
                Timeout(NamedTimeout("b"), 1.0, "b"),
                Timeout("state_timeout", 2.0, "s"),
            ),
        )
        for _ in range(3):
            await recv(
                lambda m: type(m) is tuple and m[0] == "event" and m[2] != "cast",
                step="fired",
                limit=10,
            )
        log = await _log(pid)
        assert [e[1] for e in log][1:] == ["b", "s", "a"]

    await node.run_process(body)


@pytest.mark.parametrize(
    "bad",
    [
        Timeout("timeout", -1.0),
        Timeout("timeout", math.nan),
        Timeout("timeout", "soon"),  # type: ignore[arg-type]
        Timeout("deadline", 1.0),  # type: ignore[arg-type]
        CancelTimeout("nope"),  # type: ignore[arg-type]
        UpdateTimeout(NamedTimeout(["unhashable"]), 1),
    ],
    ids=["negative", "nan", "not-a-number", "unknown-kind", "cancel-unknown", "unhashable-name"],
)
async def test_a_bad_time_out_action_stops_the_machine(node: Node, bad: object) -> None:
    async def body() -> None:
        pid = await _start()
        ref = kernel.monitor(pid)
        gen_statem.cast(pid, _keep("bad", bad))
        assert await reason_of(ref) == ("bad_action_from_state_function", bad)

    await node.run_process(body)


# -- event time-out ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "poke",
    [
        pytest.param(lambda pid: gen_statem.cast(pid, "poke"), id="cast"),
        pytest.param(lambda pid: kernel.send(pid, "poke"), id="info"),
        pytest.param(
            lambda pid: gen_statem.cast(pid, _keep("t", Timeout(NamedTimeout("x"), 1.0))),
            id="other-time-out",
        ),
    ],
)
async def test_any_event_cancels_the_event_time_out(node: Node, poke) -> None:  # type: ignore[no-untyped-def]
    async def body() -> None:
        pid = await _start()
        gen_statem.cast(pid, _keep("arm", Timeout("timeout", 5.0, "idle")))
        poke(pid)
        await _no_timeout_within(60.0, "timeout")

    await node.run_process(body)


async def test_an_inserted_event_cancels_the_event_time_out(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        gen_statem.cast(pid, _keep("arm", Timeout("timeout", 5.0), NextEvent("internal", "i")))
        await _no_timeout_within(60.0, "timeout")
        assert (await _log(pid))[-1] == ("internal", "i", "idle")

    await node.run_process(body)


async def test_a_retried_event_cancels_the_event_time_out(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        gen_statem.cast(
            pid,
            Plan(
                "p",
                lambda et, d: (
                    KeepState(d, [Postpone()]) if d.events[-1][2] == "idle" else KeepState(d)
                ),
            ),
        )
        gen_statem.cast(pid, _go("busy", Timeout("timeout", 0, "zero")))
        await _no_timeout_within(60.0, "timeout")
        assert (await _log(pid))[-1] == ("cast", "p", "busy")

    await node.run_process(body)


async def test_an_event_time_out_of_zero_fires_when_nothing_is_queued(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        gen_statem.cast(pid, _keep("arm", Timeout("timeout", 0, "zero")))
        await recv(_fired("timeout", "zero"), step="fired")

    await node.run_process(body)


async def test_a_time_out_of_zero_comes_before_a_message_not_yet_received(node: Node) -> None:
    # OTP: unlike gen_server's timeout 0 (receive ... after 0), a gen_statem time-out of 0
    # is handled before any external event not yet received.
    async def body() -> None:
        pid = await _start()
        await within(system_messages.suspend(pid), "suspend")
        gen_statem.cast(pid, _keep("arm", Timeout("state_timeout", 0, "zero")))
        gen_statem.cast(pid, "queued in the mailbox")
        await within(system_messages.resume(pid), "resume")
        log = await _log(pid)
        assert [e[1] for e in log] == ["arm", "zero", "queued in the mailbox"]

    await node.run_process(body)


async def test_a_zero_state_time_out_before_an_event_time_out_cancels_it(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        gen_statem.cast(
            pid, _keep("arm", Timeout("state_timeout", 0, "s0"), Timeout("timeout", 0, "e0"))
        )
        await _no_timeout_within(60.0, "timeout")
        assert (await _log(pid))[-1] == ("state_timeout", "s0", "idle")

    await node.run_process(body)


# -- state time-out ------------------------------------------------------------------------


async def test_a_state_time_out_survives_events_that_keep_the_state(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        began = anyio.current_time()
        gen_statem.cast(pid, _keep("arm", Timeout("state_timeout", 5.0, "s")))
        gen_statem.cast(pid, "poke")
        gen_statem.cast(pid, _go("idle"))  # next_state to the same state is no state change
        await recv(_fired("state_timeout", "s"), step="fired", limit=10)
        assert anyio.current_time() - began == pytest.approx(5.0)

    await node.run_process(body)


async def test_a_state_change_cancels_the_state_time_out(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        gen_statem.cast(pid, _keep("arm", Timeout("state_timeout", 5.0, "s")))
        gen_statem.cast(pid, _go("busy"))
        await _no_timeout_within(60.0, "state_timeout")

    await node.run_process(body)


async def test_a_state_time_out_set_with_a_state_change_runs_in_the_new_state(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        gen_statem.cast(pid, _keep("arm", Timeout("state_timeout", 5.0, "old")))
        gen_statem.cast(pid, _go("busy", Timeout("state_timeout", 2.0, "new")))
        await recv(_fired("state_timeout"), step="fired", limit=10)
        assert (await _log(pid))[-1] == ("state_timeout", "new", "busy")

    await node.run_process(body)


async def test_update_with_a_state_change_fires_at_once_in_the_new_state(node: Node) -> None:
    # the state change cancels the old state time-out first: none runs to update
    async def body() -> None:
        pid = await _start()
        began = anyio.current_time()
        gen_statem.cast(pid, _keep("arm", Timeout("state_timeout", 5.0, "old")))
        gen_statem.cast(pid, _go("busy", UpdateTimeout("state_timeout", "updated")))
        await recv(_fired("state_timeout"), step="fired")
        assert anyio.current_time() == began
        assert (await _log(pid))[-1] == ("state_timeout", "updated", "busy")

    await node.run_process(body)


async def test_the_door_locks_again_after_its_state_time_out(node: Node) -> None:
    async def body() -> None:
        pid = await within(gen_statem.start(statem_door, "12"), "start")
        assert pid is not None
        for digit in "12":
            gen_statem.cast(pid, ("button", digit))
        assert await gen_statem.call(pid, "state") == "open"
        await anyio.sleep(statem_door.OPEN_FOR + 0.5)
        assert await gen_statem.call(pid, "state") == "locked"

    await node.run_process(body)


# -- generic time-outs ---------------------------------------------------------------------


async def test_a_generic_time_out_survives_a_state_change(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        began = anyio.current_time()
        gen_statem.cast(pid, _keep("arm", Timeout(NamedTimeout("retry"), 5.0, "r")))
        gen_statem.cast(pid, _go("busy"))
        await recv(_fired(NamedTimeout("retry")), step="fired", limit=10)
        assert anyio.current_time() - began == pytest.approx(5.0)
        assert (await _log(pid))[-1] == (NamedTimeout("retry"), "r", "busy")

    await node.run_process(body)


async def test_absolute_time_outs_fire_at_that_time(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        at = anyio.current_time() + 4.0
        gen_statem.cast(pid, _keep("arm", Timeout(NamedTimeout("at"), at, "abs", absolute=True)))
        await recv(_fired(NamedTimeout("at")), step="fired", limit=10)
        assert anyio.current_time() == pytest.approx(at)

    await node.run_process(body)


# -- system messages -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_system_messages_cancel_no_time_out(node: Node, kind: TimeoutKind) -> None:
    async def body() -> None:
        pid = await _start()
        began = anyio.current_time()
        gen_statem.cast(pid, _keep("arm", Timeout(kind, 5.0, "t")))
        await within(system_messages.get_status(pid), "get_status")
        await within(system_messages.suspend(pid), "suspend")
        await within(system_messages.resume(pid), "resume")
        await recv(_fired(kind), step="fired", limit=10)
        assert anyio.current_time() - began == pytest.approx(5.0)

    await node.run_process(body)


async def test_a_time_out_expiring_while_suspended_is_handled_after_resume(node: Node) -> None:
    async def body() -> None:
        pid = await _start()
        gen_statem.cast(pid, _keep("arm", Timeout("state_timeout", 1.0, "late")))
        await within(system_messages.suspend(pid), "suspend")
        await anyio.sleep(5.0)
        await _no_timeout_within(0, "state_timeout")
        await within(system_messages.resume(pid), "resume")
        await recv(_fired("state_timeout", "late"), step="fired")

    await node.run_process(body)
