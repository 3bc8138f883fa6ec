"""The bench's ``fleet`` application booted in a test's node: boot, stop, its workers.

Shared by the tests that install over many processes of one module (``test_install_many``,
``test_install_in_place``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server import kernel
from server.behaviours import gen_server, supervisor
from server.node import run_node
from server.release.source_tree import SourceTree
from tests.behaviours._helpers import recv, within

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from server.kernel import Pid


async def boot_fleet(root: Path) -> Pid:
    """Boot ``fleet-1.0.0`` from the source tree at ``root``; its boot process, once booted."""
    me = kernel.self()
    tree = SourceTree(root)

    async def boot() -> object:
        return await run_node(
            root, tree, "fleet-1.0.0", on_booted=lambda vsn: kernel.send(me, ("booted", vsn))
        )

    pid = kernel.spawn(boot)
    await recv(lambda m: isinstance(m, tuple) and m[:1] == ("booted",), step="booted", limit=30)
    return pid


async def stop_fleet(pid: Pid) -> None:
    """Stop the node whose boot process is ``pid`` and wait for its end."""
    ref = kernel.monitor(pid)
    kernel.send(pid, ("stop",))
    await recv(lambda m: type(m) is kernel.DownMessage and m.ref is ref, step="stopped", limit=30)


async def fleet_workers() -> list[Pid]:
    """The workers of ``fleet_sup``, in its order."""
    rows = await within(supervisor.which_children("fleet_sup"), "which_children")
    return [row.pid for row in rows if isinstance(row.pid, kernel.Pid)]


async def fleet_states(pids: Sequence[Pid]) -> list[Any]:
    """Each worker's state, by its ``state`` call."""
    return [await within(gen_server.call(p, "state"), "state") for p in pids]
