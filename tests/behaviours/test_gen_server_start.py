"""gen_server start: every ``init`` outcome, names, and the start timeout (OTP 8.8).

On virtual time: the start-timeout tests wait for a timer without waiting real seconds.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable

import anyio
import pytest

from server import kernel
from server.behaviours import gen_server, system_messages
from server.errors import AlreadyStarted, CalleeExited, StartError
from server.kernel import Node, Pid
from tests.behaviours.callbacks import counter, starting
from tests.behaviours.callbacks.starting import Args

from ._helpers import drain, idle, reason_of, recv, tagged, within

Start = Callable[..., Awaitable[Pid | None]]


pytestmark = pytest.mark.virtual_time


START_FUNCTIONS = [
    pytest.param(gen_server.start, id="start"),
    pytest.param(gen_server.start_link, id="start_link"),
]


async def _initialising_pid() -> Pid:
    """The pid a ``starting`` server reported before its ``init`` decided."""
    message = await recv(tagged("initialising"), step="init reported its pid")
    assert type(message) is tuple
    pid = message[1]
    assert isinstance(pid, Pid)
    return pid


# -- Ok ------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", START_FUNCTIONS)
@pytest.mark.parametrize(
    "module", [pytest.param(starting, id="module"), pytest.param(starting.__name__, id="name")]
)
async def test_init_ok_returns_the_pid_of_a_running_server(
    node: Node, start: Start, module: object
) -> None:
    async def body() -> None:
        pid = await within(start(module, Args(kernel.self(), "ok", 7)), "start")
        assert isinstance(pid, Pid)
        assert pid is await _initialising_pid()
        assert kernel.is_alive(pid)
        assert await within(gen_server.call(pid, "state?"), "call") == ("state", 7)
        await within(gen_server.stop(pid), "stop")

    await node.run_process(body)


async def test_start_link_links_the_server_to_its_starter(node: Node) -> None:
    async def body() -> None:
        pid = await within(gen_server.start_link(counter), "start_link")
        assert pid is not None
        info = kernel.process_info(pid)
        assert info is not None
        assert kernel.self() in info.links
        unlinked = await within(gen_server.start(counter), "start")
        assert unlinked is not None
        info = kernel.process_info(unlinked)
        assert info is not None
        assert kernel.self() not in info.links
        kernel.unlink(pid)

    await node.run_process(body)


async def test_a_callback_module_that_is_neither_module_nor_name_is_a_type_error(
    node: Node,
) -> None:
    async def body() -> None:
        before = len(kernel.processes())
        with pytest.raises(TypeError, match="callback module"):
            await gen_server.start(42)  # type: ignore[arg-type]
        assert len(kernel.processes()) == before

    await node.run_process(body)


# -- Ignore --------------------------------------------------------------------------------


@pytest.mark.parametrize("start", START_FUNCTIONS)
async def test_init_ignore_returns_none_and_the_process_is_gone(node: Node, start: Start) -> None:
    async def body() -> None:
        kernel.trap_exit(True)
        result = await within(start(starting, Args(kernel.self(), "ignore"), name="ig"), "start")
        assert result is None
        pid = await _initialising_pid()
        assert not kernel.is_alive(pid)
        assert kernel.whereis("ig") is None
        assert drain() == [], "no ExitMessage, no stray acknowledgement"

    await node.run_process(body)


# -- failures: Stop, an exception, a bad value, an exit ------------------------------------


def _is(expected: object) -> Callable[[object], bool]:
    return lambda reason: reason == expected


def _runtime_error(reason: object) -> bool:
    return (
        isinstance(reason, RuntimeError)
        and str(reason) == "init blew up"
        and reason.__traceback__ is None
    )


FAILURES = [
    pytest.param("stop", "no thanks", _is("no thanks"), id="Stop"),
    pytest.param("stop", ("shutdown", "x"), _is(("shutdown", "x")), id="Stop-shutdown"),
    pytest.param("raise", "init blew up", _runtime_error, id="exception"),
    pytest.param("bad", "junk", _is(("bad_return_value", "junk")), id="bad-value"),
    pytest.param("bad", None, _is(("bad_return_value", None)), id="bad-value-None"),
    pytest.param("exit", "gave up", _is("gave up"), id="ProcessExit"),
]


@pytest.mark.parametrize("start", START_FUNCTIONS)
@pytest.mark.parametrize(("outcome", "value", "reason_ok"), FAILURES)
async def test_a_failed_init_raises_start_error_with_the_reason(
    node: Node, start: Start, outcome: str, value: object, reason_ok: Callable[[object], bool]
) -> None:
    async def body() -> None:
        with pytest.raises(StartError) as failed:
            await within(start(starting, Args(kernel.self(), outcome, value)), "start")
        assert type(failed.value) is StartError
        assert reason_ok(failed.value.reason), failed.value.reason
        assert not kernel.is_alive(await _initialising_pid())

    await node.run_process(body)


@pytest.mark.parametrize("trap", [False, True], ids=["not-trapping", "trapping"])
@pytest.mark.parametrize(("outcome", "value", "reason_ok"), FAILURES)
async def test_a_failed_start_link_neither_kills_nor_signals_its_starter(
    node: Node, trap: bool, outcome: str, value: object, reason_ok: Callable[[object], bool]
) -> None:
    async def body() -> str:
        kernel.trap_exit(trap)
        with pytest.raises(StartError):
            await within(
                gen_server.start_link(starting, Args(kernel.self(), outcome, value)), "start"
            )
        await _initialising_pid()
        assert drain() == [], "no stray ExitMessage or acknowledgement"
        return "starter survived"

    assert await node.run_process(body) == "starter survived"


@pytest.mark.parametrize(
    ("outcome", "value", "report"),
    [
        pytest.param("ignore", None, False, id="Ignore"),
        pytest.param("stop", "normal", False, id="Stop-normal"),
        pytest.param("stop", "shutdown", False, id="Stop-shutdown"),
        pytest.param("stop", ("shutdown", 1), False, id="Stop-shutdown-tuple"),
        pytest.param("stop", "no thanks", True, id="Stop-abnormal"),
        pytest.param("raise", "init blew up", True, id="exception"),
    ],
)
async def test_a_failed_init_writes_a_crash_report_only_for_an_abnormal_reason(
    node: Node, caplog: pytest.LogCaptureFixture, outcome: str, value: object, report: bool
) -> None:
    async def body() -> None:
        with contextlib.suppress(StartError):
            await within(gen_server.start(starting, Args(kernel.self(), outcome, value)), "start")
        reports = [r for r in caplog.records if getattr(r, "report", None) == "crash_report"]
        assert len(reports) == int(report)
        if outcome == "raise":
            assert "RuntimeError: init blew up" in getattr(reports[0], "traceback", "")

    await node.run_process(body)


# -- names ---------------------------------------------------------------------------------


async def test_a_named_server_is_called_and_cast_to_by_name(node: Node) -> None:
    async def body() -> None:
        pid = await within(gen_server.start(counter, 5, name="counter"), "start")
        assert kernel.whereis("counter") is pid
        gen_server.cast("counter", ("add", 2))
        assert await within(gen_server.call("counter", "get"), "call") == 7
        status = await within(system_messages.get_status("counter"), "get_status")
        assert status.registered_name == "counter"

    await node.run_process(body)


@pytest.mark.parametrize("start", START_FUNCTIONS)
@pytest.mark.parametrize("holder_kind", ["gen_server", "plain-process"])
async def test_a_taken_name_gives_already_started_with_the_holders_pid(
    node: Node, start: Start, holder_kind: str
) -> None:
    async def body() -> None:
        if holder_kind == "gen_server":
            holder = await within(gen_server.start(counter, 1, name="taken"), "first start")
            assert holder is not None
        else:
            holder = kernel.spawn(idle)
            kernel.register("taken", holder)
        before = set(kernel.processes())
        with pytest.raises(AlreadyStarted) as clash:
            await within(start(starting, Args(kernel.self(), "ok"), name="taken"), "second")
        assert clash.value.pid is holder
        assert clash.value.name == "taken"
        assert clash.value.reason == ("already_started", holder)
        assert set(kernel.processes()) == before, "the second process is gone"
        assert kernel.whereis("taken") is holder
        assert kernel.is_alive(holder)
        assert drain() == []

    await node.run_process(body)


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(lambda pid: gen_server.stop(pid), id="stop"),
        pytest.param(lambda pid: gen_server.stop("named", "shutdown"), id="stop-by-name"),
        pytest.param(lambda pid: _crash(pid), id="crash"),
        pytest.param(lambda pid: _kill(pid), id="kill"),
    ],
)
async def test_the_name_is_free_again_once_the_server_has_ended(
    node: Node, end: Callable[[Pid], Awaitable[None]]
) -> None:
    async def body() -> None:
        first = await within(gen_server.start(counter, 0, name="named"), "first start")
        assert first is not None
        await within(end(first), "end the first server")
        assert kernel.whereis("named") is None
        second = await within(gen_server.start(counter, 0, name="named"), "second start")
        assert second is not None
        assert second is not first
        assert kernel.whereis("named") is second

    await node.run_process(body)


async def _crash(pid: Pid) -> None:
    ref = kernel.monitor(pid)
    with pytest.raises(CalleeExited, match="handle_call crashed"):
        await gen_server.call(pid, "crash")
    await reason_of(ref)


async def _kill(pid: Pid) -> None:
    ref = kernel.monitor(pid)
    kernel.exit(pid, kernel.KILL)
    await reason_of(ref)


# -- the start timeout ---------------------------------------------------------------------


@pytest.mark.parametrize("start", START_FUNCTIONS)
@pytest.mark.parametrize("trap", [False, True], ids=["not-trapping", "trapping"])
async def test_a_start_timeout_kills_the_starting_process(
    node: Node, start: Start, trap: bool
) -> None:
    async def body() -> None:
        kernel.trap_exit(trap)
        began = anyio.current_time()
        with pytest.raises(StartError) as failed:
            await within(
                start(starting, Args(kernel.self(), "hang"), name="slow", timeout=3.0),
                "start",
                limit=10,
            )
        assert failed.value.reason == "timeout"
        assert anyio.current_time() - began == pytest.approx(3.0)
        pid = await _initialising_pid()
        assert not kernel.is_alive(pid)
        assert kernel.whereis("slow") is None
        assert drain() == [], "no ExitMessage, no DOWN"

    await node.run_process(body)


async def test_start_waits_for_a_slow_init_when_the_timeout_allows(node: Node) -> None:
    async def body() -> None:
        args = Args(kernel.self(), "ok", "done")
        pid = await within(gen_server.start(starting, args, timeout=math.inf), "start")
        assert pid is not None
        assert await gen_server.call(pid, "state?") == ("state", "done")

    await node.run_process(body)
