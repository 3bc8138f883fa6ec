"""The node: the process table, the name registry, process ends and exit signals.

How this works:

1. One node per OS process and per event loop. ``Node`` is an async context manager; on
   exit every process still alive is killed and awaited.
2. A process is an asyncio task created on the running loop, not a child of an anyio task
   group: a task group would add a scope, a frame and a wrapper per process (about 3.6 KB
   against under 1.5 KB here) and serialise process ends through the group. The task's done
   callback is the process boundary: it turns the outcome into an exit reason, writes the
   crash report, and fires links and monitors. Code inside a process uses anyio freely.
3. A process's end is final and ordered: it is unregistered, its links get exit signals,
   its monitors get ``DownMessage``, in that order, in one callback. Messages it sent before
   it ended are therefore always queued before the signals of its end (per-pair order).
4. Exit signals follow OTP: ``kill`` sent with ``exit`` cannot be trapped and its target
   ends with ``killed``; a trapping process turns any other signal into an ``ExitMessage``;
   a non-trapping one ignores ``normal`` (unless it sent it to itself) and ends with any
   other reason.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import math
import time
import weakref
from types import CoroutineType
from typing import TYPE_CHECKING, Any, TypeVar, cast, final

from server.errors import NoProcError, ProcessError
from server.kernel._crash_report import CrashReport, exception_chain, would_emit
from server.kernel._process import Process, current
from server.kernel._remote import RemoteNode, RemoteProcess
from server.kernel._types import (
    KILL,
    KILLED,
    NORMAL,
    Continue,
    DownMessage,
    ExitMessage,
    Pid,
    ProcessExit,
    Ref,
    is_normal_exit,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine
    from types import TracebackType

    from server.kernel._remote import Distribution

__all__ = ["Node", "current_node"]

logger = logging.getLogger("server.kernel")

T = TypeVar("T")

_running: Node | None = None


def current_node() -> Node:
    """The node running in this OS process.

    Raises:
        ProcessError: no node is running.
    """
    if _running is None:
        raise ProcessError("no node is running: use `async with Node():` or kernel.run()")
    return _running


def forget_traceback(exc: BaseException) -> None:
    """Drop the frames an exception keeps alive (and those of its causes and contexts).

    A traceback holds frames, frames hold module globals, so a stored exit reason with its
    traceback would keep an old module version alive for ever.
    """
    for item in exception_chain(exc):
        item.__traceback__ = None


@final
class Node:
    """A running node: owns every process of this OS process.

    Use it as ``async with Node() as node:`` on the asyncio backend of anyio (or through
    ``kernel.run``). Only one node can run at a time.
    """

    def __init__(self, *, name: str = "node", shutdown_timeout: float = 5.0) -> None:
        self.name = name
        self.shutdown_timeout = shutdown_timeout
        self.processes: dict[int, Process] = {}
        self.registry: dict[str, Process] = {}
        self._numbers = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._plain_tasks = False
        #: The loop's clock (``loop.time``), for deadlines.
        self.clock: Callable[[], float] = time.monotonic
        self.plain_futures = False
        self._task_done_callback = self._on_task_done  # bound once, shared by every task
        self.spawned = 0
        #: The distribution layer, once this node is part of a cluster (``server.dist``).
        self.distribution: Distribution | None = None
        self.remote_nodes: dict[str, RemoteNode] = {}
        #: Local refs that went to another node, so one coming back is the same object.
        self.exported_refs: weakref.WeakValueDictionary[int, Ref] = weakref.WeakValueDictionary()

    def local_pid(self, number: int) -> Pid:
        """The pid of local process ``number``: its own, or a dead pid if it has ended.

        A pid of an ended process coming back from another node is a new object: it takes
        no messages, like the original, but is not identical to it.
        """
        proc = self.processes.get(number)
        return proc.pid if proc is not None else Pid(number, None)

    def dead_pid(self, number: int) -> Pid:
        """A pid that takes nothing (a process of an earlier incarnation of this node)."""
        return Pid(number, None)

    def pid_parts(self, pid: Pid) -> tuple[str | None, int, int, int]:
        """``(node, id, serial, creation)`` of a pid; ``node`` None and creation 0 if local."""
        proc = pid._process
        if type(proc) is RemoteProcess:
            return proc.node.name, proc.id, proc.serial, proc.creation
        number = pid.number
        return None, number & 0xFFFFFFFF, number >> 32, 0

    def export_ref(self, ref: Ref) -> int:
        """Remember a local ref that goes to another node; returns its number."""
        number = ref.number
        self.exported_refs[number] = ref
        return number

    def local_ref(self, number: int) -> Ref:
        """The local ref ``number`` that went to another node (or a fresh, unmatched one)."""
        ref = self.exported_refs.get(number)
        if ref is None:
            ref = Ref.__new__(Ref)
            ref.number = number
        return ref

    def remote_node(self, name: str) -> RemoteNode:
        """The kernel's record of the node called ``name`` (made on first use)."""
        remote = self.remote_nodes.get(name)
        if remote is None:
            remote = self.remote_nodes[name] = RemoteNode(self, name)
        return remote

    @property
    def node_name(self) -> str:
        """This node's name in a cluster (``nonode@nohost`` while not distributed)."""
        distribution = self.distribution
        return distribution.name if distribution is not None else "nonode@nohost"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the node runs on."""
        if self._loop is None:
            raise ProcessError(f"node {self.name} is not running")
        return self._loop

    async def __aenter__(self) -> Node:
        global _running
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ProcessError(
                "a node runs on anyio's asyncio backend; start it with "
                "anyio.run(..., backend='asyncio') or kernel.run()"
            ) from None
        if _running is not None:
            raise ProcessError(f"node {_running.name} is already running in this OS process")
        # With the stock create_task (and no task factory, checked at each spawn), a spawn
        # builds its Task directly: loop.create_task would only add a Python-level call.
        self._plain_tasks = type(self._loop).create_task is asyncio.BaseEventLoop.create_task
        # the stock loop's time() is a Python method around time.monotonic: read the clock
        # directly (a receive with a timeout reads it to set its deadline)
        plain_clock = type(self._loop).time is asyncio.BaseEventLoop.time
        self.clock = time.monotonic if plain_clock else self._loop.time
        # and its create_future() one around asyncio.Future(loop=...)
        self.plain_futures = type(self._loop).create_future is asyncio.BaseEventLoop.create_future
        _running = self
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _running
        try:
            await self.shutdown()
        finally:
            _running = None

    async def shutdown(self) -> None:
        """Kill every process still alive and wait for their tasks to end."""
        limit = None if self.shutdown_timeout == math.inf else self.shutdown_timeout
        async with asyncio.timeout(limit):
            while self.processes:
                tasks = []
                for proc in list(self.processes.values()):
                    self.kill(proc, KILLED)
                    if proc.task is not None:
                        tasks.append(proc.task)
                if tasks:
                    await asyncio.wait(tasks)
                # let the done callbacks (the process ends) run
                await asyncio.sleep(0)

    # -- spawning --------------------------------------------------------------------------

    def spawn(
        self,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        *,
        link_to: Process | None = None,
        trap_exit: bool = False,
    ) -> Process:
        """Start a process running ``fn(*args)``; optionally linked to ``link_to``.

        Raises:
            TypeError: ``fn(*args)`` is not awaitable; nothing is spawned then.
            ProcessError: the node is not running.
        """
        coro = fn(*args)  # first: a bad body must leave no half-made process
        if type(coro) is not CoroutineType:
            coro = _as_coroutine(coro)
        loop = self._loop
        if loop is None:
            coro.close()
            raise ProcessError(f"node {self.name} is not running")
        proc = Process(self, next(self._numbers), loop)
        if trap_exit:
            proc.trap_exit = True
        context = proc.context = contextvars.Context()
        context.run(current.set, proc)
        self.processes[proc.pid.number] = proc
        self.spawned += 1
        if link_to is not None:
            _add_link(proc, link_to)
        # _start_task, inlined: this is the path every spawn takes
        if self._plain_tasks and loop.get_task_factory() is None:
            task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, context=context)
        else:
            task = loop.create_task(coro, context=context)
        proc.task = task
        task.add_done_callback(self._task_done_callback, context=context)
        return proc

    def _start_task(self, proc: Process, coro: Coroutine[Any, Any, Any]) -> None:
        task = self.loop.create_task(coro, context=proc.context)
        proc.task = task
        task.add_done_callback(self._task_done_callback, context=proc.context)

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        # The done callback runs in the process's own context (see ``spawn``), so the
        # process is ``current`` here: one bound method per node serves every process,
        # where a closure per process (function, cells, a copy of the spawner's context)
        # would allocate five objects for the cyclic GC to count.
        self.task_done(current.get(), task)

    def task_done(self, proc: Process, task: asyncio.Task[Any]) -> None:
        """The process boundary: turn the task's outcome into an exit reason and finish."""
        reason: object
        if task.cancelled():
            reason = proc.exit_reason if proc.exit_reason is not None else KILLED
        else:
            exc = task.exception()
            if exc is None:
                result = task.result()
                if type(result) is Continue and proc.exit_reason is None:
                    try:
                        self._start_task(proc, _as_coroutine(result.target(*result.args)))
                        return
                    except Exception as error:
                        exc = error
                if exc is None:
                    reason = proc.exit_reason if proc.exit_reason is not None else NORMAL
            if exc is not None:
                if proc.exit_reason is not None:
                    reason = proc.exit_reason
                elif isinstance(exc, ProcessExit):
                    reason = exc.reason
                    if exc.report and not is_normal_exit(reason):
                        self._crash_report(proc, reason, None)
                else:
                    reason = exc
                    self._crash_report(proc, exc, exc)
                forget_traceback(exc)
        self.finish(proc, reason)

    def _crash_report(self, proc: Process, reason: object, exc: BaseException | None) -> None:
        try:
            self._log_crash(proc, reason, exc)
        except Exception:  # a broken log handler must not keep a dead process alive
            logger.exception("could not write the crash report of %r", proc.pid)

    def _log_crash(self, proc: Process, reason: object, exc: BaseException | None) -> None:
        # nothing is built (let alone a traceback formatted) for a report no handler takes;
        # the traceback of one that is taken is formatted when a handler emits it
        if not would_emit(logger, logging.ERROR):
            return
        info = proc.info or {}
        logger.handle(
            CrashReport(
                logger.name,
                "crash report: process %r%s exited with %r",
                (proc.pid, f" ({proc.name})" if proc.name else "", reason),
                {
                    "report": "crash_report",
                    "pid": repr(proc.pid),
                    "registered_name": proc.name,
                    "reason": repr(reason),
                    "behaviour": info.get("behaviour"),
                    "callback_module": info.get("module"),
                },
                exc,
            )
        )

    # -- ending ----------------------------------------------------------------------------

    def kill(self, proc: Process, reason: object) -> None:
        """Doom ``proc``: it ends with ``reason`` once its task has unwound."""
        if proc.exit_reason is not None or proc.task is None:
            return
        proc.exit_reason = reason
        proc.mailbox = None
        task = proc.task
        if not task.done():
            task.cancel()

    def finish(self, proc: Process, reason: object) -> None:
        """The process has ended: unregister it and signal its links and monitors."""
        if self.processes.pop(proc.pid.number, None) is None:
            return
        proc.exit_reason = reason
        proc.mailbox = None
        proc.waiter = None
        proc.matcher = None
        if proc.timer is not None:
            proc.timer.cancel()
            proc.timer = None
        if proc.name is not None:
            self.registry.pop(proc.name, None)
        pid = proc.pid
        links = proc.links
        if links:
            proc.links = None
            for other in links:
                if type(other) is RemoteProcess:
                    other.node.process_ended(proc, other, reason)
                    continue
                if other.links is not None:
                    other.links.discard(proc)
                self.exit_signal(other, pid, reason, from_link=True)
        held = proc.monitors
        if held:
            proc.monitors = None
            for ref, target in held.items():
                if type(target) is RemoteNode:
                    target.watcher_ended(proc, ref)
                elif target.monitored_by is not None:
                    target.monitored_by.pop(ref, None)
        watchers = proc.monitored_by
        if watchers:
            proc.monitored_by = None
            for key, watcher in watchers.items():
                if type(watcher) is RemoteProcess:
                    watcher.node.target_ended(key, proc, reason)
                    continue
                local_ref = cast("Ref", key)  # a local watcher's monitor has a local ref
                if watcher.monitors is not None:
                    watcher.monitors.pop(local_ref, None)
                watcher.deliver(DownMessage(local_ref, pid, reason))
        if self.remote_nodes:
            for remote in self.remote_nodes.values():
                if remote.unlinking or remote.node_monitors:
                    remote.forget(proc)
        callbacks = proc.info.pop("_exit_callbacks", None) if proc.info else None
        proc.task = None
        proc.context = None
        pid._process = None
        if callbacks:
            for callback in callbacks:
                callback(reason)

    def exit_signal(self, target: Process, sender: Pid, reason: object, *, from_link: bool) -> None:
        """Deliver an exit signal from ``sender`` to ``target`` as OTP does."""
        if target.exit_reason is not None or target.task is None:
            return
        if reason == KILL and not from_link:
            self.kill(target, KILLED)
        elif target.trap_exit:
            target.deliver(ExitMessage(sender, reason))
        elif reason == NORMAL:
            if sender is target.pid:
                self.kill(target, NORMAL)
        else:
            self.kill(target, reason)

    # -- links and monitors ----------------------------------------------------------------

    def link(self, proc: Process, pid: Pid) -> None:
        """Link ``proc`` with ``pid`` (both ways); a dead ``pid`` is OTP's ``noproc``."""
        other = pid._process
        if other is proc:
            return
        if type(other) is RemoteProcess:
            other.node.link(proc, other)
            return
        if other is None or not other.alive:
            if proc.trap_exit:
                proc.deliver(ExitMessage(pid, "noproc"))
                return
            raise NoProcError(pid, "link")
        _add_link(proc, other)

    def unlink(self, proc: Process, pid: Pid) -> None:
        """Remove the link between ``proc`` and ``pid`` (both ways), if any."""
        other = pid._process
        if type(other) is RemoteProcess:
            other.node.unlink(proc, other)
            return
        if proc.links is not None and other is not None:
            proc.links.discard(other)
        if other is not None and other.links is not None:
            other.links.discard(proc)

    def monitor(self, proc: Process, target: Pid | str | tuple[str, str]) -> Ref:
        """``proc`` watches ``target``; a missing target gives ``DOWN noproc`` at once.

        ``target`` is a pid (local or remote), a local name, or ``(name, node)``.
        """
        ref = Ref()
        if type(target) is Pid:
            other = target._process
        elif type(target) is tuple:
            name, node_name = target
            if node_name != self.node_name:
                self.remote_node(node_name).monitor(proc, name, ref)
                return ref
            other = self.registry.get(name)
        else:
            other = self.registry.get(target)  # type: ignore[arg-type]
        if type(other) is RemoteProcess:
            other.node.monitor(proc, other.pid, ref)
            return ref
        if other is None or not other.alive:
            proc.deliver(DownMessage(ref, target, "noproc"))
            return ref
        if proc.monitors is None:
            proc.monitors = {}
        proc.monitors[ref] = other
        if other.monitored_by is None:
            other.monitored_by = {}
        other.monitored_by[ref] = proc
        return ref

    def demonitor(self, proc: Process, ref: Ref, *, flush: bool = False) -> bool:
        """Stop a monitor; with ``flush`` also drop its ``DownMessage`` if already queued."""
        target = proc.monitors.pop(ref, None) if proc.monitors else None
        if type(target) is RemoteNode:
            target.demonitor(proc, ref)
        elif target is not None and target.monitored_by is not None:
            target.monitored_by.pop(ref, None)
        if flush and proc.mailbox:
            proc.take(lambda m: type(m) is DownMessage and m.ref is ref)
        return target is not None

    def add_exit_callback(self, proc: Process, callback: Callable[[object], None]) -> None:
        """Call ``callback(reason)`` when ``proc`` ends (used by ``run_process``)."""
        if proc.info is None:
            proc.info = {}
        proc.info.setdefault("_exit_callbacks", []).append(callback)

    async def run_process(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` as a process and return its result (or raise its exception).

        This is how code outside the node (a test, the ``run`` entry) waits on a process.
        """
        outcome: asyncio.Future[T] = self.loop.create_future()

        async def body() -> None:
            try:
                result = await fn(*args)
            except Exception as exc:
                if not outcome.done():
                    outcome.set_exception(exc)
                raise ProcessExit(("error_in_run_process", repr(exc))) from None
            if not outcome.done():
                outcome.set_result(result)

        def ended(reason: object) -> None:
            if not outcome.done():
                outcome.set_exception(ProcessError(f"process ended with {reason!r}"))

        proc = self.spawn(body, ())
        self.add_exit_callback(proc, ended)
        return await outcome


def _add_link(a: Process, b: Process) -> None:
    if a.links is None:
        a.links = set()
    if b.links is None:
        b.links = set()
    a.links.add(b)
    b.links.add(a)


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    if asyncio.iscoroutine(awaitable):
        return awaitable
    if not hasattr(awaitable, "__await__"):
        raise TypeError(f"a process body must be an async function, got {awaitable!r}")
    return _await(awaitable)
