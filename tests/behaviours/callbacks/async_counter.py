"""A counter whose callbacks are all ``async`` functions (each really waits once)."""

from __future__ import annotations

from anyio.lowlevel import checkpoint

from server.behaviours.gen_server_callbacks import (
    CallResult,
    Continuation,
    InitResult,
    NoReply,
    Ok,
    Reply,
    Stop,
)
from server.kernel import From, Pid, self, send


async def init(observer: Pid) -> InitResult:
    await checkpoint()
    return Ok((observer, 0), Continuation(1))


async def handle_call(request: object, from_: From, state: tuple[Pid, int]) -> CallResult:
    await checkpoint()
    _observer, count = state
    match request:
        case "get":
            return Reply(count, state)
        case ("stop", reason):
            return Stop(reason, state, reply="stopping")
    return Reply(("unknown", request), state)


async def handle_cast(request: int, state: tuple[Pid, int]) -> NoReply:
    await checkpoint()
    observer, count = state
    return NoReply((observer, count + request))


async def handle_info(message: int, state: tuple[Pid, int]) -> NoReply:
    await checkpoint()
    observer, count = state
    return NoReply((observer, count * message))


async def handle_continue(arg: int, state: tuple[Pid, int]) -> NoReply:
    await checkpoint()
    observer, count = state
    return NoReply((observer, count + arg))


async def terminate(reason: object, state: tuple[Pid, int]) -> None:
    await checkpoint()
    send(state[0], ("terminate", self(), reason, state[1]))


async def code_change(old_vsn: object, state: tuple[Pid, int], extra: int) -> tuple[Pid, int]:
    await checkpoint()
    observer, count = state
    return (observer, count + extra)
