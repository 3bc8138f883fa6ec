"""When ``terminate`` runs (OTP 8.7), exit reasons, and crash reports.

``terminate`` runs on ``Stop``, on a crash, on ``gen_server.stop`` / ``sys`` terminate, and on
the parent's exit only when the server traps exits; never when the server is killed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from server import kernel
from server.behaviours import gen_server, system_messages
from server.errors import CalleeExited
from server.kernel import ExitMessage, Node, Pid, ProcessExit
from tests.behaviours.callbacks import observed

from ._helpers import drain, reason_of, recv, tagged, within


@dataclass(frozen=True, slots=True)
class Family:
    """A server started with ``start_link`` by ``parent``, reporting to the test."""

    server: Pid
    parent: Pid


async def _parent(owner: Pid, trap: bool) -> None:
    """Starts the server linked to itself, then obeys the test."""
    server = await gen_server.start_link(observed, (owner, trap))
    assert server is not None
    kernel.send(owner, ("family", kernel.self(), server))
    while True:
        match await kernel.receive():
            case ("signal", reason):
                kernel.exit(server, reason)
            case ("die", reason):
                raise ProcessExit(reason)
            case _:
                pass


async def _start_family(trap: bool) -> Family:
    kernel.spawn(_parent, kernel.self(), trap)
    message = await recv(tagged("family"), step="parent started the server")
    assert type(message) is tuple
    return Family(server=message[2], parent=message[1])


def _terminated(pid: Pid) -> list[object]:
    """The reasons ``terminate`` reported for ``pid`` (already queued: it runs before DOWN)."""
    return [m[2] for m in drain() if tagged("terminate", pid)(m) and type(m) is tuple]


def _value_error(reason: object) -> bool:
    return isinstance(reason, ValueError) and str(reason) == "handle_cast crashed"


# -- the grid: how the server ends x whether it traps exits --------------------------------

Act = Callable[[Family], Awaitable[None]]


async def _cast_stop(f: Family) -> None:
    gen_server.cast(f.server, ("stop", "boom"))


async def _cast_crash(f: Family) -> None:
    gen_server.cast(f.server, "crash")


async def _cast_junk(f: Family) -> None:
    gen_server.cast(f.server, "junk")


async def _gen_server_stop(f: Family) -> None:
    await within(gen_server.stop(f.server), "gen_server.stop")


async def _gen_server_stop_shutdown(f: Family) -> None:
    await within(gen_server.stop(f.server, "shutdown"), "gen_server.stop")


async def _sys_terminate(f: Family) -> None:
    await within(system_messages.terminate(f.server, ("shutdown", 1)), "sys terminate")


async def _parent_dies(f: Family) -> None:
    kernel.send(f.parent, ("die", "shutdown"))


async def _parent_sends_shutdown(f: Family) -> None:
    kernel.send(f.parent, ("signal", "shutdown"))


async def _parent_kills(f: Family) -> None:
    kernel.send(f.parent, ("signal", kernel.KILL))


async def _test_kills(f: Family) -> None:
    kernel.exit(f.server, kernel.KILL)


def _eq(value: object) -> Callable[[object], bool]:
    return lambda reason: reason == value


def _never(reason: object) -> bool:
    return False


GRID = [
    # (act, trap, terminate reason or None, exit reason)
    pytest.param(_cast_stop, False, _eq("boom"), _eq("boom"), id="Stop"),
    pytest.param(_cast_stop, True, _eq("boom"), _eq("boom"), id="Stop-trapping"),
    pytest.param(_cast_crash, False, _value_error, _value_error, id="crash"),
    pytest.param(_cast_crash, True, _value_error, _value_error, id="crash-trapping"),
    pytest.param(
        _cast_junk,
        False,
        _eq(("bad_return_value", "junk")),
        _eq(("bad_return_value", "junk")),
        id="bad-return",
    ),
    pytest.param(_gen_server_stop, False, _eq("normal"), _eq("normal"), id="stop"),
    pytest.param(_gen_server_stop, True, _eq("normal"), _eq("normal"), id="stop-trapping"),
    pytest.param(
        _gen_server_stop_shutdown, False, _eq("shutdown"), _eq("shutdown"), id="stop-shutdown"
    ),
    pytest.param(
        _sys_terminate, False, _eq(("shutdown", 1)), _eq(("shutdown", 1)), id="sys-terminate"
    ),
    pytest.param(
        _sys_terminate,
        True,
        _eq(("shutdown", 1)),
        _eq(("shutdown", 1)),
        id="sys-terminate-trapping",
    ),
    pytest.param(_parent_dies, False, _never, _eq("shutdown"), id="parent-exits"),
    pytest.param(_parent_dies, True, _eq("shutdown"), _eq("shutdown"), id="parent-exits-trapping"),
    pytest.param(_parent_sends_shutdown, False, _never, _eq("shutdown"), id="parent-exit-signal"),
    pytest.param(
        _parent_sends_shutdown,
        True,
        _eq("shutdown"),
        _eq("shutdown"),
        id="parent-exit-signal-trapping",
    ),
    pytest.param(_parent_kills, False, _never, _eq("killed"), id="parent-kills"),
    pytest.param(_parent_kills, True, _never, _eq("killed"), id="parent-kills-trapping"),
    pytest.param(_test_kills, False, _never, _eq("killed"), id="killed"),
    pytest.param(_test_kills, True, _never, _eq("killed"), id="killed-trapping"),
]


@pytest.mark.parametrize(("act", "trap", "terminate_ok", "exit_ok"), GRID)
async def test_terminate_runs_exactly_when_otp_says(
    node: Node,
    act: Act,
    trap: bool,
    terminate_ok: Callable[[object], bool],
    exit_ok: Callable[[object], bool],
) -> None:
    async def body() -> None:
        family = await _start_family(trap)
        ref = kernel.monitor(family.server)
        await act(family)
        reason = await reason_of(ref, step="server ended")
        assert exit_ok(reason), reason
        reported = _terminated(family.server)
        if terminate_ok is _never:
            assert reported == [], "terminate must not run"
        else:
            assert len(reported) == 1, reported
            assert terminate_ok(reported[0]), reported[0]

    await node.run_process(body)


@pytest.mark.parametrize("trap", [False, True], ids=["not-trapping", "trapping"])
async def test_a_parent_that_exits_normal_ends_only_a_trapping_server(
    node: Node, trap: bool
) -> None:
    async def body() -> None:
        family = await _start_family(trap)
        server_ref = kernel.monitor(family.server)
        parent_ref = kernel.monitor(family.parent)
        kernel.send(family.parent, ("die", "normal"))
        assert await reason_of(parent_ref, step="parent ended") == "normal"
        if trap:
            assert await reason_of(server_ref, step="server ended") == "normal"
            assert _terminated(family.server) == ["normal"]
        else:
            # still alive and serving: a normal exit signal is ignored without trapping
            answer = await within(gen_server.call(family.server, "ping"), "call")
            assert answer == ("pong", "ping")
            assert drain() == []

    await node.run_process(body)


async def test_a_trapping_server_gets_an_exit_from_another_process_in_handle_info(
    node: Node,
) -> None:
    async def body() -> None:
        family = await _start_family(trap=True)
        kernel.exit(family.server, "from the test")  # the test is not the server's parent
        message = await recv(tagged("info", family.server), step="handle_info got the EXIT")
        assert message == ("info", family.server, ExitMessage(kernel.self(), "from the test"))
        assert kernel.is_alive(family.server)
        assert _terminated(family.server) == []

    await node.run_process(body)


# -- crash reports -------------------------------------------------------------------------


async def test_a_crash_writes_a_crash_report_and_ends_with_the_exception(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        server = await within(gen_server.start(observed, (kernel.self(), False), name="srv"), "s")
        assert server is not None
        ref = kernel.monitor(server)
        with caplog.at_level(logging.ERROR):
            gen_server.cast(server, "crash")
            reason = await reason_of(ref)
        assert _value_error(reason)
        assert isinstance(reason, ValueError)
        assert reason.__traceback__ is None, "an exit reason keeps no frames"
        by_kind = {getattr(r, "report", None): r for r in caplog.records}
        engine = by_kind["gen_server_terminate"]
        assert engine.name == "server.behaviours.gen_server"
        assert engine.levelno == logging.ERROR
        assert engine.__dict__["callback_module"] == observed.__name__
        assert engine.__dict__["registered_name"] == "srv"
        assert "crash" in engine.__dict__["last_message"]
        crash = by_kind["crash_report"]
        assert crash.levelno == logging.ERROR
        assert "ValueError: handle_cast crashed" in crash.__dict__["traceback"]
        assert crash.__dict__["behaviour"] == "gen_server"

    await node.run_process(body)


@pytest.mark.parametrize(
    ("reason", "report"),
    [
        pytest.param("normal", False, id="normal"),
        pytest.param("shutdown", False, id="shutdown"),
        pytest.param(("shutdown", "x"), False, id="shutdown-tuple"),
        pytest.param("boom", True, id="boom"),
        pytest.param(("boom", "x"), True, id="boom-tuple"),
    ],
)
async def test_a_stop_writes_a_crash_report_only_for_an_abnormal_reason(
    node: Node, caplog: pytest.LogCaptureFixture, reason: object, report: bool
) -> None:
    async def body() -> None:
        server = await within(gen_server.start(observed, (kernel.self(), False)), "start")
        assert server is not None
        ref = kernel.monitor(server)
        with caplog.at_level(logging.INFO):
            with pytest.raises(CalleeExited) as failed:
                await within(gen_server.call(server, ("stop", reason)), "call")
            assert failed.value.reason == reason
            assert await reason_of(ref) == reason
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        if report:
            assert [getattr(r, "report", None) for r in errors] == ["crash_report"]
        else:
            assert errors == []

    await node.run_process(body)
