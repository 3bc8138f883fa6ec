"""A gen_event handler keeping the latest activity changes (``[old, new]`` pairs), newest last.

Added to ``stats_events`` by ``stats.activity``; answers ``("recent",)`` with its list.
Release 2.1.0 stamps each change with its time: its ``code_change`` turns the pairs of
every manager holding this handler into records, live.
"""

from __future__ import annotations

from typing import Any

from server.behaviours.gen_event_callbacks import Ok, Reply

__vsn__ = "1.0.0"

KEEP = 20  # changes kept


def init(args: object) -> Ok:
    return Ok([])


def handle_event(event: Any, state: list[list[object]]) -> Ok:
    match event:
        case ("activity", old_state, new_state):
            return Ok([*state, [old_state, new_state]][-KEEP:])
    return Ok(state)


def handle_call(request: Any, state: list[list[object]]) -> Reply:
    return Reply(list(state), state)


def code_change(old_vsn: Any, state: Any, extra: Any) -> Any:
    return list(state)
