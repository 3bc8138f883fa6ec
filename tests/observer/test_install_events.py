"""Each release operation logs one structured record: here as the CLI's JSON log lines.

The node is the demo booted in the test's own node; its ``server.release`` records go
through the formatter ``server --log-format json`` uses, so each line is what a log shipper
reads from a real node's log.
"""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from server.cli._logging import _JsonFormatter
from server.errors import InstallRefused
from server.release import handler
from tests.behaviours._helpers import within
from tests.release._live import boot_demo, stop_demo

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from server.kernel import Node

FIELDS = {"event", "release", "from_vsn", "duration", "outcome"}  # to_vsn: not for a remove


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the CLI's ``--log-format json`` writes for ``server.release``, into a buffer."""
    lines = io.StringIO()
    to_lines = logging.StreamHandler(lines)
    to_lines.setFormatter(_JsonFormatter())
    release_logger = logging.getLogger("server.release")
    was = release_logger.level
    release_logger.addHandler(to_lines)
    release_logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        release_logger.removeHandler(to_lines)
        release_logger.setLevel(was)


def events(lines: io.StringIO) -> list[dict[str, Any]]:
    """The release events among the JSON log lines, in order."""
    found = []
    for line in lines.getvalue().splitlines():
        entry = json.loads(line)  # every line is one JSON object
        if str(entry.get("event", "")).startswith("release_"):
            found.append(entry)
    return found


async def test_every_release_operation_logs_one_json_event(
    node: Node, demo_tree: Path, tmp_path: Path, json_lines: io.StringIO
) -> None:
    async def body() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await within(handler.unpack(demo.package("1.1.0")), "unpack", 30)
            with pytest.raises(InstallRefused, match=r"no release 9\.9\.9"):
                await handler.install("9.9.9")
            await within(handler.install("1.1.0"), "install", 30)
            await handler.make_permanent("1.1.0")
            # to the permanent release before: an install and a make_permanent, then its own
            await within(handler.rollback(), "rollback", 30)
            await handler.remove("1.1.0")
            with pytest.raises(InstallRefused, match="permanent"):
                await handler.remove("1.0.0")
            with pytest.raises(InstallRefused, match="nothing to roll back to"):
                await handler.rollback()
        finally:
            await stop_demo(demo)

    await node.run_process(body)
    seen = events(json_lines)
    assert [(e["event"], e["from_vsn"], e.get("to_vsn"), e["outcome"]) for e in seen] == [
        ("release_install", "1.0.0", "9.9.9", "refused"),
        ("release_install", "1.0.0", "1.1.0", "ok"),
        ("release_make_permanent", "1.0.0", "1.1.0", "ok"),
        ("release_install", "1.1.0", "1.0.0", "ok"),
        ("release_make_permanent", "1.1.0", "1.0.0", "ok"),
        ("release_rollback", "1.1.0", "1.0.0", "ok"),
        ("release_remove", "1.1.0", None, "ok"),
        ("release_remove", "1.0.0", None, "refused"),
        ("release_rollback", "1.0.0", None, "refused"),
    ]
    for entry in seen:
        assert entry.keys() >= FIELDS, entry
        assert ("to_vsn" in entry) == (entry["event"] != "release_remove" and entry is not seen[-1])
        assert entry["release"] == "demo"
        assert isinstance(entry["duration"], float)
        assert entry["duration"] >= 0.0
        assert ("error" in entry) == (entry["outcome"] != "ok"), entry
        assert entry["logger"] == "server.release"
    assert seen[0]["error"] == "no release 9.9.9 (unpack it first)"
    assert seen[0]["level"] == "WARNING"
    assert "permanent" in seen[-2]["error"]
    assert seen[-1]["level"] == "WARNING"
    assert seen[-1]["error"].startswith("nothing to roll back to: 1.0.0 is the only release")
    install = seen[1]
    assert install["level"] == "INFO"
    assert install["duration"] > 0.0
    # the install's record is the one it always was, with the event facts added
    assert install["message"].startswith("release 1.1.0 installed (up from 1.0.0)")
    assert (install["report"], install["processes_migrated"]) == ("release_installed", 1)
