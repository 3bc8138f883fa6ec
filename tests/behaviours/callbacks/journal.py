"""A gen_server that journals what it handles, in order: the order rules made visible.

Its state is a ``Journal``: an immutable tuple of events, so ``code_change`` returns a new
state and never mutates the old one. Requests:

- call ``"journal"``: the events; call ``("note", item)``: journal ``("call", item)`` and
  answer ``item``; cast ``("note", item)``: journal ``("cast", item)``;
- cast or call ``("continue", arg)`` / ``("timeout", seconds)``: journal, then ask for that
  action; ``("chain", n)`` continues ``n`` more times;
- any other cast or message is journalled as ``("cast", x)`` / ``("info", x)``.

``handle_info("timeout")`` also tells the observer (if any) ``("timed_out", pid)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from server.behaviours.gen_server_callbacks import (
    CallResult,
    Continuation,
    Hibernate,
    InitResult,
    NoReply,
    Ok,
    Reply,
    Stop,
    Timeout,
)
from server.kernel import From, Pid, self, send

__vsn__ = "1"


@dataclass(frozen=True, slots=True)
class Journal:
    """Events in the order they were handled."""

    events: tuple[object, ...] = ()
    observer: Pid | None = None

    def add(self, event: object) -> Journal:
        return replace(self, events=(*self.events, event))


def init(args: object) -> InitResult:
    match args:
        case ("continue", arg):
            return Ok(Journal(("init",)), Continuation(arg))
        case ("timeout", int() | float() as seconds, Pid() as observer):
            return Ok(Journal(("init",), observer), Timeout(seconds))
        case Pid() as observer:
            return Ok(Journal(("init",), observer))
    return Ok(Journal(("init",)))


def handle_call(request: object, from_: From, state: Journal) -> CallResult:
    match request:
        case "journal":
            return Reply(state.events, state)
        case ("note", item):
            return Reply(item, state.add(("call", item)))
        case ("continue", arg):
            return Reply("ok", state.add(("call", request)), Continuation(arg))
        case ("timeout", int() | float() as seconds):
            return Reply("ok", state.add(("call", request)), Timeout(seconds))
    return Reply(("unknown", request), state)


def handle_cast(request: object, state: Journal) -> NoReply | Stop:
    match request:
        case ("note", item):
            return NoReply(state.add(("cast", item)))
        case ("continue", arg):
            return NoReply(state.add(("cast", request)), Continuation(arg))
        case ("timeout", int() | float() as seconds):
            return NoReply(state.add(("cast", request)), Timeout(seconds))
        case "hibernate":
            return NoReply(state.add(("cast", request)), Hibernate())
        case "bad_action":
            return NoReply(state, "not an action")  # type: ignore[arg-type]
    return NoReply(state.add(("cast", request)))


def handle_info(message: object, state: Journal) -> NoReply:
    if message == "timeout" and state.observer is not None:
        send(state.observer, ("timed_out", self()))
    return NoReply(state.add(("info", message)))


def handle_continue(arg: object, state: Journal) -> NoReply | Stop:
    match arg:
        case ("chain", int(n)) if n > 0:
            return NoReply(state.add(("continue", arg)), Continuation(("chain", n - 1)))
        case ("stop", reason):
            return Stop(reason, state)
        case ("timeout", int() | float() as seconds):
            return NoReply(state.add(("continue", arg)), Timeout(seconds))
    return NoReply(state.add(("continue", arg)))


def code_change(old_vsn: object, state: Journal, extra: object) -> Journal:
    if extra == "fail":
        raise RuntimeError("refusing to migrate")
    return state.add(("code_change", old_vsn, extra))
