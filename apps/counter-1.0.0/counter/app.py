"""The application callback: start the top supervisor, react to env changes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from server.behaviours import supervisor

if TYPE_CHECKING:
    from server.kernel import Pid

__vsn__ = "1.0.0"

logger = logging.getLogger("counter")


async def start(start_type: str, args: Any) -> Pid:
    pid = await supervisor.start_link("counter.sup", None, name="counter_sup")
    assert pid is not None
    return pid


def stop(state: Any) -> None:
    logger.info("counter stopped")


def config_change(changed: dict[str, Any], new: dict[str, Any], removed: list[str]) -> str:
    logger.info(
        "counter env changed",
        extra={"changed": changed, "new": new, "removed": removed},
    )
    return "ok"
