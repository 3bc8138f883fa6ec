"""The pure restart-intensity core, exactly as OTP counts (OTP semantics 7.4).

Synchronous: no event loop, no process. ``add_restart(restarts, now, intensity, period)``
drops timestamps older than ``now - period`` (inclusive window), adds ``now`` in whole
seconds, and says "stop" when the count is strictly greater than ``intensity``.
"""

from __future__ import annotations

import pytest

from server.behaviours._restart_intensity import add_restart


@pytest.mark.parametrize(
    ("restarts", "now", "intensity", "period", "kept", "exceeded"),
    [
        pytest.param((), 0.0, 0, 5, (0,), True, id="intensity0-first-restart-stops"),
        pytest.param((), 0.0, 1, 5, (0,), False, id="intensity1-first-restart-allowed"),
        pytest.param((0,), 1.0, 1, 5, (0, 1), True, id="intensity1-second-within-window"),
        pytest.param((0, 1), 2.0, 2, 5, (0, 1, 2), True, id="intensity2-third-within-window"),
        pytest.param((0,), 2.0, 2, 5, (0, 2), False, id="count-equal-to-intensity-is-allowed"),
        pytest.param((0,), 5.0, 1, 5, (0, 5), True, id="window-is-inclusive-at-now-minus-period"),
        pytest.param((0,), 6.0, 1, 5, (6,), False, id="older-than-the-period-is-dropped"),
        pytest.param((0,), 5.999, 1, 5, (0, 5), True, id="now-in-whole-seconds-truncated"),
        pytest.param((10,), 10.2, 1, 5, (10, 10), True, id="same-second-counts-twice"),
        pytest.param((0, 3, 7), 9.0, 2, 5, (7, 9), False, id="only-the-window-counts"),
        pytest.param((0, 3, 7), 8.0, 2, 5, (3, 7, 8), True, id="three-in-window-over-two"),
        pytest.param((100,), 100_000.5, 3, 60, (100_000,), False, id="long-quiet-resets"),
    ],
)
def test_add_restart(
    restarts: tuple[int, ...],
    now: float,
    intensity: int,
    period: float,
    kept: tuple[int, ...],
    exceeded: bool,
) -> None:
    assert add_restart(restarts, now, intensity, period) == (kept, exceeded)


def test_timestamps_are_whole_seconds() -> None:
    restarts, _ = add_restart((), 1234.987, 5, 5)
    assert restarts == (1234,)
    assert all(type(t) is int for t in restarts)


def test_the_input_is_not_mutated() -> None:
    original = (1, 2)
    add_restart(original, 3.0, 5, 5)
    assert original == (1, 2)


def test_spread_out_restarts_never_accumulate() -> None:
    """One restart every period + 1 seconds: the count never exceeds 1."""
    restarts: tuple[int, ...] = ()
    for n in range(20):
        restarts, exceeded = add_restart(restarts, n * 6.0, 1, 5)
        assert not exceeded, f"restart {n}"
        assert restarts == (n * 6,)


def test_a_burst_stops_at_intensity_plus_one() -> None:
    for intensity in range(6):
        restarts: tuple[int, ...] = ()
        outcomes = []
        for _ in range(intensity + 1):
            restarts, exceeded = add_restart(restarts, 42.0, intensity, 5)
            outcomes.append(exceeded)
        assert outcomes == [False] * intensity + [True], f"intensity {intensity}"
