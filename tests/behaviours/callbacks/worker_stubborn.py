"""A plain (non-behaviour) child that traps exits and does not obey ``shutdown``.

It is started by its own start function, as OTP's ``{M, F, A}`` children are: the function
spawns the process linked to the caller (the supervisor) and waits until it traps exits.
Each exit signal it gets is reported to the collector as ``("exit_signal", pid, reason)``;
then, with ``on_exit="ignore"`` it goes on as if nothing happened (only ``kill`` ends it),
and with ``on_exit="normal"`` it ends with reason ``normal``.
"""

from __future__ import annotations

from typing import Literal

from server import kernel
from server.behaviours.supervisor_callbacks import ChildSpec, RestartType, Shutdown
from server.kernel import ExitMessage, Pid, ProcessExit

OnExit = Literal["ignore", "normal"]


async def start_link(collector: Pid, on_exit: OnExit = "ignore", *extra: object) -> Pid:
    """Spawn the process linked to the caller; return once it traps exits."""
    me = kernel.self()
    pid = kernel.spawn_link(_loop, me, collector, on_exit)
    await kernel.receive(lambda m: m == ("stubborn_ready", pid))
    kernel.send(collector, ("started", "stubborn", pid))
    return pid


def child(
    child_id: str,
    collector: Pid,
    *,
    on_exit: OnExit = "ignore",
    restart: RestartType = "permanent",
    shutdown: Shutdown | None = None,
) -> ChildSpec:
    """The child spec of a stubborn child."""
    return ChildSpec(
        id=child_id,
        start=(start_link, collector, on_exit),
        restart=restart,
        shutdown=shutdown,
        modules=(__name__,),
    )


async def _loop(starter: Pid, collector: Pid, on_exit: OnExit) -> None:
    kernel.trap_exit(True)
    me = kernel.self()
    kernel.send(starter, ("stubborn_ready", me))
    while True:
        message = await kernel.receive()
        if isinstance(message, ExitMessage):
            kernel.send(collector, ("exit_signal", me, message.reason))
            if on_exit == "normal":
                raise ProcessExit(kernel.NORMAL)
