"""The release status table, every (status, action) pair, and the RELEASES record on disk."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, get_args

import pytest

from server.errors import SpecError
from server.release.release_status import (
    TRANSITIONS,
    Action,
    Status,
    StatusRefused,
    next_statuses,
    on_disk,
)
from server.release.releases_file import (
    AppEntry,
    ReleaseEntry,
    ReleasesFile,
    read_releases,
    write_releases,
)

if TYPE_CHECKING:
    from pathlib import Path

STATUSES: tuple[Status, ...] = get_args(Status)
ACTIONS: tuple[Action, ...] = get_args(Action)

# (status of the release acted on, action) -> its next status, "removed", or None (refused)
EXPECTED = {
    ("unpacked", "install"): "current",
    ("unpacked", "make_permanent"): None,
    ("unpacked", "remove"): "removed",
    ("unpacked", "boot"): "unpacked",
    ("current", "install"): None,
    ("current", "make_permanent"): "permanent",
    ("current", "remove"): None,
    ("current", "boot"): "unpacked",
    ("permanent", "install"): "permanent",
    ("permanent", "make_permanent"): "permanent",
    ("permanent", "remove"): None,
    ("permanent", "boot"): "permanent",
    ("old", "install"): "current",
    ("old", "make_permanent"): None,
    ("old", "remove"): "removed",
    ("old", "boot"): "old",
}


def world(status: Status) -> dict[str, Status]:
    """The release "X" in ``status``, beside a permanent (or current) other release."""
    others: dict[str, Status] = {"P": "permanent"} if status != "permanent" else {}
    if status != "current":
        others["C"] = "current"
    return {**others, "X": status}


def test_the_table_covers_every_pair() -> None:
    assert set(TRANSITIONS) == {(s, a) for s in STATUSES for a in ACTIONS}
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(
    ("status", "action"), list(EXPECTED), ids=[f"{s}-{a}" for s, a in EXPECTED]
)
def test_each_pair(status: Status, action: Action) -> None:
    before = world(status)
    expected = EXPECTED[(status, action)]
    if expected is None:
        with pytest.raises(StatusRefused, match=f"cannot {action.replace('_', ' ')} X"):
            next_statuses(before, "X", action)
        return
    after = next_statuses(before, "X", action)
    assert before == world(status), "the input is not changed"
    if expected == "removed":
        assert "X" not in after
    else:
        assert after["X"] == expected
    if action == "install" and "C" in before:
        assert after["C"] == "old", "the former current release becomes old"
    if action == "make_permanent" and status != "permanent":
        assert after["P"] == "old", "the former permanent release becomes old"
    if action == "boot":
        assert "current" not in after.values(), "a boot rolls back what was not permanent"
    assert list(after.values()).count("permanent") == 1


def test_current_is_never_written() -> None:
    assert [on_disk(s) for s in STATUSES] == ["unpacked", "unpacked", "permanent", "old"]


def record(*entries: tuple[str, Status]) -> ReleasesFile:
    return ReleasesFile(
        releases=[
            ReleaseEntry(
                name="demo",
                vsn=vsn,
                status=status,
                applications=[AppEntry(name="a", vsn=vsn, lib_dir=f"lib/a-{vsn}")],
            )
            for vsn, status in entries
        ],
        permanent_history=["1"],
    )


def test_releases_round_trip_without_current(tmp_path: Path) -> None:
    write_releases(tmp_path, record(("1", "permanent"), ("2", "current")))
    back = read_releases(tmp_path)
    assert back is not None
    assert [(r.vsn, r.status) for r in back.releases] == [("1", "permanent"), ("2", "unpacked")]
    assert [p.name for p in (tmp_path / "releases").iterdir()] == ["RELEASES"], "no temp left"


def test_a_crash_before_the_rename_leaves_the_old_record(tmp_path: Path) -> None:
    write_releases(tmp_path, record(("1", "permanent")))
    before = (tmp_path / "releases" / "RELEASES").read_bytes()

    def crash() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_releases(tmp_path, record(("1", "old"), ("2", "permanent")), before_rename=crash)
    assert (tmp_path / "releases" / "RELEASES").read_bytes() == before
    assert [p.name for p in (tmp_path / "releases").iterdir()] == ["RELEASES"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("{not json", "not valid JSON", id="not-json"),
        pytest.param(json.dumps({"releases": []}), "exactly one release", id="no-permanent"),
        pytest.param(
            json.dumps({"releases": [], "extra": 1}), "extra: unknown key", id="unknown-key"
        ),
    ],
)
def test_a_damaged_record_is_an_error_not_a_fresh_start(
    tmp_path: Path, text: str, expected: str
) -> None:
    (tmp_path / "releases").mkdir()
    (tmp_path / "releases" / "RELEASES").write_text(text)
    with pytest.raises(SpecError, match=expected):
        read_releases(tmp_path)


def test_no_record_yet(tmp_path: Path) -> None:
    assert read_releases(tmp_path) is None
