"""A gen_server worker that tells a registered listener each time it is up and serving.

``args`` is the listener's registered name. The notice ``("up", pid)`` is sent from
``handle_continue``, that is once ``init`` has returned and the server is in its loop.
A cast of ``"crash"`` makes it crash with an exception (a crash report with a traceback).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server import kernel
from server.behaviours.gen_server_callbacks import Continuation, NoReply, Ok, Reply

if TYPE_CHECKING:
    from server.kernel import From


def init(args: Any) -> Ok:
    return Ok(args, Continuation("up"))


def handle_continue(arg: Any, state: str) -> NoReply:
    kernel.send(state, ("up", kernel.self()))
    return NoReply(state)


def handle_call(request: Any, from_: From, state: str) -> Reply:
    return Reply(request, state)


def handle_cast(request: Any, state: str) -> NoReply:
    if request == "crash":
        raise RuntimeError("crash requested by the benchmark")
    return NoReply(state)
