"""``server dev --path --start``: one start function, run again when a purge kills it.

How this works:

1. ``resolve_start`` finds ``MODULE[:FUNCTION]`` before the node starts, so a typo is one
   error, not a crash report.
2. ``serve_start`` is the dev node's first process. It spawns the function as a process it
   monitors, and a watcher (linked) that sends it each batch of saved modules.
3. Each batch is reloaded in place (``reload_batch``). When the purge of a module killed the
   start process (it ran in the old version: ``main`` loops in its own frames), the
   function is spawned again through its module's current version, said in one
   ``restarted`` line; when the start process had ended before, any good reload starts it
   again (``started``).
4. An end of the start process that no purge caused is said in one ``stopped`` line.
5. ``("stop",)`` (Ctrl-C) ends the watcher and the start process.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from server import code_server, kernel
from server.dev.reloader import SourcesChanged, reload_batch, send_changes
from server.errors import UnknownModule

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from server.kernel import Pid, Ref

__all__ = ["resolve_start", "serve_start"]


def resolve_start(start: str) -> tuple[str, str]:
    """``MODULE[:FUNCTION]`` as ``(module, function)``, checked by importing the module.

    Raises:
        UnknownModule: the module cannot be imported, or has no such async function.
    """
    module_name, _, function = start.partition(":")
    function = function or "main"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownModule(module_name, f"cannot be imported ({exc})") from None
    if not callable(getattr(module, function, None)):
        raise UnknownModule(module_name, f"has no function {function} (--start MODULE:FUNCTION)")
    return module_name, function


async def serve_start(
    module: str,
    function: str,
    roots: list[Path],
    *,
    grace: float,
    say: Callable[[str], None],
    ready: Callable[[], None],
) -> None:
    """Run ``module.function`` and reload ``roots`` as they change, until ``("stop",)``.

    Run it as a node's first process; ``say`` gets each line to show.
    """
    kernel.trap_exit(True)
    name = f"{module}:{function}"

    def spawn() -> tuple[Pid, Ref]:
        # through the proxy: the module's current version, the one just loaded
        return kernel.spawn_monitor(getattr(code_server.resolve(module), function))

    pid, ref = spawn()
    running = True
    watcher = kernel.spawn_link(send_changes, kernel.self(), roots, ready)
    while True:
        message = await kernel.receive()
        match message:
            case SourcesChanged(modules=modules):
                events = await reload_batch(modules, grace=grace, report=lambda e: say(str(e)))
                killers = [e.module for e in events if running and pid in e.killed]
                if killers:
                    kernel.demonitor(ref, flush=True)
                    pid, ref = spawn()
                    say(f"restarted {name}: the purge of {killers[0]} killed it")
                elif not running and any(e.outcome == "reloaded" for e in events):
                    pid, ref = spawn()
                    running = True
                    say(f"started  {name}")
            case kernel.DownMessage(ref=down_ref, reason=reason) if down_ref is ref:
                running = False
                say(f"stopped  {name}: it ended ({reason!r}); save a file to start it again")
            case kernel.ExitMessage(pid=exited) if exited is watcher:
                break
            case ("stop",):
                break
    for victim in (watcher, pid):
        if kernel.is_alive(victim):
            kernel.unlink(victim)
            kernel.exit(victim, kernel.SHUTDOWN)
