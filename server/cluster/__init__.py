"""Release handling across a cluster: what every node runs, the rollout, the reconcile.

Built on each node's own release handler, reached through the distribution: every
distributed node runs a ``release_agent`` that answers for its release handler; a rollout
or a reconcile, driven from any node, goes through those agents.
"""

from __future__ import annotations

from server.cluster._agent import AGENT, start_agent
from server.cluster._health import HealthCheck, parse_check
from server.cluster._reconcile import ReconciledNode, ReconcileReport, reconcile
from server.cluster._rollout import (
    Failure,
    NodeRow,
    RolloutOptions,
    RolloutProgress,
    RolloutReport,
    rollout,
)
from server.cluster._view import ClusterReleases, NodeReleases, cluster_releases

__all__ = [
    "AGENT",
    "ClusterReleases",
    "Failure",
    "HealthCheck",
    "NodeReleases",
    "NodeRow",
    "ReconcileReport",
    "ReconciledNode",
    "RolloutOptions",
    "RolloutProgress",
    "RolloutReport",
    "cluster_releases",
    "parse_check",
    "reconcile",
    "rollout",
    "start_agent",
]
