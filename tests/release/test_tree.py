"""Walking and deleting folder trees: any depth, no recursion, never through a link."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from server.release._tree import delete_tree, walk_tree
from tests.release._trees import deep_tree, deleted_at_the_end

if TYPE_CHECKING:
    from pathlib import Path

DEEP = 1_500  # past the interpreter's recursion limit (1,000): shutil.rmtree fails there


def outside(tmp_path: Path) -> Path:
    """A folder that must survive: links to it and into it are not followed."""
    precious = tmp_path / "precious"
    (precious / "inner").mkdir(parents=True)
    (precious / "keep.txt").write_text("keep")
    (precious / "inner" / "keep.txt").write_text("keep")
    return precious


def test_delete_tree_deletes_a_tree_1500_levels_deep(tmp_path: Path) -> None:
    counts: list[int] = []
    with deleted_at_the_end(tmp_path / "top"):
        deep_tree(tmp_path / "top", DEEP)
        deleted = delete_tree(tmp_path / "top", on_deleted=counts.append)
    assert deleted == 2 * DEEP + 1, "every folder and file, and the top"
    assert counts == list(range(1, deleted + 1)), "told after each entry"
    assert not (tmp_path / "top").exists()
    assert list(tmp_path.iterdir()) == []


def test_delete_tree_unlinks_links_and_never_enters_them(tmp_path: Path) -> None:
    precious = outside(tmp_path)
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "to-folder").symlink_to(precious, target_is_directory=True)
    (top / "to-file").symlink_to(precious / "keep.txt")
    (top / "dangling").symlink_to(tmp_path / "nowhere")
    assert delete_tree(top) == 5
    assert not top.exists()
    assert (precious / "keep.txt").read_text() == "keep"
    assert (precious / "inner" / "keep.txt").read_text() == "keep"


def test_delete_tree_of_a_link_removes_the_link_only(tmp_path: Path) -> None:
    precious = outside(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(precious, target_is_directory=True)
    assert delete_tree(link) == 1
    assert not os.path.lexists(link)
    assert sorted(p.name for p in precious.iterdir()) == ["inner", "keep.txt"]


def test_delete_tree_of_a_file_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert delete_tree(tmp_path / "file") == 1
    assert not (tmp_path / "file").exists()
    assert delete_tree(tmp_path / "missing") == 0


def test_walk_tree_goes_1500_levels_deep_in_order(tmp_path: Path) -> None:
    with deleted_at_the_end(tmp_path / "top"):
        deep_tree(tmp_path / "top", DEEP)
        walked = [p.relative_to(tmp_path / "top").as_posix() for p in walk_tree(tmp_path / "top")]
    folders = ["/".join(["d"] * level) for level in range(1, DEEP + 1)]
    # each folder holds "d" and "f": "d" sorts first, so the walk goes all the way down,
    # then yields each folder's file on its way back up
    expected = folders + [f"{folder}/f" for folder in reversed(folders)]
    assert walked == expected


def test_walk_tree_yields_links_without_entering_them_and_skips_on_request(
    tmp_path: Path,
) -> None:
    precious = outside(tmp_path)
    top = tmp_path / "top"
    (top / "b" / "__pycache__").mkdir(parents=True)
    (top / "b" / "__pycache__" / "x.pyc").write_bytes(b"")
    (top / "b" / "c.py").write_text("")
    (top / "a-link").symlink_to(precious, target_is_directory=True)
    names = [p.relative_to(top).as_posix() for p in walk_tree(top)]
    assert names == ["a-link", "b", "b/__pycache__", "b/__pycache__/x.pyc", "b/c.py"]
    kept = walk_tree(top, skip=lambda entry: entry.name == "__pycache__")
    assert [p.relative_to(top).as_posix() for p in kept] == ["a-link", "b", "b/c.py"]
