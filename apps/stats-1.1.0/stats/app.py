"""The application callback: a supervisor with the one stats server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.behaviours import supervisor

if TYPE_CHECKING:
    from server.kernel import Pid

__vsn__ = "1.0.0"


async def start(start_type: str, args: Any) -> Pid:
    pid = await supervisor.start_link("stats.sup", None, name="stats_sup")
    assert pid is not None
    return pid
