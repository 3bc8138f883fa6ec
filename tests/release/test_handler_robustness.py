"""The release handler against deep trees, crashes and packages that block.

Each test boots the demo in a process of the test's node (``boot_demo``) and talks to the
real handler through its API. A bad input must give a clear error and leave RELEASES byte
for byte as it was, with no new folder under ``lib/`` or ``releases/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import kernel
from server.release import handler
from tests.behaviours._helpers import within
from tests.release._live import boot_demo, stop_demo
from tests.release._trees import deep_tree, deleted_at_the_end

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from server.kernel import Node
    from tests.release._live import LiveDemo

DEEP = 1_500


def folders(root: Path) -> dict[str, list[str]]:
    """The entries of ``lib/`` and ``releases/``, by name."""
    return {top: sorted(p.name for p in (root / top).iterdir()) for top in ("lib", "releases")}


def releases_bytes(root: Path) -> bytes:
    return (root / "releases" / "RELEASES").read_bytes()


async def on_demo(
    node: Node, demo_tree: Path, tmp_path: Path, body: Callable[[LiveDemo], Awaitable[None]]
) -> None:
    async def run() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await body(demo)
        finally:
            await stop_demo(demo)

    await node.run_process(run)


# -- deep trees --------------------------------------------------------------------------


async def test_remove_deletes_a_tree_1500_levels_deep_and_the_handler_lives_on(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    async def body(demo: LiveDemo) -> None:
        before = folders(demo.root)
        await within(handler.unpack(demo.package("2.0.0")), "unpack", 30)
        # what an application may write under its own lib dir: a tree of any depth
        cache = demo.root / "lib" / "counter-2.0.0" / "cache"
        pid = kernel.whereis(handler.NAME)
        with deleted_at_the_end(cache):
            deep_tree(cache, DEEP)
            assert await within(handler.remove("2.0.0"), "remove", 30) == "2.0.0"
        assert folders(demo.root) == before, "every folder of 2.0.0 deleted, the deep one too"
        assert [r["vsn"] for r in await handler.which_releases()] == ["1.0.0"]
        assert kernel.whereis(handler.NAME) is pid, "the same handler: it did not crash"

    await on_demo(node, demo_tree, tmp_path, body)
