"""reload_module in a node on virtual time: reloaded, refused, purged after grace, skipped."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server import code_server, kernel
from server.dev.reloader import ReloadEvent, module_for_path, reload_module
from tests.code_server._helpers import WORKER, down, started, within

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Node
    from tests.code_server._helpers import App

GRACE = 2.0


pytestmark = pytest.mark.virtual_time


class Events(list[ReloadEvent]):
    """The events reported, as ``(outcome, module)`` pairs for comparisons."""

    def __call__(self, event: ReloadEvent) -> None:
        self.append(event)

    def outcomes(self) -> list[tuple[str, str]]:
        return [(event.outcome, event.module) for event in self]


async def _reload(app: App, events: Events) -> bool:
    return await within(
        reload_module(app.dotted("worker"), grace=GRACE, report=events), "reload", GRACE * 3
    )


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("pkg/__init__.py", "pkg"),
        ("pkg/sub/leaf.py", "pkg.sub.leaf"),
        ("top.py", "top"),
        ("pkg/notes.txt", None),
        ("pkg/.#leaf.py", None),
        ("pkg/my-module.py", None),
    ],
    ids=["package", "nested", "top-level", "not-python", "editor-lock", "not-identifier"],
)
def test_module_for_path(tmp_path: Path, relative: str, expected: str | None) -> None:
    assert module_for_path(tmp_path / relative, [tmp_path]) == expected


def test_a_path_outside_every_root_has_no_module(tmp_path: Path) -> None:
    assert module_for_path(tmp_path / "x.py", [tmp_path / "src"]) is None


async def test_an_edit_is_reloaded_and_the_old_version_dropped(app: App, node: Node) -> None:
    app.first("worker", WORKER, vsn="v1")
    events = Events()

    async def body() -> None:
        app.write("worker", WORKER, vsn="v2")
        assert await _reload(app, events) is True
        assert events.outcomes() == [("reloaded", app.dotted("worker"))]
        assert "vsn v2" in str(events[0])
        assert app.slots("worker") == [("current", "v2")]

    await node.run_process(body)


async def test_a_broken_edit_is_refused_and_changes_nothing(app: App, node: Node) -> None:
    app.first("worker", WORKER, vsn="v1")
    events = Events()

    async def body() -> None:
        path = app.write("worker", "X = 1\ndef broken(:\n")
        assert await _reload(app, events) is False
        assert events.outcomes() == [("refused", app.dotted("worker"))]
        assert f"{path}:2" in events[0].detail
        assert app.slots("worker") == [("current", "v1")]

    await node.run_process(body)


async def test_a_process_left_in_old_code_is_purged_after_the_grace(app: App, node: Node) -> None:
    worker = app.first("worker", WORKER, vsn="v1").module
    events = Events()

    async def body() -> None:
        pid, ref = kernel.spawn_monitor(worker.local_loop, kernel.self())
        await started("iteration", pid, "v1", step="looping")
        app.write("worker", WORKER, vsn="v2")
        started_at = kernel.current_node().loop.time()
        assert await _reload(app, events) is True
        assert kernel.current_node().loop.time() - started_at >= GRACE, "waited the grace"
        assert events.outcomes() == [
            ("reloaded", app.dotted("worker")),
            ("purged", app.dotted("worker")),
        ]
        assert "killed 1 process(es)" in events[1].detail
        assert (await down(ref)).reason == kernel.KILLED
        assert app.slots("worker") == [("current", "v2")]

    await node.run_process(body)


async def test_a_process_that_moves_on_within_the_grace_is_left_alive(app: App, node: Node) -> None:
    worker = app.first("worker", WORKER, vsn="v1").module
    events = Events()

    async def body() -> None:
        pid = kernel.spawn(worker.trampoline, kernel.self())
        await started("iteration", pid, "v1", step="trampolining")
        app.write("worker", WORKER, vsn="v2")
        kernel.send_after(GRACE / 4, pid, "next")  # its next step, well within the grace
        assert await _reload(app, events) is True
        assert events.outcomes() == [("reloaded", app.dotted("worker"))]
        await started("iteration", pid, "v2", step="moved to v2")
        assert kernel.is_alive(pid)

    await node.run_process(body)


async def test_a_save_without_changes_is_skipped(app: App, node: Node) -> None:
    worker = app.first("worker", WORKER, vsn="v1").module
    events = Events()

    async def body() -> None:
        pid = kernel.spawn(worker.local_loop, kernel.self())
        await started("iteration", pid, "v1", step="looping")
        app.write("worker", WORKER, vsn="v1")  # the same text written again
        assert await _reload(app, events) is False
        assert [(e.outcome, e.detail) for e in events] == [("skipped", "unchanged")]
        assert app.slots("worker") == [("current", "v1")]
        assert kernel.is_alive(pid), "nothing to purge for"

    await node.run_process(body)


async def test_a_module_not_imported_yet_is_skipped(app: App, node: Node) -> None:
    events = Events()

    async def body() -> None:
        app.write("worker", WORKER, vsn="v1")
        assert await _reload(app, events) is False
        assert events.outcomes() == [("skipped", app.dotted("worker"))]
        assert code_server.which_versions(app.dotted("worker")) == []

    await node.run_process(body)
