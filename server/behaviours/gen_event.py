"""gen_event: an event manager with handlers added and deleted at run time (the API).

========================================  ==================================================
generic function                          callback it triggers (in each handler concerned)
========================================  ==================================================
``start`` / ``start_link``                none: a manager starts with no handlers
``add_handler`` / ``add_sup_handler``     ``init(args)``
``notify`` / ``sync_notify``              ``handle_event(event, state)``, every handler,
                                          newest first
``call(manager, handler, request)``       ``handle_call(request, state)``, that handler only
any other message                         ``handle_info(message, state)``, every handler
``delete_handler``                        ``terminate(args, state)``
``swap_handler`` / ``swap_sup_handler``   old ``terminate(args1, state)`` returns ``T``,
                                          then new ``init((args2, T))``
``stop`` / the parent's exit              ``terminate("stop", state)``, every handler
``system_messages.change_code``           ``code_change(old_vsn, state, extra)``, every
                                          handler of that module
========================================  ==================================================

Results, and what the engine does with them (see ``gen_event_callbacks``):

- ``init``: ``Ok(state)`` -> installed, the adder gets None; ``Error(reason)``, an exception
  or anything else -> not installed, the adder gets ``HandlerFailed``.
- ``handle_event`` / ``handle_info``: ``Ok(state)`` -> kept; ``RemoveHandler()`` ->
  ``terminate("remove_handler", state)`` and removed; ``SwapHandler(args1, state, h2, args2)``
  -> ``terminate(args1, state)`` returns ``T``, then ``h2``'s ``init((args2, T))``.
- ``handle_call``: ``Reply(reply, state)``, ``RemoveHandler(reply)``, ``SwapHandler(...,
  reply=...)``: as above, and the caller gets ``reply``.
- A callback that raises or returns anything else: the handler (only it) is removed with
  ``terminate(("error", reason), state)`` and an error report; the manager keeps running
  and the caller of ``call`` gets ``HandlerFailed``.

Supervised handlers (``add_sup_handler``): the manager links to the adder. When the handler
is removed, the adder gets ``HandlerExit(manager, handler, reason)`` (OTP's
``gen_event_EXIT``: ``"normal"``, ``"shutdown"``, ``Swapped(new, pid)`` or the error). When
the adder ends, its handlers are removed with ``terminate(("stop", reason), state)``.

System messages: ``sys.get_state`` reports ``[HandlerState(handler, state), ...]``;
``replace_state``'s function gets and returns that whole list; ``change_code(pid, module,
...)`` migrates every handler of ``module``, all or nothing. Put a manager under a supervisor
with ``child_spec`` (``modules="dynamic"``): an appup ``update`` of a handler module then
reaches every manager holding it. The engine lives in ``_event_manager``.

Differences from OTP: adding a handler id that is already installed is refused
(``HandlerAlreadyInstalled``; OTP installs a second, indistinguishable copy); handler
requests reach managers of this node only (the records are Python objects, not terms).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NoReturn, cast

from server import kernel
from server.behaviours import system_messages
from server.behaviours._event_manager import (
    BEHAVIOUR,
    AddRequest,
    CallRequest,
    DeleteRequest,
    EventMessage,
    GetModulesRequest,
    ManagerRequest,
    Request,
    SwapRequest,
    SyncNotifyRequest,
    WhichHandlersRequest,
    init_it,
)
from server.behaviours._start import start_process
from server.behaviours.gen_event_callbacks import Handler, HandlerSpec, HandlerState, handler_of
from server.behaviours.replies import Failed, Refused
from server.behaviours.replies import Ok as Done
from server.behaviours.supervisor_callbacks import ChildSpec
from server.errors import HandlerAlreadyInstalled, HandlerFailed, HandlerNotInstalled
from server.kernel import Pid

if TYPE_CHECKING:
    from collections.abc import Sequence

    from server.behaviours.supervisor_callbacks import RestartType, Shutdown

__all__ = [
    "BEHAVIOUR",
    "EventMessage",
    "add_handler",
    "add_sup_handler",
    "call",
    "child_spec",
    "delete_handler",
    "get_modules",
    "handler_states",
    "notify",
    "start",
    "start_link",
    "stop",
    "swap_handler",
    "swap_sup_handler",
    "sync_notify",
    "which_handlers",
]

EventMessage.__module__ = __name__

DEFAULT_CALL_TIMEOUT = 5.0

Manager = Pid | str


# -- the client's side ---------------------------------------------------------------------


async def start(name: str | None = None, *, timeout: float = math.inf) -> Pid:
    """Start an event manager (not linked), with no handlers.

    Raises:
        AlreadyStarted: ``name`` is held by a live process.
        StartError: it did not start within ``timeout``.
    """
    return await _start(name, timeout=timeout, link=False)


async def start_link(name: str | None = None, *, timeout: float = math.inf) -> Pid:
    """Like ``start``, linked to the calling process (the manager's parent).

    Raises:
        AlreadyStarted: ``name`` is held by a live process.
        StartError: it did not start within ``timeout``.
    """
    return await _start(name, timeout=timeout, link=True)


async def _start(name: str | None, *, timeout: float, link: bool) -> Pid:
    given: object = name  # checked: callers outside mypy pass anything
    if given is not None and (not isinstance(given, str) or not given):
        raise TypeError(f"an event manager's name is a non-empty string, not {name!r}")
    pid = await start_process(
        init_it, (name, link), link=link, timeout=timeout, what=name or BEHAVIOUR
    )
    assert pid is not None  # a manager's start is never ignored
    return pid


def child_spec(
    id: str,  # noqa: A002 - OTP's field name
    name: str | None = None,
    *,
    restart: RestartType = "permanent",
    shutdown: Shutdown | None = None,
) -> ChildSpec:
    """A supervisor's child spec for an event manager: ``start_link(name)``, dynamic modules.

    ``modules="dynamic"`` is how the release handler knows to ask the manager which handler
    modules it holds (``get_modules``) when an appup updates one of them.
    """
    return ChildSpec(
        id=id,
        start=(start_link, name),
        restart=restart,
        shutdown=shutdown,
        type="worker",
        modules="dynamic",
    )


async def _request(manager: Manager, request: Request, timeout: float) -> object:
    return await kernel.request(
        manager,
        lambda from_: ManagerRequest(from_, request),
        None if timeout == math.inf else timeout,
        what=request,
    )


def _raise_for(manager: Manager, handler: Handler, operation: str, answer: object) -> NoReturn:
    if type(answer) is Refused:
        if answer.reason == "already_installed":
            raise HandlerAlreadyInstalled(manager, handler, operation)
        raise HandlerNotInstalled(manager, handler, operation)
    assert type(answer) is Failed
    callback, reason = cast("tuple[str, object]", answer.reason)
    raise HandlerFailed(manager, handler, callback, reason, answer.traceback_text)


async def add_handler(
    manager: Manager, handler: HandlerSpec, args: object = None, *, timeout: float = math.inf
) -> None:
    """Install ``handler`` (a module, its name, or ``(module, id)``); runs its ``init(args)``.

    Raises:
        HandlerFailed: ``init`` raised or did not return ``Ok`` (nothing installed).
        HandlerAlreadyInstalled: that handler id is installed already.
        TypeError: ``handler`` is not a handler id.
        CalleeExited: the manager does not exist or ended.
        CallTimeout: no answer within ``timeout``.
    """
    await _add(manager, handler, args, None, timeout, "add_handler")


async def add_sup_handler(
    manager: Manager, handler: HandlerSpec, args: object = None, *, timeout: float = math.inf
) -> None:
    """Like ``add_handler``, supervised by the calling process.

    The manager links to the caller. The caller gets ``HandlerExit`` when the handler is
    removed; when the caller ends, the handler is removed (``terminate(("stop", reason))``).

    Raises:
        HandlerFailed: ``init`` raised or did not return ``Ok`` (nothing installed).
        HandlerAlreadyInstalled: that handler id is installed already.
        TypeError: ``handler`` is not a handler id.
        CalleeExited: the manager does not exist or ended.
        CallTimeout: no answer within ``timeout``.
    """
    await _add(manager, handler, args, kernel.self(), timeout, "add_sup_handler")


async def _add(
    manager: Manager,
    spec: HandlerSpec,
    args: object,
    supervisor: Pid | None,
    timeout: float,
    operation: str,
) -> None:
    handler = handler_of(spec)
    answer = await _request(manager, AddRequest(handler, args, supervisor), timeout)
    if type(answer) is not Done:
        _raise_for(manager, handler, operation, answer)


async def delete_handler(
    manager: Manager, handler: HandlerSpec, args: object = None, *, timeout: float = math.inf
) -> Any:
    """Remove ``handler``; returns what its ``terminate(args, state)`` returned.

    Raises:
        HandlerNotInstalled: no such handler.
        HandlerFailed: ``terminate`` raised (the handler is removed all the same).
        TypeError: ``handler`` is not a handler id.
        CalleeExited: the manager does not exist or ended.
        CallTimeout: no answer within ``timeout``.
    """
    target = handler_of(handler)
    answer = await _request(manager, DeleteRequest(target, args), timeout)
    if type(answer) is not Done:
        _raise_for(manager, target, "delete_handler", answer)
    return answer.value


async def swap_handler(
    manager: Manager,
    old: tuple[HandlerSpec, object],
    new: tuple[HandlerSpec, object],
    *,
    timeout: float = math.inf,
) -> None:
    """Replace handler ``old[0]`` by ``new[0]``, handing over what ``terminate`` returned.

    ``old[0]``'s ``terminate(old[1], state)`` returns ``T``; then ``new[0]``'s
    ``init((new[1], T))`` runs. The new handler is added even when the old one is not
    installed (``T`` is ``"error"``) or its ``terminate`` raised (``T`` is
    ``("EXIT", exception)``); it inherits the old one's supervision.

    Raises:
        HandlerFailed: the new handler's ``init`` failed (the old one is removed all the same).
        HandlerAlreadyInstalled: the new handler id is installed already (nothing changed).
        TypeError: a handler is not a handler id, or ``old``/``new`` is not a pair.
        CalleeExited: the manager does not exist or ended.
        CallTimeout: no answer within ``timeout``.
    """
    await _swap(manager, old, new, None, timeout, "swap_handler")


async def swap_sup_handler(
    manager: Manager,
    old: tuple[HandlerSpec, object],
    new: tuple[HandlerSpec, object],
    *,
    timeout: float = math.inf,
) -> None:
    """Like ``swap_handler``; the new handler is supervised by the calling process.

    Raises:
        HandlerFailed: the new handler's ``init`` failed (the old one is removed all the same).
        HandlerAlreadyInstalled: the new handler id is installed already (nothing changed).
        TypeError: a handler is not a handler id, or ``old``/``new`` is not a pair.
        CalleeExited: the manager does not exist or ended.
        CallTimeout: no answer within ``timeout``.
    """
    await _swap(manager, old, new, kernel.self(), timeout, "swap_sup_handler")


async def _swap(
    manager: Manager,
    old: tuple[HandlerSpec, object],
    new: tuple[HandlerSpec, object],
    supervisor: Pid | None,
    timeout: float,
    operation: str,
) -> None:
    pairs: tuple[object, object] = (old, new)  # checked: callers outside mypy pass anything
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"{operation} takes (handler, args) pairs, not {pair!r}")
    old_handler, new_handler = handler_of(old[0]), handler_of(new[0])
    request = SwapRequest(old_handler, old[1], new_handler, new[1], supervisor)
    answer = await _request(manager, request, timeout)
    if type(answer) is not Done:
        _raise_for(manager, new_handler, operation, answer)


def notify(manager: Manager, event: object) -> None:
    """Send ``event`` to every handler's ``handle_event`` without waiting.

    Raises:
        NotRegisteredError: ``manager`` is a name nobody holds (a dead pid: nothing happens).
    """
    kernel.send(manager, EventMessage(event))


async def sync_notify(manager: Manager, event: object, *, timeout: float = math.inf) -> None:
    """Send ``event`` to every handler and wait until each has handled it.

    Raises:
        CalleeExited: the manager does not exist or ended.
        CallTimeout: no answer within ``timeout``.
    """
    await _request(manager, SyncNotifyRequest(event), timeout)


async def call(
    manager: Manager,
    handler: HandlerSpec,
    request: object,
    *,
    timeout: float = DEFAULT_CALL_TIMEOUT,
) -> Any:
    """Ask one handler: its ``handle_call(request, state)``'s reply.

    Raises:
        HandlerNotInstalled: no such handler (OTP's ``bad_module``).
        HandlerFailed: ``handle_call`` raised or returned junk (the handler is removed).
        TypeError: ``handler`` is not a handler id.
        CalleeExited: the manager does not exist or ended.
        CallTimeout: no answer within ``timeout``.
    """
    target = handler_of(handler)
    answer = await _request(manager, CallRequest(target, request), timeout)
    if type(answer) is not Done:
        _raise_for(manager, target, "call", answer)
    return answer.value


async def which_handlers(manager: Manager, *, timeout: float = math.inf) -> list[Handler]:
    """The installed handlers, newest first.

    Raises:
        CalleeExited: the manager does not exist or ended.
        CallTimeout: no answer within ``timeout``.
    """
    answer = await _request(manager, WhichHandlersRequest(), timeout)
    assert type(answer) is Done
    return cast("list[Handler]", answer.value)


async def get_modules(manager: Manager, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> list[str]:
    """The modules of the installed handlers, sorted, each once (for the release handler).

    Raises:
        CalleeExited: the manager does not exist or ended.
        CallTimeout: no answer within ``timeout`` (a suspended manager does not answer).
    """
    answer = await _request(manager, GetModulesRequest(), timeout)
    assert type(answer) is Done
    return cast("list[str]", answer.value)


def handler_states(states: Sequence[HandlerState], module: str) -> list[object]:
    """The states of ``module``'s handlers in what ``sys.get_state`` reported of a manager."""
    return [entry.state for entry in states if entry.handler.module == module]


async def stop(
    manager: Manager, reason: object = kernel.NORMAL, *, timeout: float = math.inf
) -> None:
    """Terminate every handler (``terminate("stop", state)``), end with ``reason``; wait.

    Raises:
        CalleeExited: the manager does not exist, or ended with another reason.
        CallTimeout: it did not end within ``timeout``.
    """
    await system_messages.terminate(manager, reason, timeout=timeout)
