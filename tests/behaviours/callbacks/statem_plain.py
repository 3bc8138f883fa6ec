"""``statem_scripted`` without state enter calls."""

from __future__ import annotations

from server.behaviours.gen_statem_callbacks import HANDLE_EVENT_FUNCTION
from tests.behaviours.callbacks.statem_scripted import (
    code_change,
    handle_event,
    init,
    terminate,
)

__all__ = ["callback_mode", "code_change", "handle_event", "init", "terminate"]


def callback_mode() -> object:
    return HANDLE_EVENT_FUNCTION
