"""The control socket: the node's side (``start_link``), the CLI's (``request``).

One JSON object per line over a Unix socket under the node's root (mode 0600), each a
pydantic model of ``server.control.protocol``; long commands stream progress before their
reply. See ``server.control.server`` for the handler contract.

The node's side is re-exported lazily (on first use), so that a client (the CLI) loads
only the protocol and the client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from server.control.client import request, request_sync
from server.control.protocol import ProgressInfo

if TYPE_CHECKING:
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

_SERVER_SIDE = frozenset({"CommandHandler", "ControlOptions", "ProgressCallback", "start_link"})


def __getattr__(name: str) -> Any:
    """A lazy re-export (PEP 562) of the node's side: import it, then keep the name here."""
    if name not in _SERVER_SIDE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("server.control.server"), name)
    globals()[name] = value
    return value
