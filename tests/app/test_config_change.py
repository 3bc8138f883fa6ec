"""Release env changes: ``change_application_data`` then ``config_change`` (OTP 6.3, 6.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server.app import controller, get_all_env, get_env
from server.app.env import env_diff, merge_env
from tests.behaviours._helpers import within

from ._support import boot, event, events, pending_events, spec, start

if TYPE_CHECKING:
    from server.kernel import Node

CC = "tests.app.callbacks.app_cc"
ASYNC_CC = "tests.app.callbacks.app_async"


async def test_config_change_gets_changed_new_and_removed_for_apps_whose_env_changed(
    node: Node,
) -> None:
    async def body() -> None:
        await boot({"a": {"port": 1}})
        a_v1 = spec("a", module=CC, env={"port": 0, "keep": 1, "gone": 1})
        b = spec("b", module=ASYNC_CC, env={"x": 1})
        c_v1 = spec("c", env={"k": 1})  # app_cb has no config_change: skipped
        await start(a_v1, b, c_v1)
        assert get_env("a", "port") == 1, "sys.config wins over the spec"
        a_v2 = spec("a", module=CC, vsn="2.0", env={"port": 0, "keep": 1, "added": True})
        c_v2 = spec("c", vsn="2.0", env={"k": 2})
        snapshot = await within(
            controller.change_application_data(
                [(a_v2, None), (b, None), (c_v2, None)], {"a": {"port": 2}}
            ),
            "change data",
        )
        assert snapshot == {
            "a": {"port": 1, "keep": 1, "gone": 1},
            "b": {"x": 1},
            "c": {"k": 1},
        }
        assert get_all_env("a") == {"port": 2, "keep": 1, "added": True}, "visible at once"
        results = await within(controller.config_change(snapshot), "config_change")
        assert results == [("a", "ok")]
        assert await event("config_change", CC) == (
            "config_change",
            CC,
            {"port": 2},
            {"added": True},
            ["gone"],
        )
        assert pending_events() == [], "b's env did not change: no call"
        loaded = await within(controller.loaded_applications(), "loaded")
        assert loaded["a"][0].vsn == "2.0"

    await node.run_process(body)


async def test_a_failing_config_change_is_reported_and_the_others_still_run(node: Node) -> None:
    async def body() -> None:
        await boot()
        a = spec("a", module=CC, env={"v": 1})
        b = spec("b", module=ASYNC_CC, env={"v": 1})
        await start(a, b)
        snapshot = await within(
            controller.change_application_data(
                [(spec("a", module=CC, env={"explode": True}), None), (b, None)],
                {"b": {"v": 2}},
            ),
            "change data",
        )
        results = await within(controller.config_change(snapshot), "config_change")
        assert [name for name, _ in results] == ["a", "b"]
        assert results[0][1] == ("error", "RuntimeError('config_change refused')")
        assert results[1][1] == "ok"
        await event("config_change", CC)
        # b's callback ran in this process and could ask the controller (no deadlock)
        assert (await event("config_change", ASYNC_CC))[2:] == ({"v": 2}, {}, [], ["a", "b"])

    await node.run_process(body)


async def test_config_change_skips_applications_no_longer_running(node: Node) -> None:
    async def body() -> None:
        await boot()
        a = spec("a", module=CC, env={"v": 1})
        await start(a)
        snapshot = await within(
            controller.change_application_data([(a, None)], {"a": {"v": 2}}), "change"
        )
        await within(controller.stop_application("a"), "stop")
        assert await events(2, name="stop") == [("prep_stop", "a"), ("stop", "a")]
        assert await within(controller.config_change(snapshot), "config_change") == []
        assert pending_events() == []

    await node.run_process(body)


ENV_DIFFS = [
    pytest.param({}, {}, ({}, {}, []), id="both-empty"),
    pytest.param({"a": 1}, {"a": 1}, ({}, {}, []), id="same"),
    pytest.param({"a": 1}, {"a": 2}, ({"a": 2}, {}, []), id="changed"),
    pytest.param({}, {"a": 1}, ({}, {"a": 1}, []), id="new"),
    pytest.param({"b": 1, "a": 1}, {}, ({}, {}, ["a", "b"]), id="removed-sorted"),
    pytest.param({"a": [1]}, {"a": [1, 2]}, ({"a": [1, 2]}, {}, []), id="nested-change"),
    pytest.param({"a": 1, "b": 1}, {"a": 2, "c": 3}, ({"a": 2}, {"c": 3}, ["b"]), id="all-three"),
]


@pytest.mark.parametrize(("old", "new", "expected"), ENV_DIFFS)
def test_env_diff(old: dict[str, object], new: dict[str, object], expected: object) -> None:
    assert env_diff(old, new) == expected


def test_merge_env_puts_sys_config_on_top_and_copies() -> None:
    spec_env = {"port": 1, "host": "h"}
    merged = merge_env(spec_env, {"port": 2, "more": True})
    assert merged == {"port": 2, "host": "h", "more": True}
    assert spec_env == {"port": 1, "host": "h"}
