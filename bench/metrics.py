"""What a metrics scrape and a ``server top`` refresh cost a node, against a bare table pass.

On a fresh in-process node with N idle processes (twenty with messages waiting) and the
lag sampler, each measured in the same run:

- ``baseline``: one pass over the process table reading each ``process_info`` (the least any
  view of every process costs);
- ``render_metrics``: ``server.observer.metrics.render_metrics()``, the ``/metrics`` text;
- ``top_view``: ``server.observer.top.top_view()``, one ``server top`` refresh on the node.

Each figure is the median of several repeats, interleaved with the baseline's, in ms; the
ratio is over the baseline. Run from the repository root::

    .venv/bin/python bench/metrics.py              # N = 1,000 and 10,000
    .venv/bin/python bench/metrics.py --sizes 100000

One JSON object per line on stdout; a human summary on stderr.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import time
from typing import TYPE_CHECKING

import anyio

from server import kernel
from server.kernel import Node
from server.observer import loop_lag
from server.observer.metrics import render_metrics
from server.observer.top import top_view

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

REPEATS = 9


async def _idle() -> None:
    await kernel.receive(lambda _: False)


def _baseline() -> None:
    for pid in kernel.processes():
        kernel.process_info(pid)


async def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    result = fn()
    if inspect.isawaitable(result):
        await result
    return (time.perf_counter() - started) * 1000


async def _measure(size: int) -> dict[str, float]:
    await loop_lag.start_link()
    pids = [kernel.spawn(_idle) for _ in range(size)]
    for n, pid in enumerate(pids[:20]):
        for _ in range(n):
            kernel.send(pid, "waiting")
    figures: dict[str, list[float]] = {"baseline": [], "render_metrics": [], "top_view": []}
    runs: dict[str, Callable[[], object | Awaitable[object]]] = {
        "baseline": _baseline,
        "render_metrics": render_metrics,
        "top_view": top_view,
    }
    for fn in runs.values():
        await _timed(fn)  # warm-up
    for _ in range(REPEATS):
        for name, fn in runs.items():
            figures[name].append(await _timed(fn))
    return {name: statistics.median(values) for name, values in figures.items()}


async def _run(sizes: list[int]) -> None:
    for size in sizes:
        async with Node(name="bench") as node:
            figures = await node.run_process(_measure, size)
        assert isinstance(figures, dict)
        base = figures["baseline"]
        for name in ("render_metrics", "top_view"):
            row = {
                "bench": name,
                "processes": size,
                "ms": round(figures[name], 3),
                "baseline_ms": round(base, 3),
                "ratio": round(figures[name] / base, 2),
            }
            print(json.dumps(row), flush=True)
            print(
                f"{name:>15} with {size:>7} processes: {figures[name]:8.2f} ms "
                f"(a bare table pass {base:.2f} ms, x{figures[name] / base:.1f})",
                file=sys.stderr,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    args = parser.parse_args()
    anyio.run(_run, args.sizes, backend="asyncio")


if __name__ == "__main__":
    main()
