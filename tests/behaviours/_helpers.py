"""The behaviour tests' waits: the shared ones of ``tests._support.waits``."""

from __future__ import annotations

from tests._support.waits import (
    STEP,
    Matcher,
    down,
    down_of,
    drain,
    exit_from,
    idle,
    queue_len,
    reason_of,
    recv,
    step,
    tagged,
    trapped,
    within,
)

__all__ = [
    "STEP",
    "Matcher",
    "down",
    "down_of",
    "drain",
    "exit_from",
    "idle",
    "queue_len",
    "reason_of",
    "recv",
    "step",
    "tagged",
    "trapped",
    "within",
]
