"""What ``server top`` shows: the node's busiest processes, sorted and cut on the node.

``top_view`` is the answer of the control command ``top``: a header (release, process
count, messages waiting, resident memory, event-loop lag) and the first ``limit`` process
rows (``process_rows``: pid, name, module, mailbox, memory, messages handled, age) by one
column, largest first. It sends no message to the processes it lists (no ``sys`` call), so
asking it every second costs the node one pass over its process table.
"""

from __future__ import annotations

from typing import Any, Final

from server.errors import ControlError
from server.observer._snapshot import memory_bytes, process_rows
from server.observer.loop_lag import lag_statistics
from server.release import current_release

__all__ = ["COLUMNS", "DEFAULT_LIMIT", "SORT_KEYS", "top_view"]

#: The columns of a row, in the order ``server top`` shows them.
COLUMNS: Final = ("pid", "name", "module", "mailbox", "memory", "handled", "age")

#: The columns a view can be sorted by (largest first).
SORT_KEYS: Final = ("mailbox", "memory", "handled", "age")

#: How many rows a view has when the caller does not say.
DEFAULT_LIMIT: Final = 30


def _limit(value: object) -> int:
    try:
        limit = int(str(value))
    except ValueError:
        limit = -1
    if limit < 1:
        raise ControlError(f"top --limit takes a whole number of rows >= 1, not {value!r}")
    return limit


async def top_view(*, sort: object = "mailbox", limit: object = DEFAULT_LIMIT) -> dict[str, Any]:
    """The header and the first ``limit`` rows by ``sort``, as JSON-able data.

    The arguments come from the control request as given (text from the command line).

    Raises:
        ControlError: ``sort`` is not one of ``SORT_KEYS``, or ``limit`` not a whole
            number >= 1.
    """
    if sort not in SORT_KEYS:
        raise ControlError(f"top sorts by {', '.join(SORT_KEYS)}, not {sort!r}")
    count = _limit(limit)
    table = await process_rows()
    release = current_release()
    lag = lag_statistics()
    table.sort(key=lambda row: (-row[sort], row["pid"]))
    return {
        "release": {"name": release[0], "vsn": release[1]} if release else None,
        "processes": len(table),
        "mailbox": sum(row["mailbox"] for row in table),
        "memory": memory_bytes(),
        "lag": {"p50": lag.p50, "p99": lag.p99, "max": lag.max, "window": lag.window}
        if lag is not None and lag.samples
        else None,
        "sort": sort,
        "limit": count,
        "columns": list(COLUMNS),  # the client's headings, in order
        "rows": [{column: row[column] for column in COLUMNS} for row in table[:count]],
    }
