"""The gen_statem callback contract: what a callback module defines, receives and returns.

A callback module is a plain Python module defining ``init``, ``callback_mode`` and its
state callbacks; each may be a plain or an ``async`` function.

``callback_mode()`` returns ``"state_functions"`` or ``"handle_event_function"``, alone or
in a tuple or list with ``"state_enter"``. The engine asks it once after ``init`` and once
after each ``code_change`` (OTP caches it the same way).

==============================  ===============================================================
callback                        allowed results
==============================  ===============================================================
``init(args)``                  ``Ok(state, data, actions)``, ``Ignore()``, ``Stop(reason)``
a state callback (an event)     ``NextState``, ``KeepState``, ``KeepStateAndData``,
                                ``RepeatState``, ``RepeatStateAndData``, ``Stop``,
                                ``StopAndReply``
a state callback (enter call)   the same, but ``NextState`` only to the current state, and no
                                ``Postpone(True)`` nor ``NextEvent`` action
``terminate(reason, s, data)``  anything (ignored)
``code_change(old_vsn, state,   ``Ok(new_state, new_data)``; raise to refuse (both are left
data, extra)``                  unchanged)
==============================  ===============================================================

The state callback is ``module.<state>(event_type, content, data)`` with
``"state_functions"`` (the state is a string naming a function of the module), or
``module.handle_event(event_type, content, state, data)`` with
``"handle_event_function"`` (the state is any value). An enter call passes ``"enter"`` as
the event type and the previous state as the content.

Event types: ``Call(from_)``, ``"cast"``, ``"info"``, ``"internal"`` (a ``NextEvent``
usually), and the time-outs ``"timeout"`` (the event time-out), ``"state_timeout"`` and
``NamedTimeout(name)`` (a generic time-out).

Actions (``actions=`` of a result, a sequence; applied in order, and of the options the last
of each kind wins):

- ``Reply(from_, reply)``: answers a call at once.
- ``Postpone()``: keep this event; retry it after the next *state change*.
- ``NextEvent(event_type, content)``: handle this event next, before any queued one (several
  keep their order).
- ``Timeout(kind, seconds, content)``: start (or restart) the time-out ``kind``
  (``"timeout"``, ``"state_timeout"`` or ``NamedTimeout(name)``). ``math.inf`` cancels it;
  ``0`` enqueues its event after the events already queued but before any message not yet
  received. ``absolute=True`` reads ``seconds`` as a time of the node's clock.
  ``CancelTimeout(kind)`` cancels it; ``UpdateTimeout(kind, content)`` changes the content
  of a running one without moving its expiry, or fires one at once if none runs.
- ``Hibernate()``: accepted; a process here keeps no stack between events to shed, so it
  changes nothing.

``code_change`` must not mutate ``state`` or ``data``: it returns new ones. The release
handler relies on this to undo a failed upgrade with every state untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, final

if TYPE_CHECKING:
    from collections.abc import Sequence

    from server.kernel import From

__all__ = [
    "HANDLE_EVENT_FUNCTION",
    "KEEP_DATA",
    "STATE_ENTER",
    "STATE_FUNCTIONS",
    "Action",
    "Call",
    "CancelTimeout",
    "EnterResult",
    "EventResult",
    "EventType",
    "GenStatemCallbacks",
    "Hibernate",
    "Ignore",
    "InitResult",
    "KeepState",
    "KeepStateAndData",
    "NamedTimeout",
    "NextEvent",
    "NextState",
    "Ok",
    "Postpone",
    "RepeatState",
    "RepeatStateAndData",
    "Reply",
    "Stop",
    "StopAndReply",
    "Timeout",
    "TimeoutKind",
    "UpdateTimeout",
]

STATE_FUNCTIONS: Final = "state_functions"
HANDLE_EVENT_FUNCTION: Final = "handle_event_function"
STATE_ENTER: Final = "state_enter"


# -- event types ---------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Call:
    """The event type of a ``call``: answer ``from_`` (a ``Reply`` action or ``reply``)."""

    from_: From


@final
@dataclass(frozen=True, slots=True)
class NamedTimeout:
    """A generic time-out: the kind of its actions and the event type it fires with."""

    name: object


TimeoutKind = Literal["timeout", "state_timeout"] | NamedTimeout
EventType = Call | NamedTimeout | Literal["cast", "info", "internal", "timeout", "state_timeout"]


# -- actions -------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the caller ``from_`` with ``reply`` (done when the action is applied)."""

    from_: From
    reply: object


@final
@dataclass(frozen=True, slots=True)
class Postpone:
    """Postpone the current event (``value=False`` undoes an earlier ``Postpone``)."""

    value: bool = True


@final
@dataclass(frozen=True, slots=True)
class NextEvent:
    """Insert an event to handle next, before every queued one."""

    event_type: EventType
    content: object


@final
@dataclass(frozen=True, slots=True)
class Timeout:
    """Start the time-out ``kind``: its event fires after ``seconds`` (``inf``: cancel)."""

    kind: TimeoutKind
    seconds: float
    content: object = None
    absolute: bool = False


@final
@dataclass(frozen=True, slots=True)
class CancelTimeout:
    """Cancel the time-out ``kind`` if it runs."""

    kind: TimeoutKind


@final
@dataclass(frozen=True, slots=True)
class UpdateTimeout:
    """Give the running time-out ``kind`` a new content (none running: fire it at once)."""

    kind: TimeoutKind
    content: object


@final
@dataclass(frozen=True, slots=True)
class Hibernate:
    """Accepted for OTP compatibility; a process here has no stack to drop."""

    value: bool = True


Action = Reply | Postpone | NextEvent | Timeout | CancelTimeout | UpdateTimeout | Hibernate


# -- results -------------------------------------------------------------------------------


class _KeepData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEP_DATA"


#: ``Stop(reason)`` / ``StopAndReply(reason, replies)``: terminate with the current data.
KEEP_DATA: Final = _KeepData()


@final
@dataclass(frozen=True, slots=True)
class Ok:
    """``init`` succeeded, or ``code_change`` migrated: the state and the data."""

    state: object
    data: object
    actions: Sequence[Action] = ()


@final
@dataclass(frozen=True, slots=True)
class Ignore:
    """``init`` declines to start; the starter gets None and the process ends ``normal``."""


@final
@dataclass(frozen=True, slots=True)
class NextState:
    """Go to ``state`` with ``data`` (a *state change* when ``state`` differs)."""

    state: object
    data: object
    actions: Sequence[Action] = ()


@final
@dataclass(frozen=True, slots=True)
class KeepState:
    """Stay in the current state with ``data``."""

    data: object
    actions: Sequence[Action] = ()


@final
@dataclass(frozen=True, slots=True)
class KeepStateAndData:
    """Stay in the current state with the current data."""

    actions: Sequence[Action] = ()


@final
@dataclass(frozen=True, slots=True)
class RepeatState:
    """Like ``KeepState``, and repeat the state enter call (with ``"state_enter"``)."""

    data: object
    actions: Sequence[Action] = ()


@final
@dataclass(frozen=True, slots=True)
class RepeatStateAndData:
    """Like ``KeepStateAndData``, and repeat the state enter call."""

    actions: Sequence[Action] = ()


@final
@dataclass(frozen=True, slots=True)
class Stop:
    """Run ``terminate`` and end with ``reason`` (with ``data`` if given)."""

    reason: object = "normal"
    data: object = field(default=KEEP_DATA)


@final
@dataclass(frozen=True, slots=True)
class StopAndReply:
    """Send every reply of ``replies``, then stop as ``Stop`` does."""

    reason: object
    replies: Sequence[Reply]
    data: object = field(default=KEEP_DATA)


InitResult = Ok | Ignore | Stop
EventResult = (
    NextState
    | KeepState
    | KeepStateAndData
    | RepeatState
    | RepeatStateAndData
    | Stop
    | StopAndReply
)
EnterResult = EventResult


class GenStatemCallbacks(Protocol):
    """What a gen_statem callback module provides (each function may also be async).

    The state callbacks are not listed: ``handle_event(event_type, content, state, data)``,
    or one function per state named as the state.
    """

    def init(self, args: Any) -> InitResult: ...

    def callback_mode(self) -> str | Sequence[str]: ...

    def terminate(self, reason: Any, state: Any, data: Any) -> object: ...

    def code_change(self, old_vsn: Any, state: Any, data: Any, extra: Any) -> Ok: ...
