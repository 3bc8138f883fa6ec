"""Live reload for development: watch application sources and reload changed modules in place.

For each changed module the reloader follows OTP's order: make room for the new version
(soft purge; if a process still runs the old one, wait ``grace`` seconds and purge it), load
the new version, then soft-purge the version that just became old, purging it after
``grace`` if some process keeps running it. A file that does not compile, or whose body
raises, is refused: the running code is left as it was, and the node keeps running.

Every outcome is reported as one ``ReloadEvent`` to a callback (the CLI prints them).
``watch_changes`` only says which modules changed, batch by batch; ``watch`` reloads them
(``server dev --path``); ``server.dev.session`` does more with them (``server dev --root``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, final

import anyio
import watchfiles

from server import code_server, kernel
from server.errors import CodeError

if TYPE_CHECKING:
    from server.kernel import Pid

__all__ = [
    "ReloadEvent",
    "SourcesChanged",
    "module_for_path",
    "reload_batch",
    "reload_module",
    "send_changes",
    "watch",
    "watch_changes",
]

logger = logging.getLogger("server.dev")


@final
@dataclass(frozen=True, slots=True)
class ReloadEvent:
    """What happened to one module: ``reloaded``, ``refused``, ``purged`` or ``skipped``.

    ``killed`` holds the processes a purge killed (``purged`` only).
    """

    module: str
    outcome: str
    detail: str = ""
    killed: tuple[Pid, ...] = ()

    def __str__(self) -> str:
        return f"{self.outcome:8} {self.module}{': ' + self.detail if self.detail else ''}"


@final
@dataclass(frozen=True, slots=True)
class SourcesChanged:
    """Sent by ``send_changes``: these modules' files were saved."""

    modules: tuple[str, ...]


Report = Callable[[ReloadEvent], None]


def module_for_path(path: Path, roots: Iterable[Path]) -> str | None:
    """The dotted module name of a source file under one of ``roots``, or None."""
    path = path.resolve()
    if path.suffix != ".py":
        return None
    for root in roots:
        try:
            relative = path.relative_to(root.resolve())
        except ValueError:
            continue
        parts = list(relative.with_suffix("").parts)
        if parts and parts[-1] == "__init__":
            parts.pop()
        if parts and all(part.isidentifier() for part in parts):
            return ".".join(parts)
    return None


async def _make_room(module: str, grace: float, report: Report) -> None:
    """Get rid of the module's old version: soft purge, or purge after ``grace``."""
    if code_server.soft_purge(module):
        return
    await anyio.sleep(grace)  # processes that trampoline leave old code at their next step
    if code_server.soft_purge(module):
        return
    lingering = code_server.processes_in_old_code(module)
    if await code_server.purge(module):
        pids = ", ".join(repr(pid) for pid in lingering)
        detail = f"killed {len(lingering)} process(es) still in old code: {pids}"
        report(ReloadEvent(module, "purged", detail, tuple(lingering)))


async def reload_module(module: str, *, grace: float, report: Report) -> bool:
    """Reload ``module`` from its file; returns True if the new version is current."""
    if not code_server.which_versions(module):
        report(ReloadEvent(module, "skipped", "not loaded yet; it will load on first import"))
        return False
    try:
        changed = code_server.source_changed(module)
    except CodeError as exc:
        report(ReloadEvent(module, "refused", str(exc)))
        return False
    if not changed:  # saved as it was: loading it again would only purge processes
        report(ReloadEvent(module, "skipped", "unchanged"))
        return False
    await _make_room(module, grace, report)
    try:
        version = code_server.load(module)
    except CodeError as exc:
        report(ReloadEvent(module, "refused", str(exc)))
        return False
    report(ReloadEvent(module, "reloaded", f"vsn {version.vsn}"))
    await _make_room(module, grace, report)
    return True


async def watch_changes(
    roots: list[Path], *, ready: Callable[[], None] | None = None
) -> AsyncIterator[list[str]]:
    """The modules changed under ``roots``, one sorted batch per burst of saves, for ever.

    ``ready`` is called once the watch is in place: from then on no edit can be missed.
    """
    # yield_on_timeout: the first (empty) batch proves the watch is in place, so "ready"
    # is only said once an edit can no longer be missed
    watcher = watchfiles.awatch(
        *roots, debounce=50, step=20, rust_timeout=200, yield_on_timeout=True
    )
    async for changes in watcher:
        if ready is not None:
            ready()
            ready = None
        modules = sorted(
            {
                name
                for change, raw in changes
                if change != watchfiles.Change.deleted
                and (name := module_for_path(Path(raw), roots)) is not None
            }
        )
        if modules:
            yield modules


async def send_changes(to: Pid, roots: list[Path], ready: Callable[[], None]) -> None:
    """Send ``to`` a ``SourcesChanged`` for each batch of saves under ``roots`` (a process)."""
    kernel.set_label("behaviour", "dev_watcher")
    async for modules in watch_changes(roots, ready=ready):
        kernel.send(to, SourcesChanged(tuple(modules)))


async def reload_batch(
    modules: Iterable[str], *, grace: float, report: Report
) -> list[ReloadEvent]:
    """Reload each of ``modules`` in turn; returns every event reported (also to ``report``)."""
    events: list[ReloadEvent] = []

    def both(event: ReloadEvent) -> None:
        events.append(event)
        report(event)

    for module in modules:
        try:
            await reload_module(module, grace=grace, report=both)
        except Exception:  # the reloader never stops the node
            logger.exception("reloading %s failed", module)
    return events


async def watch(
    roots: list[Path],
    *,
    grace: float = 2.0,
    report: Report,
    ready: Callable[[], None] | None = None,
) -> None:
    """Watch ``roots`` for ever and reload each changed module (run it as a process)."""
    kernel.set_label("behaviour", "dev_reloader")
    async for modules in watch_changes(roots, ready=ready):
        await reload_batch(modules, grace=grace, report=report)
