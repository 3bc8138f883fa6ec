"""Release operations as events: one structured log record each, and a tally for metrics.

Each install, install by restart, make_permanent, remove and rollback logs exactly one
record on the ``server.release`` logger whose ``extra`` facts a log shipper reads (the CLI's
``--log-format json`` writes them as one JSON object per line):

- ``event``: ``release_install``, ``release_install_by_restart``,
  ``release_make_permanent``, ``release_remove`` or ``release_rollback``;
- ``release`` (the release's name), ``from_vsn``, ``to_vsn``;
- ``duration``: seconds from the request to its answer;
- ``outcome``: ``ok``; ``refused`` (nothing was changed); or, for an install that failed
  past its point of no return, ``InstallFailed.outcome`` (``rolled_back``, ``restarting``);
- ``error``: the error's message, only when there is one.

A fact that does not apply is left out (a remove has no ``to_vsn``), as the CLI's log
formats leave out every fact that is None.

The release handler counts each operation it answers in an ``InstallTally`` (a label of its
process, so ``handler.install_statistics()`` reads it without a message): counts by event and
outcome, and the durations of the installs its worker ran, in ``DURATION_BUCKETS``. The
counts start again from zero when the handler is started again, as a Prometheus counter of
a restarted process does. A rollback is logged by the caller's process (it is an install
and maybe a make_permanent, each counted by the handler as such).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, final

from server import kernel
from server.errors import InstallFailed

if TYPE_CHECKING:
    from server.kernel import Pid

__all__ = [
    "DURATION_BUCKETS",
    "Event",
    "InstallStatistics",
    "InstallTally",
    "event_fields",
    "outcome_of",
    "tally_of",
]

#: What a release operation is, in an event's ``event`` field (less its ``release_`` prefix).
Event = Literal["install", "install_by_restart", "make_permanent", "remove", "rollback"]

#: Upper bounds (seconds) of the install duration histogram's buckets (``+Inf`` follows).
DURATION_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_LABEL: Final = "_install_tally"


def outcome_of(error: BaseException | None) -> str:
    """An event's ``outcome``: ``ok``, ``InstallFailed.outcome``, else ``refused``."""
    if error is None:
        return "ok"
    if isinstance(error, InstallFailed):
        return error.outcome
    return "refused"


def event_fields(
    event: Event,
    *,
    release: str | None,
    from_vsn: str | None,
    to_vsn: str | None,
    duration: float,
    error: BaseException | None = None,
) -> dict[str, object]:
    """The ``extra`` facts of the one log record of a release operation."""
    fields: dict[str, object] = {
        "event": f"release_{event}",
        "release": release,
        "from_vsn": from_vsn,
        "to_vsn": to_vsn,
        "duration": round(duration, 6),
        "outcome": outcome_of(error),
    }
    if error is not None:
        fields["error"] = str(error)
    return fields


@final
@dataclass(frozen=True, slots=True)
class InstallStatistics:
    """The release handler's tally at one moment.

    Attributes:
        operations: ``(event, outcome, count)`` for every pair seen, sorted.
        install_buckets: for each bound of ``DURATION_BUCKETS``, how many installs took at
            most that long (cumulative, as a Prometheus histogram counts).
        install_count: installs run by the handler's worker (the histogram's count).
        install_seconds: their durations summed.
    """

    operations: tuple[tuple[str, str, int], ...]
    install_buckets: tuple[int, ...]
    install_count: int
    install_seconds: float


class InstallTally:
    """What the release handler counts as it answers release operations (its own label)."""

    __slots__ = ("_buckets", "_count", "_operations", "_seconds")

    def __init__(self) -> None:
        self._operations: dict[tuple[str, str], int] = {}
        self._buckets = [0] * len(DURATION_BUCKETS)
        self._count = 0
        self._seconds = 0.0

    def count(self, fields: dict[str, object], *, timed: bool = False) -> None:
        """Count the operation ``fields`` (from ``event_fields``) describes.

        ``timed``: it is an install the worker ran, whose duration goes to the histogram.
        """
        key = (str(fields["event"]).removeprefix("release_"), str(fields["outcome"]))
        self._operations[key] = self._operations.get(key, 0) + 1
        if timed:
            duration = fields["duration"]
            assert isinstance(duration, float | int)
            self._count += 1
            self._seconds += duration
            index = bisect.bisect_left(DURATION_BUCKETS, duration)  # le is inclusive
            if index < len(DURATION_BUCKETS):  # past the last bound: only +Inf counts it
                self._buckets[index] += 1

    def statistics(self) -> InstallStatistics:
        """The tally as a frozen record."""
        cumulative: list[int] = []
        running = 0
        for n in self._buckets:
            running += n
            cumulative.append(running)
        operations = tuple(sorted((e, o, n) for (e, o), n in self._operations.items()))
        return InstallStatistics(operations, tuple(cumulative), self._count, self._seconds)

    def attach(self) -> None:
        """Make this the tally of the calling process (the handler, in its ``init``)."""
        kernel.set_label(_LABEL, self)


def tally_of(pid: Pid) -> InstallTally | None:
    """The tally ``pid`` attached, or None."""
    tally = kernel.get_label(pid, _LABEL)
    return tally if isinstance(tally, InstallTally) else None
