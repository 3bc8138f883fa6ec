"""Kill -9 at every step of a remove of a release of ~3,000 files.

A real node runs under its heart (``server start --foreground``); each step of the remove
(``server.release._removal``: each folder set aside, RELEASES before and after its rename,
each folder deleted, and entries in the middle of the deletes) is armed in turn, the node
killed there, restarted by the heart. After each restart RELEASES and the folders agree
(no folder of a release RELEASES does not name, none missing of one it does, nothing set
aside left), the remove is finished, and unpacking the same package again succeeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server.release import _faults
from server.release.releases_file import read_releases
from tests.release.test_crash_every_step import HeartNode

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: the data files added to stats 1.0.0, an application only release 2.0.0 has
FILES = 3_000
PER_FOLDER = 100


def add_data_files(tree: Path) -> None:
    data = tree / "apps" / "stats-1.0.0" / "stats" / "data"
    for index in range(FILES):
        folder = data / f"part{index // PER_FOLDER:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"row{index:04d}.txt").write_text(f"{index}\n")


@pytest.fixture
def heart(demo_tree: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeartNode]:
    monkeypatch.setenv(_faults.ENV, ",".join(_faults.POINTS))
    add_data_files(demo_tree)  # before HeartNode builds the packages
    node = HeartNode(demo_tree)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def assert_agree(heart: HeartNode) -> None:
    """RELEASES names exactly the releases whose folders are in place, as the node says."""
    record = read_releases(heart.root)
    assert record is not None
    named = {entry.vsn for entry in record.releases}
    lib_dirs = {app.lib_dir for entry in record.releases for app in entry.applications}
    # the root is the source tree too: releases/ also holds the release specs (files)
    releases = {p.name for p in (heart.root / "releases").iterdir() if p.is_dir()}
    libs = {f"lib/{p.name}" for p in (heart.root / "lib").iterdir()}
    assert releases == named, "a folder under releases/ for each release RELEASES names, only"
    assert libs == lib_dirs, "a folder under lib/ for each application of those, only"
    assert {row["vsn"]: row["status"] for row in heart.control("releases")} == {
        entry.vsn: entry.status for entry in record.releases
    }


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


#: every step of removing 2.0.0: its three folders (lib/counter-2.0.0, lib/stats-1.0.0,
#: releases/2.0.0) set aside one by one, RELEASES, each folder deleted, and entries
#: deleted in the middle of the large one
STEPS = [
    "remove_rename:1",
    "remove_rename:2",
    "remove_rename:3",
    "releases_write:0",
    "releases_write:1",
    "remove_delete:0",
    "remove_delete:1",
    "remove_entries:1",
    "remove_entries:20",
    "remove_entries:1500",
    "remove_entries:3000",
    "remove_delete:2",
    "remove_delete:3",
]


@pytest.mark.node
@pytest.mark.slow  # about 75 s: CI runs it (RUN_SLOW=1)
@pytest.mark.timeout(300)  # 13 kills, each followed by an unpack of ~3,000 files (~4 s each)
def test_a_kill_at_any_step_of_a_remove_leaves_releases_and_folders_agreeing(
    heart: HeartNode,
) -> None:
    package = heart.package("2.0.0")
    heart.control("unpack", package=package)
    assert count_files(heart.root / "lib" / "stats-1.0.0") > FILES
    assert_agree(heart)
    for point in STEPS:
        heart.crash(point, "remove", vsn="2.0.0")
        heart.assert_serves("1.0.0")
        assert_agree(heart)
        assert heart.statuses() == {"1.0.0": "permanent"}, f"2.0.0 removed after {point}"
        assert heart.leftovers() == []
        assert heart.control("unpack", package=package) == {"vsn": "2.0.0"}, point
        assert_agree(heart)
        assert count_files(heart.root / "lib" / "stats-1.0.0") > FILES
    assert heart.boots == 1 + len(STEPS), "one restart by the heart per kill"
    assert heart.control("remove", vsn="2.0.0") == {"vsn": "2.0.0"}, "and unarmed, it just works"
    assert_agree(heart)
