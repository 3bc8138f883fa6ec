"""The node's figures in Prometheus's text format, for the monitoring operators already run.

``render_metrics()`` gives the exposition text a ``/metrics`` endpoint answers (content
type ``CONTENT_TYPE``). It is written by ``prometheus_client``: a collector reads the node
at the moment of the scrape (no message is sent, nothing is kept between scrapes) and the
library's ``generate_latest`` writes it, from a registry of this call's own: the library's
global registry is never touched. It must be called from a process of the node.

=========================================== ======= ============================================
metric                                      type    what
=========================================== ======= ============================================
``server_processes``                        gauge   live processes
``server_mailbox_messages``                 gauge   messages waiting in every mailbox
``server_process_mailbox_messages``         gauge   the ``top`` longest mailboxes, by ``pid`` and
                                                    ``name`` (registered name, or empty)
``server_supervisor_restarts_total``        counter restarts by each supervisor since it started
                                                    (``pid``, ``name``, ``module``)
``server_event_loop_lag_seconds``           gauge   how late wake-ups ran over the sampler's
                                                    window, by ``quantile`` (0.5, 0.9, 0.99, 1)
``server_event_loop_lag_samples``           gauge   the wake-ups in that window
``server_release_operations_total``         counter release operations answered by the release
                                                    handler, by ``operation`` and ``outcome``
``server_release_install_duration_seconds`` hist.   installs the release handler ran
``server_release_info``                     gauge   1, labelled with the running release
``process_resident_memory_bytes`` ...       mixed   the OS process (prometheus_client's own
                                                    process collector, from ``/proc``)
=========================================== ======= ============================================

The event-loop figures come from the ``loop_lag`` sampler and the release ones from the
release handler's tally (``server.release.install_events``): absent when either does not run.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from server import kernel
from server.behaviours import supervisor
from server.observer.loop_lag import lag_statistics
from server.release import current_release, handler
from server.release.install_events import DURATION_BUCKETS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

__all__ = ["CONTENT_TYPE", "TOP_MAILBOXES", "NodeCollector", "render_metrics"]

#: The content type of ``render_metrics``'s text (Prometheus text format 0.0.4).
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: How many of the longest mailboxes ``server_process_mailbox_messages`` lists by default.
TOP_MAILBOXES: Final = 10


class NodeCollector(Collector):
    """A ``prometheus_client`` collector reading the current node at each ``collect``."""

    def __init__(self, *, top: int = TOP_MAILBOXES) -> None:
        if top < 0:
            raise ValueError(f"top must be a whole number >= 0, not {top!r}")
        self.top = top

    def collect(self) -> Iterator[Metric]:
        """Every family of the table in the module's docstring, read now."""
        yield from self._processes()
        yield from self._event_loop()
        yield from self._releases()

    def _processes(self) -> Iterator[Metric]:
        rows: list[tuple[int, str, str]] = []  # (mailbox, pid, name)
        restarts = CounterMetricFamily(
            "server_supervisor_restarts",
            "Children restarted by each supervisor since it started.",
            labels=["pid", "name", "module"],
        )
        for pid in kernel.processes():
            info = kernel.process_info(pid)
            if info is None:
                continue
            name = info.registered_name or ""
            rows.append((info.message_queue_len, repr(pid), name))
            count = supervisor.restart_count(pid)
            if count is not None:
                module = str(dict(info.labels).get("module", ""))
                restarts.add_metric([repr(pid), name, module], count)
        yield GaugeMetricFamily("server_processes", "Live processes.", value=len(rows))
        yield GaugeMetricFamily(
            "server_mailbox_messages",
            "Messages waiting in the mailboxes of every process.",
            value=sum(row[0] for row in rows),
        )
        mailboxes = GaugeMetricFamily(
            "server_process_mailbox_messages",
            f"Messages waiting in the {self.top} longest mailboxes.",
            labels=["pid", "name"],
        )
        for length, pid_text, name in heapq.nlargest(self.top, rows):
            mailboxes.add_metric([pid_text, name], length)
        yield mailboxes
        yield restarts

    def _event_loop(self) -> Iterator[Metric]:
        stats = lag_statistics()
        if stats is None:
            return
        lag = GaugeMetricFamily(
            "server_event_loop_lag_seconds",
            f"How late the event loop ran wake-ups over the last {stats.window:g} s.",
            labels=["quantile"],
        )
        for quantile, value in (("0.5", stats.p50), ("0.9", stats.p90), ("0.99", stats.p99)):
            lag.add_metric([quantile], value)
        lag.add_metric(["1"], stats.max)
        yield lag
        yield GaugeMetricFamily(
            "server_event_loop_lag_samples",
            f"Wake-ups measured over the last {stats.window:g} s.",
            value=stats.samples,
        )

    def _releases(self) -> Iterator[Metric]:
        running = current_release()
        if running is not None:
            info = GaugeMetricFamily(
                "server_release_info", "The release the node runs.", labels=["name", "vsn"]
            )
            info.add_metric(list(running), 1)
            yield info
        stats = handler.install_statistics()
        if stats is None:
            return
        operations = CounterMetricFamily(
            "server_release_operations",
            "Release operations answered by the release handler since it started.",
            labels=["operation", "outcome"],
        )
        for operation, outcome, count in stats.operations:
            operations.add_metric([operation, outcome], count)
        yield operations
        buckets: list[tuple[str, float]] = [
            (f"{bound:g}", count)
            for bound, count in zip(DURATION_BUCKETS, stats.install_buckets, strict=True)
        ]
        buckets.append(("+Inf", stats.install_count))
        yield HistogramMetricFamily(
            "server_release_install_duration_seconds",
            "How long the installs run by the release handler took, start to answer.",
            buckets=buckets,
            sum_value=stats.install_seconds,
        )


def render_metrics(*, top: int = TOP_MAILBOXES) -> bytes:
    """The node's metrics now, in Prometheus's text exposition format.

    Args:
        top: how many of the longest mailboxes to list by pid.

    Raises:
        ValueError: ``top`` is negative.
        ProcessError: no node runs in this OS process.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(top=top))
    ProcessCollector(registry=registry)
    return generate_latest(registry)
