"""The application callback: start the store's supervisor (the node serves the app after)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.behaviours import supervisor

if TYPE_CHECKING:
    from server.kernel import Pid

__vsn__ = "1.0.0"


async def start(start_type: str, args: Any) -> Pid:
    """Start the top supervisor of the application's own processes."""
    pid = await supervisor.start_link("notes.sup", None, name="notes_sup")
    assert pid is not None
    return pid
