"""A gen_server whose ``init`` does what its argument says: every start outcome, on demand.

``init`` first tells the ``owner`` its pid (``("initialising", pid)``), so a test can check
what became of a process whose start failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.behaviours.gen_server_callbacks import Ignore, InitResult, Ok, Reply, Stop
from server.kernel import From, Pid, ProcessExit, receive, self, send


@dataclass(frozen=True, slots=True)
class Args:
    """What ``init`` should do, and whom to tell its pid."""

    owner: Pid
    outcome: str  # "ok" | "ignore" | "stop" | "raise" | "exit" | "bad" | "hang"
    value: object = None


async def init(args: Args) -> InitResult:
    send(args.owner, ("initialising", self()))
    match args.outcome:
        case "ok":
            return Ok(args.value)
        case "ignore":
            return Ignore()
        case "stop":
            return Stop(args.value)
        case "raise":
            raise RuntimeError(args.value)
        case "exit":
            raise ProcessExit(args.value)
        case "bad":
            bad: Any = args.value
            return bad  # type: ignore[no-any-return]
        case "hang":
            await receive(lambda _: False)
    raise AssertionError(f"unknown outcome {args.outcome!r}")


def handle_call(request: object, from_: From, state: object) -> Reply:
    return Reply(("state", state), state)
