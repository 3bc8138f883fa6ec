"""Restart intensity bookkeeping, exactly as OTP counts it (a pure core, no event loop).

Every restart *attempt* is counted before it is made, in whole seconds of monotonic time.
Timestamps older than ``now - period`` are dropped (the window is inclusive), the new one is
added, and the supervisor gives up when the count is then strictly greater than
``intensity``. The count is per supervisor, not per child.
"""

from __future__ import annotations

__all__ = ["add_restart"]


def add_restart(
    restarts: tuple[int, ...], now: float, intensity: int, period: float
) -> tuple[tuple[int, ...], bool]:
    """Record a restart at ``now`` (seconds).

    Returns:
        The new timestamps, and True when the limit is exceeded (the supervisor must stop).
    """
    second = int(now)
    kept = tuple(t for t in restarts if t >= second - period)
    updated = (*kept, second)
    return updated, len(updated) > intensity
