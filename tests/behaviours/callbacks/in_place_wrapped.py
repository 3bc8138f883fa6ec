"""A gen_server whose code_change is a plain function returning a coroutine (a wrapper, as
a decorator makes): its plain part must run once, not once per attempt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anyio.lowlevel import checkpoint

from server import kernel
from server.behaviours.gen_server_callbacks import Ok, Reply

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from server.kernel import From

__vsn__ = "1"

#: one entry per call of ``code_change``'s plain part
CALLS: list[object] = []


def init(args: Any) -> object:
    return Ok({"ran_as": None})


def handle_call(request: Any, from_: From, state: dict[str, Any]) -> object:
    return Reply(state, state)


def code_change(
    old_vsn: Any, state: dict[str, Any], extra: Any
) -> Coroutine[Any, Any, dict[str, Any]]:
    CALLS.append(old_vsn)  # the plain part: what a decorator does before the call

    async def migrate() -> dict[str, Any]:
        await checkpoint()
        return {"ran_as": kernel.self(), "old_vsn": old_vsn}

    return migrate()
