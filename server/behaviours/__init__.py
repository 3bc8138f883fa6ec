"""OTP's behaviours: the generic parts (engines) that user callback modules plug into."""

from __future__ import annotations

from server.behaviours import (
    gen_event,
    gen_event_callbacks,
    gen_server,
    gen_server_callbacks,
    gen_statem,
    gen_statem_callbacks,
    replies,
    supervisor,
    supervisor_callbacks,
    system_messages,
)
from server.behaviours._dispatch import module_name, resolve
from server.behaviours._restart_intensity import add_restart, record_restart

__all__ = [
    "add_restart",
    "gen_event",
    "gen_event_callbacks",
    "gen_server",
    "gen_server_callbacks",
    "gen_statem",
    "gen_statem_callbacks",
    "module_name",
    "record_restart",
    "replies",
    "resolve",
    "supervisor",
    "supervisor_callbacks",
    "system_messages",
]
