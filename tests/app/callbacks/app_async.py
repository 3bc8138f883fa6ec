"""Like ``app_cb`` with ``async`` callbacks, without ``prep_stop``, and with ``config_change``."""

from __future__ import annotations

from typing import Any

from server.app import controller
from tests.app.callbacks import app_cb


async def start(start_type: str, args: Any) -> object:
    return await app_cb.start(start_type, args)


async def stop(state: Any) -> None:
    app_cb.report("stop", state["id"], state.get("prepped", False))


async def config_change(changed: dict[str, Any], new: dict[str, Any], removed: list[str]) -> str:
    # It runs in the caller's process, so it may use the controller's API.
    names = [row.name for row in await controller.which_applications()]
    app_cb.report("config_change", __name__, changed, new, removed, names)
    return "ok"
