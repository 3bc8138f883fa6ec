"""A health check the test answers: ``tests.cluster._health_gate:hold`` (``--health``).

Run on the upgraded node by the rollout. Without ``SERVER_TEST_HEALTH_GATE`` in the node's
environment it is healthy at once. With it (the path of a Unix socket the test listens on:
``HealthGate`` in ``_netns_cluster``) it connects there, sends the node's name and waits for
the test's answer: ``ok`` is healthy, anything else (or a closed socket) is not. So a test
can act (cut the network, kill a node) while a given node is inside its health check.
"""

from __future__ import annotations

import os

import anyio

from server import kernel

GATE = "SERVER_TEST_HEALTH_GATE"


async def hold() -> bool:
    """Healthy when the test answers ``ok`` (at once without a gate)."""
    path = os.environ.get(GATE)
    if not path:
        return True
    async with await anyio.connect_unix(path) as stream:
        await stream.send(f"{kernel.node()}\n".encode())
        answer = b""
        while not answer.endswith(b"\n"):
            try:
                answer += await stream.receive()
            except anyio.EndOfStream:
                return False
    return answer == b"ok\n"
