"""Many processes asked at once: ``suspend_many``, ``change_code_many``, ``resume_many``,
``replace_state_many``, and the state backup ``copy_state``.

On virtual time: a process that does not answer times out without waiting real seconds.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.lowlevel import checkpoint

from server import kernel
from server.behaviours import gen_server, system_messages
from server.errors import CalleeExited, CallTimeout, CodeChangeFailed, SystemCallError
from tests.behaviours.callbacks import counter, ledger

from ._helpers import drain, recv, tagged, within

if TYPE_CHECKING:
    from server.kernel import Node, Pid

LEDGER = ledger.__name__


pytestmark = pytest.mark.virtual_time


async def _ledgers(n: int) -> list[Pid]:
    pids = []
    for i in range(n):
        pid = await within(gen_server.start(ledger, i), "start ledger")
        assert pid is not None
        pids.append(pid)
    return pids


async def _dead() -> Pid:
    pid = kernel.spawn(checkpoint)
    await within(kernel.wait_ended([pid]), "ended")
    return pid


async def _statuses(pids: list[Pid]) -> list[str]:
    return [(await within(system_messages.get_status(p), "status")).status for p in pids]


async def _states(pids: list[Pid]) -> list[object]:
    return [await within(system_messages.get_state(p), "get_state") for p in pids]


async def test_suspend_many_and_resume_many_answer_for_each_pid_in_order(node: Node) -> None:
    async def body() -> None:
        pids = await _ledgers(5)
        dead = await _dead()
        outcomes = await within(system_messages.suspend_many([*pids, dead]), "suspend_many")
        assert outcomes[:5] == [None] * 5
        assert isinstance(outcomes[5], CalleeExited)
        assert outcomes[5].reason == kernel.NOPROC
        assert await _statuses(pids) == ["suspended"] * 5
        assert await within(system_messages.suspend_many(pids), "again") == [None] * 5
        assert await within(system_messages.resume_many(pids), "resume_many") == [None] * 5
        assert await _statuses(pids) == ["running"] * 5
        assert drain() == []

    await node.run_process(body)


@pytest.mark.parametrize("extra", ["ok", "wait"], ids=["never-waits", "waits"])
async def test_change_code_many_migrates_and_answers_with_each_state_from_before(
    node: Node, extra: str
) -> None:
    async def body() -> None:
        pids = await _ledgers(4)
        before = await _states(pids)
        await within(system_messages.suspend_many(pids), "suspend")
        backups = await within(
            system_messages.change_code_many(pids, LEDGER, "0", extra), "change_code_many"
        )
        assert backups == before
        assert await _states(pids) == [{"a": i, "b": 0, "migrated": 1} for i in range(4)]
        assert await _statuses(pids) == ["suspended"] * 4, "change_code does not resume"
        await within(system_messages.resume_many(pids), "resume")

    await node.run_process(body)


async def test_change_code_many_of_running_processes_is_refused_and_changes_nothing(
    node: Node,
) -> None:
    async def body() -> None:
        pids = await _ledgers(2)
        outcomes = await within(system_messages.change_code_many(pids, LEDGER, "0", "ok"), "cc")
        for outcome in outcomes:
            assert type(outcome) is SystemCallError
            assert isinstance(outcome.reason, tuple)
            assert outcome.reason[0] == "unknown_system_msg"
        assert await _states(pids) == [{"a": 0, "b": 0}, {"a": 1, "b": 0}]

    await node.run_process(body)


async def test_a_code_change_that_mutates_then_raises_is_put_right_from_the_backup(
    node: Node,
) -> None:
    async def body() -> None:
        pids = await _ledgers(3)
        await within(system_messages.suspend_many(pids), "suspend")
        outcomes = await within(
            system_messages.change_code_many(pids[1:2], LEDGER, "0", "mutate_then_fail"), "cc"
        )
        failed = outcomes[0]
        assert isinstance(failed, CodeChangeFailed)
        assert failed.pid is pids[1]
        assert "RuntimeError: half migrated" in failed.traceback_text
        assert await _states(pids) == [{"a": i, "b": 0} for i in range(3)]
        assert await _statuses(pids) == ["suspended"] * 3
        await within(system_messages.resume_many(pids), "resume")

    await node.run_process(body)


async def test_a_hung_code_change_is_cancelled_in_its_process_the_others_migrate(
    node: Node,
) -> None:
    async def body() -> None:
        pids = await _ledgers(3)
        await within(system_messages.suspend_many(pids), "suspend")
        began = anyio.current_time()
        hung = system_messages.change_code_many(pids[:1], LEDGER, "0", "hang", timeout=2.0)
        outcomes = await within(hung, "hung code_change", limit=10)
        assert anyio.current_time() - began == pytest.approx(2.0)
        assert isinstance(outcomes[0], CodeChangeFailed)
        assert isinstance(outcomes[0].reason, TimeoutError)
        ok = await within(system_messages.change_code_many(pids[1:], LEDGER, "0", "ok"), "ok")
        assert ok == [{"a": 1, "b": 0}, {"a": 2, "b": 0}]
        assert await _states(pids) == [
            {"a": 0, "b": 0},
            {"a": 1, "b": 0, "migrated": 1},
            {"a": 2, "b": 0, "migrated": 1},
        ]
        await within(system_messages.resume_many(pids), "resume")
        assert await within(gen_server.call(pids[0], "state"), "alive") == {"a": 0, "b": 0}

    await node.run_process(body)


async def test_a_process_that_does_not_answer_times_out_and_its_late_answer_is_dropped(
    node: Node,
) -> None:
    async def client(server: Pid, owner: Pid) -> None:
        kernel.send(owner, ("calling", kernel.self()))
        await gen_server.call(server, ("slow_add", 10.0, 1), timeout=math.inf)

    async def body() -> None:
        busy = await within(gen_server.start(counter, 0), "start")
        assert busy is not None
        idle = await _ledgers(1)
        kernel.spawn(client, busy, kernel.self())
        await recv(tagged("calling"), step="client calling")
        began = anyio.current_time()
        outcomes = await within(system_messages.suspend_many([busy, *idle], timeout=1.0), "s")
        assert anyio.current_time() - began == pytest.approx(1.0)
        assert isinstance(outcomes[0], CallTimeout)
        assert outcomes[1] is None
        assert await within(system_messages.get_state(busy, timeout=math.inf), "late", 20) == 1
        assert await _statuses([busy]) == ["suspended"], "it got the suspend, late"
        await within(system_messages.resume_many([busy, *idle]), "resume")
        assert drain() == [], "the late answer to the suspend was dropped"

    await node.run_process(body)


async def test_replace_state_many_gives_each_its_own_new_state(node: Node) -> None:
    def refuse(state: dict[str, int]) -> dict[str, int]:
        raise ValueError("no new state")

    def add_b(state: dict[str, int]) -> dict[str, int]:
        return {**state, "b": 7}

    async def body() -> None:
        pids = await _ledgers(3)
        fns = [lambda _: {"x": 1}, refuse, add_b]
        outcomes = await within(system_messages.replace_state_many(pids, fns), "replace")
        assert outcomes[0] == {"x": 1}
        assert type(outcomes[1]) is SystemCallError
        assert outcomes[2] == {"a": 2, "b": 7}
        assert await _states(pids) == [{"x": 1}, {"a": 1, "b": 0}, {"a": 2, "b": 7}]

    await node.run_process(body)


def test_copy_state_of_a_dict_of_atoms_is_a_new_equal_dict() -> None:
    state = {"a": 1, "b": "x", 3: None, "d": 2.5, "e": True, "f": b"z"}
    backup = system_messages.copy_state(state)
    assert backup == state
    assert backup is not state


@pytest.mark.parametrize(
    "state",
    [
        pytest.param({"a": [1, 2]}, id="dict-of-list"),
        pytest.param({("k",): [1, 2]}, id="tuple-key"),
        pytest.param([[1, 2]], id="list"),
    ],
)
def test_copy_state_of_anything_else_is_a_deep_copy(state: object) -> None:
    backup = system_messages.copy_state(state)
    assert backup == state
    assert isinstance(backup, dict | list)
    inner = next(iter(backup.values())) if isinstance(backup, dict) else backup[0]
    inner.append(3)
    assert backup != state, "the inner list was copied too"


def test_copy_state_of_a_state_that_cannot_be_copied_keeps_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = {"lock": threading.Lock()}
    with caplog.at_level(logging.WARNING):
        assert system_messages.copy_state(state) is state
    assert "cannot be deep-copied" in caplog.text
