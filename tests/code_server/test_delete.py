"""delete: the current version becomes old and the module has no current version."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server import code_server, kernel
from server.behaviours import _dispatch
from server.errors import UnknownModule

from ._helpers import WORKER, down, started

if TYPE_CHECKING:
    from server.kernel import Node

    from ._helpers import App


def test_delete_makes_current_old_and_leaves_no_current(app: App) -> None:
    app.first("worker", WORKER, vsn="v1")
    worker = app.import_("worker")
    name = app.dotted("worker")
    assert code_server.delete(name) is True
    assert app.slots("worker") == [("old", "v1")]
    with pytest.raises(AttributeError, match="no current version"):
        _ = worker.tell
    with pytest.raises(UnknownModule):
        code_server.get_vsn(name)
    with pytest.raises(UnknownModule, match="deleted"):
        _dispatch.resolve(name)


@pytest.mark.parametrize("case", ["old-present", "never-loaded", "already-deleted"])
def test_delete_refuses_and_changes_nothing(app: App, case: str) -> None:
    name = app.dotted("worker")
    if case != "never-loaded":
        app.first("worker", WORKER, vsn="v1")
    if case == "old-present":
        app.load("worker", WORKER, vsn="v2")
    if case == "already-deleted":
        code_server.delete(name)
    before = app.slots("worker")
    assert code_server.delete(name) is False
    assert app.slots("worker") == before


async def test_a_process_in_deleted_code_runs_old_code_until_purged(app: App, node: Node) -> None:
    worker = app.first("worker", WORKER, vsn="v1").module
    name = app.dotted("worker")

    async def body() -> None:
        pid, ref = kernel.spawn_monitor(worker.local_loop, kernel.self())
        await started("iteration", pid, "v1", step="looping")
        code_server.delete(name)
        assert code_server.check_process_code(pid, name)
        assert not code_server.soft_purge(name)
        assert await code_server.purge(name) is True
        assert app.slots("worker") == []
        assert (await down(ref)).reason == kernel.KILLED

    await node.run_process(body)


def test_a_deleted_and_purged_module_can_be_loaded_again(app: App) -> None:
    app.first("worker", WORKER, vsn="v1")
    name = app.dotted("worker")
    code_server.delete(name)
    assert code_server.soft_purge(name)
    app.load("worker", WORKER, vsn="v2")
    assert app.slots("worker") == [("current", "v2")]
    assert app.import_("worker").__vsn__ == "v2"
