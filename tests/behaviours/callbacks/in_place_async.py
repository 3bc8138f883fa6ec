"""A gen_server whose code_change is a coroutine function (migrated by message, not in
place)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anyio.lowlevel import checkpoint

from server import kernel
from server.behaviours.gen_server_callbacks import Ok, Reply

if TYPE_CHECKING:
    from server.kernel import From

__vsn__ = "1"


def init(args: Any) -> object:
    return Ok({"ran_as": None})


def handle_call(request: Any, from_: From, state: dict[str, Any]) -> object:
    return Reply(state, state)


async def code_change(old_vsn: Any, state: dict[str, Any], extra: Any) -> dict[str, Any]:
    await checkpoint()
    return {"ran_as": kernel.self()}
