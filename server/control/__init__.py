"""The control socket: the node's side (``start_link``), the CLI's (``request``).

One JSON object per line over a Unix socket under the node's root (mode 0600), each a
pydantic model of ``server.control.protocol``; long commands stream progress before their
reply. See ``server.control.server`` for the handler contract.
"""

from __future__ import annotations

from server.control.client import request, request_sync
from server.control.protocol import ProgressInfo
from server.control.server import (
    CommandHandler,
    ControlOptions,
    ProgressCallback,
    start_link,
)

__all__ = [
    "CommandHandler",
    "ControlOptions",
    "ProgressCallback",
    "ProgressInfo",
    "request",
    "request_sync",
    "start_link",
]
