"""Deep folder trees for tests, made without recursion (``os.makedirs`` recurses on depth)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from server.release._tree import delete_tree

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def deep_tree(top: Path, depth: int, *, name: str = "d") -> Path:
    """Make ``top/name/name/...`` ``depth`` folders deep, a file in each; returns the deepest."""
    folder = top
    folder.mkdir(parents=True, exist_ok=True)
    for level in range(depth):
        folder = folder / name
        folder.mkdir()
        (folder / "f").write_text(str(level))
    return folder


@contextlib.contextmanager
def deleted_at_the_end(*paths: Path) -> Iterator[None]:
    """Delete ``paths`` when the block ends, even when it fails.

    pytest's own clean-up of old temporary folders recurses and would fail on a deep tree
    a failed test left behind.
    """
    try:
        yield
    finally:
        for path in paths:
            delete_tree(path)
