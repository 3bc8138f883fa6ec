"""gen_event: supervised handlers (``add_sup_handler``) and the ``HandlerExit`` their adder gets.

OTP's rules: the adder is told ``{gen_event_EXIT, Handler, Reason}`` when its handler goes
(``normal``, ``shutdown``, ``{swapped, New, Pid}`` or the error), and a handler whose adder
ends is removed with ``terminate({stop, Reason}, State)``. On virtual time; no clock waits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.behaviours import gen_event
from server.behaviours.gen_event_callbacks import Handler, HandlerExit, Swapped
from server.kernel import ExitMessage
from tests.behaviours.callbacks import event_log, event_tally

from ._helpers import drain, reason_of, recv, tagged, within

if TYPE_CHECKING:
    from server.behaviours.gen_event_callbacks import HandlerSpec
    from server.kernel import Node, Pid

pytestmark = pytest.mark.virtual_time

LOG = Handler("tests.behaviours.callbacks.event_log")
TALLY = Handler("tests.behaviours.callbacks.event_tally")


def handler_exit(message: object) -> bool:
    return type(message) is HandlerExit


async def _exit_of(handler: Handler) -> HandlerExit:
    message = await recv(
        lambda m: type(m) is HandlerExit and m.handler == handler, step=f"HandlerExit {handler}"
    )
    assert type(message) is HandlerExit
    return message


async def _adder(manager: Pid, owner: Pid, handler: HandlerSpec, args: object) -> None:
    """Adds a supervised handler, then passes on every message it gets to ``owner``."""
    await gen_event.add_sup_handler(manager, handler, args)
    kernel.send(owner, ("added", kernel.self()))
    while True:
        message = await kernel.receive()
        if message == "return":
            return
        kernel.send(owner, ("adder_got", kernel.self(), message))


async def _spawn_adder(manager: Pid, handler: HandlerSpec, args: object) -> Pid:
    adder = kernel.spawn(_adder, manager, kernel.self(), handler, args)
    await recv(tagged("added", adder), step="the adder added its handler")
    return adder


async def test_delete_handler_tells_the_adder_normal(node: Node) -> None:
    async def body() -> None:
        manager = await within(gen_event.start_link(), "start")
        await gen_event.add_sup_handler(manager, event_log, kernel.self())
        await gen_event.delete_handler(manager, event_log, "bye")
        assert await _exit_of(LOG) == HandlerExit(manager, LOG, "normal")

    await node.run_process(body)


async def test_remove_handler_tells_the_adder_normal(node: Node) -> None:
    async def body() -> None:
        manager = await within(gen_event.start_link(), "start")
        await gen_event.add_sup_handler(manager, event_log, kernel.self())
        gen_event.notify(manager, "remove")
        assert (await _exit_of(LOG)).reason == "normal"

    await node.run_process(body)


async def test_a_crashing_handler_is_removed_and_its_adder_gets_the_exception(node: Node) -> None:
    async def body() -> None:
        manager = await within(gen_event.start_link(), "start")
        await gen_event.add_sup_handler(manager, event_log, kernel.self())
        await gen_event.add_sup_handler(manager, event_tally, kernel.self())
        gen_event.notify(manager, "crash")
        reason = (await _exit_of(LOG)).reason
        assert isinstance(reason, RuntimeError)
        assert str(reason) == "handle_event crashed"
        assert reason.__traceback__ is None
        gen_event.notify(manager, "junk")  # tally counts it; event_log is gone
        gen_event.notify(manager, "tally_crash")
        reason = (await _exit_of(TALLY)).reason
        assert isinstance(reason, ValueError)
        assert kernel.is_alive(manager), "the manager keeps running"
        assert await gen_event.which_handlers(manager) == []

    await node.run_process(body)


async def test_a_handler_returning_junk_tells_its_adder_the_bad_value(node: Node) -> None:
    async def body() -> None:
        manager = await within(gen_event.start_link(), "start")
        await gen_event.add_sup_handler(manager, event_log, kernel.self())
        gen_event.notify(manager, "junk")
        assert (await _exit_of(LOG)).reason == ("bad_return_value", "not a result")

    await node.run_process(body)


async def test_a_stopping_manager_tells_shutdown_and_does_not_take_the_adder_along(
    node: Node,
) -> None:
    async def body() -> None:
        manager = await within(gen_event.start(), "start")
        adder = await _spawn_adder(manager, event_log, kernel.self())
        adder_ref = kernel.monitor(adder)
        await within(gen_event.stop(manager, "going away"), "stop the manager")
        assert await recv(tagged("terminate"), step="terminate") == (
            "terminate",
            "event_log",
            "stop",
        )
        told = await recv(tagged("adder_got", adder), step="the adder was told")
        assert told == ("adder_got", adder, HandlerExit(manager, LOG, "shutdown"))
        assert kernel.is_alive(adder), "unlinked before the manager ended"
        kernel.send(adder, "return")
        assert await reason_of(adder_ref) == "normal"

    await node.run_process(body)


@pytest.mark.parametrize("how", ["killed", "returned"])
async def test_when_the_adder_ends_its_handler_is_removed_with_stop_reason(
    node: Node, how: str
) -> None:
    async def body() -> None:
        manager = await within(gen_event.start_link(), "start")
        await gen_event.add_handler(manager, (event_log, "plain"), kernel.self())
        adder = await _spawn_adder(manager, event_log, kernel.self())
        if how == "killed":
            kernel.exit(adder, "boom")
            reason = "boom"
        else:
            kernel.send(adder, "return")
            reason = "normal"
        message = await recv(tagged("terminate"), step="terminate of the supervised handler")
        assert message == ("terminate", "event_log", ("stop", reason))
        info = await recv(tagged("info"), step="the other handler hears the EXIT")
        assert info == ("info", "event_log", ExitMessage(adder, reason))
        assert await gen_event.which_handlers(manager) == [Handler(LOG.module, "plain")]
        assert kernel.is_alive(manager)

    await node.run_process(body)


async def test_swap_handler_keeps_the_supervision_and_tells_swapped(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        manager = await within(gen_event.start_link(), "start")
        await gen_event.add_sup_handler(manager, event_log, me)
        await gen_event.swap_handler(manager, (event_log, "out"), (event_tally, me))
        assert (await _exit_of(LOG)).reason == Swapped(TALLY, me)
        await gen_event.delete_handler(manager, event_tally)
        assert (await _exit_of(TALLY)).reason == "normal", "the new one is supervised too"

    await node.run_process(body)


async def test_swap_sup_handler_moves_the_supervision_to_the_caller(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        manager = await within(gen_event.start_link(), "start")
        adder = await _spawn_adder(manager, event_log, me)
        await gen_event.swap_sup_handler(manager, (event_log, "out"), (event_tally, me))
        told = await recv(tagged("adder_got", adder), step="the old supervisor was told")
        assert told == ("adder_got", adder, HandlerExit(manager, LOG, Swapped(TALLY, me)))
        gen_event.notify(manager, "tally_crash")
        assert isinstance((await _exit_of(TALLY)).reason, ValueError)
        assert [m for m in drain() if handler_exit(m)] == []

    await node.run_process(body)


async def test_a_swap_returned_by_a_supervised_handler_keeps_its_adder(node: Node) -> None:
    async def body() -> None:
        me = kernel.self()
        manager = await within(gen_event.start_link(), "start")
        await gen_event.add_sup_handler(manager, event_log, me)
        gen_event.notify(manager, ("swap", event_tally, me))
        assert (await _exit_of(LOG)).reason == Swapped(TALLY, me)
        gen_event.notify(manager, "remove")  # tally does not know it: counted
        await gen_event.delete_handler(manager, TALLY)
        assert (await _exit_of(TALLY)).reason == "normal"

    await node.run_process(body)


async def test_a_swap_to_a_failing_init_tells_the_adder_the_new_handler_s_error(
    node: Node,
) -> None:
    async def body() -> None:
        me = kernel.self()
        manager = await within(gen_event.start_link(), "start")
        await gen_event.add_sup_handler(manager, event_log, me)
        gen_event.notify(manager, ("swap", (event_log, 2), "error"))
        assert (await _exit_of(LOG)).reason == Swapped(Handler(LOG.module, 2), me)
        failed = await _exit_of(Handler(LOG.module, 2))
        assert failed.reason == "refused by init when swapped in"
        assert await gen_event.which_handlers(manager) == []

    await node.run_process(body)
