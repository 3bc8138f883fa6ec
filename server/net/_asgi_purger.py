"""The purger of an ASGI application: its old version goes once no request runs it.

After an install, the installer soft-purges each module it loaded; a soft purge refused
because requests (or WebSockets) still run the old version leaves it in memory, and the
next install would kill them (OTP's rule: the code of two versions ago must go). The
purger, a gen_server of the application's ``[asgi]`` tree, does better for the
application's module:

1. It watches the module's refused soft purges (``code_server.watch_old_code``). At the
   first one for an old version, it monitors every process running it, and when
   ``grace`` is set, starts a timer of ``grace`` seconds.
2. A connection process tells it after each request while the module has an old version
   (``("left_old_code", pid)``); a process's end is its monitor's ``DOWN``. When the last
   process running the old version left it, the purger soft-purges it.
3. When the grace ends with processes still in the old version, the purger purges it:
   each connection is told first (``code_server.on_purge``): a WebSocket closes with 1012
   (service restart), a request not answered yet gets a 503.

The purger acts only on the old version it was told about: once a new install made
another version old, it waits to be told about that one, so it never drops a version an
install in progress may roll back to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, final

from server import code_server, kernel
from server.behaviours import gen_server
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply
from server.kernel import DownMessage

if TYPE_CHECKING:
    from server.code_server import VersionInfo
    from server.kernel import From, Pid, Ref, TimerRef

__all__ = ["start_link"]

logger = logging.getLogger("server.net.asgi")


@final
@dataclass(slots=True)
class _State:
    module: str
    grace: float | None
    old: VersionInfo | None = None  # the old version being waited out
    lingering: dict[Pid, Ref] = field(default_factory=dict)
    timer: TimerRef | None = None


async def start_link(module: str, grace: float | None, *, name: str) -> Pid:
    """Start the purger of ``module`` (``grace``: seconds, None for no deadline).

    Raises:
        AlreadyStarted: ``name`` is held by a live process.
        ValueError: ``grace`` is negative.
    """
    if grace is not None and grace < 0:
        raise ValueError(f"purge_grace must be at least 0 seconds, not {grace!r}")
    pid = await gen_server.start_link(__name__, (module, grace), name=name)
    assert pid is not None
    return pid


async def init(args: tuple[str, float | None]) -> object:
    module, grace = args
    kernel.set_label("behaviour", "asgi_purger")
    kernel.set_label("module", module)
    code_server.watch_old_code(module)
    return Ok(_State(module, grace))


def _old_version(module: str) -> VersionInfo | None:
    for info in code_server.which_versions(module):
        if info.slot == "old":
            return info
    return None


def _reset(state: _State) -> None:
    for ref in state.lingering.values():
        kernel.demonitor(ref, flush=True)
    state.lingering.clear()
    if state.timer is not None:
        kernel.cancel_timer(state.timer)
    state.old = state.timer = None


def _watch(state: _State) -> None:
    """Monitor every process running the old version that is not monitored yet."""
    for pid in code_server.processes_in_old_code(state.module):
        if pid not in state.lingering:
            state.lingering[pid] = kernel.monitor(pid)


def _lingers(state: _State) -> None:
    old = _old_version(state.module)
    if old is None:
        _reset(state)
        return
    if old != state.old:
        _reset(state)
        state.old = old
        if state.grace is not None:
            state.timer = kernel.send_after(state.grace, kernel.self(), ("grace_over", old))
    _watch(state)


def _left(state: _State, pid: Pid) -> None:
    ref = state.lingering.get(pid)
    if ref is None:
        return
    if kernel.is_alive(pid) and code_server.check_process_code(pid, state.module):
        return
    kernel.demonitor(ref, flush=True)
    del state.lingering[pid]
    if not state.lingering:
        _soft_purge(state)


def _soft_purge(state: _State) -> None:
    if state.old is None or _old_version(state.module) != state.old:
        _reset(state)
        return
    if code_server.soft_purge(state.module):
        logger.info("asgi: the old version of %s is purged (no request runs it)", state.module)
        _reset(state)
    else:
        _watch(state)


async def _grace_over(state: _State, old: object) -> None:
    if state.old is None or old != state.old or _old_version(state.module) != old:
        return
    running = code_server.processes_in_old_code(state.module)
    logger.warning(
        "asgi: the grace of %s s is over: purging the old version of %s (%d processes)",
        state.grace,
        state.module,
        len(running),
        extra={"report": "asgi_purge_grace", "asgi_module": state.module},
    )
    state.timer = None
    await code_server.purge(state.module)
    _reset(state)


async def handle_call(request: object, from_: From, state: _State) -> object:
    if request == "lingering":
        return Reply(len(state.lingering), state)
    return Reply(("error", "unknown_request"), state)


async def handle_cast(request: object, state: _State) -> object:
    return NoReply(state)


async def handle_info(message: object, state: _State) -> object:
    if type(message) is DownMessage:
        pid = message.pid
        if isinstance(pid, kernel.Pid) and state.lingering.get(pid) is message.ref:
            del state.lingering[pid]
            if not state.lingering:
                _soft_purge(state)
    elif type(message) is tuple and len(message) == 2:
        tag: Any = message[0]
        if tag == "old_code_lingers" and message[1] == state.module:
            _lingers(state)
        elif tag == "left_old_code" and isinstance(message[1], kernel.Pid):
            _left(state, message[1])
        elif tag == "grace_over":
            await _grace_over(state, message[1])
    return NoReply(state)
