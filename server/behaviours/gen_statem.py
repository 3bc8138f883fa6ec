"""gen_statem: the generic state machine behaviour (the engine; callbacks live in a user module).

==============================  =================================================
generic function                callback it triggers
==============================  =================================================
``start`` / ``start_link``      ``init(args)``, then ``callback_mode()``
``call(server, request)``       state callback, event type ``Call(from_)``
``cast(server, request)``       state callback, event type ``"cast"``
any other message               state callback, event type ``"info"``
a ``NextEvent`` action          state callback, the event type it names
a time-out expiring             state callback, ``"timeout"``, ``"state_timeout"`` or
                                ``NamedTimeout(name)``
a state change (enter calls)    state callback, ``("enter", old_state)``
``stop`` / ``Stop`` / a crash   ``terminate(reason, state, data)``
``system_messages.change_code`` ``code_change(old_vsn, state, data, extra)``, then
                                ``callback_mode()``
==============================  =================================================

The state callback is ``<state>(event_type, content, data)`` with ``"state_functions"``, or
``handle_event(event_type, content, state, data)`` with ``"handle_event_function"``. Results
and actions are the records of ``gen_statem_callbacks``; what the engine does with them:

- ``init``: ``Ok(state, data, actions)`` -> the starter gets the pid, then the actions (a
  ``Postpone`` is ignored: there is no event) and the first enter call run; ``Ignore()`` ->
  the starter gets None; ``Stop(reason)``, an exception, a bad result
  (``("bad_return_from_init", result)``) or a bad ``callback_mode()``
  (``("bad_return_from_callback_mode", value)``) -> ``StartError``.
- An event's result: ``NextState`` / ``KeepState`` / ``KeepStateAndData`` set the state and
  data; ``RepeatState*`` also repeats the enter call; ``Stop`` / ``StopAndReply`` (replies
  first) run ``terminate`` and end with the reason. Anything else ends the process with
  ``("bad_return_from_state_function", result)``; a bad action with
  ``("bad_action_from_state_function", action)``.
- An enter call's result: the same, except that a ``NextState`` to another state ends it with
  ``("bad_state_enter_return_from_state_function", result)``, and ``Postpone(True)`` or
  ``NextEvent`` with ``("bad_state_enter_action_from_state_function", action)``.

How a *state transition* works (OTP's order, after each event):

1. The actions are applied in order: replies are sent at once; the others set options, and of
   each kind (postpone, hibernate, each time-out kind) only the last one counts.
2. With ``"state_enter"``, a state change (or the initial state, or a ``RepeatState*``)
   calls the new state's callback with ``("enter", old_state)``, whose actions are added to
   the same transition (``old_state`` is the state before the event).
3. A postponed event is kept. The event time-out is cancelled (by any event).
4. On a *state change* (the new state ``!=`` the old one) the state time-out is cancelled and
   the queue restarts with the postponed events, oldest first.
5. ``NextEvent`` events go before everything queued, in their order.
6. The time-out actions are applied: a time of ``0`` enqueues its event after the queued
   events, before any message not yet received (so an event time-out of 0 only fires when
   nothing is queued); ``math.inf`` or ``CancelTimeout`` cancels; ``UpdateTimeout`` keeps
   the expiry of a running one or fires at once if none runs.
7. The next event is the oldest queued one, else the next message of the mailbox.

Time-outs are timers sending the process a private message; a timer cancelled or restarted
after it fired is recognised and its message dropped, so a cancelled time-out never fires.
System messages (``sys``) are not events: they cancel no time-out, and while the process is
suspended its timers run on and their events wait in the mailbox, in order.

Every callback is looked up through ``_dispatch.resolve`` at each use, so a newly loaded
version answers the next event; ``callback_mode()`` is read again after ``code_change``.
``sys.get_state`` answers ``(state, data)``; ``replace_state``'s function takes and returns
that pair. ``Hibernate`` is accepted and changes nothing: between events a process here is a
parked coroutine with no stack of its own to shed.

This module is past 600 lines on purpose: the steps of a transition (actions, enter calls,
postponed and inserted events, the time-outs) share one machine's queue and timers, and read
best side by side; the contract's records live apart (``gen_statem_callbacks``).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import deque
from dataclasses import dataclass
from types import CoroutineType, ModuleType
from typing import TYPE_CHECKING, Any, Final, NoReturn, final

import anyio

from server import kernel
from server.behaviours import system_messages
from server.behaviours._dispatch import module_name, resolve
from server.behaviours._start import Starter, register_or_fail, start_process
from server.behaviours.gen_server import CallMessage, CastMessage
from server.behaviours.gen_statem_callbacks import (
    HANDLE_EVENT_FUNCTION,
    KEEP_DATA,
    STATE_ENTER,
    STATE_FUNCTIONS,
    Call,
    CancelTimeout,
    Hibernate,
    Ignore,
    KeepState,
    KeepStateAndData,
    NamedTimeout,
    NextEvent,
    NextState,
    Ok,
    Postpone,
    RepeatState,
    RepeatStateAndData,
    Reply,
    Stop,
    StopAndReply,
    Timeout,
    UpdateTimeout,
)
from server.behaviours.supervisor_callbacks import ChildSpec
from server.behaviours.system_messages import ProcessStatus, SystemMessage
from server.kernel import ExitMessage, From, Pid, ProcessExit

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.behaviours.supervisor_callbacks import RestartType, Shutdown

__all__ = ["call", "cast", "child_spec", "reply", "start", "start_link", "stop"]

logger = logging.getLogger("server.behaviours.gen_statem")

DEFAULT_CALL_TIMEOUT = 5.0

reply = kernel.reply

# names a state cannot have with "state_functions": they are the module's other callbacks
_RESERVED: Final = frozenset(
    {"init", "callback_mode", "terminate", "code_change", "handle_event", "format_status"}
)
_EVENT_NAMES: Final = frozenset({"cast", "info", "internal", "timeout", "state_timeout"})
_UNSET: Final = object()

Event = tuple[object, object]  # (event type, content)


# -- the client's side ---------------------------------------------------------------------


async def start(
    module: ModuleType | str,
    args: object = None,
    *,
    name: str | None = None,
    timeout: float = math.inf,
) -> Pid | None:
    """Start a state machine (not linked) and wait until its ``init`` has run.

    Returns:
        The pid, or None when ``init`` returned ``Ignore()``.

    Raises:
        StartError: ``init`` stopped, crashed or took longer than ``timeout``, or it or
            ``callback_mode()`` returned something else than the contract allows.
        AlreadyStarted: ``name`` is held by a live process.
    """
    return await _start(module, args, name=name, timeout=timeout, link=False)


async def start_link(
    module: ModuleType | str,
    args: object = None,
    *,
    name: str | None = None,
    timeout: float = math.inf,
) -> Pid | None:
    """Like ``start``, linked to the calling process (the state machine's parent).

    Raises:
        StartError: as ``start``.
        AlreadyStarted: ``name`` is held by a live process.
    """
    return await _start(module, args, name=name, timeout=timeout, link=True)


async def _start(
    module: ModuleType | str, args: object, *, name: str | None, timeout: float, link: bool
) -> Pid | None:
    mod_name = module_name(module)
    return await start_process(
        _init_it, (mod_name, args, name), link=link, timeout=timeout, what=name or mod_name
    )


def child_spec(
    id: str,  # noqa: A002 - OTP's field name
    module: ModuleType | str,
    args: object = None,
    *,
    restart: RestartType = "permanent",
    shutdown: Shutdown | None = None,
    name: str | None = None,
) -> ChildSpec:
    """A supervisor child spec for a state machine started with ``start_link``.

    Its ``modules`` names the callback module, so a release upgrade finds the process.
    """
    mod_name = module_name(module)
    return ChildSpec(
        id=id,
        start=(_start_child, mod_name, args, name),
        restart=restart,
        shutdown=shutdown,
        type="worker",
        modules=(mod_name,),
    )


async def _start_child(module: str, args: object, name: str | None, *extra: object) -> Pid | None:
    if extra:  # simple_one_for_one: start_child's arguments are appended
        args = (args, *extra) if args is not None else extra if len(extra) > 1 else extra[0]
    return await start_link(module, args, name=name)


async def call(
    server: Pid | str | tuple[str, str],
    request: object,
    *,
    timeout: float = DEFAULT_CALL_TIMEOUT,
) -> Any:
    """Send ``request`` as a ``Call(from_)`` event and wait for the reply.

    The reply comes from a ``Reply`` action or ``reply(from_, value)``, in this state
    callback or a later one. ``timeout`` is in seconds (``math.inf`` waits for ever); the
    server is monitored for the length of the call.

    Raises:
        CalleeExited: the server does not exist (``noproc``) or ended before replying.
        CallTimeout: no answer within ``timeout``.
    """
    return await kernel.request(
        server,
        lambda from_: CallMessage(from_, request),
        None if timeout == math.inf else timeout,
        what=request,
    )


def cast(server: Pid | str | tuple[str, str], request: object) -> None:
    """Send ``request`` as a ``"cast"`` event without waiting. Never fails (as in OTP)."""
    with contextlib.suppress(LookupError):
        kernel.send(server, CastMessage(request))


async def stop(
    server: Pid | str, reason: object = kernel.NORMAL, *, timeout: float = math.inf
) -> None:
    """Make the state machine run ``terminate`` and end with ``reason``; wait for its end.

    Raises:
        CalleeExited: the server does not exist, or ended with another reason.
        CallTimeout: it did not end within ``timeout``.
    """
    await system_messages.terminate(server, reason, timeout=timeout)


# -- the server's side ---------------------------------------------------------------------


async def _init_it(starter: Starter, mod_name: str, args: object, name: str | None) -> None:
    register_or_fail(starter, name)
    kernel.set_label("behaviour", "gen_statem")
    kernel.set_label("module", mod_name)
    machine = _Machine(mod_name, starter.parent, name)
    try:
        result = await machine.invoke("init", args)
        if type(result) is Ok:
            machine.read_callback_mode()
    except _Stopping as stopping:
        starter.failed(stopping.reason)
        raise ProcessExit(stopping.reason) from None
    except Exception as exc:
        starter.failed(exc)
        raise
    except ProcessExit as exit_:  # init called OTP's exit/1: a failed start, not a signal
        starter.failed(exit_.reason)
        raise
    if type(result) is Ok:
        machine.state = result.state
        machine.data = result.data
        starter.started()
        await machine.loop(result.actions)
    elif type(result) is Ignore:
        raise starter.ignored()
    elif type(result) is Stop:
        starter.failed(result.reason)
        raise ProcessExit(result.reason)
    else:
        reason = ("bad_return_from_init", result)
        starter.failed(reason)
        raise ProcessExit(reason)


def _default_terminate(reason: object, state: object, data: object) -> object:
    return None


def _default_code_change(old_vsn: object, state: object, data: object, extra: object) -> Ok:
    return Ok(state, data)


_DEFAULTS: dict[str, Callable[..., object]] = {
    "terminate": _default_terminate,
    "code_change": _default_code_change,
}


@final
@dataclass(frozen=True, slots=True)
class _TimerFired:
    """A time-out's timer expired (dropped unless ``timer`` is still the running one)."""

    kind: object
    timer: _Timer


@final
class _Timer:
    """A running time-out: its kernel timer (None: time 0, waiting in the zero queue)."""

    __slots__ = ("content", "handle")

    def __init__(self, content: object) -> None:
        self.content = content
        self.handle: kernel.TimerRef | None = None


@final
class _Transition:
    """What the actions of one transition (the event's and its enter calls') asked for."""

    __slots__ = ("hibernate", "next_events", "postpone", "timeouts")

    def __init__(self) -> None:
        self.postpone = False
        self.hibernate = False
        self.next_events: list[Event] = []
        # the last time-out action of each kind, in the order of those last actions
        self.timeouts: dict[object, Timeout | CancelTimeout | UpdateTimeout] = {}


@final
class _Machine:
    """The engine's state for one state machine (the ``SystemHost`` of its sys protocol)."""

    __slots__ = (
        "data",
        "functions",
        "module",
        "name",
        "parent",
        "postponed",
        "queue",
        "state",
        "state_enter",
        "t0q",
        "timers",
    )

    def __init__(self, module: str, parent: Pid, name: str | None) -> None:
        self.module = module
        self.parent = parent
        self.name = name
        self.state: object = None
        self.data: object = None
        self.functions = True  # "state_functions"; False: "handle_event_function"
        self.state_enter = False
        self.queue: deque[Event] = deque()  # received, not yet handled: inserted, retried
        self.postponed: list[Event] = []  # oldest first
        self.timers: dict[object, _Timer] = {}
        self.t0q: list[object] = []  # kinds of the time-outs of time 0, in order

    def callback(self, fn_name: str) -> Callable[..., object]:
        fn = getattr(resolve(self.module), fn_name, None)
        if fn is None:
            fn = _DEFAULTS.get(fn_name)
            if fn is None:
                raise AttributeError(f"callback module {self.module} has no {fn_name}()")
        return fn

    async def invoke(self, fn_name: str, *args: object) -> object:
        result = self.callback(fn_name)(*args)
        if type(result) is CoroutineType:
            result = await result
        return result

    def read_callback_mode(self) -> None:
        """Read ``callback_mode()`` (raises ``_Stopping`` on a bad value)."""
        value = self.callback("callback_mode")()
        functions, state_enter = _callback_mode(value)
        self.functions = functions
        self.state_enter = state_enter

    # -- the loop --------------------------------------------------------------------------

    async def loop(self, init_actions: object) -> NoReturn:
        """Handle events one at a time, for ever (ends by raising ``ProcessExit``)."""
        event: Event | None = None
        try:
            transition = _Transition()
            self._collect(init_actions, transition, enter=False)
            transition.postpone = False  # no event to postpone
            if self.state_enter:
                await self._enter(self.state, transition)
            self._finish(None, self.state, transition)
            while True:
                event = await self._next_event()
                old_state = self.state
                transition = _Transition()
                result = await self._state_callback(event[0], event[1])
                await self._result(result, old_state, transition, enter=False)
                self._finish(event, old_state, transition)
        except _Stopping as stopping:
            await self._terminate_with(stopping.reason)
        except ProcessExit:
            raise
        except Exception as exc:
            await self._crash(exc, event)

    async def _next_event(self) -> Event:
        if self.queue:
            return self.queue.popleft()
        if self.t0q:
            kind = self.t0q.pop(0)
            return (kind, self.timers.pop(kind).content)
        receive = kernel.receive
        while True:
            message = await receive()
            kind = type(message)
            if kind is _TimerFired:
                timer = self.timers.get(message.kind)  # type: ignore[attr-defined]
                if timer is not message.timer:  # type: ignore[attr-defined]
                    continue  # cancelled or restarted after it fired
                del self.timers[message.kind]  # type: ignore[attr-defined]
                return (message.kind, timer.content)  # type: ignore[attr-defined]
            if kind is CallMessage:
                return (Call(message.from_), message.request)  # type: ignore[attr-defined]
            if kind is CastMessage:
                return ("cast", message.request)  # type: ignore[attr-defined]
            if kind is SystemMessage:
                await system_messages.handle_system(self, message, self.parent)  # type: ignore[arg-type]
                continue
            if kind is ExitMessage and message.pid is self.parent:  # type: ignore[attr-defined]
                raise _Stopping(message.reason)  # type: ignore[attr-defined]
            return ("info", message)

    async def _state_callback(self, event_type: object, content: object) -> object:
        module = resolve(self.module)
        state = self.state
        if self.functions:
            if type(state) is not str or state in _RESERVED:
                raise _Stopping(("bad_state", state))
            fn = getattr(module, state, None)
            if fn is None:
                raise AttributeError(
                    f"callback module {self.module} has no state function {state}()"
                )
            result = fn(event_type, content, self.data)
        else:
            fn = getattr(module, "handle_event", None)
            if fn is None:
                raise AttributeError(f"callback module {self.module} has no handle_event()")
            result = fn(event_type, content, state, self.data)
        if type(result) is CoroutineType:
            result = await result
        return result

    async def _enter(self, old_state: object, transition: _Transition) -> None:
        result = await self._state_callback("enter", old_state)
        await self._result(result, old_state, transition, enter=True)

    async def _result(
        self, result: object, old_state: object, transition: _Transition, *, enter: bool
    ) -> None:
        """Apply a state callback's result; run the enter call it leads to."""
        repeat = False
        if type(result) is NextState:
            if enter and result.state != self.state:
                raise _Stopping(("bad_state_enter_return_from_state_function", result))
            state_changed = result.state != self.state
            self.state = result.state
            self.data = result.data
            actions = result.actions
        elif type(result) is KeepState or type(result) is RepeatState:
            state_changed = False
            repeat = type(result) is RepeatState
            self.data = result.data
            actions = result.actions
        elif type(result) is KeepStateAndData or type(result) is RepeatStateAndData:
            state_changed = False
            repeat = type(result) is RepeatStateAndData
            actions = result.actions
        elif type(result) is Stop:
            if result.data is not KEEP_DATA:
                self.data = result.data
            raise _Stopping(result.reason)
        elif type(result) is StopAndReply:
            if result.data is not KEEP_DATA:
                self.data = result.data
            replies = result.replies
            for one in replies if isinstance(replies, list | tuple) else (replies,):
                if type(one) is not Reply or type(one.from_) is not From:
                    raise _Stopping(("bad_reply_action_from_state_function", one))
                kernel.reply(one.from_, one.reply)
            raise _Stopping(result.reason)
        else:
            raise _Stopping(("bad_return_from_state_function", result))
        self._collect(actions, transition, enter=enter)
        if self.state_enter and (state_changed or repeat):
            await self._enter(old_state, transition)

    def _collect(self, actions: object, transition: _Transition, *, enter: bool) -> None:
        if not isinstance(actions, list | tuple):
            actions = (actions,)  # one action, as OTP allows
        for action in actions:
            if type(action) is Reply:
                if type(action.from_) is not From:
                    raise _Stopping(("bad_action_from_state_function", action))
                kernel.reply(action.from_, action.reply)
            elif type(action) is Postpone:
                if enter and action.value:
                    raise _Stopping(("bad_state_enter_action_from_state_function", action))
                transition.postpone = bool(action.value)
            elif type(action) is NextEvent:
                if enter:
                    raise _Stopping(("bad_state_enter_action_from_state_function", action))
                if not _is_event_type(action.event_type):
                    raise _Stopping(("bad_action_from_state_function", action))
                transition.next_events.append((action.event_type, action.content))
            elif (
                type(action) is Timeout
                or type(action) is CancelTimeout
                or type(action) is UpdateTimeout
            ):
                if not _is_timeout_kind(action.kind) or (
                    type(action) is Timeout and not _is_time(action)
                ):
                    raise _Stopping(("bad_action_from_state_function", action))
                timeouts = transition.timeouts
                timeouts.pop(action.kind, None)
                timeouts[action.kind] = action
            elif type(action) is Hibernate:
                transition.hibernate = bool(action.value)
            else:
                raise _Stopping(
                    (
                        "bad_state_enter_action_from_state_function"
                        if enter
                        else "bad_action_from_state_function",
                        action,
                    )
                )

    def _finish(self, event: Event | None, old_state: object, transition: _Transition) -> None:
        """Steps 3 to 6 of a state transition (see the module's docstring)."""
        if transition.postpone and event is not None:
            self.postponed.append(event)
        self._cancel("timeout")
        if self.state != old_state:
            self._cancel("state_timeout")
            if self.postponed:
                self.queue.extendleft(reversed(self.postponed))
                self.postponed = []
        if transition.next_events:
            self.queue.extendleft(reversed(transition.next_events))
        for kind, action in transition.timeouts.items():
            if type(action) is UpdateTimeout:
                timer = self.timers.get(kind)
                if timer is not None:
                    timer.content = action.content
                else:
                    self._start(kind, 0.0, action.content)
                continue
            self._cancel(kind)
            if type(action) is Timeout and action.seconds != math.inf:
                if action.absolute:
                    left = max(action.seconds - anyio.current_time(), 0.0)
                    self._start(kind, left, action.content, timer_even_if_zero=True)
                else:
                    self._start(kind, action.seconds, action.content)

    def _start(
        self, kind: object, seconds: float, content: object, *, timer_even_if_zero: bool = False
    ) -> None:
        timer = _Timer(content)
        self.timers[kind] = timer
        if seconds == 0 and not timer_even_if_zero:
            self.t0q.append(kind)
        else:
            timer.handle = kernel.send_after(seconds, kernel.self(), _TimerFired(kind, timer))

    def _cancel(self, kind: object) -> None:
        timer = self.timers.pop(kind, None)
        if timer is None:
            return
        if timer.handle is None:
            self.t0q.remove(kind)
        else:
            kernel.cancel_timer(timer.handle)

    # -- the end ---------------------------------------------------------------------------

    async def _crash(self, exc: Exception, last_event: Event | None) -> NoReturn:
        logger.error(
            "gen_statem %s terminating in state %r: %r while handling %r",
            self.name or kernel.self(),
            self.state,
            exc,
            last_event,
            extra={
                "report": "gen_statem_terminate",
                "pid": repr(kernel.self()),
                "registered_name": self.name,
                "callback_module": self.module,
                "state": repr(self.state),
                "last_event": repr(last_event),
            },
        )
        await self._run_terminate(exc)
        raise exc

    async def _run_terminate(self, reason: object) -> None:
        try:
            await self.invoke("terminate", reason, self.state, self.data)
        except Exception:
            logger.exception("terminate of %s raised", self.module)

    async def _terminate_with(self, reason: object) -> NoReturn:
        await self._run_terminate(reason)
        raise ProcessExit(reason)

    # -- SystemHost ------------------------------------------------------------------------

    def system_get_state(self) -> object:
        return (self.state, self.data)

    def system_replace_state(self, fn: Callable[[Any], Any]) -> object:
        new = fn((self.state, self.data))
        if type(new) is not tuple or len(new) != 2:
            raise TypeError(
                f"replace_state of a gen_statem takes and returns (state, data), got {new!r}"
            )
        self.state, self.data = new
        return new

    async def system_code_change(self, module: str, old_vsn: object, extra: object) -> None:
        # OTP ignores the module argument: a gen_statem changes code through its own module.
        result = await self.invoke("code_change", old_vsn, self.state, self.data, extra)
        if type(result) is not Ok:
            raise TypeError(
                f"code_change of {self.module} must return Ok(state, data), got {result!r}"
            )
        try:
            functions, state_enter = _callback_mode(self.callback("callback_mode")())
        except _Stopping as stopping:
            raise TypeError(f"callback_mode() of {self.module}: {stopping.reason!r}") from None
        self.state, self.data = result.state, result.data
        self.functions, self.state_enter = functions, state_enter

    def system_status(self, status: str) -> ProcessStatus:
        return ProcessStatus.of_self(
            status,
            behaviour="gen_statem",
            module=self.module,
            registered_name=self.name,
            parent=self.parent,
            state=(self.state, self.data),
        )

    async def system_terminate(self, reason: object) -> None:
        await self._terminate_with(reason)


def _callback_mode(value: object) -> tuple[bool, bool]:
    """``(state functions?, state enter calls?)`` of a ``callback_mode()`` value."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise _Stopping(("bad_return_from_callback_mode", value))
    mode: str | None = None
    state_enter = False
    for item in items:
        if item in (STATE_FUNCTIONS, HANDLE_EVENT_FUNCTION):
            mode = item
        elif item == STATE_ENTER:
            state_enter = True
        else:
            raise _Stopping(("bad_return_from_callback_mode", value))
    if mode is None:
        raise _Stopping(("bad_return_from_callback_mode", value))
    return mode == STATE_FUNCTIONS, state_enter


def _is_event_type(value: object) -> bool:
    kind = type(value)
    if kind is Call:
        return type(value.from_) is From  # type: ignore[attr-defined]
    return kind is NamedTimeout or (kind is str and value in _EVENT_NAMES)


def _is_timeout_kind(value: object) -> bool:
    if type(value) is NamedTimeout:
        try:
            hash(value)  # a timer is found by its kind
        except TypeError:
            return False
        return True
    return value == "timeout" or value == "state_timeout"


def _is_time(action: Timeout) -> bool:
    seconds = action.seconds
    if type(seconds) is not int and type(seconds) is not float:
        return False
    if math.isnan(seconds):
        return False
    return action.absolute or seconds >= 0


class _Stopping(Exception):
    """Internal: a callback asked to stop (or returned something the contract forbids)."""

    def __init__(self, reason: object) -> None:
        self.reason = reason
