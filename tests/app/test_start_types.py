"""Start types (OTP 6.1): what an application's own end, or its failed start, leads to.

The grid is start type x how the top supervisor ends. permanent: the others are stopped
(reverse order) and the controller ends with ``("application_terminated", app, reason)``;
transient: the same unless the reason is exactly ``normal`` (a supervisor that gives up
ends ``shutdown``, which for an application is abnormal); temporary: a report only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.app import controller
from server.behaviours import gen_server, supervisor
from server.errors import ApplicationError
from server.kernel import Pid
from tests.app.callbacks.app_cb import top_of
from tests.behaviours._helpers import within

from ._support import boot, ended, event, events, pending_events, running, spec, start

if TYPE_CHECKING:
    from server.kernel import Node

Ending = Callable[[Pid], Awaitable[None]]


def stopped_with(reason: object) -> Ending:
    async def end(top: Pid) -> None:
        await within(gen_server.stop(top, reason), f"stop top with {reason!r}")

    return end


async def killed(top: Pid) -> None:
    kernel.exit(top, kernel.KILL)


async def gave_up(top: Pid) -> None:
    (child,) = [row.pid for row in await within(supervisor.which_children(top), "children")]
    assert isinstance(child, Pid)
    gen_server.cast(child, "crash")  # intensity 0: the supervisor gives up with shutdown


# (id, how the top supervisor ends, its exit reason)
ENDINGS = [
    ("normal", stopped_with(kernel.NORMAL), kernel.NORMAL),
    ("shutdown", stopped_with(kernel.SHUTDOWN), kernel.SHUTDOWN),
    ("shutdown-tuple", stopped_with(("shutdown", "x")), ("shutdown", "x")),
    ("abnormal", stopped_with(("bad", 1)), ("bad", 1)),
    ("killed", killed, "killed"),
    ("supervisor-gave-up", gave_up, kernel.SHUTDOWN),
]

FATAL: dict[str, Callable[[object], bool]] = {
    "permanent": lambda reason: True,
    "transient": lambda reason: reason != kernel.NORMAL,
    "temporary": lambda reason: False,
}

GRID = [
    pytest.param(start_type, ending, reason, FATAL[start_type](reason), id=f"{start_type}-{name}")
    for start_type in ("permanent", "transient", "temporary")
    for name, ending, reason in ENDINGS
]


@pytest.mark.parametrize(("start_type", "ending", "reason", "fatal"), GRID)
async def test_an_application_ending_by_itself_by_start_type_and_reason(
    node: Node,
    caplog: pytest.LogCaptureFixture,
    start_type: str,
    ending: Ending,
    reason: object,
    fatal: bool,
) -> None:
    caplog.set_level(logging.INFO, "server.app")

    async def body() -> None:
        booted = await boot()
        await start(spec("first"))
        (master,) = (await start(spec("subject", intensity=0), start_type=start_type)).values()
        await start(spec("last"))
        top = top_of("subject")
        await ending(top)
        assert (await event("stop", "subject"))[2] is False, "stop, without prep_stop"
        await within(ended(master, "subject's master ended"), "master")
        if fatal:
            assert await booted.ended() == ("application_terminated", "subject", reason)
            assert await events(4, name="the others stopped") == [
                ("prep_stop", "last"),
                ("stop", "last"),
                ("prep_stop", "first"),
                ("stop", "first"),
            ]
        else:
            assert await running() == ["first", "last"]
            assert kernel.is_alive(booted.pid)
            assert kernel.whereis("first_sup") is not None
        assert pending_events() == []
        exits = [r for r in caplog.records if getattr(r, "report", None) == "application_exit"]
        assert [(r.application, r.levelname) for r in exits] == [  # type: ignore[attr-defined]
            ("subject", "ERROR" if fatal else "INFO")
        ]

    await node.run_process(body)


@pytest.mark.parametrize("start_type", ["permanent", "transient", "temporary"])
async def test_stop_application_does_not_apply_the_start_type(node: Node, start_type: str) -> None:
    async def body() -> None:
        booted = await boot()
        await start(spec("first"))
        await start(spec("subject"), start_type=start_type)
        await within(controller.stop_application("subject"), "stop")
        assert await events(2, name="stop") == [("prep_stop", "subject"), ("stop", "subject")]
        assert await running() == ["first"]
        assert kernel.is_alive(booted.pid)

    await node.run_process(body)


# (id, what start does, the failure's reason as a predicate, does it end a transient app)
FAILURES = [
    ("raises", "raise", lambda r: r[0] == "start_failed", True),
    ("returns-junk", "junk", lambda r: r == ("bad_start_return", "not a pid"), True),
    ("exits-normal", "exit_normal", lambda r: r == kernel.NORMAL, False),
]

START_GRID = [
    pytest.param(
        start_type,
        outcome,
        check,
        start_type == "permanent" or (start_type == "transient" and transient_fatal),
        id=f"{start_type}-{name}",
    )
    for start_type in ("permanent", "transient", "temporary")
    for name, outcome, check, transient_fatal in FAILURES
]


@pytest.mark.parametrize(("start_type", "outcome", "check", "fatal"), START_GRID)
async def test_a_failed_start_by_start_type(
    node: Node,
    start_type: str,
    outcome: str,
    check: Callable[[object], bool],
    fatal: bool,
) -> None:
    async def body() -> None:
        booted = await boot()
        await start(spec("first"))
        await within(controller.load_application(spec("bad", start=outcome)), "load")
        with pytest.raises(ApplicationError, match="application bad: failed to start") as caught:
            await within(controller.start_application("bad", start_type), "start bad")
        assert check(caught.value.reason), caught.value.reason
        assert (await event("start", "bad"))[1:3] == ("bad", "normal")
        if fatal:
            down = await booted.ended()
            assert type(down) is tuple
            assert down[:2] == ("application_start_failure", "bad")
            assert check(down[2])
            assert await events(2, name="first stopped") == [
                ("prep_stop", "first"),
                ("stop", "first"),
            ]
        else:
            assert await running() == ["first"]
            loaded = await within(controller.loaded_applications(), "loaded")
            assert set(loaded) == {"first", "bad"}, "still loaded: it may be started again"
        assert pending_events() == []

    await node.run_process(body)


async def test_a_master_that_ends_unexpectedly_ends_its_application(node: Node) -> None:
    async def body() -> None:
        booted = await boot()
        await start(spec("first"))
        (master,) = (await start(spec("subject"), start_type="permanent")).values()
        kernel.exit(master, kernel.KILL)
        assert await booted.ended() == ("application_terminated", "subject", "killed")
        assert await events(2, name="first stopped") == [("prep_stop", "first"), ("stop", "first")]

    await node.run_process(body)
