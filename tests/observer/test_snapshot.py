"""The observer's snapshot of a node: process rows, a process's detail, the code table."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from server import code_server, kernel, observer
from tests.code_server._helpers import WORKER, App, idle, started

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from server.kernel import Node


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """An application package of this test's own, managed by the code server."""
    root = tmp_path / "src"
    root.mkdir()
    tree = App(name=f"app_{uuid.uuid4().hex}", root=root)
    tree.write("", '"""The application package of one test."""\n')
    code_server.add_path(root)
    try:
        yield tree
    finally:
        code_server.remove_path(root)


async def test_the_code_table_names_who_runs_old_code(app: App, node: Node) -> None:
    app.first("worker", WORKER, vsn="v1")
    worker = app.import_("worker")
    name = app.dotted("worker")

    async def body() -> None:
        parked = kernel.spawn(worker.park, kernel.self())
        await started("parked", parked, "v1", step="parked in v1")
        bystander = kernel.spawn(idle)
        (only,) = [r for r in observer.code_rows(users=True) if r["module"] == name]
        assert (only["slot"], only["vsn"], "running" in only) == ("current", "v1", False)
        app.load("worker", WORKER, vsn="v2")
        rows = {r["slot"]: r for r in observer.code_rows(users=True) if r["module"] == name}
        assert (rows["current"]["vsn"], rows["old"]["vsn"]) == ("v2", "v1")
        assert rows["old"]["running"] == [repr(parked)]
        assert "running" not in rows["current"]
        detail = await observer.process_detail(parked)
        assert detail is not None
        assert detail["old_code"] == [name]
        other = await observer.process_detail(bystander)
        assert other is not None
        assert other["old_code"] == []

    await node.run_process(body)


async def test_process_rows_count_what_each_process_handled_and_its_age(node: Node) -> None:
    async def body() -> None:
        idler = kernel.spawn(idle)
        for n in range(3):
            kernel.send(idler, n)
        (row,) = [r for r in await observer.process_rows() if r["pid"] == repr(idler)]
        assert (row["mailbox"], row["handled"]) == (3, 0)
        assert row["age"] >= 0
        assert row["memory"] > 0
        assert row["status"] is None, "statuses are asked for only with statuses=True"
        assert observer.find_process(repr(idler)) == idler
        assert observer.find_process("<9.9.9>") is None
        kernel.exit(idler, kernel.KILL)
        assert await observer.process_detail(idler) is None

    await node.run_process(body)
