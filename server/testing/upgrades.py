"""Prove an upgrade path before production: boot v1, bring it to a state, upgrade, check, go back.

With the pytest plugin (registered by the package, so installing it is enough; tests run on
anyio's ``asyncio`` backend)::

    from server.behaviours import gen_server
    from server.testing.upgrades import HarnessFactory, Step


    async def test_counters_survive_every_step(
        upgrade_harness: HarnessFactory, free_tcp_port: int
    ) -> None:
        h = await upgrade_harness(
            ["1.0.0", "1.1.0", "2.0.0"],            # one release, oldest first
            env={"counter": {"port": free_tcp_port}},  # over sys.config, in every package
        )

        async def two_apples() -> None:
            for _ in range(2):
                await gen_server.call("counter_store", ("incr", "apples"))

        await h.prepare(two_apples)                 # runs in a process of the node

        async def plain_counts(step: Step) -> None:
            assert await h.state("counter_store") == {"apples": 2}

        async def records(step: Step) -> None:
            assert (await h.state("counter_store"))["apples"]["value"] == 2

        # 1.0.0 -> 1.1.0 -> 2.0.0 -> 1.1.0 -> 1.0.0, each check run on arrival
        steps = await h.chain({"1.0.0": plain_counts, "1.1.0": records, "2.0.0": records})
        assert [str(s) for s in steps][1] == "step 1/4 (up 1.0.0 -> 1.1.0)"

Without pytest, inside a running node: ``async with open_harness(UpgradePath([...])) as h:``.
``h.upgrade_to(vsn)`` and ``h.downgrade_to(vsn)`` make single moves.

How this works:

1. A harness copies the release sources (``releases/*.toml``, ``appspecs/``, the apps,
   ``sys.config``) into a temporary directory, rewrites ``sys.config`` (``[node] release``
   is the first version, ``env`` over each application's table), builds a package for every
   later version (its relup up from and down to each earlier *listed* version), and boots
   the first version with ``server.node.run_node`` in an unlinked process of the
   node. One harness runs at a time: a node runs one release.
2. Every operation runs inside a process of the node: in the caller when it is a process,
   otherwise (a test body) in a fresh process, whose exception is re-raised in the caller.
3. A move is unpack (unless the node has the release), ``check_install`` (the dry run of
   every ``code_change`` on copies of the states), ``install`` and ``make_permanent``; each
   phase is bounded by ``step_timeout``. Any failure raises ``UpgradeFailed`` (an
   ``AssertionError``, so pytest reports a failure) naming the step, the versions, the phase,
   the processes by registered name, and the install report when there is one.
4. ``close`` (the fixture and ``open_harness`` call it, also when the test fails) stops the
   boot process and everything it started, kills it if it does not stop within
   ``stop_timeout``, forgets the code roots under the temporary directory and removes it.
   It runs shielded from cancellation, with that deadline.

This module is past 400 lines on purpose: the harness is one object whose public methods
share the phase machinery below them; its records and the copy of the tree live apart
(``_records``, ``_tree``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, final

import anyio

from server import code_server, kernel
from server.behaviours import gen_server, system_messages
from server.errors import CallError, InstallFailed, NoProcessError, ProcessError
from server.node import run_node
from server.release import current_vsn, handler
from server.release.package import build_package, package_name
from server.release.source_tree import SourceTree, vsn_key
from server.testing._records import (
    Check,
    Step,
    UpgradeFailed,
    describe_report,
    last_frames,
    names_in,
    one_line,
    reason_text,
)
from server.testing._tree import copy_sources, release_name, write_sys_config

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
    from types import TracebackType

    from server.kernel import Node, Pid
    from server.release.handler import InstallReport

__all__ = [
    "Check",
    "HarnessFactory",
    "Step",
    "UpgradeFailed",
    "UpgradeHarness",
    "UpgradePath",
    "describe_report",
    "open_harness",
]

T = TypeVar("T")

for _public in (Step, UpgradeFailed, describe_report):
    _public.__module__ = __name__
del _public

_BOOTED = "upgrade_harness_booted"
_open: UpgradeHarness | None = None  # the one harness running in this OS process


@final
@dataclass(frozen=True)
class UpgradePath:
    """What to prove: versions of one release, oldest first, built from a source tree.

    Args:
        versions: release versions, strictly ascending (``["1.0.0", "1.1.0", "2.0.0"]``).
        source: the directory holding ``releases/``, ``appspecs/``, the apps and
            ``sys.config``; None means the current directory (the fixture: pytest's root).
        release: the release name; by default ``[node] release``'s, or the tree's only one.
        env: per-application env over ``sys.config`` (``{"counter": {"port": 0}}``); written
            into every package, so it holds across every move.
        step_timeout: the limit of each waiting phase (unpack, install, a check...).
        boot_timeout: the limit of the first boot (and of a restart after a failed install).
        stop_timeout: how long ``close`` waits for the node to stop before killing it.

    Raises:
        TypeError: ``versions`` is one string.
        ValueError: ``versions`` is empty, repeats a version or is not ascending.
    """

    versions: Sequence[str]
    source: Path | str | None = None
    release: str | None = None
    env: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    step_timeout: float = 30.0
    boot_timeout: float = 30.0
    stop_timeout: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.versions, str):
            raise TypeError(
                f"versions must be a list of versions, not the string {self.versions!r}"
            )
        versions = tuple(self.versions)
        if not versions:
            raise ValueError("versions is empty: give at least the version to boot")
        for older, newer in itertools.pairwise(versions):
            if vsn_key(newer) <= vsn_key(older):
                raise ValueError(
                    f"versions must be strictly ascending, oldest first: {list(versions)} has "
                    f"{newer} after {older} (the chain goes up through them in this order, "
                    "then back down)"
                )
        object.__setattr__(self, "versions", versions)
        object.__setattr__(self, "env", {app: dict(table) for app, table in self.env.items()})


@final
class UpgradeHarness:
    """A release booted from a private copy of its sources, moved between versions on demand.

    Made by ``open_harness`` or the ``upgrade_harness`` fixture; every method may be awaited
    from a test body or from inside a process of the node.
    """

    def __init__(self, path: UpgradePath, node: Node) -> None:
        self.path = path
        self.node = node
        self.versions: tuple[str, ...] = tuple(path.versions)
        self.source = Path(path.source if path.source is not None else Path.cwd()).resolve()
        self.scratch = Path(tempfile.mkdtemp(prefix="upgrade-harness-")).resolve()
        self.root = self.scratch / "root"
        self.packages = self.scratch / "packages"
        self.release = ""
        self.env: dict[str, dict[str, object]] = {}
        self.boots: list[str] = []  # the version of each boot (a failed install may reboot)
        self._boot: Pid | None = None
        self._waiter: Pid | None = None
        self._tag = object()
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    async def start(cls, path: UpgradePath, node: Node) -> UpgradeHarness:
        """Copy the sources, build the packages and boot the first version.

        Raises:
            RuntimeError: another harness is running in this OS process.
            UpgradeFailed: a package cannot be built (``build``) or the boot fails (``boot``).
            FileNotFoundError, ValueError, SpecError: the source tree is unusable.
        """
        global _open  # one harness per OS process: one node, one running release
        if _open is not None:
            raise RuntimeError(
                f"an upgrade harness is already running ({_open.release} under {_open.root}): "
                "close it first; a node runs one release at a time"
            )
        harness = cls(path, node)
        _open = harness
        started = False
        try:
            harness._make_root()
            await harness._in_node(harness._start_node)
            started = True
        finally:
            if not started:  # refused, failed or cancelled: leave nothing behind
                await harness.close()
        return harness

    def _make_root(self) -> None:
        copy_sources(self.source, self.root)
        self.release = release_name(self.root, self.path.release)
        first = self.versions[0]
        self.env = write_sys_config(self.root, f"{self.release}-{first}", self.path.env)
        tree = SourceTree(self.root)
        for index, vsn in enumerate(self.versions):
            try:
                if index == 0:
                    tree.view(self.release, vsn)  # the boot builds it: check it now
                    continue
                older = self.versions[:index]
                build_package(tree, self.release, vsn, self.packages, up_from=older, down_to=older)
            except Exception as exc:
                raise UpgradeFailed(
                    f"building {self.release} {vsn}", "build", one_line(exc), to_vsn=vsn
                ) from exc

    async def _start_node(self) -> None:
        self._waiter = kernel.self()
        first = self.versions[0]
        self._boot = kernel.spawn(self._run_node)
        try:
            await self._wait_booted(self._boot, f"boot of {self.release} {first}", first)
        finally:
            self._waiter = None

    async def _run_node(self) -> object:
        embedded = f"{self.release}-{self.versions[0]}"
        return await run_node(self.root, SourceTree(self.root), embedded, on_booted=self._booted)

    def _booted(self, vsn: str) -> None:
        self.boots.append(vsn)
        if self._waiter is not None:
            kernel.send(self._waiter, (_BOOTED, self._tag, vsn))

    async def _wait_booted(self, boot: Pid, what: str, vsn: str) -> str:
        ref = kernel.monitor(boot)

        def wanted(m: object) -> bool:
            if type(m) is kernel.DownMessage:
                return m.ref is ref
            return type(m) is tuple and len(m) == 3 and m[0] == _BOOTED and m[1] is self._tag

        limit = self.path.boot_timeout
        with anyio.move_on_after(limit):
            message = await kernel.receive(wanted)
            kernel.demonitor(ref, flush=True)
            if type(message) is kernel.DownMessage:
                raise UpgradeFailed(
                    what, "boot", f"the node's boot process ended: {reason_text(message.reason)}"
                )
            assert isinstance(message, tuple)
            booted: str = message[2]
            return booted
        kernel.demonitor(ref, flush=True)
        raise UpgradeFailed(what, "boot", f"not booted after {limit:g} s", to_vsn=vsn)

    async def close(self) -> None:
        """Stop the node's release and remove the temporary directory (idempotent)."""
        global _open  # released here, whatever happens
        if self._closed:
            return
        self._closed = True
        try:
            if self._boot is not None and self._node_running():
                with anyio.move_on_after(self.path.stop_timeout + 5.0, shield=True):
                    await self._in_node(self._stop_node, self._boot)
        finally:
            for directory in code_server.code_paths():
                if directory.is_relative_to(self.scratch):
                    code_server.remove_path(directory)
            shutil.rmtree(self.scratch, ignore_errors=True)
            if _open is self:
                _open = None

    def _node_running(self) -> bool:
        try:
            return kernel.current_node() is self.node
        except ProcessError:
            return False

    async def _stop_node(self, boot: Pid) -> None:
        ref = kernel.monitor(boot)
        kernel.send(boot, ("stop",))
        with anyio.move_on_after(self.path.stop_timeout):
            await kernel.receive(lambda m: type(m) is kernel.DownMessage and m.ref is ref)
            return
        kernel.exit(boot, kernel.KILL)  # its links take the release handler and the apps
        await kernel.receive(lambda m: type(m) is kernel.DownMessage and m.ref is ref)

    # -- the user's side -----------------------------------------------------------------

    @property
    def vsn(self) -> str | None:
        """The version the node runs now (None before the boot)."""
        return current_vsn() if self.boots else None

    async def prepare(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` in a process of the node (to bring processes to a state).

        Raises:
            UpgradeFailed: ``fn`` raised (phase ``prepare``), or did not end in time.
        """
        what = f"at {self.vsn}"
        return await self._in_node(self._guarded, what, "prepare", fn, args)

    async def call(self, server: Pid | str, request: object, *, timeout: float = 5.0) -> Any:
        """``gen_server.call(server, request)`` from a process of the node.

        Raises:
            CallError: as ``gen_server.call``.
        """
        return await self._in_node(
            functools.partial(gen_server.call, timeout=timeout), server, request
        )

    async def state(self, server: Pid | str) -> Any:
        """The live state of a gen_server (``system_messages.get_state``); not a copy.

        Raises:
            UpgradeFailed: no such process, or it did not answer (phase ``state``).
        """
        return await self._in_node(self._get_state, server)

    async def _get_state(self, server: Pid | str) -> Any:
        try:
            return await system_messages.get_state(server, timeout=self.path.step_timeout)
        except CallError as exc:
            known = ", ".join(kernel.registered())
            raise UpgradeFailed(
                f"at {self.vsn}",
                "state",
                f"get_state({server!r}): {exc} (registered now: {known})",
            ) from exc

    async def upgrade_to(self, vsn: str, *, permanent: bool = True) -> InstallReport:
        """Unpack, dry-run (``check_install``), install and make permanent a newer version.

        Raises:
            ValueError: ``vsn`` is not a listed version newer than the running one.
            UpgradeFailed: a phase failed (the node's answer is in the message).
        """
        self._check_target(vsn, "up")
        label = f"up {self.vsn} -> {vsn}"
        return await self._in_node(self._move, vsn, label, None, permanent)

    async def downgrade_to(self, vsn: str, *, permanent: bool = True) -> InstallReport:
        """Install an older version through the down instructions of the running one's relup.

        The same phases as ``upgrade_to``: the dry run runs each ``code_change`` with
        ``("down", vsn)`` first.

        Raises:
            ValueError: ``vsn`` is not a listed version older than the running one.
            UpgradeFailed: a phase failed.
        """
        self._check_target(vsn, "down")
        label = f"down {self.vsn} -> {vsn}"
        return await self._in_node(self._move, vsn, label, None, permanent)

    async def chain(
        self, checks: Mapping[str, Check] | None = None, *, down: bool = True
    ) -> list[Step]:
        """Move up through every version, then (``down``) back down through each, checking.

        ``checks[vsn](step)`` runs at the start (for the first version) and after each
        arrival at ``vsn``, in both directions; a version without a check is only moved
        through. Every move is made permanent.

        Returns:
            The steps made: the start, then one per move, each with its install report.

        Raises:
            ValueError: fewer than two versions, a check for an unlisted version, or the
                node does not run the first version.
            UpgradeFailed: a move or a check failed (naming the step, e.g.
                ``step 3/4 (down 2.0.0 -> 1.1.0)``, and the whole path).
        """
        table = dict(checks or {})
        unknown = sorted(set(table) - set(self.versions), key=vsn_key)
        if unknown:
            raise ValueError(f"checks for unlisted versions {unknown}: the path is {self.versions}")
        if len(self.versions) < 2:
            raise ValueError(f"a chain needs two versions or more, got {list(self.versions)}")
        if self.vsn != self.versions[0]:
            raise ValueError(f"a chain starts at {self.versions[0]}; the node runs {self.vsn}")
        route = [*self.versions, *(reversed(self.versions[:-1]) if down else ())]
        path = f"{self.release} " + " -> ".join(route)
        total = len(route) - 1
        steps = [Step(0, total, "start", None, route[0])]
        await self._run_check(table, steps[0], path)
        for index, (old, new) in enumerate(itertools.pairwise(route), start=1):
            direction: Literal["up", "down"] = "up" if vsn_key(new) > vsn_key(old) else "down"
            step = Step(index, total, direction, old, new)
            report = await self._in_node(self._move, new, str(step), path, True)
            step = Step(index, total, direction, old, new, report)
            steps.append(step)
            await self._run_check(table, step, path)
        return steps

    # -- inside the node -----------------------------------------------------------------

    def _check_target(self, vsn: str, direction: str) -> None:
        if vsn not in self.versions:
            raise ValueError(f"{vsn} is not on the path {list(self.versions)}")
        running = self.vsn
        if vsn == running:
            raise ValueError(f"the node already runs {vsn}")
        newer = running is None or vsn_key(vsn) > vsn_key(running)
        if newer != (direction == "up"):
            other = "downgrade_to" if direction == "up" else "upgrade_to"
            raise ValueError(f"the node runs {running}: {vsn} is not {direction}, use {other}")

    async def _move(self, vsn: str, step: str, path: str | None, permanent: bool) -> InstallReport:
        from_vsn = self.vsn
        report: InstallReport | None = None

        def failed(phase: str, detail: str) -> UpgradeFailed:
            return UpgradeFailed(
                step,
                phase,
                detail,
                from_vsn=from_vsn,
                to_vsn=vsn,
                path=path,
                report=report,
                processes=names_in(detail),
            )

        async def phase(name: str, awaitable: Awaitable[T]) -> T:
            with anyio.move_on_after(self.path.step_timeout):
                try:
                    return await awaitable
                except InstallFailed as exc:
                    error = failed(name, f"{exc} (outcome: {exc.outcome})")
                    if exc.outcome == "restarting" and self._boot is not None:
                        await self._wait_booted(self._boot, step, vsn)
                    raise error from exc
                except Exception as exc:
                    raise failed(name, one_line(exc)) from exc
            raise failed(name, f"still waiting after {self.path.step_timeout:g} s")

        self._waiter = kernel.self()  # a failed install may reboot the node: hear of it
        try:
            rows = await phase("which_releases", handler.which_releases())
            if vsn not in {row["vsn"] for row in rows}:
                package = self.packages / package_name(self.release, vsn)
                await phase("unpack", handler.unpack(package))
            await phase("check_install", handler.check_install(vsn))
            report = await phase("install", handler.install(vsn))
            if permanent:
                await phase("make_permanent", handler.make_permanent(vsn))
        finally:
            self._waiter = None
        return report

    async def _run_check(self, table: Mapping[str, Check], step: Step, path: str) -> None:
        check = table.get(step.to_vsn)
        if check is not None:
            label = str(step)
            await self._in_node(self._guarded, label, "check", check, (step,), step, path)

    async def _guarded(
        self,
        what: str,
        phase: str,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        step: Step | None = None,
        path: str | None = None,
    ) -> T:
        name = getattr(fn, "__qualname__", repr(fn))

        def failed(detail: str) -> UpgradeFailed:
            return UpgradeFailed(
                what,
                phase,
                detail,
                from_vsn=step.from_vsn if step else None,
                to_vsn=step.to_vsn if step else self.vsn,
                path=path,
                report=step.report if step else None,
            )

        with anyio.move_on_after(self.path.step_timeout):
            try:
                return await fn(*args)
            except Exception as exc:
                raise failed(f"{name} at {self.vsn} raised:\n{last_frames(exc)}") from exc
        raise failed(f"{name} did not end within {self.path.step_timeout:g} s")

    async def _in_node(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` in the calling process, or in a fresh one from outside the node."""
        try:
            kernel.self()
        except NoProcessError:
            pass
        else:
            return await fn(*args)

        async def guarded() -> tuple[bool, Any]:
            # the exception is returned, not raised: a failed check is a test failure, not a
            # crashed process (no crash report in the log)
            try:
                return True, await fn(*args)
            except Exception as exc:
                return False, exc

        ok, value = await self.node.run_process(guarded)
        if not ok:
            raise value
        result: T = value
        return result


@asynccontextmanager
async def open_harness(
    path: UpgradePath, *, node: Node | None = None
) -> AsyncIterator[UpgradeHarness]:
    """Boot ``path``'s first version in ``node`` (default: the running one); close at the end.

    Raises:
        ProcessError: no node is running and none is given.
        RuntimeError, UpgradeFailed, FileNotFoundError, ValueError, SpecError: as
            ``UpgradeHarness.start``.
    """
    harness = await UpgradeHarness.start(path, node or kernel.current_node())
    try:
        yield harness
    finally:
        await harness.close()


@final
class HarnessFactory:
    """What the ``upgrade_harness`` fixture gives: ``await factory(versions, ...)`` boots one.

    It uses the running node (the one a ``node`` fixture started) or starts its own, and
    closes every harness it made (then its own node) when the test ends.
    """

    def __init__(self, *, default_source: Path | None = None) -> None:
        self.default_source = default_source
        self.harnesses: list[UpgradeHarness] = []
        self._own_node: Node | None = None
        self._closing = contextlib.AsyncExitStack()

    async def __call__(
        self,
        versions: Sequence[str],
        *,
        source: Path | str | None = None,
        release: str | None = None,
        env: Mapping[str, Mapping[str, object]] | None = None,
        step_timeout: float = 30.0,
        boot_timeout: float = 30.0,
    ) -> UpgradeHarness:
        """Boot the first of ``versions``; the arguments are ``UpgradePath``'s.

        Raises:
            As ``UpgradePath`` and ``UpgradeHarness.start``.
        """
        path = UpgradePath(
            versions,
            source=source if source is not None else self.default_source,
            release=release,
            env=env or {},
            step_timeout=step_timeout,
            boot_timeout=boot_timeout,
        )
        return await self.start(path)

    async def start(self, path: UpgradePath) -> UpgradeHarness:
        """Boot ``path``'s first version.

        Raises:
            As ``UpgradeHarness.start``.
        """
        try:
            node = kernel.current_node()
        except ProcessError:
            self._own_node = kernel.Node(name="upgrade-harness")
            node = await self._closing.enter_async_context(self._own_node)
        harness = await UpgradeHarness.start(path, node)
        self.harnesses.append(harness)
        self._closing.push_async_callback(harness.close)
        return harness

    async def aclose(self) -> None:
        """Close every harness made, newest first, then the node it started (if any).

        Each is closed even when closing another raised.
        """
        with anyio.CancelScope(shield=True):
            await self._closing.aclose()
        self.harnesses.clear()
        self._own_node = None

    async def __aenter__(self) -> HarnessFactory:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
