"""What the distribution tests run on the Python node: a gen_server and rpc targets."""

from __future__ import annotations

from typing import Any

from server import kernel
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply
from server.dist import Atom
from server.kernel import From, ProcessExit


def init(args: object) -> Ok:
    return Ok({"calls": 0, "held": []})


def handle_call(request: Any, from_: From, state: dict[str, Any]) -> object:
    state["calls"] += 1
    match request:
        case ("hold",):  # answered later, by ("release",): a late reply
            state["held"].append(from_)
            return NoReply(state)
        case ("release",):
            for held in state["held"]:
                kernel.reply(held, Atom("late"))
            state["held"] = []
            return Reply(Atom("released"), state)
        case ("crash",):
            raise RuntimeError("asked to crash")
    return Reply((Atom("echo"), request), state)


def handle_cast(request: Any, state: dict[str, Any]) -> object:
    match request:
        case ("tell", pid, message):
            kernel.send(pid, message)
    return NoReply(state)


def handle_info(message: Any, state: dict[str, Any]) -> object:
    return NoReply(state)


def add(a: int, b: int) -> int:
    """An rpc target (allowed in the tests' rpc_allow)."""
    return a + b


async def slow_double(value: int) -> int:
    """An async rpc target."""
    return value * 2


def fail(why: str) -> None:
    """An rpc target that raises."""
    raise ValueError(why)


def not_allowed() -> str:
    """Never in the allow-list."""
    return "ran"


async def victim(owner: kernel.Pid, trap: bool) -> None:
    """A process that tells ``owner`` its pid and obeys ``("exit", reason)``, ``("link", pid)``,
    ``("unlink", pid)``, ``("monitor", target)``; it reports what it receives."""
    kernel.trap_exit(trap)
    me = kernel.self()
    kernel.send(owner, ("victim", me))
    while True:
        message = await kernel.receive()
        match message:
            case ("exit", reason):
                raise ProcessExit(reason)
            case ("link", kernel.Pid() as pid):
                kernel.link(pid)
                kernel.send(owner, ("linked", me))
            case ("unlink", kernel.Pid() as pid):
                kernel.unlink(pid)
                kernel.send(owner, ("unlinked", me))
            case ("whoami", kernel.Pid() as asker):
                kernel.send(asker, (Atom("pid"), me))
            case _:
                kernel.send(owner, ("got", message))
