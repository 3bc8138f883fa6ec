"""The node's activity as a gen_statem: ``idle`` until a request, ``busy`` until a quiet spell.

State functions with enter calls. A hit (a cast from ``stats.server``) in ``idle`` starts a
busy spell; in ``busy`` each hit counts and restarts the event time-out, so ``idle_after``
seconds (the application's env) without a hit end the spell. Every state change is told to
the ``stats_events`` manager, where ``stats.transitions`` (a handler this process adds as a
supervised handler at init, so a restarted manager gets it back with this process under the
``rest_for_one`` supervisor) keeps the latest. ``("activity",)`` is answered with the state
and the data. Release 2.1.0 renames ``idle`` and keeps the busiest spell: its
``code_change`` migrates the state and the data of this very process, live (and back down).
"""

from __future__ import annotations

from typing import Any

from server.app import get_env
from server.behaviours import gen_event
from server.behaviours.gen_statem_callbacks import (
    STATE_ENTER,
    STATE_FUNCTIONS,
    Call,
    KeepState,
    KeepStateAndData,
    NextState,
    Ok,
    Reply,
    Timeout,
)

__vsn__ = "1.0.0"

EVENTS = "stats_events"
HANDLER = "stats.transitions"


async def init(args: object) -> Ok:
    await gen_event.add_sup_handler(EVENTS, HANDLER, None)
    return Ok("idle", {"hits": 0, "spells": 0})


def callback_mode() -> tuple[str, str]:
    return (STATE_FUNCTIONS, STATE_ENTER)


def idle(event_type: Any, content: Any, data: dict[str, int]) -> Any:
    match event_type, content:
        case ("enter", old_state):
            _told(old_state, "idle")
            return KeepState({**data, "hits": 0})
        case ("cast", ("hit", str())):
            return NextState("busy", {**data, "hits": 1, "spells": data["spells"] + 1})
    return _common(event_type, content, "idle", data)


def busy(event_type: Any, content: Any, data: dict[str, int]) -> Any:
    match event_type, content:
        case ("enter", old_state):
            _told(old_state, "busy")
            return KeepStateAndData([_quiet_spell()])
        case ("cast", ("hit", str())):
            return KeepState({**data, "hits": data["hits"] + 1}, [_quiet_spell()])
        case ("timeout", "quiet"):
            return NextState("idle", data)
    return _common(event_type, content, "busy", data)


def _common(event_type: Any, content: Any, state: str, data: dict[str, int]) -> Any:
    if type(event_type) is Call and content == ("activity",):
        return KeepStateAndData([Reply(event_type.from_, {"state": state, **data})])
    return KeepStateAndData()


def _quiet_spell() -> Timeout:
    """An event time-out: any event cancels it, so it fires only after a quiet spell."""
    return Timeout("timeout", float(get_env("stats", "idle_after", 10.0)), "quiet")


def _told(old_state: object, new_state: str) -> None:
    if old_state != new_state:  # the first enter call, from init, has old == new
        gen_event.notify(EVENTS, ("activity", old_state, new_state))


def code_change(old_vsn: Any, state: Any, data: Any, extra: Any) -> Ok:
    return Ok(state, dict(data))
