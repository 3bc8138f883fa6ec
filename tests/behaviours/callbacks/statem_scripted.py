"""A gen_statem (``handle_event_function``, state enter calls) that the test scripts.

Every event and enter call is journalled in the data as ``(event_type, content, state)``
(a call's type as ``"call"``, a ``Plan`` as its label) and told to the observer as
``("event", pid, event_type, content, state)``. A ``Plan`` as an event's content, or as the
enter plan of a state (``on_enter``), decides the result: ``plan.fn(event_type, data)``, with the
data that already journals the event. Anything else keeps the state. Call ``"log"`` answers the
journal and is not journalled.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from server.behaviours.gen_statem_callbacks import (
    HANDLE_EVENT_FUNCTION,
    STATE_ENTER,
    Call,
    EventResult,
    InitResult,
    KeepState,
    KeepStateAndData,
    Ok,
    Reply,
    Stop,
)
from server.kernel import Pid, self, send

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__vsn__ = "1"


@dataclass(frozen=True)
class Plan:
    """What to return for one event: ``fn(event_type, data)``."""

    label: str
    fn: Callable[[Any, Log], EventResult]


@dataclass(frozen=True)
class Log:
    """The data: the journal, who to tell, and the enter plans by state."""

    events: tuple[tuple[object, object, object], ...] = ()
    observer: Pid | None = None
    on_enter: Mapping[object, Plan] = field(default_factory=dict)
    terminated: Pid | None = None

    def add(self, event_type: object, content: object, state: object) -> Log:
        return replace(self, events=(*self.events, (event_type, content, state)))


@dataclass(frozen=True)
class Start:
    """``init``'s argument."""

    state: object = "idle"
    observer: Pid | None = None
    actions: tuple[Any, ...] = ()
    on_enter: Mapping[object, Plan] = field(default_factory=dict)
    result: InitResult | None = None  # returned by init as it is, when given


def init(args: Start) -> InitResult:
    if args.result is not None:
        return args.result
    return Ok(args.state, Log(observer=args.observer, on_enter=args.on_enter), args.actions)


def callback_mode() -> object:
    return (HANDLE_EVENT_FUNCTION, STATE_ENTER)


def handle_event(event_type: object, content: object, state: object, data: Log) -> EventResult:
    if type(event_type) is Call and content == "log":
        return KeepStateAndData([Reply(event_type.from_, data.events)])
    shown_type = "call" if type(event_type) is Call else event_type
    shown = content.label if isinstance(content, Plan) else content
    data = data.add(shown_type, shown, state)
    if data.observer is not None:
        send(data.observer, ("event", self(), shown_type, shown, state))
    if event_type == "enter":
        plan = data.on_enter.get(state)
        return plan.fn(event_type, data) if plan is not None else KeepState(data)
    if isinstance(content, Plan):
        return content.fn(event_type, data)
    if content == "stop":
        return Stop("normal", data)
    return KeepState(data)


def terminate(reason: object, state: object, data: Log) -> None:
    if data.observer is not None:
        send(data.observer, ("terminated", self(), reason, state, data.events))


def code_change(old_vsn: object, state: object, data: Log, extra: object) -> Ok:
    if extra == "fail":
        raise RuntimeError("refusing to migrate")
    return Ok(("migrated", state), data.add("code_change", (old_vsn, extra), state))
