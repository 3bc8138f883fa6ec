"""The event-loop lag sampler: its pure history, and the sampler on a loop whose clock is ours.

On virtual time the loop's clock moves only when nothing is ready (straight to the next
timer, so an idle wake-up is exactly on time) or when a test moves it by hand while it
holds the loop: that is a stall of a known length, and the sampler must see exactly it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio
import pytest

from server import kernel
from server.errors import RegistrationError
from server.kernel.virtual_time import VirtualTimeEventLoop
from server.observer import loop_lag
from server.observer.loop_lag import LagBucket, LagHistory
from tests._support.waits import down, step

if TYPE_CHECKING:
    from server.kernel import Node


def test_percentiles_are_nearest_rank() -> None:
    history = LagHistory(interval=0.1, window=300.0, bucket=10.0)
    for i in range(100):  # lags 0.001 .. 0.100 s, one a tenth of a second apart
        history.add(i / 10, (i + 1) / 1000)
    stats = history.statistics(9.9)
    assert stats.samples == 100
    assert (stats.p50, stats.p90, stats.p99, stats.max) == (0.050, 0.090, 0.099, 0.100)
    assert stats.series == (LagBucket(ago=9.9, samples=100, max=0.100, p99=0.099),)


def test_the_window_drops_old_samples_and_buckets_are_oldest_first() -> None:
    history = LagHistory(interval=1.0, window=30.0, bucket=10.0)
    history.add(5.0, 0.5)  # falls out of the window once a sample at 35.0+ arrives
    history.add(12.0, 0.2)
    history.add(25.0, 0.3)
    history.add(36.0, 0.1)
    stats = history.statistics(36.0)
    assert stats.samples == 3
    assert stats.max == 0.3
    assert [(b.ago, b.samples, b.max) for b in stats.series] == [
        (26.0, 1, 0.2),
        (16.0, 1, 0.3),
        (6.0, 1, 0.1),
    ]
    # read later, the window has moved on even without new samples
    assert history.statistics(56.0).samples == 1


def test_no_sample_yet_gives_zeros() -> None:
    stats = LagHistory().statistics(0.0)
    assert (stats.samples, stats.p99, stats.max, stats.series) == (0, 0.0, 0.0, ())
    assert (stats.interval, stats.window) == (loop_lag.INTERVAL, loop_lag.WINDOW)


def test_an_early_timer_counts_as_on_time() -> None:
    history = LagHistory()
    history.add(1.0, -0.0001)  # the loop ran the timer within its clock resolution
    assert history.statistics(1.0).max == 0.0


@pytest.mark.parametrize(
    ("interval", "window", "bucket"), [(0.0, 1.0, 1.0), (0.1, -1.0, 1.0), (0.1, 1.0, 0.0)]
)
def test_bad_settings_are_refused(interval: float, window: float, bucket: float) -> None:
    with pytest.raises(ValueError, match="must be > 0 seconds"):
        LagHistory(interval=interval, window=window, bucket=bucket)


@pytest.mark.virtual_time
async def test_the_sampler_sees_a_stall_of_known_length(node: Node) -> None:
    # every figure a sum of powers of two: the virtual clock adds them up exactly
    async def body() -> None:
        assert loop_lag.lag_statistics() is None  # no sampler yet
        sampler = await loop_lag.start_link(interval=0.125, window=60.0)
        assert kernel.whereis(loop_lag.NAME) is sampler
        await anyio.sleep(1.0625)  # virtual seconds: eight wake-ups, each exactly on time
        calm = loop_lag.lag_statistics()
        assert calm is not None
        assert (calm.samples, calm.max, calm.interval, calm.window) == (8, 0.0, 0.125, 60.0)
        # hold the loop while its clock moves 0.375 s (a computation that never awaits, as
        # the sampler sees it): its wake-up due at 1.125 runs at 1.4375, 0.3125 s late
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeEventLoop)
        loop.advance(0.375)
        await anyio.sleep(0.5625)  # virtual seconds: the late wake-up, then four on time
        stalled = loop_lag.lag_statistics()
        assert stalled is not None
        assert (stalled.samples, stalled.max, stalled.p50) == (8 + 1 + 4, 0.3125, 0.0)
        assert stalled.p99 == 0.3125  # one sample in 13 is above the 99th percentile's rank
        assert sum(b.samples for b in stalled.series) == stalled.samples
        assert max(b.max for b in stalled.series) == stalled.max
        with pytest.raises(RegistrationError, match="'loop_lag'"):
            await loop_lag.start_link()
        assert kernel.whereis(loop_lag.NAME) is sampler  # the refusal changed nothing
        kernel.unlink(sampler)
        ref = kernel.monitor(sampler)
        kernel.exit(sampler, kernel.SHUTDOWN)
        with step("sampler stops"):
            await down(ref)
        assert loop_lag.lag_statistics() is None

    await node.run_process(body)


async def test_the_sampler_is_ready_when_started(node: Node) -> None:
    async def body() -> None:
        sampler = await loop_lag.start_link()
        stats = loop_lag.lag_statistics()
        assert stats is not None  # readable at once, before its first wake-up
        assert (stats.samples, stats.interval) == (0, loop_lag.INTERVAL)
        info = kernel.process_info(sampler)
        assert info is not None
        assert dict(info.labels) == {"behaviour": "loop_lag_sampler"}  # the history is private

    await node.run_process(body)
