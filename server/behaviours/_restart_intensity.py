"""Restart intensity bookkeeping, exactly as OTP counts it (a pure core, no event loop).

Every restart *attempt* is counted before it is made. Timestamps older than
``now - period`` are dropped (the window is inclusive), the new one is added, and the
caller gives up when the count is then strictly greater than ``intensity``.

``record_restart`` is the sliding window itself, over times in whatever unit the caller
keeps (the heart: seconds of monotonic time as floats). ``add_restart`` is the supervisor's
use of it: whole seconds, as OTP's supervisor counts. The count is per supervisor, not per
child.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["add_restart", "record_restart"]

_Time = TypeVar("_Time", bound=float)


def record_restart(
    restarts: tuple[_Time, ...], now: _Time, *, intensity: int, period: float
) -> tuple[tuple[_Time, ...], bool]:
    """Record a restart at ``now`` in the sliding window of the last ``period`` time units.

    Returns:
        The times still in the window, ``now`` included, and True when there are more than
        ``intensity`` of them (the caller must give up).
    """
    kept: tuple[_Time, ...] = tuple(t for t in restarts if t >= now - period)
    updated: tuple[_Time, ...] = (*kept, now)
    return updated, len(updated) > intensity


def add_restart(
    restarts: tuple[int, ...], now: float, intensity: int, period: float
) -> tuple[tuple[int, ...], bool]:
    """Record a restart at ``now`` (seconds), counted in whole seconds as a supervisor does.

    Returns:
        The new timestamps, and True when the limit is exceeded (the supervisor must stop).
    """
    return record_restart(restarts, int(now), intensity=intensity, period=period)
