"""gen_server cast, handle_info and the engine's default callbacks."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.behaviours import gen_server, system_messages
from server.errors import CalleeExited
from tests.behaviours.callbacks import counter, journal, minimal

from ._helpers import drain, reason_of, within

if TYPE_CHECKING:
    from types import ModuleType

    from server.kernel import Node, Pid


async def _start(module: ModuleType, args: object = None, *, name: str | None = None) -> Pid:
    pid = await within(gen_server.start(module, args, name=name), "start")
    assert pid is not None
    return pid


async def test_a_cast_is_handled_and_changes_the_state(node: Node) -> None:
    async def body() -> None:
        pid = await _start(counter, 1)
        gen_server.cast(pid, ("add", 2))
        gen_server.cast(pid, ("add", 3))
        assert await within(gen_server.call(pid, "get"), "get") == 6

    await node.run_process(body)


async def test_casts_messages_and_calls_are_handled_in_arrival_order(node: Node) -> None:
    async def body() -> None:
        pid = await _start(journal)
        gen_server.cast(pid, "a")
        kernel.send(pid, "b")
        gen_server.cast(pid, "c")
        assert await within(gen_server.call(pid, ("note", "d")), "note") == "d"
        kernel.send(pid, "e")
        gen_server.cast(pid, "f")
        events = await within(gen_server.call(pid, "journal"), "journal")
        assert events == (
            "init",
            ("cast", "a"),
            ("info", "b"),
            ("cast", "c"),
            ("call", "d"),
            ("info", "e"),
            ("cast", "f"),
        )

    await node.run_process(body)


async def test_any_message_that_is_not_a_call_or_cast_goes_to_handle_info(node: Node) -> None:
    async def body() -> None:
        pid = await _start(journal)
        odd = [("$gen_cast", "not really"), {"a": 1}, None, kernel.self()]
        for message in odd:
            kernel.send(pid, message)
        events = await within(gen_server.call(pid, "journal"), "journal")
        assert events == ("init", *[("info", m) for m in odd])

    await node.run_process(body)


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("nobody", id="unknown-name"),
        pytest.param(None, id="dead-pid"),
    ],
)
async def test_cast_never_fails_even_without_a_server(node: Node, target: str | None) -> None:
    async def body() -> None:
        if target is None:
            pid = await _start(counter)
            await within(gen_server.stop(pid), "stop")
            gen_server.cast(pid, ("add", 1))
        else:
            gen_server.cast(target, ("add", 1))
        assert drain() == []

    await node.run_process(body)


async def test_abcast_reaches_every_name_that_exists(node: Node) -> None:
    async def body() -> None:
        first = await _start(counter, 0, name="first")
        second = await _start(counter, 10, name="second")
        gen_server.abcast(["first", "missing", "second"], ("add", 1))
        assert await within(gen_server.call(first, "get"), "first") == 1
        assert await within(gen_server.call(second, "get"), "second") == 11

    await node.run_process(body)


async def test_a_module_with_only_init_ignores_messages_with_a_warning(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        pid = await _start(minimal, "state")
        with caplog.at_level(logging.WARNING, logger="server.behaviours.gen_server"):
            kernel.send(pid, "stray")
            assert await within(system_messages.get_state(pid), "get_state") == "state"
        assert any("stray" in r.getMessage() for r in caplog.records)
        assert kernel.is_alive(pid)

    await node.run_process(body)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        pytest.param("call", ("bad_call", "hello"), id="call"),
        pytest.param("cast", ("bad_cast", "hello"), id="cast"),
    ],
)
async def test_a_module_without_the_handler_stops_on_a_call_or_cast(
    node: Node, kind: str, reason: object
) -> None:
    async def body() -> None:
        pid = await _start(minimal)
        ref = kernel.monitor(pid)
        if kind == "call":
            with pytest.raises(CalleeExited) as failed:
                await within(gen_server.call(pid, "hello"), "call")
            assert failed.value.reason == reason
        else:
            gen_server.cast(pid, "hello")
        assert await reason_of(ref) == reason

    await node.run_process(body)
