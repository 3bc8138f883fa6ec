"""The application master: a gen_server that starts one application and watches its tree.

``init`` calls the application callback module's ``start(start_type, args)`` (through the
resolver, so its current version); the top supervisor it starts is linked to the master.
When that supervisor ends by itself, the master runs ``stop(state)``, tells the controller
``("application_terminated", app, reason)`` and ends. ``("stop",)`` (and the controller's
own end) runs ``prep_stop``, shuts the tree down, then ``stop`` (OTP's application master).
"""

from __future__ import annotations

import logging
from types import CoroutineType
from typing import Any

from server import kernel
from server.behaviours import resolve
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply, Stop
from server.kernel import DownMessage, ExitMessage, From, Pid

logger = logging.getLogger("server.app")


class _State:
    __slots__ = ("app", "controller", "module", "stopped", "top", "user_state")

    def __init__(self, app: str, module: str, controller: Pid) -> None:
        self.app = app
        self.module = module
        self.controller = controller
        self.top: Pid | None = None
        self.user_state: object = None
        self.stopped = False

    def __repr__(self) -> str:
        return f"ApplicationMaster({self.app!r}, top={self.top!r})"


async def _maybe_await(value: object) -> object:
    if type(value) is CoroutineType:
        return await value
    return value


async def init(args: tuple[str, str, object, Pid]) -> object:
    app, module, start_args, controller = args
    kernel.trap_exit(True)
    kernel.set_label("behaviour", "application_master")
    kernel.set_label("application", app)
    state = _State(app, module, controller)
    try:
        result = await _maybe_await(resolve(module).start("normal", start_args))
    except Exception as exc:
        return Stop(("start_failed", exc))
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Pid):
        state.top, state.user_state = result
    elif isinstance(result, Pid):
        state.top = result
    else:
        return Stop(("bad_start_return", result))
    # The tree is normally linked already (started with start_link from here); a top
    # process started any other way must still be watched. One already gone arrives as
    # ExitMessage(top, "noproc"): the application's end.
    kernel.link(state.top)
    return Ok(state)


async def handle_call(request: Any, from_: From, state: _State) -> object:
    if request == ("stop",):
        await _stop_tree(state)
        return Stop(kernel.NORMAL, state, reply="ok")
    if request == ("top",):
        return Reply(state.top, state)
    return Reply(("error", "unknown_request"), state)


async def handle_info(message: Any, state: _State) -> object:
    if isinstance(message, ExitMessage) and message.pid is state.top:
        # The tree ended by itself: as OTP, ``stop`` (not ``prep_stop``) runs, then the
        # controller hears of it and applies the start type.
        state.top = None
        await _call_stop(state)
        kernel.send(state.controller, ("application_terminated", state.app, message.reason))
        return Stop(kernel.NORMAL, state)
    return NoReply(state)


async def terminate(reason: object, state: _State) -> None:
    if not state.stopped:  # the controller itself ended: take the application down
        await _stop_tree(state)


async def _stop_tree(state: _State) -> None:
    module = resolve(state.module)
    prep_stop = getattr(module, "prep_stop", None)
    if prep_stop is not None:
        try:
            state.user_state = await _maybe_await(prep_stop(state.user_state))
        except Exception:  # the application is stopped all the same
            logger.exception("prep_stop() of application %s raised", state.app)
    top = state.top
    if top is not None and kernel.is_alive(top):
        ref = kernel.monitor(top)
        kernel.unlink(top)
        kernel.exit(top, kernel.SHUTDOWN)
        await kernel.receive(lambda m: type(m) is DownMessage and m.ref is ref)
        kernel.flush(lambda m: type(m) is ExitMessage and m.pid is top)
    await _call_stop(state)


async def _call_stop(state: _State) -> None:
    state.stopped = True
    stop = getattr(resolve(state.module), "stop", None)
    if stop is not None:
        try:
            await _maybe_await(stop(state.user_state))
        except Exception:
            logger.exception("stop() of application %s raised", state.app)
