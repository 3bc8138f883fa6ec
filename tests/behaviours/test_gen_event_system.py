"""gen_event: the system messages a manager answers, and a manager in a supervision tree.

``get_state`` lists ``HandlerState(handler, state)``; ``change_code(pid, module, ...)``
migrates every handler of ``module`` and nothing else, all or nothing. On virtual time.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, cast

import pytest

from server import kernel
from server.behaviours import gen_event, supervisor, system_messages
from server.behaviours.gen_event_callbacks import Handler, HandlerExit, HandlerState
from server.behaviours.supervisor_callbacks import SupervisorSpec
from server.errors import CallTimeout, CodeChangeFailed, SystemCallError
from tests.behaviours.callbacks import event_log, event_tally, sup_given

from ._helpers import drain, reason_of, recv, tagged, within

if TYPE_CHECKING:
    from server.kernel import Node, Pid

pytestmark = pytest.mark.virtual_time

LOG = Handler("tests.behaviours.callbacks.event_log")
TALLY = Handler("tests.behaviours.callbacks.event_tally")


async def _three_handlers() -> Pid:
    """A manager holding ``(event_log, 2)``, ``event_tally``, ``(event_log, 1)``, newest first."""
    me = kernel.self()
    manager = await within(gen_event.start_link(), "start")
    await gen_event.add_handler(manager, (event_log, 1), me)
    await gen_event.add_handler(manager, event_tally, me)
    await gen_event.add_handler(manager, (event_log, 2), me)
    return manager


def _states(states: list[HandlerState]) -> dict[Handler, Any]:
    return {s.handler: s.state for s in states}


async def test_get_state_lists_every_handler_with_its_state(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        manager = await _three_handlers()
        await gen_event.sync_notify(manager, "e")
        states = await system_messages.get_state(manager)
        assert [s.handler for s in states] == [
            Handler(LOG.module, 2),
            TALLY,
            Handler(LOG.module, 1),
        ]
        assert states[1] == HandlerState(TALLY, {"owner": me, "count": 1})
        assert states[0].module == LOG.module
        assert gen_event.handler_states(states, LOG.module) == [
            {"owner": me, "events": ["e"]},
            {"owner": me, "events": ["e"]},
        ]
        status = await system_messages.get_status(manager)
        assert status.state == states

    await node.run_process(body)


async def test_get_modules_names_each_handler_module_once(node: Node) -> None:
    async def body() -> None:
        manager = await _three_handlers()
        assert await gen_event.get_modules(manager) == sorted([LOG.module, TALLY.module])

    await node.run_process(body)


async def test_replace_state_gets_and_returns_the_whole_list(node: Node) -> None:
    async def body() -> None:
        manager = await _three_handlers()

        def reset_tally(states: list[HandlerState]) -> list[HandlerState]:
            return [
                HandlerState(s.handler, {**cast("dict[str, Any]", s.state), "count": 100})
                if s.handler == TALLY
                else s
                for s in states
            ]

        new = await system_messages.replace_state(manager, reset_tally)
        assert _states(new)[TALLY]["count"] == 100
        assert await gen_event.call(manager, event_tally, "count") == 100

    await node.run_process(body)


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        pytest.param(lambda states: states[1:], "must keep the installed handlers", id="drops-one"),
        pytest.param(lambda states: [*states, states[0]], "must keep", id="repeats-one"),
        pytest.param(lambda states: {"not": "a list"}, "list of HandlerState", id="not-a-list"),
        pytest.param(lambda states: [1, 2, 3], "list of HandlerState", id="not-records"),
    ],
)
async def test_replace_state_that_changes_the_handlers_is_refused_and_changes_nothing(
    node: Node, fn: Any, match: str
) -> None:
    async def body() -> None:
        manager = await _three_handlers()
        before = await system_messages.get_state(manager)
        with pytest.raises(SystemCallError, match=match):
            await system_messages.replace_state(manager, fn)
        assert await system_messages.get_state(manager) == before

    await node.run_process(body)


async def test_change_code_migrates_every_handler_of_that_module_only(node: Node) -> None:
    async def body() -> None:
        manager = await _three_handlers()
        before = _states(await system_messages.get_state(manager))
        await system_messages.suspend(manager)
        await system_messages.change_code(manager, LOG.module, "0", "extra")
        await system_messages.change_code(manager, TALLY.module, "0", None)  # no code_change
        await system_messages.resume(manager)
        after = _states(await system_messages.get_state(manager))
        for key in (Handler(LOG.module, 1), Handler(LOG.module, 2)):
            assert after[key] == {**before[key], "migrated": ("0", "extra")}
        assert after[TALLY] == before[TALLY], "the default code_change keeps the state"

    await node.run_process(body)


async def test_a_failing_code_change_leaves_every_handler_as_it_was(node: Node) -> None:
    async def body() -> None:
        manager = await _three_handlers()
        # (event_log, 1) migrates first, then (event_log, 2) refuses: neither may change
        await gen_event.call(manager, (event_log, 2), ("record", "refuse"))
        before = copy.deepcopy(await system_messages.get_state(manager))  # not the live states
        await system_messages.suspend(manager)
        with pytest.raises(CodeChangeFailed, match="code_change refused"):
            await system_messages.change_code(manager, LOG.module, "0", "fail")
        await system_messages.resume(manager)
        after = await system_messages.get_state(manager)
        assert [s.handler for s in after] == [s.handler for s in before]
        assert "migrated" not in _states(after)[Handler(LOG.module, 1)]
        assert after == before
        assert "mutated" not in _states(after)[Handler(LOG.module, 2)], (
            "each code_change gets a copy: even one that mutates its input changes nothing"
        )

    await node.run_process(body)


async def test_change_code_with_a_backup_restores_a_mutated_state(node: Node) -> None:
    async def body() -> None:
        manager = await _three_handlers()
        await gen_event.call(manager, (event_log, 2), ("record", "refuse"))
        before = copy.deepcopy(await system_messages.get_state(manager))
        await system_messages.suspend(manager)
        [outcome] = await system_messages.change_code_many([manager], LOG.module, "0", "fail")
        assert isinstance(outcome, CodeChangeFailed)
        await system_messages.resume(manager)
        assert await system_messages.get_state(manager) == before, "restored from the backup"

    await node.run_process(body)


async def test_a_suspended_manager_keeps_events_queued_and_answers_only_system_messages(
    node: Node,
) -> None:
    async def body() -> None:
        manager = await _three_handlers()
        await system_messages.suspend(manager)
        gen_event.notify(manager, "while suspended")
        with pytest.raises(CallTimeout):
            await gen_event.get_modules(manager, timeout=1.0)
        assert drain() == []
        assert len(await system_messages.get_state(manager)) == 3
        await system_messages.resume(manager)
        await gen_event.sync_notify(manager, "after")
        events = [m[2] for m in drain() if type(m) is tuple and m[0] == "event"]
        assert events == ["while suspended"] * 3 + ["after"] * 3, "none lost, in order"

    await node.run_process(body)


async def test_a_manager_under_a_supervisor_has_dynamic_modules_and_stops_its_handlers(
    node: Node,
) -> None:
    async def body() -> None:
        spec = SupervisorSpec(children=[gen_event.child_spec("events", "supervised_events")])
        sup = await within(supervisor.start_link(sup_given, spec), "start the supervisor")
        assert sup is not None
        [row] = await supervisor.which_children(sup)
        assert (row.id, row.modules, row.type) == ("events", "dynamic", "worker")
        assert kernel.whereis("supervised_events") == row.pid
        await gen_event.add_sup_handler("supervised_events", event_log, kernel.self())
        ref = kernel.monitor(row.pid)  # type: ignore[arg-type]
        await within(supervisor.terminate_child(sup, "events"), "terminate the child")
        assert await recv(tagged("terminate"), step="terminate") == (
            "terminate",
            "event_log",
            "stop",
        )
        told = await recv(lambda m: type(m) is HandlerExit, step="HandlerExit")
        assert told == HandlerExit(row.pid, LOG, "shutdown")  # type: ignore[arg-type]
        assert await reason_of(ref) == "shutdown"

    await node.run_process(body)


async def test_a_manager_ends_with_its_parent_and_terminates_its_handlers(node: Node) -> None:
    async def parent(owner: Pid) -> None:
        manager = await gen_event.start_link()
        await gen_event.add_handler(manager, event_log, owner)
        kernel.send(owner, ("manager", manager))
        await kernel.receive(lambda m: m == "end")
        raise kernel.ProcessExit("parent gone")

    async def body() -> None:
        me = kernel.self()
        owner_of = kernel.spawn(parent, me)
        message = await recv(tagged("manager"), step="the parent started a manager")
        assert type(message) is tuple
        ref = kernel.monitor(message[1])
        kernel.send(owner_of, "end")
        assert await recv(tagged("terminate"), step="terminate") == (
            "terminate",
            "event_log",
            "stop",
        )
        assert await reason_of(ref) == "parent gone"

    await node.run_process(body)
