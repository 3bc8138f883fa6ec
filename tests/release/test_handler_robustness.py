"""The release handler against deep trees, crashes and packages that block.

Each test boots the demo in a process of the test's node (``boot_demo``) and talks to the
real handler through its API. A bad input must give a clear error and leave RELEASES byte
for byte as it was, with no new folder under ``lib/`` or ``releases/``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
from typing import TYPE_CHECKING

import pytest

from server import kernel
from server.behaviours import supervisor
from server.errors import InstallRefused, UnpackError
from server.release import _handler, _removal, handler, unpack
from server.release.unpack import unpack_package
from tests.behaviours._helpers import recv, within
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


# -- a crashed handler is started again -------------------------------------------------


async def test_a_killed_handler_is_started_again_and_reads_releases_again(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    async def run() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            await within(handler.unpack(demo.package("1.1.0")), "unpack", 30)
            await within(handler.install("1.1.0"), "install", 30)  # current: in memory only
            before = await handler.which_releases()
            assert {r["vsn"]: r["status"] for r in before} == {
                "1.0.0": "permanent",
                "1.1.0": "current",
            }
            killed = kernel.whereis(handler.NAME)
            assert killed is not None
            ref = kernel.monitor(killed)
            kernel.exit(killed, kernel.KILL)
            await recv(lambda m: type(m) is kernel.DownMessage and m.ref is ref, step="killed")
            # the supervisor takes the handler's EXIT before this call: once it answers,
            # the new handler has read RELEASES and holds the name
            rows = await within(supervisor.which_children(handler.SUPERVISOR), "children")
            started = kernel.whereis(handler.NAME)
            assert [(row.id, row.pid) for row in rows] == [("release_handler", started)]
            assert started is not None
            assert started != killed
            assert await within(handler.which_releases(), "releases") == before
            assert await within(handler.make_permanent("1.1.0"), "permanent") == "1.1.0"
        finally:
            await stop_demo(demo)
        assert kernel.whereis(handler.SUPERVISOR) is None, "the boot stopped the supervisor"
        assert kernel.whereis(handler.NAME) is None, "and the handler with it"

    await node.run_process(run)


# -- a worker that crashes ----------------------------------------------------------------


async def test_an_unpack_worker_that_crashes_answers_its_caller_at_once(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    async def body(demo: LiveDemo) -> None:
        before, record = folders(demo.root), releases_bytes(demo.root)
        # a NUL byte in a folder's name: reading it raises ValueError, which is neither a
        # ServerError nor an OSError (the worker used to end with it, its caller waiting)
        package = f"{tmp_path}/in\x00side/demo-2.0.0.tar.gz"
        with pytest.raises(UnpackError, match="crashed with ValueError: embedded null byte"):
            await within(handler.unpack(package), "unpack", 10)
        assert folders(demo.root) == before
        assert releases_bytes(demo.root) == record
        pid = kernel.whereis(handler.NAME)
        assert await within(handler.unpack(demo.package("2.0.0")), "unpack", 30) == "2.0.0"
        assert kernel.whereis(handler.NAME) is pid, "the same handler served on"

    await on_demo(node, demo_tree, tmp_path, body)


# -- what a remove killed midway leaves -----------------------------------------------------


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


async def test_unpack_replaces_the_folders_of_a_release_releases_does_not_name(
    node: Node, demo_tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(demo: LiveDemo) -> None:
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        unpack_package(demo.package("2.0.0"), scratch)
        # what the former remove left when killed between its RELEASES write and its
        # deletes: folders half deleted, that RELEASES no longer names
        for rel in ("lib/counter-2.0.0", "releases/2.0.0"):
            shutil.copytree(scratch / rel, demo.root / rel)
            sorted(p for p in (demo.root / rel).rglob("*") if p.is_file())[0].unlink()
        with caplog.at_level(logging.WARNING, "server.release.unpack"):
            assert await within(handler.unpack(demo.package("2.0.0")), "unpack", 30) == "2.0.0"
        replaced = [r.getMessage() for r in caplog.records if "leftover" in r.getMessage()]
        assert [m.split(" is a leftover")[0] for m in replaced] == [
            str(demo.root / "lib" / "counter-2.0.0"),
            str(demo.root / "releases" / "2.0.0"),
        ]
        for rel in ("lib/counter-2.0.0", "lib/stats-1.0.0", "releases/2.0.0"):
            assert files_under(demo.root / rel) == files_under(scratch / rel), rel
        assert [r["vsn"] for r in await handler.which_releases()] == ["1.0.0", "2.0.0"]

    await on_demo(node, demo_tree, tmp_path, body)


async def test_a_handler_started_again_finishes_an_interrupted_remove(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    async def body(demo: LiveDemo) -> None:
        before = folders(demo.root)
        await within(handler.unpack(demo.package("2.0.0")), "unpack", 30)
        # a remove killed after setting its first folder aside, RELEASES not written yet
        lib = demo.root / "lib"
        os.rename(lib / "counter-2.0.0", lib / ".removed-2.0.0-0123456789ab")
        killed = kernel.whereis(handler.NAME)
        assert killed is not None
        ref = kernel.monitor(killed)
        kernel.exit(killed, kernel.KILL)
        await recv(lambda m: type(m) is kernel.DownMessage and m.ref is ref, step="killed")
        await within(supervisor.which_children(handler.SUPERVISOR), "started again")
        assert [r["vsn"] for r in await handler.which_releases()] == ["1.0.0"]
        assert b'"2.0.0"' not in releases_bytes(demo.root)
        assert folders(demo.root) == before, "its other folders removed, the one set aside too"
        assert await within(handler.unpack(demo.package("2.0.0")), "unpack", 30) == "2.0.0"

    await on_demo(node, demo_tree, tmp_path, body)


# -- packages whose read blocks ----------------------------------------------------------


def fifo_package(folder: Path, package: Path) -> Path:
    """A FIFO named as ``package``, with ``package``'s well-formed .sha256 beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    fifo = folder / package.name
    os.mkfifo(fifo)
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    (folder / f"{package.name}.sha256").write_text(f"{digest}  {package.name}\n")
    return fifo


async def test_unpack_of_a_fifo_is_refused_at_once_and_the_handler_is_free(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    async def body(demo: LiveDemo) -> None:
        fifo = fifo_package(tmp_path / "incoming", demo.package("2.0.0"))
        before, record = folders(demo.root), releases_bytes(demo.root)
        with pytest.raises(UnpackError) as info:  # used to block in open() for good
            await within(handler.unpack(fifo), "unpack of a FIFO", 10)
        assert info.value.reason == (
            f"the package {fifo} is a FIFO, not a regular file: copy the file itself and retry"
        )
        assert folders(demo.root) == before
        assert releases_bytes(demo.root) == record
        assert await within(handler.unpack(demo.package("2.0.0")), "unpack", 30) == "2.0.0"

    await on_demo(node, demo_tree, tmp_path, body)


UNPACK_TIMEOUT = 0.5


async def test_an_unpack_past_its_deadline_is_answered_and_the_handler_is_free(
    node: Node, demo_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the seam: let a FIFO through the regular-file check, to make a read that blocks
    monkeypatch.setattr(
        unpack, "_is_regular", lambda mode: stat.S_ISFIFO(mode) or stat.S_ISREG(mode)
    )

    async def run() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages", unpack_timeout=UNPACK_TIMEOUT)
        fifo = fifo_package(tmp_path / "incoming", demo.package("2.0.0"))
        writer = os.open(fifo, os.O_RDWR)  # the other side, open, never written
        try:
            before, record = folders(demo.root), releases_bytes(demo.root)
            with pytest.raises(UnpackError) as info:
                await within(handler.unpack(fifo), "unpack past its deadline", 10)
            assert "the unpack took longer than its 0.5 s" in info.value.reason
            assert "Nothing was changed" in info.value.reason
            assert folders(demo.root) == before
            assert releases_bytes(demo.root) == record
            # free again: the next operation runs (not "unpack ... is running")
            assert [r["vsn"] for r in await within(handler.which_releases(), "rows")] == ["1.0.0"]
            with pytest.raises(UnpackError, match="no checksum file"):
                await within(handler.unpack(tmp_path / "nowhere" / "demo-9.9.9.tar.gz"), "next")
        finally:
            os.close(writer)  # the abandoned read returns, and its thread ends
            await stop_demo(demo)
        assert folders(demo.root) == before, "the abandoned thread moved nothing into place"
        assert releases_bytes(demo.root) == record

    await node.run_process(run)


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan")])
def test_the_unpack_timeout_must_be_positive(tmp_path: Path, timeout: float) -> None:
    with pytest.raises(ValueError, match="unpack_timeout must be seconds > 0"):
        handler.HandlerConfig(tmp_path, "1.0.0", None, unpack_timeout=timeout)  # type: ignore[arg-type]


# -- a remove that fails midway ------------------------------------------------------------


@pytest.mark.parametrize("failing", ["second-rename", "releases-write"])
async def test_a_remove_that_cannot_set_aside_or_write_changes_nothing(
    node: Node, demo_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    async def body(demo: LiveDemo) -> None:
        await within(handler.unpack(demo.package("2.0.0")), "unpack", 30)
        before, record = folders(demo.root), releases_bytes(demo.root)
        renames: list[str] = []
        real_rename = os.rename

        def rename(src: str | Path, dst: str | Path) -> None:
            renames.append(str(dst))
            if failing == "second-rename" and len(renames) == 2:
                raise OSError(30, "Read-only file system")
            real_rename(src, dst)

        def write(root: Path, record: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "rename", rename)
        if failing == "releases-write":
            monkeypatch.setattr(_handler, "write_releases", write)
        with pytest.raises(InstallRefused) as info:
            await within(handler.remove("2.0.0"), "remove", 30)
        monkeypatch.undo()
        assert "nothing was changed" in str(info.value)
        assert folders(demo.root) == before, "every folder set aside is back in place"
        assert releases_bytes(demo.root) == record
        assert [r["vsn"] for r in await handler.which_releases()] == ["1.0.0", "2.0.0"]
        assert await within(handler.remove("2.0.0"), "remove again", 30) == "2.0.0"

    await on_demo(node, demo_tree, tmp_path, body)


async def test_what_a_remove_could_not_delete_is_deleted_before_the_next_unpack(
    node: Node, demo_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body(demo: LiveDemo) -> None:
        before = folders(demo.root)
        await within(handler.unpack(demo.package("2.0.0")), "unpack", 30)

        def delete_tree(path: Path, *, on_deleted: object = None) -> int:
            raise OSError(16, "Device or resource busy")

        monkeypatch.setattr(_removal, "delete_tree", delete_tree)
        assert await within(handler.remove("2.0.0"), "remove", 30) == "2.0.0"
        monkeypatch.undo()
        left = {
            top: [n for n in names if n.startswith(".removed-2.0.0-")]
            for top, names in folders(demo.root).items()
        }
        assert [len(left["lib"]), len(left["releases"])] == [2, 1], "set aside, not deleted"
        assert [r["vsn"] for r in await handler.which_releases()] == ["1.0.0"]
        assert await within(handler.unpack(demo.package("2.0.0")), "unpack again", 30) == "2.0.0"
        assert await within(handler.remove("2.0.0"), "remove again", 30) == "2.0.0"
        assert folders(demo.root) == before, "the leftovers went before the unpack"

    await on_demo(node, demo_tree, tmp_path, body)
