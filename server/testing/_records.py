"""The records of an upgrade path: its steps, its failures and how an install report reads.

``UpgradeFailed`` puts on its first line the step and the phase that failed, then the whole
path, the node's answer, the registered names of the processes it mentions, and what the
install did when it got that far.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias, final

from server import kernel

if TYPE_CHECKING:
    from collections.abc import Mapping

    from server.release.handler import InstallReport

__all__ = [
    "Check",
    "Step",
    "UpgradeFailed",
    "describe_report",
    "last_frames",
    "names_in",
    "one_line",
    "reason_text",
]

_HERE = str(Path(__file__).parent)

#: How each phase reads on the first line of a failure.
_PHASES = {
    "check_install": "check_install (the dry run of every code_change)",
    "check": "the check",
}


class UpgradeFailed(AssertionError):
    """A step of an upgrade path failed: which step, which phase, what the node said.

    An ``AssertionError`` so that pytest counts a failed upgrade as a failed test. ``step``
    reads like ``step 2/4 (up 1.0.0 -> 1.1.0)``; ``phase`` is one of ``build``, ``boot``,
    ``prepare``, ``state``, ``which_releases``, ``unpack``, ``check_install``, ``install``,
    ``make_permanent``, ``check``; ``processes`` maps the pids the detail mentions to their
    registered names.
    """

    def __init__(
        self,
        step: str,
        phase: str,
        detail: str,
        *,
        from_vsn: str | None = None,
        to_vsn: str | None = None,
        path: str | None = None,
        report: InstallReport | None = None,
        processes: Mapping[str, str] | None = None,
    ) -> None:
        self.step = step
        self.phase = phase
        self.detail = detail
        self.from_vsn = from_vsn
        self.to_vsn = to_vsn
        self.path = path
        self.report = report
        self.processes = dict(processes or {})
        lines = [f"{step}: {_PHASES.get(phase, phase)} failed"]
        if path is not None:
            lines.append(f"upgrade path: {path}")
        lines.append("  " + detail.rstrip().replace("\n", "\n  "))
        lines.extend(f"process {pid} is {name!r}" for pid, name in self.processes.items())
        if report is not None:
            lines.append("install report: " + describe_report(report))
        super().__init__("\n".join(lines))


def describe_report(report: InstallReport) -> str:
    """One line saying what an install did."""
    parts = [f"{report.direction} {report.from_vsn} -> {report.to_vsn} in {report.seconds:.3f} s"]
    for label, items in (
        ("modules loaded", report.modules_loaded),
        ("modules removed", report.modules_removed),
        ("processes migrated", [f"{pid} {module}" for pid, module in report.processes]),
        ("applications added", report.applications_added),
        ("applications removed", report.applications_removed),
        ("applications restarted", report.applications_restarted),
    ):
        if items:
            parts.append(f"{label}: {', '.join(items)}")
    if report.env_changes:
        parts.append(f"env changes: {report.env_changes!r}")
    return "; ".join(parts)


@final
@dataclass(frozen=True, slots=True)
class Step:
    """Where a check runs: the start of a chain (index 0), or the arrival of one move."""

    index: int
    total: int
    direction: Literal["start", "up", "down"]
    from_vsn: str | None
    to_vsn: str
    report: InstallReport | None = None  # what the install did; None at the start

    def __str__(self) -> str:
        if self.direction == "start":
            return f"start at {self.to_vsn}"
        moved = f"{self.direction} {self.from_vsn} -> {self.to_vsn}"
        return f"step {self.index}/{self.total} ({moved})"


#: A check run on arrival at a version; it raises (asserts) when the node is not as it should.
Check: TypeAlias = Callable[[Step], Awaitable[object]]


def names_in(text: str) -> dict[str, str]:
    """The registered names of the pids ``text`` mentions."""
    found: dict[str, str] = {}
    for name in kernel.registered():
        pid = kernel.whereis(name)
        if pid is not None and repr(pid) in text:
            found[repr(pid)] = name
    return found


def one_line(exc: BaseException) -> str:
    """``Type: message``."""
    return f"{type(exc).__name__}: {exc}"


def last_frames(exc: BaseException, frames: int = 3) -> str:
    """The exception with its last ``frames`` frames outside this package (the user's code)."""
    shown = traceback.TracebackException.from_exception(exc)
    outside = [frame for frame in shown.stack if not frame.filename.startswith(_HERE)]
    shown.stack = traceback.StackSummary.from_list(outside[-frames:])
    return "".join(shown.format()).rstrip()


def reason_text(reason: object) -> str:
    """An exit reason in words."""
    return one_line(reason) if isinstance(reason, BaseException) else repr(reason)
