"""Load, start, stop and unload; env from spec and sys.config; dependencies (OTP 6.2, 6.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.app import controller, get_all_env, get_env
from server.app.controller import RunningApplication
from server.errors import ApplicationError
from tests.behaviours._helpers import reason_of, within

from ._support import boot, event, events, pending_events, running, spec, start

if TYPE_CHECKING:
    from server.kernel import Node


async def test_load_sets_the_env_spec_overridden_by_sys_config(node: Node) -> None:
    async def body() -> None:
        await boot({"a": {"port": 9090, "extra": True}, "other": {"x": 1}})
        app = spec("a", env={"port": 8080, "host": "localhost"})
        await within(controller.load_application(app), "load")
        assert get_env("a", "port") == 9090
        assert get_env("a", "host") == "localhost"
        assert get_env("a", "missing") is None
        assert get_env("a", "missing", 7) == 7
        assert get_all_env("a") == {"port": 9090, "host": "localhost", "extra": True}
        assert get_all_env("other") == {}, "sys.config alone does not load an application"
        assert get_all_env("a") is not get_all_env("a"), "a copy each time"
        loaded = await within(controller.loaded_applications(), "loaded")
        assert loaded == {"a": (app, None)}
        assert await running() == [], "loading starts nothing"

    await node.run_process(body)


async def test_loading_twice_is_refused_and_changes_nothing(node: Node) -> None:
    async def body() -> None:
        await boot()
        first = spec("a", env={"v": 1})
        await within(controller.load_application(first), "load")
        with pytest.raises(ApplicationError, match=r"a 1\.0 is already loaded") as caught:
            await within(controller.load_application(spec("a", vsn="2.0", env={"v": 2})), "2nd")
        assert caught.value.application == "a"
        assert caught.value.reason == ("already_loaded", "a", "1.0")
        assert get_all_env("a") == {"v": 1}
        assert await within(controller.loaded_applications(), "loaded") == {"a": (first, None)}

    await node.run_process(body)


@pytest.mark.parametrize("start_type", ["permanent", "transient", "temporary"])
async def test_start_needs_its_dependencies_running_and_names_the_missing_one(
    node: Node, start_type: str
) -> None:
    async def body() -> None:
        booted = await boot()
        await start(spec("base"))
        await within(controller.load_application(spec("mid")), "load mid")
        await within(controller.load_application(spec("top", deps=("base", "mid"))), "load top")
        with pytest.raises(ApplicationError, match="needs mid running first") as caught:
            await within(controller.start_application("top", start_type), "start top")
        assert caught.value.reason == ("not_started", "mid")
        assert await running() == ["base"], "nothing started, the controller still runs"
        assert kernel.is_alive(booted.pid)
        assert pending_events() == []

    await node.run_process(body)


@pytest.mark.parametrize("start_type", ["permanent", "transient", "temporary"])
async def test_starting_an_unknown_or_running_application_is_only_refused(
    node: Node, start_type: str
) -> None:
    async def body() -> None:
        booted = await boot()
        with pytest.raises(ApplicationError, match="nope is not loaded"):
            await within(controller.start_application("nope", start_type), "start unknown")
        await start(spec("a"))
        with pytest.raises(ApplicationError, match="a is already started"):
            await within(controller.start_application("a", start_type), "start twice")
        assert kernel.is_alive(booted.pid)
        assert await running() == ["a"]

    await node.run_process(body)


async def test_a_start_type_that_is_not_one_is_a_value_error(node: Node) -> None:
    async def body() -> None:
        await boot()
        await within(controller.load_application(spec("a")), "load")
        for bad in ("load", "none", "forever"):
            with pytest.raises(ValueError, match="start type must be one of"):
                await controller.start_application("a", bad)
        with pytest.raises(ValueError, match="start type must be one of"):
            await controller.ensure_all_started({}, "a", "load")

    await node.run_process(body)


async def test_which_applications_lists_them_in_start_order(node: Node) -> None:
    async def body() -> None:
        await boot()
        await start(spec("zeta"), spec("alpha"), spec("lib", module=None), spec("mid"))
        rows = await within(controller.which_applications(), "which")
        assert rows == [
            RunningApplication("zeta", "the zeta application", "1.0"),
            RunningApplication("alpha", "the alpha application", "1.0"),
            RunningApplication("lib", "the lib application", "1.0"),
            RunningApplication("mid", "the mid application", "1.0"),
        ]
        assert await within(controller.start_type("alpha"), "start_type") == "temporary"
        tops = await within(controller.top_supervisors(), "top_supervisors")
        assert list(tops) == ["zeta", "alpha", "mid"], "a library application has none"
        assert tops["alpha"] is kernel.whereis("alpha_sup")
        assert await within(controller.start_type("absent"), "start_type") is None

    await node.run_process(body)


CHAIN = {
    "a": spec("a"),
    "b": spec("b", deps=("a",)),
    "c": spec("c", deps=("b", "a")),
}


async def test_ensure_all_started_starts_dependencies_first_and_reports_them(node: Node) -> None:
    async def body() -> None:
        await boot()
        started = await within(controller.ensure_all_started(CHAIN, "c", "permanent"), "ensure")
        assert started == ["a", "b", "c"]
        assert await events(3, name="starts") == [("start", "a"), ("start", "b"), ("start", "c")]
        assert await running() == ["a", "b", "c"]
        assert await within(controller.start_type("a"), "type") == "permanent"
        assert await within(controller.ensure_all_started(CHAIN, "c"), "again") == []

    await node.run_process(body)


async def test_ensure_all_started_starts_only_what_is_not_running(node: Node) -> None:
    async def body() -> None:
        await boot()
        await start(CHAIN["a"])
        assert await within(controller.ensure_all_started(CHAIN, "c"), "ensure") == ["b", "c"]
        assert await running() == ["a", "b", "c"]

    await node.run_process(body)


async def test_ensure_all_started_refuses_a_circular_dependency(node: Node) -> None:
    async def body() -> None:
        await boot()
        specs = {
            "a": spec("a", deps=("b",)),
            "b": spec("b", deps=("c",)),
            "c": spec("c", deps=("a",)),
        }
        with pytest.raises(
            ApplicationError, match=r"circular dependency: a -> b -> c -> a"
        ) as caught:
            await within(controller.ensure_all_started(specs, "a"), "ensure")
        assert caught.value.reason == ("circular_dependency", ("a", "b", "c", "a"))
        assert await running() == []
        assert await within(controller.loaded_applications(), "loaded") == {}

    await node.run_process(body)


async def test_ensure_all_started_refuses_an_unknown_dependency(node: Node) -> None:
    async def body() -> None:
        await boot()
        with pytest.raises(ApplicationError, match="application ghost: unknown application"):
            await within(controller.ensure_all_started({"a": spec("a", deps=("ghost",))}, "a"), "e")
        assert await running() == []

    await node.run_process(body)


async def test_ensure_all_started_undoes_what_it_did_when_a_start_fails(node: Node) -> None:
    async def body() -> None:
        await boot()
        await start(spec("before"))
        specs = {"a": spec("a"), "b": spec("b", deps=("a",), start="raise")}
        with pytest.raises(ApplicationError, match="failed to start") as caught:
            await within(controller.ensure_all_started(specs, "b"), "ensure")
        assert caught.value.application == "b"
        assert await events(4, name="start a, b, then a stopped") == [
            ("start", "a"),
            ("start", "b"),
            ("prep_stop", "a"),
            ("stop", "a"),
        ]
        assert await running() == ["before"]
        assert set(await within(controller.loaded_applications(), "loaded")) == {"before"}

    await node.run_process(body)


async def test_stop_runs_prep_stop_then_stop_with_its_state(node: Node) -> None:
    async def body() -> None:
        await boot()
        masters = await start(spec("a"), spec("b"))
        top = kernel.whereis("a_sup")
        assert top is not None
        top_ref = kernel.monitor(top)
        master_ref = kernel.monitor(masters["a"])
        await within(controller.stop_application("a"), "stop a")
        assert await events(2, name="stop a") == [("prep_stop", "a"), ("stop", "a")]
        assert kernel.whereis("a_sup") is None
        assert not kernel.is_alive(top)
        assert await reason_of(top_ref, step="top DOWN") == "shutdown"
        assert await reason_of(master_ref, step="master DOWN") == "normal"
        assert await running() == ["b"]
        with pytest.raises(ApplicationError, match="a is not running"):
            await within(controller.stop_application("a"), "stop again")

    await node.run_process(body)


async def test_stop_passes_prep_stops_state_to_stop(node: Node) -> None:
    async def body() -> None:
        await boot()
        await start(spec("a"))
        await within(controller.stop_application("a"), "stop")
        assert (await event("stop", "a"))[2] is True, "stop got what prep_stop returned"

    await node.run_process(body)


async def test_async_callbacks_and_no_prep_stop(node: Node) -> None:
    async def body() -> None:
        await boot()
        await start(spec("a", module="tests.app.callbacks.app_async"))
        await within(controller.stop_application("a"), "stop")
        assert await events(1, name="stop") == [("stop", "a")]

    await node.run_process(body)


async def test_the_controllers_end_stops_every_application_in_reverse_order(node: Node) -> None:
    async def body() -> None:
        booted = await boot()
        await start(spec("a"), spec("b"), spec("lib", module=None), spec("c"))
        kernel.exit(booted.pid, kernel.SHUTDOWN)
        assert await booted.ended() == "shutdown"
        assert await events(6, name="reverse stop") == [
            ("prep_stop", "c"),
            ("stop", "c"),
            ("prep_stop", "b"),
            ("stop", "b"),
            ("prep_stop", "a"),
            ("stop", "a"),
        ]
        assert get_all_env("a") == {}, "the env tables go with the controller"

    await node.run_process(body)


async def test_unload_is_refused_while_running_then_forgets_the_env(node: Node) -> None:
    async def body() -> None:
        await boot()
        await start(spec("a", env={"k": 1}))
        with pytest.raises(ApplicationError, match="a is running: stop_application first"):
            await within(controller.unload_application("a"), "unload running")
        assert get_env("a", "k") == 1
        assert await running() == ["a"]
        await within(controller.stop_application("a"), "stop")
        await within(controller.unload_application("a"), "unload")
        assert get_all_env("a") == {}
        assert await within(controller.loaded_applications(), "loaded") == {}
        with pytest.raises(ApplicationError, match="a is not loaded"):
            await within(controller.unload_application("a"), "unload again")

    await node.run_process(body)


async def test_a_start_returning_only_a_pid_is_enough_and_raising_callbacks_still_stop(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        await boot()
        await start(spec("a", start="pid_only"))  # no state: prep_stop and stop will raise
        top = kernel.whereis("a_sup")
        assert top is None, "pid_only does not register its supervisor"
        await within(controller.stop_application("a"), "stop")
        assert await running() == []
        assert pending_events() == []
        messages = [r.getMessage() for r in caplog.records if r.name == "server.app"]
        assert "prep_stop() of application a raised" in messages
        assert "stop() of application a raised" in messages

    await node.run_process(body)
