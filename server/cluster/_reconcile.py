"""Bring every node to the cluster's permanent release: after a halted rollout or a partition.

The cluster's permanent release is the one most answering nodes boot (``_view``). Each node
that runs another one is installed to it (its processes migrate through ``code_change``,
as any install), and each node that boots another one has it made permanent. A node that
lacks the release gets the package first, when one is given (``_copy``); without one, it is
reported and left alone. Nodes are reconciled all at once: each is one node's own install.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final

from server.cluster._calls import ask
from server.cluster._copy import send_package
from server.cluster._rollout import driving
from server.cluster._transfer import PackageFiles
from server.cluster._view import cluster_releases
from server.dist import Atom
from server.errors import RolloutError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = ["ReconcileReport", "ReconciledNode", "reconcile"]

INSTALL_TIMEOUT = 600.0


@final
@dataclass(slots=True)
class ReconciledNode:
    """What reconcile did to one node (``action``, and ``error`` when it is ``failed``).

    ``action``: ``none``, ``installed``, ``made_permanent``, ``installed_and_made_permanent``
    or ``failed``.
    """

    node: str
    before: str | None
    action: str = "none"
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "node": self.node,
            "before": self.before,
            "action": self.action,
            "error": self.error,
        }


@final
@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """The cluster's permanent release and what was done to each node."""

    permanent: str
    nodes: tuple[ReconciledNode, ...]

    @property
    def ok(self) -> bool:
        """Every node runs and boots the permanent release now."""
        return all(node.action != "failed" for node in self.nodes)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"permanent": self.permanent, "nodes": [node.to_json() for node in self.nodes]}


async def reconcile(
    package: Path | None = None, *, on_progress: Callable[[str], None] | None = None
) -> ReconcileReport:
    """Install and make permanent the cluster's permanent release wherever it is not.

    Raises:
        RolloutError: no node has a permanent release, or ``package`` is another release.
    """
    with driving():
        return await _reconcile(package, on_progress or (lambda _text: None))


async def _reconcile(package: Path | None, say: Callable[[str], None]) -> ReconcileReport:
    view = await cluster_releases()
    target = view.permanent
    if target is None:
        raise RolloutError("no node answered with a permanent release: nothing to reconcile to")
    files = PackageFiles.read(package) if package is not None else None
    if files is not None and not files.path.name.endswith(f"-{target}.tar.gz"):
        raise RolloutError(
            f"{files.path.name} is not the cluster's permanent release {target}: give its package"
        )
    rows = {entry.node: ReconciledNode(entry.node, entry.running) for entry in view.nodes}
    install: list[str] = []
    permanent: list[str] = []
    lacking: list[str] = []
    for entry in view.nodes:
        row = rows[entry.node]
        if not entry.agent:
            row.action, row.error = "failed", "runs no release agent"
            continue
        if entry.error is not None:
            row.action, row.error = "failed", entry.error
            continue
        if entry.running != target:
            install.append(entry.node)
            if all(release["vsn"] != target for release in entry.releases):
                lacking.append(entry.node)
        if entry.permanent != target:
            permanent.append(entry.node)
    if lacking and files is None:
        for node in lacking:
            rows[node].action = "failed"
            rows[node].error = f"lacks release {target}: give its package (--package)"
        install = [node for node in install if node not in lacking]
        permanent = [node for node in permanent if node not in lacking]
    elif lacking and files is not None:
        say(f"copying {files.path.name} to {', '.join(lacking)}")
        for node, (step, answer) in (await send_package(files, lacking)).items():
            if not answer.ok:
                rows[node].action, rows[node].error = "failed", f"{step}: {answer.error}"
    install = [node for node in install if rows[node].action != "failed"]
    if install:
        say(f"installing {target} on {', '.join(install)}")
        answers = await ask(
            dict.fromkeys(install, (Atom("install"), target)), timeout=INSTALL_TIMEOUT
        )
        for node, answer in answers.items():
            rows[node].action = "installed" if answer.ok else "failed"
            rows[node].error = None if answer.ok else f"install: {answer.error}"
    permanent = [node for node in permanent if rows[node].action != "failed"]
    if permanent:
        say(f"making {target} permanent on {', '.join(permanent)}")
        answers = await ask(
            dict.fromkeys(permanent, (Atom("make_permanent"), target)), timeout=60.0
        )
        for node, answer in answers.items():
            row = rows[node]
            if not answer.ok:
                row.action, row.error = "failed", f"make permanent: {answer.error}"
            else:
                row.action = (
                    "installed_and_made_permanent"
                    if row.action == "installed"
                    else "made_permanent"
                )
    return ReconcileReport(target, tuple(rows[node] for node in sorted(rows)))
