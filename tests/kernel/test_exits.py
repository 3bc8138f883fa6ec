"""How a process ends: its exit reason, crash reports, ``ProcessExit`` and ``exit/2``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio.lowlevel
import pytest

from server import kernel
from server.kernel import ExitMessage, Node, Pid, ProcessExit, is_normal_exit

from ._helpers import idle, ping, reason_of, recv, start_peer, trapped_by

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


def crash_reports(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "server.kernel" and getattr(r, "report", None) == "crash_report"
    ]


def run_reason(body: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
    """A test process that spawns ``body`` monitored and returns its exit reason."""

    async def tester() -> object:
        _, ref = kernel.spawn_monitor(body)
        return await reason_of(ref)

    return tester


# -- the reason a process ends with ---------------------------------------------------------


async def test_returning_ends_the_process_normal(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> int:
        return 42

    assert await node.run_process(run_reason(body)) == "normal"
    assert crash_reports(caplog) == []


async def test_an_exception_is_the_reason_without_its_traceback(node: Node) -> None:
    raised: list[BaseException] = []

    async def body() -> None:
        try:
            raise KeyError("missing")
        except KeyError as cause:
            error = ValueError("boom")
            raised.append(error)
            raise error from cause

    reason = await node.run_process(run_reason(body))
    assert reason is raised[0], "the reason is the very exception raised"
    assert isinstance(reason, ValueError)
    assert reason.__traceback__ is None
    assert reason.__cause__ is not None
    assert reason.__cause__.__traceback__ is None, "chained exceptions lose their frames too"


async def test_a_crash_is_logged_with_its_traceback(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    async def crashing_body() -> None:
        raise ValueError("boom")

    reason = await node.run_process(run_reason(crashing_body))
    assert isinstance(reason, ValueError)
    [record] = crash_reports(caplog)
    assert record.levelno == logging.ERROR
    assert "ValueError('boom')" in record.getMessage()
    text = getattr(record, "traceback", None)
    assert isinstance(text, str)
    assert "crashing_body" in text, "the traceback was taken before the frames were dropped"
    assert "ValueError: boom" in text


REASONS: list[object] = ["normal", "shutdown", ("shutdown", "detail"), "boom", ("error", 1)]
REASON_IDS = ["normal", "shutdown", "shutdown-tuple", "atom", "tuple"]


@pytest.mark.parametrize("reason", REASONS, ids=REASON_IDS)
async def test_process_exit_ends_the_process_with_its_reason(
    node: Node, caplog: pytest.LogCaptureFixture, reason: object
) -> None:
    async def body() -> None:
        raise ProcessExit(reason)

    assert await node.run_process(run_reason(body)) == reason
    reports = crash_reports(caplog)
    if is_normal_exit(reason):
        assert reports == [], "normal and shutdown exits are not crashes"
    else:
        [record] = reports
        assert getattr(record, "reason", None) == repr(reason)


async def test_process_exit_is_not_swallowed_by_except_exception(node: Node) -> None:
    async def body() -> None:
        try:
            raise ProcessExit("deliberate")
        except Exception:  # user code that catches "everything"
            pass

    assert await node.run_process(run_reason(body)) == "deliberate"


# -- exit/2 from another process -------------------------------------------------------------

EXIT_GRID: list[tuple[bool, object, object]] = [
    # (target traps exits, reason sent, expected: exit reason, or "survives")
    (False, "normal", "survives"),
    (False, "shutdown", "shutdown"),
    (False, "boom", "boom"),
    (False, "kill", "killed"),
    (True, "normal", "survives"),
    (True, "shutdown", "survives"),
    (True, "boom", "survives"),
    (True, "kill", "killed"),
]


@pytest.mark.parametrize(
    ("trap", "reason", "expected"),
    EXIT_GRID,
    ids=[f"{'trapping' if t else 'plain'}-{r}" for t, r, _ in EXIT_GRID],
)
async def test_exit_sent_by_another_process(
    node: Node, trap: bool, reason: object, expected: object
) -> None:
    async def body() -> None:
        target = await start_peer(trap=trap)
        ref = kernel.monitor(target)
        kernel.exit(target, reason)
        if expected == "survives":
            if trap:
                assert await trapped_by(target) == ExitMessage(kernel.self(), reason)
            await ping(target)
            assert kernel.is_alive(target)
        else:
            assert await reason_of(ref) == expected

    await node.run_process(body)


async def test_exit_self_normal_ends_the_caller(node: Node) -> None:
    after: list[str] = []

    async def body() -> None:
        kernel.exit(kernel.self(), "normal")
        after.append("still running")

    assert await node.run_process(run_reason(body)) == "normal"
    assert after == []


async def test_exit_self_with_a_reason_ends_the_caller_with_it(node: Node) -> None:
    async def body() -> None:
        kernel.exit(kernel.self(), "boom")

    assert await node.run_process(run_reason(body)) == "boom"


async def test_exit_self_normal_when_trapping_is_a_message(node: Node) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        me = kernel.self()
        kernel.exit(me, "normal")
        assert await recv(step="own EXIT") == ExitMessage(me, "normal")

    await node.run_process(body)


async def test_exit_self_kill_ends_even_a_trapping_caller_killed(node: Node) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        kernel.exit(kernel.self(), "kill")

    assert await node.run_process(run_reason(body)) == "killed"


async def test_exit_to_a_dead_pid_is_ignored(node: Node) -> None:
    async def short() -> None:
        return None

    async def body() -> None:
        pid, ref = kernel.spawn_monitor(short)
        await reason_of(ref)
        kernel.exit(pid, "boom")
        kernel.exit(pid, "kill")

    await node.run_process(body)


# -- killing ---------------------------------------------------------------------------------


async def test_a_killed_process_stops_at_its_await_and_runs_its_finally(node: Node) -> None:
    events: list[str] = []

    async def victim(tester: Pid) -> None:
        try:
            kernel.send(tester, "waiting")
            await kernel.receive()
            events.append("resumed")
        except Exception:
            events.append("caught as an Exception")
        finally:
            events.append("finally")

    async def body() -> None:
        pid, ref = kernel.spawn_monitor(victim, kernel.self())
        await recv(lambda m: m == "waiting", step="victim waiting")
        kernel.exit(pid, "kill")
        assert await reason_of(ref) == "killed"

    await node.run_process(body)
    assert events == ["finally"]


async def test_a_process_killed_before_it_ran_never_runs(node: Node) -> None:
    ran: list[bool] = []

    async def victim() -> None:
        ran.append(True)

    async def body() -> None:
        pid, ref = kernel.spawn_monitor(victim)
        kernel.exit(pid, "kill")
        assert await reason_of(ref) == "killed"

    await node.run_process(body)
    assert ran == []


async def test_a_kill_overrides_what_the_process_does_while_unwinding(node: Node) -> None:
    async def stubborn(tester: Pid) -> None:
        try:
            kernel.send(tester, "waiting")
            await kernel.receive()
        finally:
            await anyio.lowlevel.checkpoint()
            raise ValueError("cleanup failed")

    async def body() -> None:
        pid, ref = kernel.spawn_monitor(stubborn, kernel.self())
        await recv(lambda m: m == "waiting", step="waiting")
        kernel.exit(pid, "kill")
        assert await reason_of(ref) == "killed"

    await node.run_process(body)


async def test_is_alive_is_false_as_soon_as_a_kill_is_sent(node: Node) -> None:
    async def body() -> None:
        pid, ref = kernel.spawn_monitor(idle)
        assert kernel.is_alive(pid)
        kernel.exit(pid, "kill")
        assert not kernel.is_alive(pid), "doomed at once, before its task has unwound"
        assert await reason_of(ref) == "killed"
        assert not kernel.is_alive(pid)

    await node.run_process(body)


# -- which reasons are normal ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "normal"),
    [
        ("normal", True),
        ("shutdown", True),
        (("shutdown", "detail"), True),
        (("shutdown", None), True),
        ("killed", False),
        ("kill", False),
        ("noproc", False),
        ("boom", False),
        (("shutdown",), False),
        (("shutdown", 1, 2), False),
        (["shutdown", "detail"], False),
        (ValueError("normal"), False),
        (None, False),
    ],
    ids=repr,
)
def test_is_normal_exit(reason: object, normal: bool) -> None:
    assert is_normal_exit(reason) is normal
