"""A release rolled out across the cluster: canary, batches, halt and roll back, permanent.

``rollout(package, options)`` runs on the driving node (any node of the cluster) and
drives every node's release agent (``_agent``) through these steps:

1. **copy** and **unpack**: the package goes over the distribution to every node that
   lacks the release (``_transfer``); each verifies and unpacks it with its own handler.
2. **check** on every node that does not run it yet: everything up to the point of no
   return, with every ``code_change`` dry-run on that node's live state.
3. **install** on the canary, then its **health** check; then the other nodes in batches
   of ``batch`` (each batch installed at once), each node's health checked after.
4. **confirm**: every node is asked which release it runs; all must run the new one (a
   node that restarted since its install booted its old permanent release).
5. **permanent** on every node, only then.

Any failure halts the rollout before the next step: an install or health check that
fails, an unpack or check refused, a node lost (``noconnection`` on a call, or the node
monitor's ``NodeDownMessage`` for any node of the rollout, seen between steps). Every node
already upgraded is then installed back to the release it ran before (its processes
migrate back through their ``code_change``, states intact); nothing is made permanent, so
a node lost before that boots its old permanent release when it comes back, and
``reconcile`` brings it in line. The report names the node, the step and the error; each
node's row says what happened to it (``NodeRow``).

Refusals before any node is touched (not every node answers, another release name, an
unknown canary, a missing ``.sha256``, another rollout driven from this node) raise
``RolloutError``. Two rollouts driven from two nodes at once do not corrupt anything (each
node's release handler runs one install at a time and refuses the other), but the second
halts: drive rollouts from one place.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, final

import anyio

from server import kernel
from server.cluster._calls import Answer, ask
from server.cluster._copy import send_package
from server.cluster._health import CHECK_TIMEOUT, HealthCheck
from server.cluster._transfer import PackageFiles
from server.cluster._view import NodeReleases, cluster_releases, releases_of
from server.dist import Atom
from server.errors import RegistrationError, ReleaseError, RolloutError
from server.kernel import NodeDownMessage
from server.release.boot import parse_release_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from pathlib import Path

__all__ = [
    "DRIVER",
    "Failure",
    "NodeRow",
    "RolloutOptions",
    "RolloutProgress",
    "RolloutReport",
    "plan_batches",
    "rollout",
]

#: The name of the process driving a rollout or a reconcile from this node (one at a time).
DRIVER: Final = "cluster_rollout"
#: Seconds each kind of request may take on a node.
TIMEOUTS: Final = {
    "copy": 60.0,
    "unpack": 300.0,
    "check": 300.0,
    "install": 600.0,
    "health": CHECK_TIMEOUT + 5.0,
    "confirm": 30.0,
    "permanent": 60.0,
    "rollback": 600.0,
}


@final
@dataclass(frozen=True, slots=True)
class RolloutOptions:
    """How to roll out: which node first, how many at once after it, what "healthy" means.

    Raises:
        ValueError: ``batch`` is below 1.
    """

    canary: str | None = None  # default: the first other node by name, else this one
    batch: int = 1
    health: HealthCheck | None = None

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"--batch must be 1 or more, not {self.batch}")


@final
@dataclass(slots=True)
class NodeRow:
    """What the rollout did to one node so far.

    ``state`` while running: ``waiting``, ``copying``, ``unpacked``, ``checked``,
    ``installing``, ``installed``, ``healthy``, ``confirmed``, ``rolling back``; at the end:
    ``permanent``, ``rolled_back``, ``untouched``, ``lost`` or ``failed``.
    """

    node: str
    before: str | None
    state: str = "waiting"
    steps: list[str] = field(default_factory=list)
    after: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data for the report."""
        return {
            "node": self.node,
            "before": self.before,
            "after": self.after,
            "state": self.state,
            "steps": list(self.steps),
            "error": self.error,
        }


@final
@dataclass(frozen=True, slots=True)
class Failure:
    """Why a rollout halted: the node, the step and the error."""

    node: str
    step: str
    error: str

    def __str__(self) -> str:
        return f"{self.step} on {self.node}: {self.error}"


@final
@dataclass(frozen=True, slots=True)
class RolloutProgress:
    """A moment of a rollout: its phase, nodes done of all, and every node's row."""

    phase: str
    done: int
    total: int
    rows: tuple[dict[str, Any], ...]


@final
@dataclass(frozen=True, slots=True)
class RolloutReport:
    """The end of a rollout: ``permanent`` everywhere, or ``halted`` with its failure."""

    vsn: str
    outcome: str
    failure: Failure | None
    rows: tuple[NodeRow, ...]
    batches: tuple[tuple[str, ...], ...]
    seconds: float = 0.0  # from the first request to the last answer

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        failure = self.failure
        return {
            "vsn": self.vsn,
            "outcome": self.outcome,
            "failure": None
            if failure is None
            else {"node": failure.node, "step": failure.step, "error": failure.error},
            "batches": [list(batch) for batch in self.batches],
            "seconds": round(self.seconds, 3),
            "nodes": [row.to_json() for row in self.rows],
        }


def plan_batches(
    nodes: Iterable[str], here: str, canary: str | None, batch: int
) -> tuple[tuple[str, ...], ...]:
    """The canary alone, then the others ``batch`` at a time, the driving node last (pure).

    Raises:
        RolloutError: ``canary`` is not one of ``nodes``.
    """
    names = sorted(set(nodes))
    if canary is not None and canary not in names:
        raise RolloutError(f"canary {canary} is not a node of this rollout ({', '.join(names)})")
    others = [name for name in names if name != here]
    first = canary if canary is not None else (others[0] if others else here)
    rest = [name for name in others if name != first] + ([here] if here != first else [])
    return ((first,), *(tuple(rest[i : i + batch]) for i in range(0, len(rest), batch)))


class _Halt(Exception):
    def __init__(self, failure: Failure) -> None:
        self.failure = failure


class _Run:
    """One rollout in progress, in the driving process."""

    def __init__(
        self,
        files: PackageFiles,
        vsn: str,
        entries: Mapping[str, NodeReleases],
        batches: tuple[tuple[str, ...], ...],
        options: RolloutOptions,
        on_progress: Callable[[RolloutProgress], None] | None,
    ) -> None:
        self.files = files
        self.vsn = vsn
        self.entries = entries
        self.batches = batches
        self.options = options
        self.on_progress = on_progress
        self.rows = {node: NodeRow(node, entry.running) for node, entry in entries.items()}
        self.upgraded: list[str] = []  # installed by this rollout, in order
        self.phase = "starting"

    # -- the steps --------------------------------------------------------------------------

    async def run(self) -> Failure | None:
        try:
            await self._copy()
            pending = [node for node, row in self.rows.items() if row.before != self.vsn]
            await self._each("check", pending, ("check",), "checked")
            for number, batch in enumerate(self.batches, 1):
                todo = [node for node in batch if self.rows[node].before != self.vsn]
                label = "canary" if number == 1 else f"batch {number - 1}/{len(self.batches) - 1}"
                await self._install(todo, label)
                if self.options.health is not None:
                    check = self.options.health
                    request = (Atom("health"), check.text, check.status)
                    await self._each("health", todo, request, "healthy", raw=True)
            await self._confirm()
            await self._each("permanent", list(self.rows), ("make_permanent",), "permanent")
        except _Halt as halt:
            await self._roll_back()
            return halt.failure
        return None

    async def _copy(self) -> None:
        lacking = [
            node
            for node, entry in self.entries.items()
            if all(row["vsn"] != self.vsn for row in entry.releases)
        ]
        if not lacking:
            return
        self.phase = "copy"
        self._set("copy", lacking, "copying")
        size = self.files.size

        def unpacking(nodes: list[str]) -> None:
            self.phase = "unpack"
            self._set("unpack", nodes, "unpacking")

        sent = await send_package(
            self.files,
            lacking,
            on_chunk=lambda done: self._progress(f"copy: {done:,} of {size:,} bytes"),
            on_unpack=unpacking,
        )
        failure: Failure | None = None
        for node, (step, answer) in sent.items():
            row = self.rows[node]
            if answer.ok:
                row.state = "unpacked"
                continue
            row.state, row.error = ("lost" if answer.lost else "failed"), answer.error
            failure = failure or Failure(node, step, answer.error)
        failure = failure or self._lost("copy")
        self._progress()
        if failure is not None:
            raise _Halt(failure)

    async def _install(self, nodes: list[str], label: str) -> None:
        self.phase = f"install {label}"
        self._set("install", nodes, "installing")
        answers = await self._ask("install", dict.fromkeys(nodes, (Atom("install"), self.vsn)))
        for node, answer in answers.items():
            if answer.ok:
                self.upgraded.append(node)
                self.rows[node].state = "installed"
        self._judge("install", answers, done="installed")

    async def _confirm(self) -> None:
        nodes = list(self.rows)
        self._set("confirm", nodes, "confirming")
        answers = await self._ask("confirm", dict.fromkeys(nodes, (Atom("confirm"), self.vsn)))
        for node, answer in answers.items():
            if answer.ok and answer.value != self.vsn:
                answers[node] = Answer(
                    node,
                    False,
                    kind="restarted",
                    error=f"runs {answer.value}, not {self.vsn}: it restarted since its install "
                    "and booted its permanent release",
                )
        self._judge("confirm", answers, done="confirmed")

    async def _each(
        self,
        step: str,
        nodes: list[str],
        request: tuple[object, ...],
        done: str,
        *,
        raw: bool = False,
    ) -> None:
        """Ask each of ``nodes`` ``request`` (``self.vsn`` appended unless ``raw``)."""
        if not nodes:
            return
        self.phase = step
        self._set(step, nodes, f"{step}…")
        message = request if raw else (Atom(str(request[0])), *request[1:], self.vsn)
        self._judge(step, await self._ask(step, dict.fromkeys(nodes, message)), done=done)

    async def _roll_back(self) -> None:
        """Install every upgraded node that is still here back to the release it ran."""
        back = [node for node in self.upgraded if self.rows[node].state != "lost"]
        if not back:
            return
        self.phase = "rollback"
        self._set("rollback", back, "rolling back")
        requests = {node: (Atom("install"), self.rows[node].before) for node in back}
        for node, answer in (await self._ask("rollback", requests)).items():
            row = self.rows[node]
            if answer.ok:
                row.state = "rolled_back"
            elif answer.lost:
                row.state, row.error = "lost", "node lost during its rollback"
            else:
                row.state, row.error = "failed", f"rollback: {answer.error}"
        self._progress()

    async def settle(self) -> None:
        """Fill each row's ``after`` with the release its node runs now; name the untouched."""
        answers = await ask(dict.fromkeys(self.rows, (Atom("which_releases"),)), timeout=10.0)
        for node, answer in answers.items():
            row = self.rows[node]
            row.after = releases_of(answer).running if answer.ok else None
            if row.state not in ("permanent", "rolled_back", "lost", "failed"):
                row.state = "untouched"
        self._progress("done")

    # -- bookkeeping ------------------------------------------------------------------------

    async def _ask(self, step: str, requests: Mapping[str, object]) -> dict[str, Answer]:
        return await ask(requests, timeout=TIMEOUTS[step])

    def _set(self, step: str, nodes: Iterable[str], state: str) -> None:
        for node in nodes:
            row = self.rows[node]
            row.steps.append(step)
            row.state = state
        self._progress()

    def _judge(self, step: str, answers: Mapping[str, Answer], *, done: str | None = None) -> None:
        """Mark each node's outcome; halt on the first failure, or on a node lost meanwhile."""
        first: Failure | None = None
        for node, answer in answers.items():
            row = self.rows[node]
            if answer.ok:
                if done is not None:
                    row.state = done
                continue
            row.error = answer.error
            row.state = "lost" if answer.lost else "failed"
            if first is None:
                first = Failure(node, step, answer.error)
        first = first or self._lost(step)
        self._progress()
        if first is not None:
            raise _Halt(first)

    def _lost(self, step: str) -> Failure | None:
        """A node of the rollout that its node monitor says is gone, if any."""
        first: Failure | None = None
        while True:
            try:
                down = kernel.receive_nowait(lambda m: type(m) is NodeDownMessage)
            except anyio.WouldBlock:
                return first
            assert isinstance(down, NodeDownMessage)
            row = self.rows.get(down.node)
            if row is None or row.state == "lost":
                continue
            row.state, row.error = "lost", f"node lost during the rollout's {step} step"
            if first is None:
                first = Failure(down.node, step, "node lost (nodedown)")

    def _progress(self, phase: str | None = None) -> None:
        if self.on_progress is None:
            return
        finished = ("installed", "healthy", "confirmed", "permanent")
        done = sum(1 for row in self.rows.values() if row.state in finished)
        rows = tuple(row.to_json() for row in self.rows.values())
        self.on_progress(RolloutProgress(phase or self.phase, done, len(self.rows), rows))


async def rollout(
    package: Path,
    options: RolloutOptions,
    *,
    on_progress: Callable[[RolloutProgress], None] | None = None,
) -> RolloutReport:
    """Roll ``package`` out to this node and every connected node that runs a release agent.

    Raises:
        RolloutError: refused before any node was touched (see the module's docstring).
    """
    files = PackageFiles.read(package)
    try:
        name, vsn = parse_release_name(package.name.removesuffix(".tar.gz"))
    except ReleaseError as exc:
        raise RolloutError(str(exc)) from None
    with driving():
        return await _rollout(files, name, vsn, options, on_progress)


@contextlib.contextmanager
def driving() -> Iterator[None]:
    """Register the caller as ``cluster_rollout`` while it drives the cluster.

    Raises:
        RolloutError: a rollout or reconcile driven from this node is running.
    """
    try:
        kernel.register(DRIVER, kernel.self())
    except RegistrationError:
        holder = kernel.whereis(DRIVER)
        raise RolloutError(
            f"a rollout or reconcile driven from this node is running ({holder}): wait for "
            "its report"
        ) from None
    try:
        yield
    finally:
        kernel.unregister(DRIVER)


async def _rollout(
    files: PackageFiles,
    name: str,
    vsn: str,
    options: RolloutOptions,
    on_progress: Callable[[RolloutProgress], None] | None,
) -> RolloutReport:
    view = await cluster_releases()
    here = kernel.node()
    entries = {entry.node: entry for entry in view.nodes if entry.agent}
    silent = [f"{entry.node} ({entry.error})" for entry in entries.values() if entry.error]
    if silent:
        raise RolloutError(
            f"every node must answer before a rollout; these did not: {', '.join(silent)}"
        )
    others = sorted(
        node for node, entry in entries.items() if {r["name"] for r in entry.releases} != {name}
    )
    if others:
        raise RolloutError(f"{', '.join(others)} run another release than {name}")
    batches = plan_batches(entries, here, options.canary, options.batch)
    run = _Run(files, vsn, entries, batches, options, on_progress)
    started = time.monotonic()
    remote = [node for node in entries if node != here]
    for node in remote:
        kernel.monitor_node(node, True)
    try:
        failure = await run.run()
    finally:
        for node in remote:
            kernel.monitor_node(node, False)
    await run.settle()
    kernel.flush(lambda m: type(m) is NodeDownMessage)
    return RolloutReport(
        vsn,
        "halted" if failure is not None else "permanent",
        failure,
        tuple(run.rows[node] for node in sorted(run.rows)),
        batches,
        time.monotonic() - started,
    )
