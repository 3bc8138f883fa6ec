"""Kill -9 at every step: each instruction of every demo install, RELEASES writes, unpacks.

Each test runs one node under its heart (``server start --foreground``, real OS processes)
and arms one crash at a time (``server.release._faults``: the environment allows the point,
the marker file under ``run/`` arms it once). After each crash the heart restarts the node
and the test checks what any crash must leave: the permanent release booted and serving,
RELEASES well formed and as it was (or, after its rename, the new record), nothing in the
way of the same operation, which is then done again and succeeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

from server.control.client import request_sync
from server.errors import ConnectionLost
from server.release import _faults
from server.release.package import build_package
from server.release.releases_file import read_releases
from server.release.source_tree import SourceTree
from server.release.unpack import STAGING_PREFIX
from tests._support.nodes import NodeProcess, free_port, set_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

LISTENING = "control: listening"


class HeartNode:
    """A demo root run by ``server start --foreground``, crashed on purpose, one at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        set_port(root, port=self.port)
        config = root / "sys.config"
        text = config.read_text()
        # every crash is a restart: the heart must not give up during the grid
        config.write_text(text.replace("[node]\n", "[node]\nheart_max_restarts = 1000\n", 1))
        for vsn in ("1.1.0", "2.0.0"):
            build_package(SourceTree(root), "demo", vsn, root / "build")
        self.process = NodeProcess(root, ["start", "--foreground"], self.port)
        self.boots = 0

    def start(self) -> None:
        self.process.start()
        self.wait_booted()

    def wait_booted(self) -> None:
        self.boots += 1
        self.process.wait_for(LISTENING, count=self.boots)

    def control(self, command: str, **args: str) -> Any:
        return request_sync(self.root / "run" / "control.sock", command, args, timeout=60.0)

    def package(self, vsn: str) -> str:
        return str(self.root / "build" / f"demo-{vsn}.tar.gz")

    def statuses(self) -> dict[str, str]:
        return {row["vsn"]: row["status"] for row in self.control("releases")}

    def releases_bytes(self) -> bytes:
        return (self.root / "releases" / "RELEASES").read_bytes()

    def crash(self, point: str, command: str, **args: str) -> None:
        """Arm ``point``, run ``command`` (the node dies in it), wait for the restart."""
        (self.root / _faults.MARKER).write_text(point + "\n")
        with pytest.raises(ConnectionLost):
            self.control(command, **args)
        self.process.wait_for(f"fault injection: killing the node at {point}")
        self.wait_booted()
        assert not (self.root / _faults.MARKER).exists(), "one crash per arming"

    def assert_serves(self, vsn: str) -> None:
        """Boots ``vsn``, answers HTTP, and RELEASES is a well-formed record naming it."""
        assert self.control("ping")["release"] == vsn
        status, body = self.process.request("POST", "/incr/k")
        assert (status, body["vsn"]) == (200, vsn)
        assert self.process.request("GET", "/health") == (200, {"release": vsn})
        record = read_releases(self.root)
        assert record is not None
        assert record.permanent.vsn == vsn

    def code(self) -> dict[str, Any]:
        """The current version of each module in memory; asserts none has an old one."""
        rows = self.control("code")
        assert [r["module"] for r in rows if r["slot"] == "old"] == []
        return {r["module"]: r["vsn"] for r in rows}

    def script_length(self, vsn: str) -> int:
        """How many instructions an install of ``vsn`` runs after its point of no return."""
        ops: list[str] = self.control("check", vsn=vsn)["instructions"]
        return len(ops) - ops.index("point_of_no_return") - 1

    def leftovers(self) -> list[str]:
        staging = [p.name for p in self.root.iterdir() if p.name.startswith(STAGING_PREFIX)]
        temps = [p.name for p in (self.root / "releases").glob(".RELEASES.*")]
        return staging + temps

    def stop(self) -> None:
        self.process.stop(signal.SIGTERM)
        self.process.kill()


@pytest.fixture
def heart(demo_tree: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeartNode]:
    # the heart and every node it restarts inherit it; the marker arms one point at a time
    monkeypatch.setenv(_faults.ENV, ",".join(_faults.POINTS))
    node = HeartNode(demo_tree)
    node.start()
    try:
        yield node
    finally:
        node.stop()


# -- the grid: every instruction of every demo install, up and down ------------------------

#: the upgrades that make the permanent release, the install crashed at each step, and the
#: statuses before the first crash (a release installed then left becomes ``old`` after it)
DIRECTIONS = [
    pytest.param((), "1.1.0", {"1.0.0": "permanent", "1.1.0": "unpacked"}, id="up-1.0.0-to-1.1.0"),
    pytest.param(
        ("1.1.0",),
        "2.0.0",
        {"1.0.0": "old", "1.1.0": "permanent", "2.0.0": "unpacked"},
        id="up-1.1.0-to-2.0.0",
    ),
    pytest.param(
        ("1.1.0", "2.0.0"),
        "1.1.0",
        {"1.0.0": "old", "1.1.0": "old", "2.0.0": "permanent"},
        id="down-2.0.0-to-1.1.0",
    ),
    pytest.param(
        ("1.1.0",), "1.0.0", {"1.0.0": "old", "1.1.0": "permanent"}, id="down-1.1.0-to-1.0.0"
    ),
]


@pytest.mark.node
@pytest.mark.parametrize(("upgrades", "target", "statuses"), DIRECTIONS)
def test_a_crash_after_any_instruction_boots_the_permanent_release(
    heart: HeartNode, upgrades: tuple[str, ...], target: str, statuses: dict[str, str]
) -> None:
    for vsn in upgrades:
        heart.control("upgrade", package=heart.package(vsn))
    permanent = upgrades[-1] if upgrades else "1.0.0"
    if target not in heart.statuses():
        heart.control("unpack", package=heart.package(target))
    steps = heart.script_length(target)
    assert steps >= 5, "the demo's scripts have at least five steps after the point of no return"
    assert heart.statuses() == statuses
    heart.assert_serves(permanent)  # the web module loads on the first request
    booted = heart.code()  # the permanent release, reached live: as a boot loads it
    for index in range(steps):
        before, before_statuses = heart.releases_bytes(), heart.statuses()
        heart.crash(f"after_step:{index}", "install", vsn=target)
        heart.assert_serves(permanent)
        assert heart.code() == booted, "a fresh boot: the permanent release's modules only"
        assert heart.releases_bytes() == before, f"RELEASES unchanged by the crash at {index}"
        assert heart.statuses() == before_statuses, f"after the crash at {index}"
        report = heart.control("install", vsn=target)  # the same install, accepted again
        assert report["to_vsn"] == target
        assert heart.process.request("GET", "/health") == (200, {"release": target})
        heart.control("install", vsn=permanent)  # back, live, for the next step
    assert heart.control("ping")["release"] == permanent
    assert heart.boots == 1 + steps, "one restart by the heart per crash"


# -- RELEASES: killed before and after its rename ------------------------------------------


@pytest.mark.node
def test_a_crash_while_writing_releases_leaves_the_old_or_the_new_record(
    heart: HeartNode,
) -> None:
    heart.control("unpack", package=heart.package("1.1.0"))
    heart.control("install", vsn="1.1.0")
    old = heart.releases_bytes()
    heart.crash("releases_write:0", "permanent", vsn="1.1.0")  # temp synced, not renamed
    heart.assert_serves("1.0.0")
    assert heart.releases_bytes() == old, "the old record, byte for byte"
    assert heart.statuses() == {"1.0.0": "permanent", "1.1.0": "unpacked"}

    heart.control("install", vsn="1.1.0")
    assert heart.leftovers() == [], "the next write removed the crashed write's temp file"
    heart.crash("releases_write:1", "permanent", vsn="1.1.0")  # renamed, folder not synced
    heart.assert_serves("1.1.0")
    assert heart.statuses() == {"1.0.0": "old", "1.1.0": "permanent"}, "the new record"
    record = read_releases(heart.root)
    assert record is not None
    assert record.permanent_history == ["1.0.0", "1.1.0"]

    heart.control("upgrade", package=heart.package("2.0.0"))  # and the node goes on
    heart.assert_serves("2.0.0")
    assert heart.leftovers() == []


# -- unpack: killed between its renames ----------------------------------------------------


@pytest.mark.node
def test_a_crash_while_unpacking_leaves_nothing_in_the_way_of_a_retry(heart: HeartNode) -> None:
    package = heart.package("2.0.0")  # three directories: counter-2.0.0, stats-1.0.0, 2.0.0
    before = heart.releases_bytes()
    for moved in range(4):
        heart.crash(f"unpack_move:{moved}", "unpack", package=package)
        heart.assert_serves("1.0.0")
        assert heart.releases_bytes() == before
        assert heart.statuses() == {"1.0.0": "permanent"}
        assert heart.leftovers() != [], "the staging directory the crash left"
        assert heart.control("unpack", package=package) == {"vsn": "2.0.0"}  # the retry
        assert heart.leftovers() == []
        if moved < 3:
            heart.control("remove", vsn="2.0.0")
    heart.control("install", vsn="2.0.0")
    assert heart.process.request("GET", "/stats")[0] == 200
    modules = heart.code()
    assert modules["counter.web"] == "2.0.0"
    assert modules["stats.server"] == "1.0.0"


# -- the two keys ------------------------------------------------------------------------


def arm(root: Path, text: str) -> None:
    marker = root / _faults.MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(text)


@pytest.mark.parametrize(
    ("allowed", "marker", "armed"),
    [
        pytest.param(None, "after_step:2", False, id="no-variable"),
        pytest.param("after_step", None, False, id="no-marker"),
        pytest.param("", "after_step:2", False, id="empty-variable"),
        pytest.param("releases_write", "after_step:2", False, id="point-not-allowed"),
        pytest.param("after_step:3", "after_step:2", False, id="index-not-allowed"),
        pytest.param("after_step", "after_step:two", False, id="malformed-marker"),
        pytest.param("after_step", "unpack_move:1", False, id="another-point"),
        pytest.param("after_step", "after_step:2", True, id="point-allowed"),
        pytest.param("unpack_move, after_step:2", "after_step:2", True, id="exact-allowed"),
    ],
)
def test_a_fault_is_armed_only_when_the_variable_and_the_marker_agree(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    allowed: str | None,
    marker: str | None,
    armed: bool,
) -> None:
    if allowed is None:
        monkeypatch.delenv(_faults.ENV, raising=False)
    else:
        monkeypatch.setenv(_faults.ENV, allowed)
    if marker is not None:
        arm(tmp_path, marker)
    hook = _faults.hook(tmp_path, "after_step")
    assert (hook is not None) is armed
    if hook is not None:
        hook(1)  # another index: nothing happens
        assert (tmp_path / _faults.MARKER).exists()


def test_a_marker_that_is_a_link_arms_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_faults.ENV, "after_step")
    arm(tmp_path, "")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("after_step:2")
    (tmp_path / _faults.MARKER).unlink()
    (tmp_path / _faults.MARKER).symlink_to(elsewhere)
    assert _faults.hook(tmp_path, "after_step") is None


def test_the_armed_point_kills_the_process_once(tmp_path: Path) -> None:
    arm(tmp_path, "after_step:2")
    program = textwrap.dedent(
        f"""
        import logging, pathlib, sys
        from server.release import _faults
        logging.basicConfig(level=logging.INFO)
        hook = _faults.hook(pathlib.Path({str(tmp_path)!r}), "after_step")
        for index in range(5):
            print("step", index, flush=True)
            if hook is not None:
                hook(index)
        """
    )
    env = dict(os.environ, **{_faults.ENV: "after_step"})
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=30
    )
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split("\n")[-2] == "step 2"
    assert "CRITICAL" in done.stderr
    assert "fault injection armed" in done.stderr
    assert not (tmp_path / _faults.MARKER).exists(), "disarmed before the kill"
    again = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=30
    )
    assert again.returncode == 0, "the same environment, no marker: runs clean"
