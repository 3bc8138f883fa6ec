"""gen_event: an event manager with handlers added and deleted at run time (the engine).

==================================  ==============================================================
generic function                    callback it triggers (in each handler concerned)
==================================  ==============================================================
``start`` / ``start_link``          none: a manager starts with no handlers
``add_handler`` / ``add_sup_handler`` ``init(args)``
``notify`` / ``sync_notify``        ``handle_event(event, state)``, every handler, newest first
``call(manager, handler, request)`` ``handle_call(request, state)``, that handler only
any other message                   ``handle_info(message, state)``, every handler
``delete_handler``                  ``terminate(args, state)``
``swap_handler`` / ``swap_sup_handler``  old ``terminate(args1, state)``, new ``init((args2, T))``
``stop`` / the parent's exit        ``terminate("stop", state)``, every handler
``system_messages.change_code``     ``code_change(old_vsn, state, extra)``, that module's handlers
==================================  ==============================================================

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

How this works:

1. A manager traps exits (as OTP's). Its handlers are a list, newest first (OTP's order for
   events and for ``which_handlers``); each callback is looked up through ``resolve`` at each
   use, so a newly loaded handler module answers the next event.
2. Requests are calls with a monitor (``kernel.request``), answered with ``replies.Ok``,
   ``Refused`` (not installed, already installed: nothing changed) or ``Failed`` (a callback
   raised); the API function raises the matching ``HandlerError`` in the caller.
3. ``sys.get_state`` reports ``[HandlerState(handler, state), ...]``; ``sys.replace_state``'s
   function gets and returns that whole list (OTP calls it once per handler: one call lets
   the release handler restore every handler from its backup at once) and must keep the same
   handlers. ``change_code(pid, module, ...)`` migrates every handler of ``module``: each
   ``code_change`` gets a copy of its state (``system_messages.copy_state``), all new states
   are computed first, and they are kept only if every ``code_change`` succeeded.
4. The release handler finds managers through the ``modules="dynamic"`` of their child spec
   (``child_spec``) and asks each one ``get_modules``: an appup ``update`` of a handler
   module suspends every manager holding it, migrates those handlers, and resumes it.

Differences from OTP: adding a handler id that is already installed is refused
(``HandlerAlreadyInstalled``; OTP installs a second, indistinguishable copy); handler
requests reach managers of this node only (the records are Python objects, not terms).
"""

from __future__ import annotations

import contextlib
import logging
import math
import traceback
from dataclasses import dataclass
from types import CoroutineType
from typing import TYPE_CHECKING, Any, NoReturn, cast, final

from server import kernel
from server.behaviours import system_messages
from server.behaviours._dispatch import resolve
from server.behaviours._start import Starter, register_or_fail, start_process
from server.behaviours.gen_event_callbacks import (
    Error,
    Handler,
    HandlerExit,
    HandlerSpec,
    HandlerState,
    Ok,
    RemoveHandler,
    Reply,
    SwapHandler,
    Swapped,
    handler_of,
)
from server.behaviours.replies import Failed, Refused
from server.behaviours.replies import Ok as Done
from server.behaviours.supervisor_callbacks import ChildSpec
from server.behaviours.system_messages import ProcessStatus, SystemMessage
from server.errors import HandlerAlreadyInstalled, HandlerFailed, HandlerNotInstalled
from server.kernel import ExitMessage, From, Pid, ProcessExit

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from server.behaviours.supervisor_callbacks import RestartType, Shutdown

__all__ = [
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

logger = logging.getLogger("server.behaviours.gen_event")

DEFAULT_CALL_TIMEOUT = 5.0
BEHAVIOUR = "gen_event"

Manager = Pid | str


@final
class EventMessage:
    """A ``notify`` as it arrives at the manager."""

    __slots__ = ("event",)

    def __init__(self, event: object) -> None:
        self.event = event

    def __repr__(self) -> str:
        return f"EventMessage({self.event!r})"


# -- requests (answered with replies.Ok / Refused / Failed) --------------------------------


@final
@dataclass(frozen=True, slots=True)
class _Add:
    handler: Handler
    args: object
    supervisor: Pid | None


@final
@dataclass(frozen=True, slots=True)
class _Delete:
    handler: Handler
    args: object


@final
@dataclass(frozen=True, slots=True)
class _Swap:
    old: Handler
    args1: object
    new: Handler
    args2: object
    supervisor: Pid | None  # swap_sup_handler: the caller; swap_handler: None (inherited)


@final
@dataclass(frozen=True, slots=True)
class _Call:
    handler: Handler
    request: object


@final
@dataclass(frozen=True, slots=True)
class _SyncNotify:
    event: object


@final
@dataclass(frozen=True, slots=True)
class _WhichHandlers:
    pass


@final
@dataclass(frozen=True, slots=True)
class _GetModules:
    pass


_Request = _Add | _Delete | _Swap | _Call | _SyncNotify | _WhichHandlers | _GetModules


@final
class _ManagerRequest:
    __slots__ = ("from_", "request")

    def __init__(self, from_: From, request: _Request) -> None:
        self.from_ = from_
        self.request = request

    def __repr__(self) -> str:
        return f"ManagerRequest({self.request!r}, from={self.from_.pid!r})"


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
        _init_it, (name, link), link=link, timeout=timeout, what=name or BEHAVIOUR
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


async def _request(manager: Manager, request: _Request, timeout: float) -> object:
    return await kernel.request(
        manager,
        lambda from_: _ManagerRequest(from_, request),
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
    answer = await _request(manager, _Add(handler, args, supervisor), timeout)
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
    answer = await _request(manager, _Delete(target, args), timeout)
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
    request = _Swap(old_handler, old[1], new_handler, new[1], supervisor)
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
    await _request(manager, _SyncNotify(event), timeout)


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
    answer = await _request(manager, _Call(target, request), timeout)
    if type(answer) is not Done:
        _raise_for(manager, target, "call", answer)
    return answer.value


async def which_handlers(manager: Manager, *, timeout: float = math.inf) -> list[Handler]:
    """The installed handlers, newest first.

    Raises:
        CalleeExited: the manager does not exist or ended.
        CallTimeout: no answer within ``timeout``.
    """
    answer = await _request(manager, _WhichHandlers(), timeout)
    assert type(answer) is Done
    return cast("list[Handler]", answer.value)


async def get_modules(manager: Manager, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> list[str]:
    """The modules of the installed handlers, sorted, each once (for the release handler).

    Raises:
        CalleeExited: the manager does not exist or ended.
        CallTimeout: no answer within ``timeout`` (a suspended manager does not answer).
    """
    answer = await _request(manager, _GetModules(), timeout)
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


# -- the manager's side --------------------------------------------------------------------


async def _init_it(starter: Starter, name: str | None, linked: bool) -> None:
    register_or_fail(starter, name)
    kernel.trap_exit(True)
    kernel.set_label("behaviour", BEHAVIOUR)
    kernel.set_label("module", BEHAVIOUR)
    manager = _Manager(starter.parent if linked else kernel.self(), name)
    starter.started()
    await manager.loop()


def _default_handle_info(message: object, state: object) -> object:
    logger.warning("unexpected message %r: no handle_info in the handler module", message)
    return Ok(state)


def _default_terminate(arg: object, state: object) -> object:
    return None


def _default_code_change(old_vsn: object, state: object, extra: object) -> object:
    return state


_DEFAULTS: dict[str, Callable[..., object]] = {
    "handle_info": _default_handle_info,
    "terminate": _default_terminate,
    "code_change": _default_code_change,
}


@final
class _Entry:
    """One installed handler: its id, state and supervising process."""

    __slots__ = ("handler", "state", "supervisor")

    def __init__(self, handler: Handler, state: object, supervisor: Pid | None) -> None:
        self.handler = handler
        self.state = state
        self.supervisor = supervisor


class _Failure(Exception):
    """Internal: a callback raised or returned junk; ``reason`` is what ``terminate`` hears."""

    def __init__(self, callback: str, reason: object, traceback_text: str) -> None:
        self.callback = callback
        self.reason = reason
        self.traceback_text = traceback_text


async def _invoke(module: str, fn_name: str, *args: object) -> object:
    """Call ``module.fn_name(*args)`` through its current version; ``_Failure`` on a raise."""
    try:
        fn = getattr(resolve(module), fn_name, None)
        if fn is None:
            fn = _DEFAULTS.get(fn_name)
            if fn is None:
                raise AttributeError(f"handler module {module} has no {fn_name}()")
        result = fn(*args)
        if type(result) is CoroutineType:
            result = await result
    except Exception as exc:
        text = "".join(traceback.format_exception(exc))
        exc.__traceback__ = None  # a reason must not keep frames (and module versions) alive
        raise _Failure(fn_name, exc, text) from None
    return result


@final
class _Manager:
    """The engine's state for one event manager (the ``SystemHost`` of its sys protocol)."""

    __slots__ = ("entries", "name", "parent")

    def __init__(self, parent: Pid, name: str | None) -> None:
        self.parent = parent
        self.name = name
        self.entries: list[_Entry] = []  # newest first

    async def loop(self) -> NoReturn:
        """Take messages one at a time, for ever (ends by raising ``ProcessExit``)."""
        while True:
            message = await kernel.receive()
            kind = type(message)
            if kind is SystemMessage:
                await system_messages.handle_system(self, message, self.parent)  # type: ignore[arg-type]
            elif kind is EventMessage:
                await self._notify("handle_event", message.event)  # type: ignore[attr-defined]
            elif kind is _ManagerRequest:
                await self._answer(message)  # type: ignore[arg-type]
            elif kind is ExitMessage:
                assert isinstance(message, ExitMessage)
                if message.pid == self.parent:
                    await self._terminate_server(message.reason)
                await self._supervisor_exited(message.pid, message.reason)
                await self._notify("handle_info", message)
            else:
                await self._notify("handle_info", message)

    # -- lookups

    def _find(self, handler: Handler) -> _Entry | None:
        for entry in self.entries:
            if entry.handler == handler:
                return entry
        return None

    def _drop(self, entry: _Entry) -> None:
        self.entries.remove(entry)

    # -- requests

    async def _answer(self, message: _ManagerRequest) -> None:
        request = message.request
        from_ = message.from_
        match request:
            case _SyncNotify(event=event):
                await self._notify("handle_event", event)
                kernel.reply(from_, Done(None))
            case _Call():
                kernel.reply(from_, await self._call(request))
            case _Add():
                kernel.reply(
                    from_, await self._add(request.handler, request.args, request.supervisor)
                )
            case _Delete():
                kernel.reply(from_, await self._delete(request))
            case _Swap():
                kernel.reply(from_, await self._swap(request))
            case _WhichHandlers():
                kernel.reply(from_, Done([entry.handler for entry in self.entries]))
            case _GetModules():
                kernel.reply(from_, Done(sorted({e.handler.module for e in self.entries})))

    async def _add(self, handler: Handler, args: object, supervisor: Pid | None) -> object:
        if self._find(handler) is not None:
            return Refused("already_installed")
        if supervisor is not None:
            kernel.link(supervisor)  # kept after the handler goes, as OTP: another may use it
        try:
            result = await _invoke(handler.module, "init", args)
        except _Failure as failure:
            return Failed(("init", failure.reason), failure.traceback_text)
        if type(result) is not Ok:
            reason = result.reason if type(result) is Error else ("bad_return_value", result)
            return Failed(("init", reason))
        self.entries.insert(0, _Entry(handler, result.state, supervisor))
        return Done(None)

    async def _delete(self, request: _Delete) -> object:
        entry = self._find(request.handler)
        if entry is None:
            return Refused("not_installed")
        self._drop(entry)
        try:
            value = await self._terminate(entry, request.args, kernel.NORMAL, request)
        except _Failure as failure:
            return Failed(("terminate", failure.reason), failure.traceback_text)
        return Done(value)

    async def _swap(self, request: _Swap) -> object:
        entry = self._find(request.old)
        if request.new != request.old and self._find(request.new) is not None:
            return Refused("already_installed")
        supervisor = request.supervisor
        if entry is None:
            term: object = "error"
        else:
            if supervisor is None:
                supervisor = entry.supervisor
            self._drop(entry)
            swapped = Swapped(request.new, supervisor)
            try:
                term = await self._terminate(entry, request.args1, swapped, request)
            except _Failure as failure:
                term = ("EXIT", failure.reason)
        return await self._add(request.new, (request.args2, term), supervisor)

    async def _call(self, request: _Call) -> object:
        entry = self._find(request.handler)
        if entry is None:
            return Refused("not_installed")
        try:
            result = await _invoke(
                entry.handler.module, "handle_call", request.request, entry.state
            )
        except _Failure as failure:
            await self._remove_crashed(entry, failure, request)
            return Failed(("handle_call", failure.reason), failure.traceback_text)
        kind = type(result)
        if kind is Reply:
            entry.state = result.state  # type: ignore[attr-defined]
            return Done(result.reply)  # type: ignore[attr-defined]
        if kind is RemoveHandler or kind is SwapHandler:
            await self._apply(entry, result, request)
            return Done(result.reply)  # type: ignore[attr-defined]
        junk = _Failure("handle_call", ("bad_return_value", result), "")
        await self._remove_crashed(entry, junk, request)
        return Failed(("handle_call", junk.reason))

    # -- events

    async def _notify(self, fn_name: str, event: object) -> None:
        for entry in list(self.entries):  # a snapshot: handlers swapped in wait for the next
            if entry not in self.entries:
                continue
            try:
                result = await _invoke(entry.handler.module, fn_name, event, entry.state)
            except _Failure as failure:
                await self._remove_crashed(entry, failure, event)
                continue
            if type(result) is Ok:
                entry.state = result.state
            elif type(result) is RemoveHandler or type(result) is SwapHandler:
                await self._apply(entry, result, event)
            else:
                junk = _Failure(fn_name, ("bad_return_value", result), "")
                await self._remove_crashed(entry, junk, event)

    async def _apply(self, entry: _Entry, result: object, last: object) -> None:
        """A callback's ``RemoveHandler`` or ``SwapHandler`` for ``entry``."""
        if type(result) is RemoveHandler:
            self._drop(entry)
            await self._terminate_quietly(entry, "remove_handler", kernel.NORMAL, last)
            return
        assert type(result) is SwapHandler
        try:
            new = handler_of(result.handler2)
        except TypeError as exc:
            await self._remove_crashed(entry, _Failure("swap_handler", exc, str(exc)), last)
            return
        index = self.entries.index(entry)
        self._drop(entry)
        entry.state = result.state
        try:
            term = await self._terminate(entry, result.args1, Swapped(new, entry.supervisor), last)
        except _Failure as failure:
            term = ("EXIT", failure.reason)
        if self._find(new) is not None:
            reason: object = "already_installed"
            text = ""
        else:
            try:
                init = await _invoke(new.module, "init", (result.args2, term))
            except _Failure as failure:
                reason, text = failure.reason, failure.traceback_text
            else:
                if type(init) is Ok:
                    self.entries.insert(index, _Entry(new, init.state, entry.supervisor))
                    return
                reason = init.reason if type(init) is Error else ("bad_return_value", init)
                text = ""
        self._report(new, reason, text, last)
        if entry.supervisor is not None:
            kernel.send(entry.supervisor, HandlerExit(kernel.self(), new, reason))

    async def _remove_crashed(self, entry: _Entry, failure: _Failure, last: object) -> None:
        if entry in self.entries:
            self._drop(entry)
        self._report(entry.handler, failure.reason, failure.traceback_text, last)
        with contextlib.suppress(_Failure):  # the crash is reported; a second one is not
            await self._terminate(
                entry, ("error", failure.reason), failure.reason, last, report=False
            )

    async def _terminate(
        self, entry: _Entry, arg: object, how: object, last: object, *, report: bool = True
    ) -> object:
        """Run ``terminate(arg, state)`` of a removed handler; tell its supervisor ``how``.

        Raises:
            _Failure: ``terminate`` raised (reported; the supervisor is told all the same).
        """
        try:
            return await _invoke(entry.handler.module, "terminate", arg, entry.state)
        except _Failure as failure:
            if report:
                self._report(entry.handler, failure.reason, failure.traceback_text, last)
            raise
        finally:
            if entry.supervisor is not None:
                kernel.send(entry.supervisor, HandlerExit(kernel.self(), entry.handler, how))

    async def _terminate_quietly(
        self, entry: _Entry, arg: object, how: object, last: object
    ) -> None:
        """``_terminate``, its failure reported and then ignored (the handler is gone anyway)."""
        with contextlib.suppress(_Failure):
            await self._terminate(entry, arg, how, last)

    def _report(self, handler: Handler, reason: object, traceback_text: str, last: object) -> None:
        logger.error(
            "gen_event handler %r crashed in %s: %r while handling %r\n%s",
            handler,
            self.name or kernel.self(),
            reason,
            last,
            traceback_text,
            extra={
                "report": "gen_event_handler_crashed",
                "pid": repr(kernel.self()),
                "registered_name": self.name,
                "handler": repr(handler),
                "reason": repr(reason),
                "last_message": repr(last),
            },
        )

    # -- supervision

    async def _supervisor_exited(self, pid: Pid, reason: object) -> None:
        for entry in [e for e in self.entries if e.supervisor == pid]:
            self._drop(entry)
            await self._terminate_quietly(entry, ("stop", reason), kernel.SHUTDOWN, ("EXIT", pid))

    async def _terminate_server(self, reason: object) -> NoReturn:
        entries, self.entries = self.entries, []
        for entry in entries:
            await self._terminate_quietly(entry, "stop", kernel.SHUTDOWN, "stop")
        for supervisor in {e.supervisor for e in entries if e.supervisor is not None}:
            if supervisor != self.parent:  # an adder must not end with the manager
                kernel.unlink(supervisor)
        raise ProcessExit(reason)

    # -- SystemHost

    def system_get_state(self) -> object:
        return [HandlerState(entry.handler, entry.state) for entry in self.entries]

    def system_replace_state(self, fn: Callable[[Any], Any]) -> object:
        current = self.system_get_state()
        new = fn(current)
        if not isinstance(new, list | tuple) or not all(type(s) is HandlerState for s in new):
            raise TypeError(
                f"replace_state of an event manager takes and returns a list of HandlerState, "
                f"not {new!r}"
            )
        by_handler = {s.handler: s.state for s in new}
        installed = [entry.handler for entry in self.entries]
        if len(by_handler) != len(new) or set(by_handler) != set(installed):
            raise ValueError(
                f"replace_state must keep the installed handlers {installed}, "
                f"got {[s.handler for s in new]}"
            )
        for entry in self.entries:
            entry.state = by_handler[entry.handler]
        return self.system_get_state()

    async def system_code_change(self, module: str, old_vsn: object, extra: object) -> None:
        # every new state first, kept only if every code_change succeeded
        changed: list[tuple[_Entry, object]] = []
        for entry in self.entries:
            if entry.handler.module == module:
                # called bare: the exception and its traceback go to the caller's answer; on
                # a copy, so that one that mutates its input and then raises changes nothing
                hook = getattr(resolve(module), "code_change", _default_code_change)
                new = hook(old_vsn, system_messages.copy_state(entry.state), extra)
                if type(new) is CoroutineType:
                    new = await new
                changed.append((entry, new))
        for entry, new in changed:
            entry.state = new

    def system_status(self, status: str) -> ProcessStatus:
        return ProcessStatus.of_self(
            status,
            behaviour=BEHAVIOUR,
            module=BEHAVIOUR,
            registered_name=self.name,
            parent=self.parent,
            state=self.system_get_state(),
        )

    async def system_terminate(self, reason: object) -> None:
        await self._terminate_server(reason)
