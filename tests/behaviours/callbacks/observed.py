"""A gen_server that reports to an observer: its ``terminate`` and every ``handle_info``.

``init`` sets ``trap_exit`` as asked, so the same module shows both sides of OTP's rule
"terminate runs on the parent's exit only when the server traps exits".
"""

from __future__ import annotations

from dataclasses import dataclass

from server.behaviours.gen_server_callbacks import (
    CallResult,
    InitResult,
    NoReply,
    Ok,
    Reply,
    Stop,
)
from server.kernel import From, Pid, self, send, trap_exit


@dataclass(frozen=True, slots=True)
class State:
    """Whom to report to."""

    observer: Pid


def init(args: tuple[Pid, bool]) -> InitResult:
    observer, trap = args
    trap_exit(trap)
    return Ok(State(observer))


def handle_call(request: object, from_: From, state: State) -> CallResult:
    match request:
        case ("stop", reason):
            return Stop(reason, state)
        case ("stop_replying", reason):
            return Stop(reason, state, reply="stopping")
        case "crash":
            raise ValueError("handle_call crashed")
    return Reply(("pong", request), state)


def handle_cast(request: object, state: State) -> object:
    match request:
        case ("stop", reason):
            return Stop(reason, state)
        case "crash":
            raise ValueError("handle_cast crashed")
        case "junk":
            return "junk"
    return NoReply(state)


def handle_info(message: object, state: State) -> NoReply:
    send(state.observer, ("info", self(), message))
    return NoReply(state)


def terminate(reason: object, state: State) -> None:
    send(state.observer, ("terminate", self(), reason))
