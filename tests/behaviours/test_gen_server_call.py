"""gen_server call semantics (OTP 8.1-8.5, scenario 20): replies, failures, late replies.

On virtual time: call timeouts and slow servers cost no real time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import anyio
import pytest

from server import kernel
from server.behaviours import gen_server
from server.errors import CalleeExited, CallTimeout
from server.kernel import From, Node, Pid
from tests.behaviours.callbacks import counter

from ._helpers import drain, reason_of, recv, tagged, within

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


pytestmark = pytest.mark.virtual_time


async def _start_counter(state: int = 0, *, name: str | None = None) -> Pid:
    pid = await within(gen_server.start(counter, state, name=name), "start counter")
    assert pid is not None
    return pid


# -- replies -------------------------------------------------------------------------------


async def test_call_returns_the_reply_and_the_server_keeps_the_new_state(node: Node) -> None:
    async def body() -> None:
        pid = await _start_counter(10)
        assert await within(gen_server.call(pid, ("add", 5)), "add") == 15
        assert await within(gen_server.call(pid, "get"), "get") == 15
        assert await within(gen_server.call(pid, "what?"), "unknown") == ("unknown", "what?")
        assert drain() == []

    await node.run_process(body)


async def test_handle_call_gets_a_from_naming_the_caller(node: Node) -> None:
    async def client(server: Pid, owner: Pid) -> None:
        answer = await gen_server.call(server, ("defer_to", owner))
        kernel.send(owner, ("answer_to", kernel.self(), answer))

    async def body() -> None:
        pid = await _start_counter()
        caller = kernel.spawn(client, pid, kernel.self())
        message = await recv(tagged("answer"), step="the server passed on the From")
        assert type(message) is tuple
        from_ = message[1]
        assert isinstance(from_, From)
        assert from_.pid is caller
        gen_server.reply(from_, "answered by the test")
        answer = await recv(tagged("answer_to", caller), step="the caller got the reply")
        assert answer == ("answer_to", caller, "answered by the test")

    await node.run_process(body)


async def test_a_deferred_call_is_answered_by_gen_server_reply_from_another_process(
    node: Node,
) -> None:
    async def helper(owner: Pid) -> None:
        message = await kernel.receive()
        assert type(message) is tuple
        assert message[0] == "answer"
        # another process answers, later, while the server has moved on
        await gen_server.call(owner_server[0], ("add", 1))
        gen_server.reply(message[1], "from the helper")

    owner_server: list[Pid] = []

    async def body() -> None:
        pid = await _start_counter()
        owner_server.append(pid)
        answerer = kernel.spawn(helper, kernel.self())
        began = anyio.current_time()
        reply = await within(gen_server.call(pid, ("defer_to", answerer)), "deferred call")
        assert reply == "from the helper"
        assert anyio.current_time() == began
        assert await within(gen_server.call(pid, "get"), "get") == 1
        assert drain() == []

    await node.run_process(body)


# -- a missing or dying server -------------------------------------------------------------


async def _dead_pid() -> Pid:
    pid = await _start_counter()
    await within(gen_server.stop(pid), "stop")
    return pid


async def _stopped_name() -> str:
    await _start_counter(name="gone")
    await within(gen_server.stop("gone"), "stop")
    return "gone"


async def _never_registered() -> str:
    return "nobody"


@pytest.mark.parametrize(
    "make_target",
    [
        pytest.param(_never_registered, id="unknown-name"),
        pytest.param(_dead_pid, id="dead-pid"),
        pytest.param(_stopped_name, id="name-of-a-stopped-server"),
    ],
)
@pytest.mark.parametrize("timeout", [5.0, math.inf], ids=["timeout-5s", "infinity"])
async def test_a_call_to_a_missing_server_raises_noproc_at_once(
    node: Node, make_target: Callable[[], Awaitable[Pid | str]], timeout: float
) -> None:
    async def body() -> None:
        target = await make_target()
        began = anyio.current_time()
        with pytest.raises(CalleeExited) as failed:
            await within(gen_server.call(target, "get", timeout=timeout), "call")
        assert failed.value.reason == kernel.NOPROC
        assert failed.value.server == target
        assert anyio.current_time() == began, "no wait at all"
        assert drain() == [], "no DOWN left behind"

    await node.run_process(body)


def _value_error(reason: object) -> bool:
    return (
        isinstance(reason, ValueError)
        and str(reason) == "handle_call crashed"
        and reason.__traceback__ is None
    )


@pytest.mark.parametrize(
    ("request_", "reason_ok"),
    [
        pytest.param("crash", _value_error, id="callback-raises"),
        pytest.param("stop_silently", lambda r: r == "normal", id="Stop-normal-no-reply"),
        pytest.param(("stop_with", "boom"), lambda r: r == "boom", id="Stop-boom-no-reply"),
        pytest.param(
            ("stop_with", ("shutdown", "bye")),
            lambda r: r == ("shutdown", "bye"),
            id="Stop-shutdown-tuple-no-reply",
        ),
        pytest.param(
            "junk", lambda r: r == ("bad_return_value", "not a result"), id="bad-return-value"
        ),
    ],
)
async def test_a_server_that_ends_during_a_call_raises_callee_exited_with_its_reason(
    node: Node, request_: object, reason_ok: Callable[[object], bool]
) -> None:
    async def body() -> None:
        pid = await _start_counter()
        ref = kernel.monitor(pid)
        with pytest.raises(CalleeExited) as failed:
            await within(gen_server.call(pid, request_, timeout=math.inf), "call")
        assert reason_ok(failed.value.reason), failed.value.reason
        assert failed.value.request == request_
        assert reason_ok(await reason_of(ref))
        assert drain() == []

    await node.run_process(body)


async def test_a_server_killed_while_a_call_waits_raises_callee_exited_killed(
    node: Node,
) -> None:
    async def killer(owner: Pid) -> None:
        message = await kernel.receive()
        assert type(message) is tuple
        assert message[0] == "answer"
        from_ = message[1]
        assert isinstance(from_, From)
        kernel.exit(server[0], kernel.KILL)

    server: list[Pid] = []

    async def body() -> None:
        pid = await _start_counter()
        server.append(pid)
        other = kernel.spawn(killer, kernel.self())
        with pytest.raises(CalleeExited) as failed:
            await within(gen_server.call(pid, ("defer_to", other), timeout=math.inf), "call")
        assert failed.value.reason == kernel.KILLED

    await node.run_process(body)


async def test_a_stop_that_replies_answers_the_caller_then_ends(node: Node) -> None:
    async def body() -> None:
        pid = await _start_counter()
        ref = kernel.monitor(pid)
        assert await within(gen_server.call(pid, "stop"), "call") == "stopping"
        assert await reason_of(ref) == "normal"
        assert drain() == []

    await node.run_process(body)


# -- timeouts and late replies -------------------------------------------------------------


async def test_a_timed_out_call_raises_and_the_late_reply_never_reaches_the_caller(
    node: Node,
) -> None:
    async def body() -> None:
        pid = await _start_counter(1)
        began = anyio.current_time()
        with pytest.raises(CallTimeout) as timed_out:
            await within(gen_server.call(pid, ("slow_add", 10.0, 5), timeout=2.0), "call")
        assert timed_out.value.timeout == 2.0
        assert anyio.current_time() - began == pytest.approx(2.0)
        # The server still executes the request and answers it (to nobody): the next call is
        # handled after that, so once it returns the late reply has been sent.
        assert await within(gen_server.call(pid, "get", timeout=math.inf), "get", 20) == 6
        assert anyio.current_time() - began == pytest.approx(10.0)
        assert kernel.flush() == 0, "the late reply was dropped"
        with pytest.raises(anyio.WouldBlock):
            kernel.receive_nowait()

    await node.run_process(body)


async def test_a_reply_through_the_from_of_a_timed_out_call_is_dropped(node: Node) -> None:
    async def body() -> None:
        pid = await _start_counter()
        with pytest.raises(CallTimeout):
            await within(gen_server.call(pid, "defer", timeout=1.0), "call")
        message = kernel.receive_nowait()  # counter sent us the From of our own call
        assert type(message) is tuple
        assert message[0] == "deferred_from"
        gen_server.reply(message[1], "too late")
        gen_server.reply(message[1], "much too late")
        assert drain() == []

    await node.run_process(body)


async def test_call_waits_five_seconds_by_default(node: Node) -> None:
    async def body() -> None:
        pid = await _start_counter()
        began = anyio.current_time()
        with pytest.raises(CallTimeout):
            await within(gen_server.call(pid, "defer"), "call", 20)
        assert anyio.current_time() - began == pytest.approx(gen_server.DEFAULT_CALL_TIMEOUT)
        assert gen_server.DEFAULT_CALL_TIMEOUT == 5.0

    await node.run_process(body)


async def test_a_slow_answer_within_the_timeout_arrives(node: Node) -> None:
    async def body() -> None:
        pid = await _start_counter(1)
        answer = await within(gen_server.call(pid, ("slow_add", 3.0, 1), timeout=4.0), "call")
        assert answer == 2
        assert drain() == []

    await node.run_process(body)


async def test_a_duplicate_reply_is_dropped(node: Node) -> None:
    async def body() -> None:
        pid = await _start_counter(3)
        assert await within(gen_server.call(pid, "twice"), "call") == "first"
        assert await within(gen_server.call(pid, "get"), "get") == 3
        assert kernel.flush() == 0, "the second reply was dropped"

    await node.run_process(body)
