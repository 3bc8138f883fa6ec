"""A gen_statem in a release is upgraded by an appup ``update`` exactly as a gen_server is.

The demo's counter 1.0.0 gains a rate limiter (``counter.limiter``, a gen_statem under the
counter supervisor, its child spec naming the module). Release 1.0.1 renames a state and
changes the data's shape; its appup says ``update counter.limiter`` (advanced). The
installer finds the process through the child spec, suspends it, loads the module, runs
``code_change(old_vsn, state, data, extra)`` (both change), resumes it: the same process.
A failing ``code_change`` is rolled back in place; one returning anything but ``Ok`` is
refused by the dry run (``check_install``) before anything changes.
"""

from __future__ import annotations

import shutil
import textwrap
from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.behaviours import gen_statem, system_messages
from server.errors import InstallFailed, InstallRefused
from server.release import current_vsn, handler
from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests.behaviours._helpers import within
from tests.release._live import boot_demo, stop_demo

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Node

LIMITER = '''"""A token bucket as a gen_statem: {open_state} while tokens last, then throttled."""

from __future__ import annotations

from typing import Any

from server.behaviours.gen_statem_callbacks import (
    STATE_FUNCTIONS,
    Call,
    KeepState,
    KeepStateAndData,
    NextState,
    Ok,
    Reply,
    Timeout,
)

__vsn__ = "{vsn}"


def init(args: object) -> Ok:
    return Ok("{open_state}", {initial_data})


def callback_mode() -> str:
    return STATE_FUNCTIONS


def {open_state}(event_type: Any, content: Any, data: Any) -> Any:
    if event_type == "cast" and content == "take":
        data = {{**data, "tokens": data["tokens"] - 1}}
        if data["tokens"] == 0:
            return NextState("throttled", data, [Timeout("state_timeout", 3600.0, "refill")])
        return KeepState(data)
    return _common(event_type, content, "{open_state}", data)


def throttled(event_type: Any, content: Any, data: Any) -> Any:
    if event_type == "state_timeout":
        return NextState("{open_state}", {{**data, "tokens": 3}})
    return _common(event_type, content, "throttled", data)


def _common(event_type: Any, content: Any, state: str, data: Any) -> Any:
    if type(event_type) is Call and content == "status":
        return KeepStateAndData([Reply(event_type.from_, (__vsn__, state, data))])
    return KeepStateAndData()


def code_change(old_vsn: Any, state: Any, data: Any, extra: Any) -> Ok:
{code_change}
'''

V1_CODE_CHANGE = """
if old_vsn == ("down", "1.0.0") or old_vsn == "1.0.1":  # from 1.0.1's shape
    renamed = {"accepting": "open"}.get(state, state)
    return Ok(renamed, {"tokens": data["tokens"]})
return Ok(state, dict(data))
"""

V2_CODE_CHANGE = """
from server import kernel
if extra == "fail" and kernel.whereis("counter_limiter") == kernel.self():
    raise ValueError("limiter migration bug")
if extra == "junk":
    return (state, data)
if old_vsn == "1.0.0":
    renamed = {"open": "accepting"}.get(state, state)
    return Ok(renamed, {"tokens": data["tokens"], "capacity": 3})
if old_vsn == ("down", "1.0.0"):
    renamed = {"accepting": "open"}.get(state, state)
    return Ok(renamed, {"tokens": data["tokens"]})
return Ok(state, dict(data))
"""


def _limiter(vsn: str, open_state: str, initial_data: str, code_change: str) -> str:
    body = textwrap.indent(textwrap.dedent(code_change).strip(), "    ")
    return LIMITER.format(
        vsn=vsn, open_state=open_state, initial_data=initial_data, code_change=body
    )


def add_limiter(root: Path) -> None:
    """Counter 1.0.0 of this copy gets ``counter.limiter``, supervised, in its modules."""
    app = root / "apps" / "counter-1.0.0"
    (app / "counter" / "limiter.py").write_text(
        _limiter("1.0.0", "open", '{"tokens": 3}', V1_CODE_CHANGE)
    )
    sup = app / "counter" / "sup.py"
    sup.write_text(
        sup.read_text()
        .replace(
            "from server.net import http_server\n",
            "from server.behaviours import gen_statem\nfrom server.net import http_server\n",
        )
        .replace(
            'worker("store", "counter.store", None, name="counter_store"), listener',
            'worker("store", "counter.store", None, name="counter_store"), listener,\n'
            "            gen_statem.child_spec(\n"
            '                "limiter", "counter.limiter", name="counter_limiter"\n'
            "            ),",
        )
    )
    spec = root / "appspecs" / "counter-1.0.0.toml"
    spec.write_text(
        spec.read_text()
        .replace('"counter.web"]', '"counter.web", "counter.limiter"]')
        .replace('"counter_store"]', '"counter_store", "counter_limiter"]')
    )


def make_limiter_variant(root: Path, vsn: str, extra: str) -> None:
    """Release demo ``vsn``: counter ``vsn`` whose limiter renames ``open`` and grows data."""
    source = root / "apps" / "counter-1.0.0"
    target = root / "apps" / f"counter-{vsn}"
    shutil.copytree(source, target)
    (target / "counter" / "limiter.py").write_text(
        _limiter(vsn, "accepting", '{"tokens": 3, "capacity": 3}', V2_CODE_CHANGE)
    )
    spec = (root / "appspecs" / "counter-1.0.0.toml").read_text()
    step = (
        '  {op = "update", module = "counter.limiter", change = "advanced", '
        f'extra = "{extra}"}},\n'
    )
    spec = spec.replace('vsn = "1.0.0"', f'vsn = "{vsn}"', 1) + (
        f'\n[[appup.up]]\nvsn = "1.0.0"\ninstructions = [\n{step}]\n'
        f'\n[[appup.down]]\nvsn = "1.0.0"\ninstructions = [\n{step}]\n'
    )
    (root / "appspecs" / f"counter-{vsn}.toml").write_text(spec)
    (root / "releases" / f"demo-{vsn}.toml").write_text(
        f'name = "demo"\nvsn = "{vsn}"\n\n[[applications]]\nname = "counter"\nvsn = "{vsn}"\n'
    )


async def _status() -> object:
    return await within(gen_statem.call("counter_limiter", "status"), "status")


async def test_an_appup_update_migrates_a_gen_statem_up_and_down(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    add_limiter(demo_tree)
    make_limiter_variant(demo_tree, "1.0.1", "rename")

    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            pid = kernel.whereis("counter_limiter")
            assert pid is not None
            for _ in range(3):
                gen_statem.cast("counter_limiter", "take")
            assert await _status() == ("1.0.0", "throttled", {"tokens": 0})
            gen_statem.cast("counter_limiter", "take")  # throttled: ignored
            await within(handler.unpack(demo.package("1.0.1")), "unpack", 30)
            check = await within(handler.check_install("1.0.1"), "check", 30)
            assert [p[1] for p in check["processes"]] == ["counter.limiter"]
            assert await system_messages.get_state(pid) == ("throttled", {"tokens": 0})
            report = await within(handler.install("1.0.1"), "install", 30)
            assert report.modules_loaded == ("counter.limiter",)
            assert report.processes == ((repr(pid), "counter.limiter"),)
            assert current_vsn() == "1.0.1"
            assert kernel.whereis("counter_limiter") is pid, "migrated, not restarted"
            assert await _status() == ("1.0.1", "throttled", {"tokens": 0, "capacity": 3})
            # the new code answers the next events, in the renamed state
            await system_messages.replace_state(pid, lambda pair: ("accepting", pair[1]))
            gen_statem.cast("counter_limiter", "take")
            assert await _status() == ("1.0.1", "accepting", {"tokens": -1, "capacity": 3})
            await system_messages.replace_state(
                pid, lambda pair: ("accepting", {**pair[1], "tokens": 2})
            )
            down = await within(handler.install("1.0.0"), "downgrade", 30)
            assert down.direction == "down"
            assert kernel.whereis("counter_limiter") is pid
            assert await _status() == ("1.0.0", "open", {"tokens": 2})
            assert (await system_messages.get_status(pid)).status == "running"
        finally:
            await stop_demo(demo)

    await node.run_process(body)


async def test_a_failing_gen_statem_code_change_is_rolled_back_in_place(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    add_limiter(demo_tree)
    make_limiter_variant(demo_tree, "1.0.1", "fail")

    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            pid = kernel.whereis("counter_limiter")
            gen_statem.cast("counter_limiter", "take")
            before = await _status()
            await within(handler.unpack(demo.package("1.0.1")), "unpack", 30)
            with pytest.raises(InstallFailed, match="limiter migration bug") as info:
                await within(handler.install("1.0.1"), "install", 30)
            assert info.value.outcome == "rolled_back"
            assert info.value.module == "counter.limiter"
            assert current_vsn() == "1.0.0"
            assert kernel.whereis("counter_limiter") is pid
            assert await _status() == before == ("1.0.0", "open", {"tokens": 2})
            assert (await system_messages.get_status(pid)).status == "running"  # type: ignore[arg-type]
        finally:
            await stop_demo(demo)

    await node.run_process(body)


async def test_a_gen_statem_code_change_not_returning_ok_is_refused_by_the_check(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    add_limiter(demo_tree)
    make_limiter_variant(demo_tree, "1.0.1", "junk")

    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            before = await _status()
            await within(handler.unpack(demo.package("1.0.1")), "unpack", 30)
            with pytest.raises(InstallRefused, match="must return Ok"):
                await within(handler.check_install("1.0.1"), "check", 30)
            # install itself (no dry run) fails at the code_change and rolls back in place
            with pytest.raises(InstallFailed, match="must return Ok") as info:
                await within(handler.install("1.0.1"), "install", 30)
            assert info.value.outcome == "rolled_back"
            assert current_vsn() == "1.0.0"
            assert await _status() == before
        finally:
            await stop_demo(demo)

    await node.run_process(body)


def test_default_appups_update_a_changed_gen_statem_module_soft(
    demo_tree: Path, tmp_path: Path
) -> None:
    add_limiter(demo_tree)
    make_limiter_variant(demo_tree, "1.0.1", "rename")
    limiter = demo_tree / "apps" / "counter-1.0.1" / "counter" / "limiter.py"
    text = limiter.read_text()
    limiter.write_text(text[: text.index("def code_change(")])  # the engine's default one
    spec = demo_tree / "appspecs" / "counter-1.0.1.toml"
    spec.write_text(spec.read_text().split("\n[[appup.up]]")[0])  # no appup entry at all
    built = build_package(SourceTree(demo_tree), "demo", "1.0.1", tmp_path, default_appups=True)
    notes = "\n".join(built.notes)
    assert "counter.limiter: chose update soft (it is a gen_server or gen_statem module)" in notes
