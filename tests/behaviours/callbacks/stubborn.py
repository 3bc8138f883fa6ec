"""A gen_server whose ``terminate`` never returns (it waits for a message that never comes)."""

from __future__ import annotations

from server.behaviours.gen_server_callbacks import InitResult, Ok
from server.kernel import receive


def init(args: object) -> InitResult:
    return Ok(args)


async def terminate(reason: object, state: object) -> None:
    await receive(lambda _: False)
