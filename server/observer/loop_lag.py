"""Event-loop lag: how late a periodic wake-up runs, over the last minutes.

Every process of a node shares one event loop, so a process that computes without awaiting
(or a long GC pause, or a blocking call) delays every other. The sampler measures that
delay the way a user feels it: it asks to be woken at a moment and notes how late it ran.

How this works:

1. ``start_link`` spawns the sampler, registered ``loop_lag`` (``NAME``), linked to the
   caller (the node's boot process starts it for the node's whole life).
2. The sampler sleeps until a deadline ``interval`` seconds ahead on anyio's clock (the
   loop's), then records ``now - deadline`` (clamped at 0: the loop may run a timer a
   clock tick early) into a ``LagHistory``. The next deadline is counted from when it woke,
   so a long stall gives one large sample, not a burst of catch-up ones.
3. ``LagHistory`` is the pure core: samples older than ``window`` seconds are dropped as
   new ones arrive; ``statistics(now)`` sorts what is left once and gives percentiles
   (nearest rank), the maximum and a series of ``bucket``-second buckets (max and p99 each).
4. The history is the sampler's label (private: hidden from ``process_info``), so
   ``lag_statistics()`` reads it without a message round trip: a metrics scrape or an
   observer page costs the sampler nothing.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

import anyio

from server import kernel
from server.errors import RegistrationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from server.kernel import Pid

__all__ = [
    "BUCKET",
    "INTERVAL",
    "NAME",
    "WINDOW",
    "LagBucket",
    "LagHistory",
    "LagStatistics",
    "lag_statistics",
    "start_link",
]

#: The sampler's registered name.
NAME: Final = "loop_lag"

#: Seconds between two wake-ups of the sampler.
INTERVAL: Final = 0.1

#: Seconds of history kept.
WINDOW: Final = 300.0

#: Seconds covered by one bucket of the time series.
BUCKET: Final = 10.0

_LABEL: Final = "_loop_lag_history"
_STARTED: Final = "loop_lag_started"


@final
@dataclass(frozen=True, slots=True)
class LagBucket:
    """The samples of one ``BUCKET``-second slice of the history.

    Attributes:
        ago: seconds from the start of the slice to the moment the statistics were taken.
        samples: how many wake-ups fell in it.
        max: the largest lag in it, in seconds.
        p99: its 99th percentile lag, in seconds.
    """

    ago: float
    samples: int
    max: float
    p99: float


@final
@dataclass(frozen=True, slots=True)
class LagStatistics:
    """How late the loop ran wake-ups over the last ``window`` seconds (lags in seconds).

    ``samples`` is 0 (and every figure 0.0) before the first wake-up. ``series`` is oldest
    first.
    """

    samples: int
    p50: float
    p90: float
    p99: float
    max: float
    interval: float
    window: float
    series: tuple[LagBucket, ...]


def _rank(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted, non-empty ``ordered``."""
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[index]


class LagHistory:
    """The samples of the last ``window`` seconds: a pure core with no event loop."""

    __slots__ = ("_samples", "bucket", "interval", "window")

    def __init__(
        self, *, interval: float = INTERVAL, window: float = WINDOW, bucket: float = BUCKET
    ) -> None:
        if not (interval > 0 and window > 0 and bucket > 0):
            raise ValueError(
                f"interval, window and bucket must be > 0 seconds, not "
                f"{interval!r}, {window!r}, {bucket!r}"
            )
        self.interval = interval
        self.window = window
        self.bucket = bucket
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, at: float, lag: float) -> None:
        """Record that the wake-up due before ``at`` ran ``lag`` seconds late."""
        samples = self._samples
        samples.append((at, max(0.0, lag)))
        horizon = at - self.window
        while samples and samples[0][0] < horizon:
            samples.popleft()

    def statistics(self, now: float) -> LagStatistics:
        """The percentiles, maximum and time series of the samples in the window at ``now``."""
        horizon = now - self.window
        kept = [(at, lag) for at, lag in self._samples if at >= horizon]
        if not kept:
            return LagStatistics(0, 0.0, 0.0, 0.0, 0.0, self.interval, self.window, ())
        ordered = sorted(lag for _, lag in kept)
        slices: dict[int, list[float]] = {}
        for at, lag in kept:
            slices.setdefault(math.floor(at / self.bucket), []).append(lag)
        series = []
        for index in sorted(slices):
            lags = sorted(slices[index])
            start = index * self.bucket
            series.append(LagBucket(now - start, len(lags), lags[-1], _rank(lags, 0.99)))
        return LagStatistics(
            samples=len(ordered),
            p50=_rank(ordered, 0.50),
            p90=_rank(ordered, 0.90),
            p99=_rank(ordered, 0.99),
            max=ordered[-1],
            interval=self.interval,
            window=self.window,
            series=tuple(series),
        )


async def start_link(*, interval: float = INTERVAL, window: float = WINDOW) -> Pid:
    """Start the sampler, registered ``loop_lag`` and linked to the calling process.

    Raises:
        ValueError: ``interval`` or ``window`` is not a positive number of seconds.
        RegistrationError: a sampler runs already on this node.
    """
    history = LagHistory(interval=interval, window=window)
    holder = kernel.whereis(NAME)
    if holder is not None:  # checked first: nothing is spawned for a refusal
        raise RegistrationError(NAME, f"the name is taken by {holder}")
    pid = kernel.spawn_link(_sample, kernel.self(), history)
    kernel.register(NAME, pid)  # in the same step as the spawn: nothing ran in between
    await kernel.receive(lambda m: m == (_STARTED, pid))
    return pid


async def _sample(parent: Pid, history: LagHistory) -> None:
    kernel.set_label("behaviour", "loop_lag_sampler")
    kernel.set_label(_LABEL, history)
    kernel.send(parent, (_STARTED, kernel.self()))
    interval = history.interval
    while True:
        due = anyio.current_time() + interval
        await anyio.sleep_until(due)
        now = anyio.current_time()
        history.add(now, now - due)


def lag_statistics() -> LagStatistics | None:
    """The sampler's figures at this moment, or None when no sampler runs on this node."""
    pid = kernel.whereis(NAME)
    if pid is None:
        return None
    history = kernel.get_label(pid, _LABEL)
    if not isinstance(history, LagHistory):
        return None
    return history.statistics(anyio.current_time())
