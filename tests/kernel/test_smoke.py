from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.kernel import Node


async def test_a_process_runs_and_returns(node: Node) -> None:
    async def body() -> int:
        return 41 + 1

    assert await node.run_process(body) == 42
