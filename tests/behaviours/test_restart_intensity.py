"""The pure restart-intensity core, exactly as OTP counts (OTP semantics 7.4).

Synchronous: no event loop, no process. ``record_restart(restarts, now, intensity=...,
period=...)`` drops timestamps older than ``now - period`` (inclusive window), adds ``now``,
and says "stop" when the count is strictly greater than ``intensity``; the heart uses it on
float seconds. ``add_restart`` is the supervisor's use of it, in whole seconds.
"""

from __future__ import annotations

import pytest

from server.behaviours import add_restart, record_restart


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


# --- the sliding window over float seconds, as the heart counts ----------------------------


def window(times: list[float], *, intensity: int, period: float) -> list[bool]:
    """Feed restart times one by one; say after each whether the caller gives up."""
    kept: tuple[float, ...] = ()
    verdicts = []
    for now in times:
        kept, over = record_restart(kept, now, intensity=intensity, period=period)
        verdicts.append(over)
    return verdicts


@pytest.mark.parametrize(
    ("times", "intensity", "period", "verdicts"),
    [
        ([0, 1, 2], 2, 60, [False, False, True]),
        ([0, 100, 200, 300, 400], 2, 60, [False] * 5),
        ([0, 30, 61, 62], 2, 60, [False, False, False, True]),
        ([0, 60], 1, 60, [False, True]),
        ([0, 60.5], 1, 60, [False, False]),
        ([5], 0, 60, [True]),
        ([0, 10, 20, 100, 110, 120], 2, 60, [False, False, True, False, False, True]),
    ],
    ids=[
        "three-at-once-over-two",
        "spread-beyond-the-period",
        "old-ones-leave-the-window",
        "edge-of-window-counts",
        "just-past-the-edge-drops",
        "zero-restarts-allowed",
        "window-refills-after-a-quiet-spell",
    ],
)
def test_sliding_window(
    times: list[float], intensity: int, period: float, verdicts: list[bool]
) -> None:
    assert window(times, intensity=intensity, period=period) == verdicts


def test_window_keeps_only_recent_times() -> None:
    kept, over = record_restart((0.0, 10.0, 50.0), 65.0, intensity=5, period=60.0)
    assert kept == (10.0, 50.0, 65.0)
    assert not over


def test_float_times_are_kept_as_they_are() -> None:
    kept, _ = record_restart((), 1234.987, intensity=5, period=5)
    assert kept == (1234.987,)
