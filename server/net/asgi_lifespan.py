"""The ASGI ``lifespan`` protocol, run under the application's supervisor.

``start_link(app)`` starts a gen_server that runs the application's lifespan: it returns
once the application has answered ``lifespan.startup.complete``, and when the server is
stopped (its supervisor shuts the application down) it sends ``lifespan.shutdown`` and
waits for ``lifespan.shutdown.complete`` before it ends. Put it before the listener in the
supervisor's children, so that requests come only after startup and stop before shutdown.

How this works:

1. The lifespan coroutine ``app({"type": "lifespan", ...}, receive, send)`` runs in a
   process of its own (the *runner*), linked to the server: the coroutine may call
   gen_servers, which needs the runner's mailbox to itself, while the server waits for
   exit signals in its own. The runner's ``receive`` and ``send`` are messages to and from
   the server, tagged with a ref of this lifespan.
2. Startup: the first ``receive`` is answered ``lifespan.startup`` at once. The server's
   ``init`` waits for the answer: ``lifespan.startup.complete`` starts it;
   ``lifespan.startup.failed`` (its ``message``) or an exception after that first
   ``receive`` fails the start, so the application does not start, with that reason. An
   application that raises *before* its first ``receive`` does not speak lifespan (as
   uvicorn's ``auto`` mode assumes): the server logs it (INFO, no crash report) and starts
   anyway.
3. Shutdown (``terminate``): ``lifespan.shutdown`` is sent; ``shutdown.complete`` or the
   runner's end, or ``shutdown_timeout`` seconds, whichever first, then the runner is
   killed if it still runs. ``lifespan.shutdown.failed`` is logged with its message.
4. A runner that crashes after startup stops the server with its reason: the supervisor
   then restarts or gives up as for any child.
5. Upgrades: the lifespan coroutine lives in the version it started in (its frames wait
   at its ``receive`` for the shutdown), as a WebSocket does. When that version must be
   purged (the second install of its module, or the end of a ``purge_grace``), the
   runner's purge notice tells the server, which starts a runner of the *current*
   version, waits for its startup, publishes its state to the requests, and only then
   shuts the old runner down: requests always have a started lifespan, and the server's
   process stays, so the listener after it in the supervisor keeps every connection. A
   new startup that fails stops the server with its reason (the supervisor decides).
   The purge waits for the old runner's end at most the code server's notice time-out
   (5 s): a replacement slower than that has the old runner killed, its shutdown unrun.
   Each runner has a state dict of its own (what its shutdown sees); the ``state`` given
   to ``start_link``, which requests copy, gets the startup's state at its completion.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

from server import code_server, kernel
from server.behaviours import gen_server
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply, Stop
from server.kernel import ExitMessage, Ref
from server.net._asgi_connection import parse_app, resolve_app

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from server.kernel import From, Pid

__all__ = ["DEFAULT_SHUTDOWN_TIMEOUT", "DEFAULT_STARTUP_TIMEOUT", "start_link"]

logger = logging.getLogger("server.net.asgi")

DEFAULT_STARTUP_TIMEOUT: Final = 30.0
DEFAULT_SHUTDOWN_TIMEOUT: Final = 30.0
_SCOPE: Final = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}


@final
@dataclass(frozen=True, slots=True)
class _Options:
    app: str
    startup_timeout: float
    shutdown_timeout: float
    state: dict[str, Any] | None


@final
@dataclass(slots=True)
class _State:
    options: _Options
    ref: Ref
    runner: Pid | None  # None: the application does not speak lifespan

    @property
    def app(self) -> str:
        return self.options.app


async def start_link(
    app: str,
    *,
    name: str | None = None,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    state: dict[str, Any] | None = None,
) -> Pid:
    """Run ``app``'s lifespan startup; return once it completed (a supervisor child start).

    ``state`` gets what the lifespan's startup put in its scope's ``state`` (ASGI's
    lifespan state), replaced at each startup; pass the same dict as the listener's
    ``AsgiConfig.lifespan_state``, so that requests see it. Without it the scope has no
    ``state``.

    Raises:
        StartError: the startup failed (``lifespan.startup.failed``, an exception, or no
            answer within ``startup_timeout``); the reason says which.
        ValueError: ``app`` is not ``module:attribute``.
    """
    parse_app(app)
    options = _Options(app, startup_timeout, shutdown_timeout, state)
    pid = await gen_server.start_link(__name__, options, name=name, timeout=math.inf)
    assert pid is not None
    return pid


def _tagged(ref: Ref, kind: str) -> Any:
    return lambda m: type(m) is tuple and len(m) == 3 and m[0] is ref and m[1] == kind


async def _run(app_name: str, ref: Ref, server: Pid, state: dict[str, Any] | None) -> None:
    """The runner: the application's lifespan coroutine, talking to ``server``."""
    kernel.set_label("behaviour", "asgi_lifespan_runner")
    first = True

    def purged(module: str) -> None:
        # the purge notice, called by the purging process: the server replaces this
        # runner, and the purge waits for its end (None: until it ends)
        kernel.send(server, (ref, "purged", module))

    code_server.on_purge(purged)

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            kernel.send(server, (ref, "receiving", None))
            return {"type": "lifespan.startup"}
        _, payload = _parts(await kernel.receive(_tagged(ref, "event")))
        return dict(payload)

    async def send(message: MutableMapping[str, Any]) -> None:
        kernel.send(server, (ref, "sent", dict(message)))

    app = resolve_app(app_name)
    try:
        await app(dict(_SCOPE) if state is None else {**_SCOPE, "state": state}, receive, send)
    except Exception as exc:
        if not first:
            raise  # a failure of the lifespan itself: crash, reported
        # refused before its first receive: it does not speak lifespan (no crash report)
        kernel.send(server, (ref, "unsupported", f"{type(exc).__name__}: {exc}"))


async def init(options: _Options) -> object:
    kernel.trap_exit(True)
    kernel.set_label("behaviour", "asgi_lifespan")
    kernel.set_label("asgi_app", options.app)
    return await _start_runner(options)


async def _start_runner(options: _Options) -> Ok | Stop:
    """Start a runner of the application's current version and wait for its startup."""
    ref = Ref()
    own: dict[str, Any] | None = None if options.state is None else {}
    runner = kernel.spawn_link(_run, options.app, ref, kernel.self(), own)
    spoke = False

    def ours(message: object) -> bool:
        if type(message) is ExitMessage:
            return message.pid is runner
        return type(message) is tuple and len(message) == 3 and message[0] is ref

    timeout = None if options.startup_timeout == math.inf else options.startup_timeout
    while True:
        try:
            message = await kernel.receive(ours, timeout=timeout)
        except TimeoutError:
            kernel.exit(runner, kernel.KILL)
            return Stop(("lifespan_startup_timeout", options.startup_timeout))
        if type(message) is ExitMessage:
            if not spoke:
                logger.info(
                    "asgi: %s does not speak the lifespan protocol (it ended with %r before "
                    "its first receive); serving it without startup and shutdown",
                    options.app,
                    message.reason,
                )
                return Ok(_State(options, ref, None))
            return Stop(("lifespan_startup_failed", _reason_text(message.reason)))
        kind, payload = _parts(message)
        if kind == "receiving":
            spoke = True
            continue
        if kind == "unsupported":
            logger.info(
                "asgi: %s does not speak the lifespan protocol (%s before its first "
                "receive); serving it without startup and shutdown",
                options.app,
                payload,
            )
            return Ok(_State(options, ref, None))
        if kind == "purged":
            continue  # purged in its startup: it is replaced once started, like any other
        event = payload.get("type") if isinstance(payload, dict) else None
        if event == "lifespan.startup.complete":
            if options.state is not None and own is not None:
                options.state.clear()  # no await from here: requests see one or the other
                options.state.update(own)
            return Ok(_State(options, ref, runner))
        if event == "lifespan.startup.failed":
            kernel.exit(runner, kernel.KILL)
            return Stop(("lifespan_startup_failed", str(payload.get("message", ""))))
        kernel.exit(runner, kernel.KILL)
        return Stop(("lifespan_startup_failed", f"unexpected message {payload!r}"))


def _parts(message: object) -> tuple[str, Any]:
    """The kind and the payload of a ``(ref, kind, payload)`` message of this lifespan."""
    assert type(message) is tuple
    return str(message[1]), message[2]


def _reason_text(reason: object) -> str:
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}"
    return repr(reason)


async def handle_call(request: object, from_: From, state: _State) -> object:
    return Reply(("error", "unknown_request"), state)


async def handle_cast(request: object, state: _State) -> object:
    return NoReply(state)


async def handle_info(message: object, state: _State) -> object:
    if type(message) is tuple and len(message) == 3 and message[1] == "purged":
        if message[0] is not state.ref or state.runner is None:
            return NoReply(state)  # a runner replaced already
        return await _replace(state, str(message[2]))
    if type(message) is ExitMessage and message.pid is state.runner:
        state.runner = None
        if message.reason == kernel.NORMAL:
            logger.warning("asgi: the lifespan of %s ended before its shutdown", state.app)
            return NoReply(state)
        return Stop(("lifespan_crashed", _reason_text(message.reason)), state)
    return NoReply(state)


async def _replace(state: _State, module: str) -> object:
    """The runner's code is purged: the current version's lifespan first, then its end."""
    old_runner, old_ref = state.runner, state.ref
    assert old_runner is not None
    logger.info(
        "asgi: the lifespan of %s runs purged code (%s): starting the current version's",
        state.app,
        module,
        extra={"report": "asgi_lifespan_replaced", "app": state.app},
    )
    started = await _start_runner(state.options)
    if isinstance(started, Stop):
        await _shut_down(state.options, old_runner, old_ref)
        state.runner = None
        return Stop(started.reason, state)
    new = started.state
    assert isinstance(new, _State)
    await _shut_down(state.options, old_runner, old_ref)
    return NoReply(new)


async def terminate(reason: object, state: _State) -> None:
    if state.runner is not None:
        await _shut_down(state.options, state.runner, state.ref)


async def _shut_down(options: _Options, runner: Pid, ref: Ref) -> None:
    """Send ``runner`` the shutdown; its answer, its end, or the timeout; then its end."""
    if not kernel.is_alive(runner):
        kernel.flush(lambda m: type(m) is ExitMessage and m.pid is runner)
        return
    kernel.send(runner, (ref, "event", {"type": "lifespan.shutdown"}))
    wait = None if options.shutdown_timeout == math.inf else options.shutdown_timeout

    def answer(message: object) -> bool:
        if type(message) is ExitMessage:
            return message.pid is runner
        return type(message) is tuple and len(message) == 3 and message[0] is ref

    try:
        while True:
            message = await kernel.receive(answer, timeout=wait)
            if type(message) is ExitMessage:
                return
            _, payload = _parts(message)
            event = payload.get("type") if isinstance(payload, dict) else None
            if event == "lifespan.shutdown.complete":
                return
            if event == "lifespan.shutdown.failed":
                logger.error(
                    "asgi: the shutdown of %s failed: %s", options.app, payload.get("message", "")
                )
                return
    except TimeoutError:
        logger.error(
            "asgi: the shutdown of %s took more than %g s: ended",
            options.app,
            options.shutdown_timeout,
        )
    finally:
        kernel.exit(runner, kernel.KILL)
