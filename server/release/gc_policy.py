"""The node's policy for Python's cyclic garbage collector (``[node.gc]`` of sys.config).

Why: a full (generation 2) collection looks at every object the collector tracks, and
with 100,000 processes that is millions of objects: one full collection held the event
loop, hence every process of the node, for 0.3-0.75 s. What a node builds at boot and
what an install leaves behind mostly lives as long as the node, so looking at it again
and again finds nothing.

The policy:

1. ``freeze`` (the default): once the boot is done, a full collection runs and
   ``gc.freeze()`` moves every surviving object to the permanent generation, which no
   collection looks at; after each install has committed, the youngest generation is
   collected and what survives is frozen again (an install re-parks every process it
   touched: a full collection there would look at all of them, a stall in itself). Later
   collections only look at what was made since. Frozen objects are still freed by
   reference counting; only a *cycle* among them that becomes garbage stays until
   ``refreeze`` (its memory is the cost: ``bench/soak.py --gc`` measures it).
2. ``refreeze`` (default 16; 0: never): every that many installs, ``gc.unfreeze()`` and a
   full collection first, which looks at everything once (one long pause, at an install:
   a moment the operator chose) and frees the frozen cycles that became garbage. Those
   are mostly the module versions an install purges (a module and its functions are a
   cycle): without it the demo's soak grew ~88 kB per install, for ever.
3. ``defer_full`` (the default): no automatic full collection while an install runs
   (``deferred``; young collections go on): with 100,000 processes each parked on objects
   made since the last freeze, one would hold the loop for hundreds of milliseconds in the
   middle of it. The install's ``settle`` freezes what piled up instead.
4. ``thresholds``: ``gc.set_threshold`` at boot (Python's are ``[700, 10, 10]``).
5. ``pace`` (default 0.05 s; 0: off): the node collects the young generations itself, at
   that pace on the event loop (``start_pacing``: generation 0 each time, generation 1
   every fifth). Why: CPython starts a young collection when *allocations minus
   deallocations* pass a threshold, so a node that frees as much as it makes (processes
   woken all at once, each replacing what it holds by a new object) never triggers one,
   however long the young list grows; the first collection that does come walks it all.
   Measured: after 100,000 processes were suspended and resumed by messages, 782,882
   objects waited in generation 0 with a count of about 100, and the next install's first
   young collection held the loop 136-245 ms. Paced, the young generations stay short and
   each collection takes microseconds to a few milliseconds.

``configure`` and ``start_pacing`` are called by the node's boot; ``settle`` by the boot
and the installer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

__all__ = [
    "GcPolicy",
    "Pacer",
    "Settled",
    "configure",
    "current",
    "deferred",
    "settle",
    "start_pacing",
]

#: a paced collection of generation 1 every this many (the others: generation 0)
MIDDLE_EVERY = 5

# a generation-2 threshold no count of generation-1 collections reaches
_NEVER = 1 << 30

logger = logging.getLogger("server.release")


@final
@dataclass(frozen=True, slots=True)
class GcPolicy:
    """What the node does with the cyclic GC (see the module docstring)."""

    freeze: bool = True
    refreeze: int = 16
    defer_full: bool = True
    thresholds: tuple[int, int, int] | None = None
    pace: float = 0.05

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> GcPolicy:
        """The policy of a ``[node.gc]`` table (``GcSettings.model_dump()``)."""
        thresholds = settings.get("thresholds")
        young, middle, full = thresholds if thresholds is not None else (0, 0, 0)
        return cls(
            freeze=bool(settings.get("freeze", True)),
            refreeze=int(settings.get("refreeze", 16)),
            defer_full=bool(settings.get("defer_full", True)),
            thresholds=None if thresholds is None else (int(young), int(middle), int(full)),
            pace=float(settings.get("pace", 0.05)),
        )


@final
@dataclass(frozen=True, slots=True)
class Settled:
    """What one ``settle`` did: objects freed by its collection, and its seconds."""

    collected: int
    seconds: float
    unfrozen: bool


_policy = GcPolicy()
_freezes = 0


def configure(policy: GcPolicy) -> None:
    """Make ``policy`` the node's (thresholds apply at once)."""
    global _policy, _freezes
    _policy = policy
    _freezes = 0
    if policy.thresholds is not None:
        gc.set_threshold(*policy.thresholds)


def current() -> GcPolicy:
    """The policy in force."""
    return _policy


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """No automatic full collection inside the block (when the policy defers them)."""
    if not _policy.defer_full:
        yield
        return
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, _NEVER)
    try:
        yield
    finally:
        now = gc.get_threshold()
        gc.set_threshold(now[0], now[1], full if now[2] == _NEVER else now[2])


def settle(why: str, *, full: bool = False) -> Settled | None:
    """After the boot (``full``) or an install: collect, then freeze what survives.

    A ``full`` settle collects every generation (once, at boot); after an install only the
    youngest is collected, unless ``refreeze`` says this one unfreezes everything first.

    Returns:
        What it did, or None when the policy does not freeze.
    """
    global _freezes
    policy = _policy
    if not policy.freeze:
        return None
    began = time.perf_counter()
    unfrozen = False
    if not full:
        _freezes += 1
        unfrozen = policy.refreeze > 0 and not _freezes % policy.refreeze
        if unfrozen:
            gc.unfreeze()
    collected = gc.collect() if full or unfrozen else gc.collect(0)
    gc.freeze()
    # (not gc.get_freeze_count(): it counts the frozen objects one by one)
    done = Settled(collected, time.perf_counter() - began, unfrozen)
    logger.debug(
        "gc after %s: %d collected, %.1f ms%s",
        why,
        done.collected,
        done.seconds * 1e3,
        " (unfrozen first)" if unfrozen else "",
    )
    return done


@final
class Pacer:
    """The young collections a node makes at its policy's pace (``start_pacing``).

    ``collections`` counts them; ``on_tick`` (if given) is called after each, with the
    generation collected.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pace: float,
        on_tick: Callable[[int], None] | None = None,
    ) -> None:
        self.loop = loop
        self.pace = pace
        self.on_tick = on_tick
        self.collections = 0
        self._handle: asyncio.TimerHandle | None = loop.call_later(pace, self._tick)

    def _tick(self) -> None:
        self.collections += 1
        generation = 1 if self.collections % MIDDLE_EVERY == 0 else 0
        gc.collect(generation)
        self._handle = self.loop.call_later(self.pace, self._tick)
        if self.on_tick is not None:
            self.on_tick(generation)

    def stop(self) -> None:
        """No more paced collections (the node is stopping)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def start_pacing(on_tick: Callable[[int], None] | None = None) -> Pacer | None:
    """Collect the young generations at the policy's ``pace`` on the running event loop.

    Returns:
        The pacer (``stop`` it when the node stops), or None when ``pace`` is 0 or the
        collector is disabled.
    """
    pace = _policy.pace
    if pace <= 0 or not gc.isenabled():
        return None
    return Pacer(asyncio.get_running_loop(), pace, on_tick)
