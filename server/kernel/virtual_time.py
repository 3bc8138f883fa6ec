"""An asyncio event loop on virtual time, for tests of timer rules.

When nothing is ready to run, the loop does not sleep until the next timer: it moves its
clock there at once. Timeouts, ``send_after``, restart-intensity windows and grace periods
then take no real time, and a test of a 5-second window runs in microseconds. I/O still
works (the selector is polled), so only use it where no outside process must be waited on.

Use it with anyio's pytest plugin::

    @pytest.fixture
    def anyio_backend():
        return ("asyncio", {"loop_factory": VirtualTimeEventLoop})
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

__all__ = ["VirtualTimeEventLoop"]


class _JumpingSelector(selectors.DefaultSelector):
    """Polls instead of blocking, and moves the loop's clock over the would-be wait."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeEventLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        events: list[tuple[Any, int]] = super().select(0)
        if not events and timeout is not None and timeout > 0 and self.loop is not None:
            self.loop.advance(timeout)
        return events


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` jumps over idle waits."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self._virtual_now = 0.0

    def time(self) -> float:
        """Virtual seconds since the loop was made."""
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self._virtual_now += seconds
