"""The node's activity as a gen_statem: ``quiet`` until a request, ``busy`` until a quiet spell.

1.1.0: the state once called ``idle`` is ``quiet``, and the data keeps ``busiest``, the most
hits of any busy spell so far. Installed live from 1.0.0, ``code_change`` renames the state
and adds ``busiest`` in this very process (its time-out runs on); installed back down, it
drops them again. Otherwise as 1.0.0: state functions with enter calls, an event time-out
of ``idle_after`` seconds ending a busy spell, every change told to ``stats_events``, where
``stats.transitions`` (added here at init, as a supervised handler) keeps the latest.
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

__vsn__ = "1.1.0"

EVENTS = "stats_events"
HANDLER = "stats.transitions"


async def init(args: object) -> Ok:
    await gen_event.add_sup_handler(EVENTS, HANDLER, None)
    return Ok("quiet", {"hits": 0, "spells": 0, "busiest": 0})


def callback_mode() -> tuple[str, str]:
    return (STATE_FUNCTIONS, STATE_ENTER)


def quiet(event_type: Any, content: Any, data: dict[str, int]) -> Any:
    match event_type, content:
        case ("enter", old_state):
            _told(old_state, "quiet")
            return KeepState({**data, "hits": 0})
        case ("cast", ("hit", str())):
            busy_data = {**data, "hits": 1, "spells": data["spells"] + 1}
            return NextState("busy", {**busy_data, "busiest": max(data["busiest"], 1)})
    return _common(event_type, content, "quiet", data)


def busy(event_type: Any, content: Any, data: dict[str, int]) -> Any:
    match event_type, content:
        case ("enter", old_state):
            _told(old_state, "busy")
            return KeepStateAndData([_quiet_spell()])
        case ("cast", ("hit", str())):
            hits = data["hits"] + 1
            new_data = {**data, "hits": hits, "busiest": max(data["busiest"], hits)}
            return KeepState(new_data, [_quiet_spell()])
        case ("timeout", "quiet"):
            return NextState("quiet", data)
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
    """Up from 1.0.0: ``idle`` -> ``quiet``, ``busiest`` added; down to 1.0.0: the reverse.

    Builds new data, never mutates ``data``: a failing install restores the old one.
    """
    if old_vsn == "1.0.0":
        renamed = {"idle": "quiet"}.get(state, state)
        return Ok(renamed, {**data, "busiest": data["hits"]})
    if old_vsn == ("down", "1.0.0"):
        renamed = {"quiet": "idle"}.get(state, state)
        return Ok(renamed, {"hits": data["hits"], "spells": data["spells"]})
    return Ok(state, dict(data))
