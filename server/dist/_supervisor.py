"""The distribution's supervisor: the net kernel, ``rex``, the group leader, the peers.

The last child connects to ``[node.dist] connect``'s peers at boot (``server.dist._peers``),
then ends: a temporary child.

Strategy ``one_for_all``: ``rex`` and the group leader are worth nothing without the net
kernel, and a net kernel restarted gets a new creation from EPMD (pids of the old one are
dead to the cluster), so all three start again together. More than ``INTENSITY`` restarts
in ``PERIOD`` seconds ends the supervisor: the node goes on alone, and says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import kernel
from server.behaviours import gen_server, supervisor
from server.behaviours.supervisor_callbacks import ChildSpec, SupervisorSpec
from server.dist import _peers, _rpc
from server.dist._net_kernel import NAME as NET_KERNEL

if TYPE_CHECKING:
    from server.kernel import Pid
    from server.spec import DistSettings

__all__ = ["NAME", "init", "start_link"]

NAME = "dist_sup"
INTENSITY = 3
PERIOD = 60.0


async def start_link(settings: DistSettings) -> Pid:
    """Start this node's distribution (linked to the caller); returns the supervisor.

    Raises:
        StartError: the name, the cookie, EPMD or the listening port failed (the reason
            says which).
    """
    pid = await supervisor.start_link(__name__, settings, name=NAME)
    assert pid is not None
    return pid


async def _start_net_kernel(settings: DistSettings) -> Pid | None:
    return await gen_server.start_link(
        "server.dist._net_kernel", settings, name=NET_KERNEL, timeout=settings.setup_timeout + 5
    )


async def _start_rex(settings: DistSettings) -> Pid | None:
    return await gen_server.start_link(
        "server.dist._rpc", frozenset(settings.rpc_allow), name=_rpc.REX
    )


async def _start_group_leader() -> Pid:
    pid = kernel.spawn_link(_rpc.group_leader)
    kernel.register(_rpc.GROUP_LEADER, pid)
    return pid


def init(settings: DistSettings) -> SupervisorSpec:
    """The net kernel first; ``rex``, the group leader and the peers once it has its name."""
    return SupervisorSpec(
        children=[
            ChildSpec(id=NET_KERNEL, start=(_start_net_kernel, settings), shutdown=10.0),
            ChildSpec(id=_rpc.REX, start=(_start_rex, settings)),
            ChildSpec(id=_rpc.GROUP_LEADER, start=(_start_group_leader,)),
            ChildSpec(id="connect_peers", start=(_peers.start_link, settings), restart="temporary"),
        ],
        strategy="one_for_all",
        intensity=INTENSITY,
        period=PERIOD,
    )
