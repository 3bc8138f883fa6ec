"""gen_event: handlers added, called, swapped and deleted at run time (OTP's gen_event rules).

On virtual time: no test waits on a clock; every step waits on a message or an answer.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import pytest

from server import kernel
from server.behaviours import gen_event, system_messages
from server.behaviours.gen_event_callbacks import Handler, handler_of
from server.errors import (
    AlreadyStarted,
    CalleeExited,
    HandlerAlreadyInstalled,
    HandlerFailed,
    HandlerNotInstalled,
    NotRegisteredError,
)
from tests.behaviours.callbacks import event_log, event_tally

from ._helpers import drain, reason_of, recv, tagged, within

if TYPE_CHECKING:
    from server.kernel import Node, Pid

pytestmark = pytest.mark.virtual_time

LOG = Handler("tests.behaviours.callbacks.event_log")
TALLY = Handler("tests.behaviours.callbacks.event_tally")


async def _manager(name: str | None = None) -> Pid:
    return await within(gen_event.start_link(name), "start the manager")


async def _with_log(manager: Pid) -> None:
    await within(gen_event.add_handler(manager, event_log, kernel.self()), "add event_log")


# -- adding, listing, deleting -------------------------------------------------------------


async def test_a_manager_starts_empty_and_lists_its_handlers_newest_first(node: Node) -> None:
    async def body() -> None:
        manager = await _manager("events")
        assert await gen_event.which_handlers("events") == []
        await _with_log(manager)
        await gen_event.add_handler(manager, (event_tally, "a"), kernel.self())
        await gen_event.add_handler(
            manager, "tests.behaviours.callbacks.event_tally", kernel.self()
        )
        assert await gen_event.which_handlers(manager) == [TALLY, Handler(TALLY.module, "a"), LOG]
        assert repr(Handler(TALLY.module, "a")) == f"({TALLY.module}, 'a')"
        status = await system_messages.get_status(manager)
        assert (status.behaviour, status.registered_name) == ("gen_event", "events")

    await node.run_process(body)


async def test_events_reach_every_handler_newest_first_and_sync_notify_waits(node: Node) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        await gen_event.add_handler(manager, event_tally, kernel.self())
        gen_event.notify(manager, "one")
        await within(gen_event.sync_notify(manager, "two"), "sync_notify")
        # sync_notify returned: both events were handled by both handlers, in this order
        assert drain() == [
            ("event", "event_tally", "one"),
            ("event", "event_log", "one"),
            ("event", "event_tally", "two"),
            ("event", "event_log", "two"),
        ]
        assert await gen_event.call(manager, event_log, "events") == ["one", "two"]
        assert await gen_event.call(manager, event_tally, "count") == 2

    await node.run_process(body)


async def test_other_messages_go_to_every_handle_info_and_a_missing_one_is_skipped(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        await gen_event.add_handler(manager, event_tally, kernel.self())  # no handle_info
        with caplog.at_level(logging.WARNING, logger="server.behaviours.gen_event"):
            kernel.send(manager, "stray")
            await gen_event.sync_notify(manager, "after")
        assert drain() == [
            ("info", "event_log", "stray"),
            ("event", "event_tally", "after"),
            ("event", "event_log", "after"),
        ]
        assert any("stray" in r.getMessage() for r in caplog.records)
        assert await gen_event.which_handlers(manager) == [TALLY, LOG], "both kept"

    await node.run_process(body)


async def test_delete_handler_returns_what_terminate_returned(node: Node) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        await gen_event.sync_notify(manager, "e")
        drain()
        assert await gen_event.delete_handler(manager, LOG, "bye") == ("log_of", ["e"])
        assert drain() == [("terminate", "event_log", "bye")]
        assert await gen_event.which_handlers(manager) == []
        with pytest.raises(HandlerNotInstalled, match="delete_handler: not installed"):
            await gen_event.delete_handler(manager, LOG, "again")

    await node.run_process(body)


async def test_a_terminate_that_raises_still_removes_the_handler(node: Node) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        with pytest.raises(HandlerFailed, match="terminate failed") as info:
            await gen_event.delete_handler(manager, event_log, "crash_in_terminate")
        assert info.value.callback == "terminate"
        assert "terminate crashed" in info.value.traceback_text
        assert await gen_event.which_handlers(manager) == []

    await node.run_process(body)


async def test_handlers_with_ids_are_told_apart(node: Node) -> None:
    async def body() -> None:
        manager = await _manager()
        await gen_event.add_handler(manager, (event_tally, 1), kernel.self())
        await gen_event.add_handler(manager, (event_tally, 2), kernel.self())
        await gen_event.sync_notify(manager, "x")
        await gen_event.delete_handler(manager, (event_tally, 1))
        assert await gen_event.which_handlers(manager) == [Handler(TALLY.module, 2)]
        assert await gen_event.call(manager, (event_tally, 2), "count") == 1
        with pytest.raises(HandlerNotInstalled):
            await gen_event.call(manager, event_tally, "count")  # no id: another handler

    await node.run_process(body)


async def test_adding_an_installed_handler_id_is_refused_and_changes_nothing(node: Node) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        await gen_event.sync_notify(manager, "kept")
        with pytest.raises(HandlerAlreadyInstalled, match=r"give another instance an id"):
            await gen_event.add_handler(manager, event_log, kernel.self())
        assert await gen_event.which_handlers(manager) == [LOG]
        assert await gen_event.call(manager, LOG, "events") == ["kept"]

    await node.run_process(body)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        pytest.param("error", "refused by init", id="error"),
        pytest.param("junk", ("bad_return_value", "not a result"), id="bad-return"),
    ],
)
async def test_an_init_that_refuses_installs_nothing(node: Node, args: str, reason: object) -> None:
    async def body() -> None:
        manager = await _manager()
        with pytest.raises(HandlerFailed, match="init failed") as info:
            await gen_event.add_handler(manager, event_log, args)
        assert (info.value.callback, info.value.reason) == ("init", reason)
        assert await gen_event.which_handlers(manager) == []

    await node.run_process(body)


async def test_an_init_that_raises_installs_nothing_and_keeps_no_traceback(node: Node) -> None:
    async def body() -> None:
        manager = await _manager()
        with pytest.raises(HandlerFailed) as info:
            await gen_event.add_handler(manager, event_log, "crash")
        reason = info.value.reason
        assert isinstance(reason, RuntimeError)
        assert reason.__traceback__ is None, "a reason must not hold frames"
        assert "init crashed" in info.value.traceback_text
        with pytest.raises(HandlerFailed) as missing:
            await gen_event.add_handler(manager, "tests.behaviours.callbacks.no_such", None)
        assert isinstance(missing.value.reason, ModuleNotFoundError)
        assert await gen_event.which_handlers(manager) == []

    await node.run_process(body)


# -- call ----------------------------------------------------------------------------------


async def test_call_reaches_one_handler_and_a_missing_one_is_refused(node: Node) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        assert await gen_event.call(manager, event_log, "what") == ("unknown", "what")
        with pytest.raises(HandlerNotInstalled, match="call: not installed"):
            await gen_event.call(manager, event_tally, "count")
        assert await gen_event.call(manager, LOG, "remove") == "removed by call"
        assert drain() == [("terminate", "event_log", "remove_handler")]
        assert await gen_event.which_handlers(manager) == []

    await node.run_process(body)


@pytest.mark.parametrize("request_", ["crash", "junk"])
async def test_a_call_that_fails_removes_that_handler_only(
    node: Node, caplog: pytest.LogCaptureFixture, request_: str
) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        await gen_event.add_handler(manager, event_tally, kernel.self())
        with (
            caplog.at_level(logging.ERROR, logger="server.behaviours.gen_event"),
            pytest.raises(HandlerFailed, match="handle_call failed") as info,
        ):
            await gen_event.call(manager, event_log, request_)
        assert info.value.callback == "handle_call"
        message = await recv(tagged("terminate"), step="terminate of the failed handler")
        assert type(message) is tuple
        arg = message[2]
        assert type(arg) is tuple
        assert arg[0] == "error"
        if request_ == "junk":
            assert arg[1] == ("bad_return_value", "not a result")
        else:
            assert isinstance(arg[1], RuntimeError)
        assert await gen_event.which_handlers(manager) == [TALLY]
        assert [
            r for r in caplog.records if getattr(r, "report", "") == "gen_event_handler_crashed"
        ]

    await node.run_process(body)


# -- results of handle_event ---------------------------------------------------------------


@pytest.mark.parametrize("event", ["crash", "junk"])
async def test_a_handler_that_fails_on_an_event_is_removed_and_reported_and_the_rest_go_on(
    node: Node, caplog: pytest.LogCaptureFixture, event: str
) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        await gen_event.add_handler(manager, event_tally, kernel.self())
        with caplog.at_level(logging.ERROR, logger="server.behaviours.gen_event"):
            await gen_event.sync_notify(manager, event)
        got: list[Any] = drain()
        assert got[0] == ("event", "event_tally", event)
        assert got[1][:2] == ("terminate", "event_log")
        assert got[1][2][0] == "error"
        assert await gen_event.which_handlers(manager) == [TALLY]
        reports = [
            r for r in caplog.records if getattr(r, "report", "") == "gen_event_handler_crashed"
        ]
        assert len(reports) == 1
        assert LOG.module in reports[0].getMessage()
        await gen_event.sync_notify(manager, "still running")
        assert drain() == [("event", "event_tally", "still running")]

    await node.run_process(body)


async def test_a_handler_that_exits_is_removed_with_that_reason_and_the_manager_runs_on(
    node: Node,
) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        await gen_event.add_handler(manager, event_tally, kernel.self())
        await gen_event.sync_notify(manager, ("exit", "quit"))
        assert ("terminate", "event_log", ("error", "quit")) in drain()
        assert await gen_event.which_handlers(manager) == [TALLY]

    await node.run_process(body)


async def test_a_handler_that_kills_its_manager_kills_it(node: Node) -> None:
    async def body() -> None:
        manager = await within(gen_event.start(), "start")
        await _with_log(manager)
        ref = kernel.monitor(manager)
        gen_event.notify(manager, "kill_manager")
        assert await reason_of(ref) == "killed", "a kill is not a handler's failure"
        assert [m for m in drain() if type(m) is tuple and m[0] == "terminate"] == []

    await node.run_process(body)


async def test_remove_handler_from_handle_event_terminates_it(node: Node) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        await gen_event.sync_notify(manager, "remove")
        assert drain() == [("terminate", "event_log", "remove_handler")]
        assert await gen_event.which_handlers(manager) == []

    await node.run_process(body)


async def test_hibernate_is_accepted_and_changes_nothing(node: Node) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        await gen_event.sync_notify(manager, "sleep")
        await gen_event.sync_notify(manager, "awake")
        assert await gen_event.call(manager, LOG, "events") == ["sleep", "awake"]

    await node.run_process(body)


# -- swaps ---------------------------------------------------------------------------------


async def test_swap_handler_hands_terminate_s_result_to_the_new_init(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        manager = await _manager()
        await _with_log(manager)
        await gen_event.sync_notify(manager, "e1")
        drain()
        await within(
            gen_event.swap_handler(manager, (event_log, "swap out"), (event_tally, me)), "swap"
        )
        assert drain() == [
            ("terminate", "event_log", "swap out"),
            ("init", "event_tally", ("log_of", ["e1"])),
        ]
        assert await gen_event.which_handlers(manager) == [TALLY]

    await node.run_process(body)


async def test_swap_handler_adds_the_new_one_even_without_the_old(node: Node) -> None:
    async def body() -> None:
        manager = await _manager()
        await gen_event.swap_handler(manager, (event_log, None), (event_tally, kernel.self()))
        assert drain() == [("init", "event_tally", "error")]
        assert await gen_event.which_handlers(manager) == [TALLY]

    await node.run_process(body)


async def test_swap_handler_hands_over_a_crashed_terminate_as_exit(node: Node) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        await gen_event.swap_handler(
            manager, (event_log, "crash_in_terminate"), (event_tally, kernel.self())
        )
        message = await recv(tagged("init"), step="the new handler's init")
        assert type(message) is tuple
        assert message[2][0] == "EXIT"
        assert isinstance(message[2][1], RuntimeError)

    await node.run_process(body)


async def test_a_swap_whose_new_init_fails_removes_the_old_one_all_the_same(node: Node) -> None:
    async def body() -> None:
        manager = await _manager()
        await gen_event.add_handler(manager, event_tally, kernel.self())
        with pytest.raises(HandlerFailed, match="init failed"):
            await gen_event.swap_handler(manager, (event_tally, None), (event_log, "x"))
        assert await gen_event.which_handlers(manager) == []

    await node.run_process(body)


async def test_a_swap_to_an_installed_handler_is_refused_and_changes_nothing(node: Node) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        await gen_event.add_handler(manager, event_tally, kernel.self())
        with pytest.raises(HandlerAlreadyInstalled):
            await gen_event.swap_handler(manager, (event_log, None), (event_tally, None))
        assert await gen_event.which_handlers(manager) == [TALLY, LOG]
        assert drain() == []

    await node.run_process(body)


async def test_swap_handler_returned_by_handle_event_swaps_in_place(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        manager = await _manager()
        await gen_event.add_handler(manager, (event_tally, "first"), me)
        await _with_log(manager)
        await gen_event.add_handler(manager, (event_tally, "last"), me)
        await gen_event.sync_notify(manager, ("swap", (event_tally, "new"), me))
        got = [m for m in drain() if type(m) is tuple and m[0] != "event"]
        assert got == [
            ("terminate", "event_log", ("swap_to", (event_tally, "new"))),
            ("init", "event_tally", ("log_of", [])),
        ]
        handlers = await gen_event.which_handlers(manager)
        assert handlers == [
            Handler(TALLY.module, "last"),
            Handler(TALLY.module, "new"),
            Handler(TALLY.module, "first"),
        ], "the new handler takes the old one's place; it hears the next event, not this one"
        assert await gen_event.call(manager, (event_tally, "new"), "count") == 0

    await node.run_process(body)


async def test_swap_handler_returned_by_handle_call_answers_and_swaps(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        manager = await _manager()
        await _with_log(manager)
        assert await gen_event.call(manager, LOG, ("swap", event_tally, me)) == "swapping"
        assert await gen_event.which_handlers(manager) == [TALLY]

    await node.run_process(body)


async def test_a_swap_from_a_callback_to_a_failing_init_removes_both_and_reports(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        manager = await _manager()
        await _with_log(manager)
        with caplog.at_level(logging.ERROR, logger="server.behaviours.gen_event"):
            await gen_event.sync_notify(manager, ("swap", (event_log, 2), "error"))
        assert await gen_event.which_handlers(manager) == []
        assert any("refused by init when swapped in" in r.getMessage() for r in caplog.records)

    await node.run_process(body)


# -- stop and bad input --------------------------------------------------------------------


async def test_stop_terminates_every_handler_with_stop(node: Node) -> None:
    async def body() -> None:
        manager = await _manager("stopping")
        await _with_log(manager)
        ref = kernel.monitor(manager)
        await within(gen_event.stop("stopping"), "stop")
        assert await recv(tagged("terminate"), step="terminate") == (
            "terminate",
            "event_log",
            "stop",
        )
        down = await recv(lambda m: type(m) is kernel.DownMessage and m.ref is ref, step="DOWN")
        assert down.reason == "normal"  # type: ignore[attr-defined]
        assert kernel.whereis("stopping") is None

    await node.run_process(body)


async def test_a_taken_name_and_a_missing_manager_fail_clearly(node: Node) -> None:
    async def body() -> None:
        await _manager("taken")
        with pytest.raises(AlreadyStarted):
            await gen_event.start("taken")
        with pytest.raises(TypeError, match="non-empty string"):
            await gen_event.start("")
        with pytest.raises(CalleeExited, match="noproc"):
            await gen_event.add_handler("nobody", event_log, None)
        with pytest.raises(NotRegisteredError):
            gen_event.notify("nobody", "event")
        with pytest.raises(CalleeExited, match="noproc"):
            await gen_event.sync_notify("nobody", "event", timeout=math.inf)

    await node.run_process(body)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        pytest.param(42, "not 42", id="number"),
        pytest.param("", "non-empty dotted name", id="empty-name"),
        pytest.param((event_log, [1]), "must be hashable", id="unhashable-id"),
        pytest.param((1, 2), r"not \(1, 2\)", id="pair-of-numbers"),
        pytest.param((event_log, 1, 2), "not", id="triple"),
    ],
)
async def test_a_bad_handler_id_is_refused_before_anything_is_sent(
    node: Node, spec: object, match: str
) -> None:
    async def body() -> None:
        manager = await _manager()
        with pytest.raises(TypeError, match=match):
            await gen_event.add_handler(manager, spec, None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=match):
            handler_of(spec)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="pairs"):
            await gen_event.swap_handler(manager, event_log, (event_tally, None))  # type: ignore[arg-type]
        assert await gen_event.which_handlers(manager) == []

    await node.run_process(body)
