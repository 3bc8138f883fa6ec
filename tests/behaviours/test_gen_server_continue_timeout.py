"""gen_server actions (OTP 8.6): Continuation runs before the next message; Timeout fires
``handle_info("timeout")`` when idle and any message cancels it; Hibernate is accepted.

On virtual time: a Timeout of seconds costs no real time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import anyio
import pytest

from server import kernel
from server.behaviours import gen_server, system_messages
from tests.behaviours.callbacks import journal

from ._helpers import Matcher, reason_of, recv, tagged, within

if TYPE_CHECKING:
    from server.kernel import Node, Pid


pytestmark = pytest.mark.virtual_time


async def _start_journal(args: object = None) -> Pid:
    pid = await within(gen_server.start(journal, args), "start journal")
    assert pid is not None
    return pid


async def _events(pid: Pid) -> object:
    return await within(gen_server.call(pid, "journal"), "journal")


def _timed_out(pid: Pid) -> Matcher:
    return tagged("timed_out", pid)


# -- Continuation --------------------------------------------------------------------------


async def test_a_continuation_from_init_runs_before_the_first_message(node: Node) -> None:
    async def body() -> None:
        pid = await _start_journal(("continue", "after init"))
        # Both are queued before the server runs again: the continuation must come first.
        gen_server.cast(pid, "first cast")
        assert await _events(pid) == ("init", ("continue", "after init"), ("cast", "first cast"))

    await node.run_process(body)


@pytest.mark.parametrize("via", ["cast", "call"])
async def test_a_continuation_from_a_callback_runs_before_the_next_queued_message(
    node: Node, via: str
) -> None:
    async def client(server: Pid, owner: Pid) -> None:
        kernel.send(owner, ("calling", kernel.self()))
        # no await in between: the call is queued before the owner runs again
        await gen_server.call(server, ("continue", "go on"), timeout=math.inf)

    async def body() -> None:
        pid = await _start_journal()
        # Suspended, the server lets everything queue up first; the continuation must still
        # run before the messages queued behind its trigger.
        await within(system_messages.suspend(pid), "suspend")
        gen_server.cast(pid, "before")
        if via == "cast":
            gen_server.cast(pid, ("continue", "go on"))
        else:
            kernel.spawn(client, pid, kernel.self())
            await recv(tagged("calling"), step="client calling")
        gen_server.cast(pid, "queued behind")
        kernel.send(pid, "info behind")
        status = await within(system_messages.get_status(pid), "get_status")
        assert status.message_queue_len == 4
        await within(system_messages.resume(pid), "resume")
        assert await _events(pid) == (
            "init",
            ("cast", "before"),
            (via, ("continue", "go on")),
            ("continue", "go on"),
            ("cast", "queued behind"),
            ("info", "info behind"),
        )

    await node.run_process(body)


async def test_continuations_chain_before_any_message(node: Node) -> None:
    async def body() -> None:
        pid = await _start_journal(("continue", ("chain", 2)))
        gen_server.cast(pid, "after")
        assert await _events(pid) == (
            "init",
            ("continue", ("chain", 2)),
            ("continue", ("chain", 1)),
            ("continue", ("chain", 0)),
            ("cast", "after"),
        )

    await node.run_process(body)


async def test_a_continuation_may_stop_the_server(node: Node) -> None:
    async def body() -> None:
        pid = await _start_journal()
        ref = kernel.monitor(pid)
        gen_server.cast(pid, ("continue", ("stop", ("shutdown", "done"))))
        assert await reason_of(ref) == ("shutdown", "done")

    await node.run_process(body)


# -- Timeout -------------------------------------------------------------------------------


async def test_a_timeout_from_init_delivers_timeout_to_handle_info_when_idle(node: Node) -> None:
    async def body() -> None:
        began = anyio.current_time()
        pid = await _start_journal(("timeout", 5.0, kernel.self()))
        await recv(_timed_out(pid), step="timeout fired", limit=10)
        assert anyio.current_time() - began == pytest.approx(5.0)
        assert await _events(pid) == ("init", ("info", "timeout"))

    await node.run_process(body)


@pytest.mark.parametrize("via", ["cast", "call", "continue"])
async def test_a_timeout_from_a_callback_fires_after_that_many_idle_seconds(
    node: Node, via: str
) -> None:
    async def body() -> None:
        pid = await _start_journal(kernel.self())
        began = anyio.current_time()
        if via == "cast":
            gen_server.cast(pid, ("timeout", 2.0))
        elif via == "call":
            assert await within(gen_server.call(pid, ("timeout", 2.0)), "call") == "ok"
        else:
            gen_server.cast(pid, ("continue", ("timeout", 2.0)))
        await recv(_timed_out(pid), step="timeout fired", limit=10)
        assert anyio.current_time() - began == pytest.approx(2.0)

    await node.run_process(body)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(("cast", "poke"), id="cast"),
        pytest.param(("info", "poke"), id="plain-message"),
        pytest.param(("call", ("note", "poke")), id="call"),
    ],
)
async def test_any_message_cancels_the_timeout(node: Node, message: tuple[str, object]) -> None:
    async def body() -> None:
        pid = await _start_journal(("timeout", 5.0, kernel.self()))
        kind, payload = message
        if kind == "cast":
            gen_server.cast(pid, payload)
        elif kind == "info":
            kernel.send(pid, payload)
        else:
            await within(gen_server.call(pid, payload), "call")
        # Nothing may arrive, however long we wait (virtual seconds).
        with pytest.raises(TimeoutError):
            await kernel.receive(_timed_out(pid), timeout=60.0)
        events = await _events(pid)
        assert isinstance(events, tuple)
        assert ("info", "timeout") not in events

    await node.run_process(body)


async def test_a_timeout_of_zero_fires_only_when_no_message_is_queued(node: Node) -> None:
    async def body() -> None:
        pid = await _start_journal(kernel.self())
        gen_server.cast(pid, ("timeout", 0))
        gen_server.cast(pid, "queued")
        with pytest.raises(TimeoutError):
            await kernel.receive(_timed_out(pid), timeout=60.0)
        gen_server.cast(pid, ("timeout", 0))
        await recv(_timed_out(pid), step="timeout fired")
        assert await _events(pid) == (
            "init",
            ("cast", ("timeout", 0)),
            ("cast", "queued"),
            ("cast", ("timeout", 0)),
            ("info", "timeout"),
        )

    await node.run_process(body)


# -- other actions -------------------------------------------------------------------------


async def test_hibernate_is_accepted_and_the_server_goes_on(node: Node) -> None:
    async def body() -> None:
        pid = await _start_journal()
        gen_server.cast(pid, "hibernate")
        gen_server.cast(pid, "after")
        assert await _events(pid) == ("init", ("cast", "hibernate"), ("cast", "after"))

    await node.run_process(body)


async def test_an_unknown_action_stops_the_server_with_bad_action(node: Node) -> None:
    async def body() -> None:
        pid = await _start_journal()
        ref = kernel.monitor(pid)
        gen_server.cast(pid, "bad_action")
        assert await reason_of(ref) == ("bad_action", "not an action")

    await node.run_process(body)


@pytest.mark.parametrize("suspend", [False, True], ids=["get_status", "suspend-resume"])
async def test_a_system_message_does_not_cancel_the_timeout(node: Node, suspend: bool) -> None:
    # OTP answers system messages and goes back to its loop with the same timeout, re-armed;
    # an upgrade (suspend, change_code, resume) must not silently drop an idle timeout.
    async def body() -> None:
        began = anyio.current_time()
        pid = await _start_journal(("timeout", 5.0, kernel.self()))
        if suspend:
            await within(system_messages.suspend(pid), "suspend")
            await within(system_messages.resume(pid), "resume")
        else:
            await within(system_messages.get_status(pid), "get_status")
        await recv(_timed_out(pid), step="timeout fired", limit=10)
        assert anyio.current_time() - began == pytest.approx(5.0)
        assert await _events(pid) == ("init", ("info", "timeout"))

    await node.run_process(body)
