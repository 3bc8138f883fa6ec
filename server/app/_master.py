"""The application master: a gen_server that starts one application and watches its tree.

``init`` calls the application callback module's ``start(start_type, args)`` (through the
resolver, so its current version); the top supervisor it starts is linked to the master.
When that supervisor ends by itself, the master runs ``stop(state)``, sends the controller
``ApplicationTerminated(app, reason)`` and ends. ``stop`` (``StopTree``, and the
controller's own end) runs ``prep_stop``, shuts the tree down, then the application's
``stop`` (OTP's application master). ``get_top`` and ``stop`` are the controller's calls;
they are answered with ``replies`` records.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from types import CoroutineType
from typing import final

from server import kernel
from server.behaviours import gen_server, replies, resolve
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply, Stop
from server.kernel import DownMessage, ExitMessage, From, Pid

logger = logging.getLogger("server.app")


@final
@dataclass(frozen=True, slots=True)
class GetTop:
    """Answer with the application's top supervisor (None once it ended)."""


@final
@dataclass(frozen=True, slots=True)
class StopTree:
    """Run ``prep_stop``, shut the tree down, run ``stop``, then end (answered first)."""


@final
@dataclass(frozen=True, slots=True)
class ApplicationTerminated:
    """Sent to the controller: the application's tree ended by itself with ``reason``."""

    application: str
    reason: object


async def get_top(master: Pid) -> Pid | None:
    """The top supervisor of the application ``master`` runs.

    Raises:
        CalleeExited: the master ended.
    """
    match await gen_server.call(master, GetTop(), timeout=math.inf):
        case replies.Ok(value=top) if top is None or isinstance(top, Pid):
            return top
        case answer:
            raise TypeError(f"application master {master} answered {answer!r}")


async def stop(master: Pid) -> None:
    """Stop the application ``master`` runs, and the master.

    Raises:
        CalleeExited: the master ended.
    """
    match await gen_server.call(master, StopTree(), timeout=math.inf):
        case replies.Ok():
            return
        case answer:
            raise TypeError(f"application master {master} answered {answer!r}")


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


async def handle_call(request: object, from_: From, state: _State) -> object:
    match request:
        case StopTree():
            await _stop_tree(state)
            return Stop(kernel.NORMAL, state, reply=replies.Ok(None))
        case GetTop():
            return Reply(replies.Ok(state.top), state)
    return Reply(replies.Refused(("unknown_request", repr(request))), state)


async def handle_info(message: object, state: _State) -> object:
    if isinstance(message, ExitMessage) and message.pid is state.top:
        # The tree ended by itself: as OTP, ``stop`` (not ``prep_stop``) runs, then the
        # controller hears of it and applies the start type.
        state.top = None
        await _call_stop(state)
        kernel.send(state.controller, ApplicationTerminated(state.app, message.reason))
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
