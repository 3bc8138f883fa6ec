"""What code running on a node calls to use the cluster (the kernel does the rest).

Sending, linking, monitoring and calling across nodes need nothing from here: they are the
kernel's own ``send``, ``link``, ``monitor``, ``gen_server.call`` with a remote pid or a
``(name, node)`` pair. These are the net kernel's services: connect, ping, watch the
cluster, and what ``server nodes`` shows.
"""

from __future__ import annotations

from typing import Any

from server import kernel
from server.behaviours import gen_server
from server.dist._net_kernel import NAME, ConnectionInfo, running_state
from server.dist.terms import Atom
from server.errors import CallError

__all__ = [
    "connections",
    "disconnect_node",
    "drained",
    "is_distributed",
    "monitor_nodes",
    "node_report",
    "ping",
]


def is_distributed() -> bool:
    """True when this node runs its distribution (``[node.dist]`` in sys.config)."""
    return running_state() is not None


async def ping(node: str, *, timeout: float = 7.0) -> bool:
    """Connect to ``node`` (if needed) and check it answers: Erlang's ``net_adm:ping``.

    Returns:
        True (``pong``) when the node answered, False (``pang``) when it cannot be reached,
        refused us (another cookie) or did not answer within ``timeout``.
    """
    if node == kernel.node():
        return True
    try:
        answer = await gen_server.call(
            (NAME, node), (Atom("is_auth"), Atom(kernel.node())), timeout=timeout
        )
    except CallError:
        return False
    return bool(answer == "yes")


async def drained(node: str) -> None:
    """Wait while the connection to ``node`` holds more than its busy limit unsent.

    ``send`` never blocks (a message is queued at once, as in Erlang); a process that sends
    a stream of messages to another node awaits this between them, so a slow peer slows
    the sender instead of growing the queue. Remote calls do it by themselves.
    """
    channel = kernel.current_node().remote_node(node).channel
    if channel is not None and channel.busy:
        await channel.drained()


async def disconnect_node(node: str) -> bool:
    """Drop the connection to ``node`` (its links and monitors fire ``noconnection``).

    Returns:
        False when there was no connection.
    """
    return bool(await gen_server.call(NAME, ("disconnect", node)))


async def monitor_nodes(flag: bool = True) -> None:
    """Subscribe the calling process to ``NodeUpMessage`` / ``NodeDownMessage`` (or stop)."""
    await gen_server.call(NAME, ("monitor_nodes", flag))


async def connections() -> list[ConnectionInfo]:
    """Every node connected (or being connected) to this one, with its counters."""
    if not is_distributed():
        return []
    rows = await gen_server.call(NAME, ("connections",))
    assert isinstance(rows, list)
    return rows


async def node_report() -> dict[str, Any]:
    """This node's name, mode and connections, as plain data (``server nodes``)."""
    state = running_state()
    if state is None:
        return {"name": None, "mode": None, "port": None, "connections": []}
    return {
        "name": state.name,
        "mode": "hidden" if state.settings.hidden else "visible",
        "port": state.port,
        "creation": state.creation,
        "net_ticktime": state.settings.net_ticktime,
        "connections": [
            {field: getattr(row, field) for field in row.__dataclass_fields__}
            for row in await connections()
        ],
    }
