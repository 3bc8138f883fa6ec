"""The observer: a live view of a node (and its cluster), its metrics and its loop lag.

``start_link`` serves the web view (the node's boot starts it under its own supervisor,
``start_supervisor``, when sys.config has a ``[node.observer]`` table); ``observer_url``
is its address with the token. The snapshot functions (``process_rows``,
``supervision_trees``, ``code_rows``...) are what the pages and the CLI's ``processes``,
``tree`` and ``code`` show. ``lag_statistics`` reads the event-loop lag sampler
(``server.observer.loop_lag``, started by every node's boot); ``render_metrics`` is the
Prometheus text the view serves at ``/metrics``; ``top_view`` the table of ``server top``.
"""

from __future__ import annotations

from server.observer._service import (
    NAME,
    SUPERVISOR,
    observer_url,
    start_link,
    start_supervisor,
    subscribe,
)
from server.observer._snapshot import (
    code_rows,
    find_process,
    memory_bytes,
    node_rows,
    overview,
    process_detail,
    process_rows,
    release_rows,
    supervision_trees,
)
from server.observer._web import VIEWS, view
from server.observer.loop_lag import LagBucket, LagStatistics, lag_statistics
from server.observer.metrics import render_metrics
from server.observer.top import top_view

__all__ = [
    "NAME",
    "SUPERVISOR",
    "VIEWS",
    "LagBucket",
    "LagStatistics",
    "code_rows",
    "find_process",
    "lag_statistics",
    "memory_bytes",
    "node_rows",
    "observer_url",
    "overview",
    "process_detail",
    "process_rows",
    "release_rows",
    "render_metrics",
    "start_link",
    "start_supervisor",
    "subscribe",
    "supervision_trees",
    "top_view",
    "view",
]
