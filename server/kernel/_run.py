"""Entry points: run a node around a main function."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from server.kernel._node import Node

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["run"]

T = TypeVar("T")


def run(main: Callable[..., Awaitable[T]], *args: Any, name: str = "node") -> T:
    """Start a node, run ``main(*args)`` as its first process, and return its result.

    The node (and every process still alive) stops when ``main`` returns or fails.
    """

    async def boot() -> T:
        async with Node(name=name) as node:
            return await node.run_process(main, *args)

    return anyio.run(boot, backend="asyncio")
