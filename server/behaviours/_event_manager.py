"""The event manager process of ``gen_event``: its loop, its handlers, its system messages.

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

Who may call what: ``gen_event`` (the API) builds the request records below and spawns
``init_it``; nothing else touches a manager's handlers.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from dataclasses import dataclass
from types import CoroutineType
from typing import TYPE_CHECKING, Any, NoReturn, final

from server import kernel
from server.behaviours import system_messages
from server.behaviours._dispatch import resolve
from server.behaviours._start import Starter, register_or_fail
from server.behaviours.gen_event_callbacks import (
    Error,
    Handler,
    HandlerExit,
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
from server.behaviours.system_messages import ProcessStatus, SystemMessage
from server.kernel import ExitMessage, From, Pid, ProcessExit

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BEHAVIOUR",
    "AddRequest",
    "CallRequest",
    "DeleteRequest",
    "EventMessage",
    "GetModulesRequest",
    "ManagerRequest",
    "Request",
    "SwapRequest",
    "SyncNotifyRequest",
    "WhichHandlersRequest",
    "init_it",
]

logger = logging.getLogger("server.behaviours.gen_event")

#: the ``behaviour`` label of a manager process (the release handler looks for it)
BEHAVIOUR = "gen_event"


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
class AddRequest:
    handler: Handler
    args: object
    supervisor: Pid | None


@final
@dataclass(frozen=True, slots=True)
class DeleteRequest:
    handler: Handler
    args: object


@final
@dataclass(frozen=True, slots=True)
class SwapRequest:
    old: Handler
    args1: object
    new: Handler
    args2: object
    supervisor: Pid | None  # swap_sup_handler: the caller; swap_handler: None (inherited)


@final
@dataclass(frozen=True, slots=True)
class CallRequest:
    handler: Handler
    request: object


@final
@dataclass(frozen=True, slots=True)
class SyncNotifyRequest:
    event: object


@final
@dataclass(frozen=True, slots=True)
class WhichHandlersRequest:
    pass


@final
@dataclass(frozen=True, slots=True)
class GetModulesRequest:
    pass


Request = (
    AddRequest
    | DeleteRequest
    | SwapRequest
    | CallRequest
    | SyncNotifyRequest
    | WhichHandlersRequest
    | GetModulesRequest
)


@final
class ManagerRequest:
    __slots__ = ("from_", "request")

    def __init__(self, from_: From, request: Request) -> None:
        self.from_ = from_
        self.request = request

    def __repr__(self) -> str:
        return f"ManagerRequest({self.request!r}, from={self.from_.pid!r})"


# -- the manager's side --------------------------------------------------------------------


async def init_it(starter: Starter, name: str | None, linked: bool) -> None:
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
    """Call ``module.fn_name(*args)`` through its current version; ``_Failure`` on a raise.

    An exception, or a ``ProcessExit`` (OTP's ``exit/1``; its reason), fails the handler
    only; a kill of the manager itself goes through.
    """
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
    except ProcessExit as exit_:
        if exit_.reason == kernel.KILLED:  # exit(self(), "kill") cannot be caught, as in OTP
            raise
        # OTP's catch takes exit/1 too: only that handler goes, the manager runs on
        raise _Failure(fn_name, exit_.reason, "") from None
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
            elif kind is ManagerRequest:
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

    async def _answer(self, message: ManagerRequest) -> None:
        request = message.request
        from_ = message.from_
        match request:
            case SyncNotifyRequest(event=event):
                await self._notify("handle_event", event)
                kernel.reply(from_, Done(None))
            case CallRequest():
                kernel.reply(from_, await self._call(request))
            case AddRequest():
                kernel.reply(
                    from_, await self._add(request.handler, request.args, request.supervisor)
                )
            case DeleteRequest():
                kernel.reply(from_, await self._delete(request))
            case SwapRequest():
                kernel.reply(from_, await self._swap(request))
            case WhichHandlersRequest():
                kernel.reply(from_, Done([entry.handler for entry in self.entries]))
            case GetModulesRequest():
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

    async def _delete(self, request: DeleteRequest) -> object:
        entry = self._find(request.handler)
        if entry is None:
            return Refused("not_installed")
        self._drop(entry)
        try:
            value = await self._terminate(entry, request.args, kernel.NORMAL, request)
        except _Failure as failure:
            return Failed(("terminate", failure.reason), failure.traceback_text)
        return Done(value)

    async def _swap(self, request: SwapRequest) -> object:
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

    async def _call(self, request: CallRequest) -> object:
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
