"""Release handling across a cluster: what every node runs, and (later) the rollout.

Built on each node's own release handler, reached through the distribution: every
distributed node runs a ``release_agent`` that answers for its release handler.
"""

from __future__ import annotations

from server.cluster._agent import AGENT, start_agent
from server.cluster._view import ClusterReleases, NodeReleases, cluster_releases

__all__ = ["AGENT", "ClusterReleases", "NodeReleases", "cluster_releases", "start_agent"]
