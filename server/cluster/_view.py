"""The cluster's releases side by side, and the nodes that disagree.

``cluster_releases`` asks this node's and every connected node's release agent at once
(each under its own timeout: a node that does not answer is reported as such, it does not
hold up the others). A node *disagrees* when the release it runs or its
permanent release is not the one most nodes have; a node that runs no release agent (an
Erlang shell connected to the cluster) is listed, never counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, final

from server import kernel
from server.cluster._agent import running_vsn
from server.cluster._calls import Answer, ask
from server.dist import Atom

__all__ = ["ClusterReleases", "NodeReleases", "cluster_releases", "releases_of"]


@final
@dataclass(frozen=True, slots=True)
class NodeReleases:
    """One node's answer: its releases (rows of ``which_releases``), or why there is none."""

    node: str
    releases: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    agent: bool = True  # False: the node runs no release agent (an Erlang shell, say)

    @property
    def running(self) -> str | None:
        """The release the node runs: its current one, else its permanent one."""
        return running_vsn(self.releases)

    @property
    def permanent(self) -> str | None:
        """The release the node boots."""
        return next((row["vsn"] for row in self.releases if row["status"] == "permanent"), None)


@final
@dataclass(frozen=True, slots=True)
class ClusterReleases:
    """Every node's releases, and which nodes disagree with the rest."""

    nodes: tuple[NodeReleases, ...]
    running: str | None = None
    permanent: str | None = None
    disagreeing: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "running": self.running,
            "permanent": self.permanent,
            "disagreeing": list(self.disagreeing),
            "nodes": [
                {
                    "node": entry.node,
                    "running": entry.running,
                    "permanent": entry.permanent,
                    "releases": list(entry.releases),
                    "error": entry.error,
                }
                for entry in self.nodes
            ],
        }


async def cluster_releases(*, timeout: float = 5.0) -> ClusterReleases:
    """This node's and every connected node's releases, asked all at once."""
    names = [kernel.node(), *kernel.nodes("connected")]
    answers = await ask(dict.fromkeys(names, (Atom("which_releases"),)), timeout=timeout)
    return _agreement(tuple(releases_of(answer) for answer in answers.values()))


def releases_of(answer: Answer) -> NodeReleases:
    """A node's releases from its agent's answer to ``which_releases``."""
    if not answer.ok:
        return NodeReleases(answer.node, error=answer.error, agent=answer.kind != "noproc")
    rows = answer.value if isinstance(answer.value, list) else []
    return NodeReleases(answer.node, tuple(_row(row) for row in rows))


def _row(row: object) -> dict[str, Any]:
    if not isinstance(row, dict):
        return {"name": "?", "vsn": "?", "status": "?", "applications": []}
    return {str(key): value for key, value in row.items()}


def _agreement(entries: tuple[NodeReleases, ...]) -> ClusterReleases:
    """The majority's running and permanent releases, and who differs (pure)."""
    answered = [entry for entry in entries if entry.error is None]
    running = _most_common(entry.running for entry in answered)
    permanent = _most_common(entry.permanent for entry in answered)
    disagreeing = tuple(
        entry.node
        for entry in entries
        if entry.agent
        and (entry.error is not None or entry.running != running or entry.permanent != permanent)
    )
    return ClusterReleases(entries, running, permanent, disagreeing)


def _most_common(values: Any) -> str | None:
    counted = Counter(value for value in values if value is not None)
    if not counted:
        return None
    return sorted(counted.items(), key=lambda item: (-item[1], item[0]))[0][0]  # type: ignore[no-any-return]
