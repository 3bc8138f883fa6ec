"""A demo node running in the test's own node: boot, build packages, talk HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from server import kernel
from server.behaviours import system_messages
from server.node import run_node
from server.release import handler
from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests._support.nodes import free_port, http_json, set_port
from tests.behaviours._helpers import recv

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Pid


@dataclass
class LiveDemo:
    """The demo booted in-process on a root copied from the repository."""

    root: Path
    port: int
    boot: Pid
    packages: Path

    def package(self, vsn: str) -> Path:
        """Build (once) and return the package of demo ``vsn``."""
        target = self.packages / f"demo-{vsn}.tar.gz"
        if not target.exists():
            build_package(SourceTree(self.root), "demo", vsn, self.packages)
        return target

    async def http(self, method: str, path: str) -> tuple[int, Any]:
        """One request on a fresh connection (in a worker thread: blocking client)."""
        return await anyio.to_thread.run_sync(http_json, self.port, method, path)

    async def store_state(self) -> Any:
        """The live state of the counter store."""
        return await system_messages.get_state("counter_store")


async def boot_demo(
    root: Path, packages: Path, *, unpack_timeout: float = handler.DEFAULT_UNPACK_TIMEOUT
) -> LiveDemo:
    """Boot ``root``'s embedded release in a process of the current node; wait for it."""
    port = free_port()
    set_port(root, port)
    me = kernel.self()
    tree = SourceTree(root)
    embedded = tree.sys_config.node.release

    async def boot() -> object:
        return await run_node(
            root,
            tree,
            embedded,
            on_booted=lambda vsn: kernel.send(me, ("booted", vsn)),
            unpack_timeout=unpack_timeout,
        )

    pid = kernel.spawn(boot)
    await recv(lambda m: isinstance(m, tuple) and m[:1] == ("booted",), step="booted", limit=30)
    return LiveDemo(root, port, pid, packages)


async def stop_demo(demo: LiveDemo) -> None:
    """Stop the boot process and wait for its end."""
    ref = kernel.monitor(demo.boot)
    kernel.send(demo.boot, ("stop",))
    await recv(lambda m: type(m) is kernel.DownMessage and m.ref is ref, step="stopped", limit=30)
