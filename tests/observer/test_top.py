"""``server top`` against a real node (``server run`` as an OS process): once, as JSON, live."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.cli._top import age_text, size_text
from server.errors import ControlError
from server.observer.top import top_view
from tests._support.nodes import cli
from tests._support.waits import idle

if TYPE_CHECKING:
    from server.kernel import Node
    from tests._support.nodes import NodeProcess


@pytest.mark.node
def test_top_once_prints_one_table_sorted_by_mailbox(demo_node: NodeProcess) -> None:
    out = cli(demo_node.root, "top", "--once").stdout
    lines = out.splitlines()
    assert lines[0].startswith("release demo 1.0.0  ")
    assert " processes  " in lines[0]
    assert "loop lag p50 " in lines[0] or "memory " in lines[0]
    assert " processes by mailbox" in out
    for heading in ("pid", "name", "module", "mailbox", "memory", "handled", "age"):
        assert heading in out
    assert "counter_store" in out
    assert "counter.store" in out


@pytest.mark.node
def test_top_as_json_matches_the_nodes_processes(demo_node: NodeProcess) -> None:
    for _ in range(3):
        assert demo_node.request("POST", "/incr/top")[0] == 200
    view = json.loads(cli(demo_node.root, "top", "--json", "--sort", "handled").stdout)
    assert (view["sort"], view["release"]) == ("handled", {"name": "demo", "vsn": "1.0.0"})
    rows = view["rows"]
    assert list(rows[0]) == ["pid", "name", "module", "mailbox", "memory", "handled", "age"]
    handled = [row["handled"] for row in rows]
    assert handled == sorted(handled, reverse=True)
    store = next(row for row in rows if row["name"] == "counter_store")
    assert store["module"] == "counter.store"
    assert store["handled"] >= 3  # the three increments, at least
    assert all(row["age"] >= 0 and row["memory"] >= 0 for row in rows)
    listed = json.loads(cli(demo_node.root, "processes", "--json").stdout)
    assert view["processes"] >= len(rows)
    assert {row["pid"] for row in rows} <= {row["pid"] for row in listed} | {
        row["pid"]
        for row in rows
        if row["name"] is None  # control connections come and go
    }


@pytest.mark.node
def test_a_bad_sort_is_refused_in_one_line(demo_node: NodeProcess) -> None:
    done = cli(demo_node.root, "top", "--once", "--sort", "colour", check=False)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("server: ")
    assert line.endswith("top sorts by mailbox, memory, handled, age, not 'colour'")
    assert done.stdout == ""
    assert cli(demo_node.root, "ping").returncode == 0  # the node is unchanged, still serving


@pytest.mark.parametrize("limit", ["0", "-3", "many", ""])
async def test_a_bad_limit_is_refused(node: Node, limit: str) -> None:
    async def body() -> None:
        with pytest.raises(ControlError, match=r"top --limit takes a whole number of rows >= 1"):
            await top_view(limit=limit)

    await node.run_process(body)


async def test_the_view_is_cut_and_sorted_on_the_node(node: Node) -> None:
    async def body() -> None:
        quiet = kernel.spawn(idle)
        busy = kernel.spawn(idle)
        kernel.register("busy_probe", busy)
        for n in range(5):
            kernel.send(busy, n)
        kernel.send(quiet, "one")
        view = await top_view(sort="mailbox", limit=2)
        assert view["processes"] == len(kernel.processes())
        assert view["mailbox"] == 6
        assert [(r["pid"], r["name"], r["mailbox"]) for r in view["rows"]] == [
            (repr(busy), "busy_probe", 5),
            (repr(quiet), None, 1),
        ]
        assert view["rows"][0]["handled"] == 0  # delivered, none taken yet
        by_age = await top_view(sort="age")
        ages = [row["age"] for row in by_age["rows"]]
        assert ages == sorted(ages, reverse=True)
        assert by_age["rows"][0]["pid"] == repr(kernel.self())  # the oldest: this test's

    await node.run_process(body)


@pytest.mark.node
def test_live_top_redraws_and_ctrl_c_ends_it_cleanly(demo_node: NodeProcess) -> None:
    main, terminal = pty.openpty()  # a terminal: rich draws the live table in place
    command = [sys.executable, "-m", "server", "top", "--root", str(demo_node.root)]
    top = subprocess.Popen(
        command, stdin=terminal, stdout=terminal, stderr=terminal, env=dict(os.environ)
    )
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        # two tables drawn: the first answer, then the first refresh a second later
        while seen.count(b"processes by mailbox") < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1.0)
            if ready:
                try:
                    seen += os.read(main, 65536)
                except OSError:
                    break  # the terminal closed: top ended
        assert seen.count(b"processes by mailbox") >= 2, seen.decode(errors="replace")
        top.send_signal(signal.SIGINT)
        assert top.wait(timeout=15) == 0
    finally:
        if top.poll() is None:
            top.kill()
            top.wait()
        os.close(main)
    assert b"Traceback" not in seen
    assert b"KeyboardInterrupt" not in seen


@pytest.mark.parametrize(
    ("n", "text"), [(512, "512 B"), (3482, "3.4 KiB"), (12 * 1024**2, "12.0 MiB")]
)
def test_sizes_read_as_people_read_them(n: int, text: str) -> None:
    assert size_text(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(4.24, "4.2s"), (185, "3m05s"), (7620, "2h07m"), (273600, "3d04h")]
)
def test_ages_read_as_people_read_them(seconds: float, text: str) -> None:
    assert age_text(seconds) == text
