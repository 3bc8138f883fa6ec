"""Frozen records describing processes, for tools and the control socket."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from types import AsyncGeneratorType
from typing import TYPE_CHECKING, Any, final

from server.errors import NoProcessError
from server.kernel import _process as _process_module
from server.kernel._node import current_node
from server.kernel._process import Process, current
from server.kernel._remote import RemoteNode
from server.kernel._types import Continue, Pid

if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncGenerator
    from types import FrameType


__all__ = [
    "ProcessInfo",
    "get_label",
    "process_frames",
    "process_globals",
    "process_info",
    "processes",
    "set_label",
]


@final
@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What a process is doing, at the moment it was asked."""

    pid: Pid
    registered_name: str | None
    message_queue_len: int
    links: tuple[Pid, ...]
    monitored_by: int
    trap_exit: bool
    #: What the process monitors: pids (local or remote) and ``(name, node)`` pairs.
    monitors: tuple[Pid | str | tuple[str, str], ...]
    labels: tuple[tuple[str, Any], ...]
    #: Messages ever delivered to it (queued or handed to a receive); less the queue's
    #: length, the messages it has taken (Erlang's reductions, roughly).
    messages_delivered: int = 0
    #: When it was spawned, on the node's clock (``anyio.current_time()``).
    spawned_at: float = 0.0


def processes() -> list[Pid]:
    """Every live process of the node, in spawn order."""
    return [proc.pid for proc in current_node().processes.values() if proc.alive]


def process_info(pid: Pid) -> ProcessInfo | None:
    """A snapshot of ``pid``, or None when it is not alive."""
    proc = pid._process
    if type(proc) is not Process or not proc.alive:
        return None
    labels = tuple((k, v) for k, v in (proc.info or {}).items() if not k.startswith("_"))
    return ProcessInfo(
        pid=pid,
        registered_name=proc.name,
        message_queue_len=proc.message_queue_len(),
        links=tuple(other.pid for other in proc.links or ()),
        monitored_by=len(proc.monitored_by or ()),
        trap_exit=proc.trap_exit,
        monitors=tuple(_monitored(proc)),
        labels=labels,
        messages_delivered=proc.delivered,
        spawned_at=proc.spawned_at,
    )


def _monitored(proc: Process) -> list[Pid | str | tuple[str, str]]:
    found: list[Pid | str | tuple[str, str]] = []
    for ref, target in (proc.monitors or {}).items():
        if type(target) is RemoteNode:
            entry = target.watching.get(ref)
            if entry is not None:
                watched = entry[1]
                found.append(watched if type(watched) is Pid else (str(watched), target.name))
        elif type(target) is Process:
            found.append(target.pid)
    return found


def set_label(key: str, value: Any) -> None:
    """Attach a label to the current process (behaviours record their kind and module).

    Keys starting with ``_`` are private to the library and hidden from ``process_info``.

    Raises:
        NoProcessError: called outside a process.
    """
    try:
        proc = current.get()
    except LookupError:
        raise NoProcessError("set_label") from None
    if proc.info is None:
        proc.info = {}
    proc.info[key] = value


def get_label(pid: Pid, key: str, default: Any = None) -> Any:
    """A label of ``pid`` (see ``set_label``), or ``default``."""
    proc = pid._process
    if type(proc) is not Process or proc.info is None:
        return default
    return proc.info.get(key, default)


def process_frames(pid: Pid) -> list[FrameType]:
    """The frames of the process's suspended coroutine stack, outermost first.

    Follows the await chain from the task's coroutine through ``cr_await`` (coroutines),
    ``gi_yieldfrom`` (generator-based awaitables) and ``ag_await`` (async generators,
    including one an ``async for`` is suspended in).
    A running or finished process has no suspended stack and gives an empty list.
    """
    proc = pid._process
    if type(proc) is not Process or proc.task is None:
        return []
    return _frames_of(proc.task)


def process_globals(pid: Pid) -> list[dict[str, Any]]:
    """The global namespaces the process's code runs in, innermost last.

    These are the globals of each frame of its suspended stack, plus, between two steps of
    a trampoline (a body returned ``Continue`` and the next call is not made yet), those of
    the function it will call next. The code server compares them with a module's old
    version to tell whether the process runs old code.
    """
    proc = pid._process
    if type(proc) is not Process or proc.task is None:
        return []
    task = proc.task
    if task.done():
        if task.cancelled() or task.exception() is not None:
            return []
        result = task.result()
        target = getattr(result, "target", None) if type(result) is Continue else None
        code_globals = getattr(target, "__globals__", None)
        return [code_globals] if isinstance(code_globals, dict) else []
    return [frame.f_globals for frame in _frames_of(task)]


#: The kernel's own awaitables (a parked receive) are not part of a process's code.
_KERNEL_GLOBALS = _process_module.__dict__


def _frames_of(task: asyncio.Task[Any]) -> list[FrameType]:
    frames: list[FrameType] = []
    obj: Any = task.get_coro()
    seen = 0
    while obj is not None and seen < 10_000:
        seen += 1
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
        frame = frame or getattr(obj, "ag_frame", None)
        if frame is not None and frame.f_globals is not _KERNEL_GLOBALS:
            frames.append(frame)
        nxt = getattr(obj, "cr_await", None)
        if nxt is None:
            nxt = getattr(obj, "gi_yieldfrom", None)
        if nxt is None:
            nxt = getattr(obj, "ag_await", None)
        if nxt is not None and type(nxt) in _ASYNC_GEN_STEPS:
            nxt = _async_generator_of(nxt)
        obj = nxt
    return frames


async def _probe() -> AsyncGenerator[None, None]:
    yield


def _step_types() -> frozenset[type]:
    agen = _probe()
    steps = (agen.asend(None), agen.athrow(GeneratorExit))
    types = frozenset(type(step) for step in steps)
    for step in steps:
        step.close()
    return types


#: ``async for`` awaits an ``async_generator_asend`` (``athrow`` for ``aclose``), which
#: does not expose its generator as an attribute; the generator is its only referent.
_ASYNC_GEN_STEPS = _step_types()


def _async_generator_of(step: object) -> object:
    for referent in gc.get_referents(step):
        if type(referent) is AsyncGeneratorType:
            return referent
    return None
