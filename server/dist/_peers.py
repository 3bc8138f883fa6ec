"""Connect to the peers named in ``[node.dist] connect`` at boot (OTP's ``sync_nodes_optional``).

How this works:

1. The distribution's supervisor starts this process after the net kernel, so the node has
   its name when it runs; it does not hold the boot up: the supervisor's start returns as
   soon as the process exists, and the release boots meanwhile.
2. Rounds: every peer not yet connected is pinged once (``dist.ping``: EPMD lookup,
   handshake, one call); between rounds the process waits on a kernel timer, 0.05 s at
   first, doubling up to 1 s, since the peers usually boot at the same moment as this node.
3. Each peer gets one log line: ``connected to peer`` when it answers, ``gave up on peer``
   when ``connect_timeout`` seconds have passed since the start without an answer. The
   process then ends normally (a temporary child: never restarted).
4. So a node started again by its heart reaches every listed peer by itself; the peers need
   not know it went away.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import anyio

from server import kernel
from server.dist._api import ping

if TYPE_CHECKING:
    from server.kernel import Pid
    from server.spec import DistSettings

__all__ = ["connect_peers", "start_link"]

logger = logging.getLogger("server.dist")

FIRST_BACKOFF: Final = 0.05
MAX_BACKOFF: Final = 1.0
_RETRY: Final = ("connect_peers", "retry")


async def start_link(settings: DistSettings) -> Pid | None:
    """Spawn the connecting process, linked to the caller; None when no peer is listed."""
    if not settings.connect:
        return None
    return kernel.spawn_link(connect_peers, tuple(settings.connect), settings.connect_timeout)


async def connect_peers(peers: tuple[str, ...], timeout: float) -> dict[str, bool]:
    """Ping each of ``peers`` until it answers or ``timeout`` seconds have passed.

    Returns:
        Each peer and whether it was connected (this node's own name counts as connected).
    """
    started = anyio.current_time()
    me = kernel.node()
    done: dict[str, bool] = {peer: True for peer in peers if peer == me}
    pending = [peer for peer in dict.fromkeys(peers) if peer != me]
    backoff = FIRST_BACKOFF
    while pending:
        for peer in list(pending):
            remaining = timeout - (anyio.current_time() - started)
            if await ping(peer, timeout=max(min(remaining, 5.0), 0.1)):
                pending.remove(peer)
                done[peer] = True
                logger.info(
                    "connected to peer %s",
                    peer,
                    extra={"peer": peer, "after": round(anyio.current_time() - started, 3)},
                )
        remaining = timeout - (anyio.current_time() - started)
        if pending and remaining <= 0:
            for peer in pending:
                done[peer] = False
                logger.warning(
                    "gave up on peer %s: no answer within %g s",
                    peer,
                    timeout,
                    extra={"peer": peer, "connect_timeout": timeout},
                )
            break
        if pending:
            kernel.send_after(min(backoff, remaining), kernel.self(), _RETRY)
            await kernel.receive(lambda m: m == _RETRY)
            backoff = min(backoff * 2, MAX_BACKOFF)
    return done
