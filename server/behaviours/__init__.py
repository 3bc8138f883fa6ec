"""OTP's behaviours: the generic parts (engines) that user callback modules plug into."""

from __future__ import annotations

from server.behaviours import (
    gen_server,
    gen_server_callbacks,
    replies,
    supervisor,
    supervisor_callbacks,
    system_messages,
)
from server.behaviours._dispatch import module_name, resolve, set_resolver

__all__ = [
    "gen_server",
    "gen_server_callbacks",
    "module_name",
    "replies",
    "resolve",
    "set_resolver",
    "supervisor",
    "supervisor_callbacks",
    "system_messages",
]
