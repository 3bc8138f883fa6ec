"""The supervisor engine: a gen_server callback module that runs a supervision tree.

How this works:

1. ``init`` traps exits, calls the user module's ``init`` (through the resolver, so the
   current version), validates the spec, and starts the children in order. A child that
   fails to start stops the start: the children already started are shut down in reverse
   order and the supervisor's start fails with
   ``("shutdown", ("failed_to_start_child", id, reason))``.
2. A child's end arrives as an ``ExitMessage``. Its restart type decides (permanent: always
   restart; transient: restart unless ``normal``/``shutdown``/``("shutdown", _)``;
   temporary: never, and its spec is dropped). Each restart attempt is counted first
   (``_restart_intensity``); over the limit the supervisor shuts every child down in reverse
   order and ends with ``shutdown``.
3. Strategies: one_for_one restarts the child; one_for_all shuts down the others (reverse
   order) and restarts all in order; rest_for_one does that for the children started after
   it; simple_one_for_one restarts that one dynamic child. A restart that fails is retried
   through a message to itself, counting as another attempt.
4. Shutting a child down: monitor it, send ``shutdown`` (or ``kill`` for ``brutal_kill``),
   wait for its end up to its shutdown time, then ``kill``; then drop its ``ExitMessage``.
   simple_one_for_one children are shut down all at once under one deadline.
5. ``code_change`` runs the user ``init`` again and returns a *new* state: existing ids get
   their new spec and keep their pid; new ids are added, not started; missing ids are kept.
6. Calls are the request records of ``supervisor`` (the API module); each is answered with
   a ``replies`` record: ``Ok``; ``Refused`` (unknown child, running, already present, not
   for this strategy: nothing changed); ``Failed`` (the child it tried to start did not).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any, Final, Literal, final

import anyio

from server import kernel
from server.behaviours import replies
from server.behaviours._dispatch import resolve
from server.behaviours._restart_intensity import add_restart
from server.behaviours.gen_server_callbacks import Ignore, NoReply, Ok, Reply, Stop
from server.behaviours.supervisor import (
    RESTARTS_LABEL,
    ChildCounts,
    ChildInfo,
    CountChildren,
    DeleteChild,
    GetCallbackModule,
    GetChildspec,
    GetSpecInfo,
    RestartChild,
    SpecInfo,
    StartChild,
    TerminateChild,
    WhichChildren,
)
from server.behaviours.supervisor_callbacks import ChildSpec, SupervisorSpec
from server.errors import StartError
from server.kernel import DownMessage, ExitMessage, From, Pid, is_normal_exit

logger = logging.getLogger("server.behaviours.supervisor")

RESTARTING: Final = "restarting"


@final
class _Child:
    __slots__ = ("pid", "spec")

    def __init__(self, spec: ChildSpec, pid: Pid | Literal["restarting"] | None = None) -> None:
        self.spec = spec
        self.pid = pid  # a Pid, None (not running) or RESTARTING


@final
@dataclass(frozen=True, slots=True)
class _TryAgain:
    key: str | Pid  # a child id, or the pid of a dynamic child (simple_one_for_one)


@final
class SupervisorState:
    """The engine's state (opaque to users; ``get_state`` shows it)."""

    __slots__ = ("args", "children", "dynamic", "module", "name", "restarts", "spec")

    def __init__(self, module: str, args: object, name: str | None, spec: SupervisorSpec) -> None:
        self.module = module
        self.args = args
        self.name = name
        self.spec = spec
        self.children: list[_Child] = []
        self.dynamic: dict[Pid, tuple[object, ...]] = {}
        self.restarts: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        return self.name or repr(kernel.self())

    def find(self, child_id: str) -> _Child | None:
        for child in self.children:
            if child.spec.id == child_id:
                return child
        return None

    def by_pid(self, pid: Pid) -> _Child | None:
        for child in self.children:
            if child.pid is pid:
                return child
        return None

    def copy(self) -> SupervisorState:
        other = SupervisorState(self.module, self.args, self.name, self.spec)
        other.children = [_Child(c.spec, c.pid) for c in self.children]
        other.dynamic = dict(self.dynamic)
        other.restarts = self.restarts
        return other

    def __repr__(self) -> str:
        return (
            f"SupervisorState(module={self.module!r}, strategy={self.spec.strategy!r}, "
            f"children={[(c.spec.id, c.pid) for c in self.children]!r}, "
            f"dynamic={len(self.dynamic)})"
        )


def _report(state: SupervisorState, context: str, child_id: object, reason: object) -> None:
    if not logger.isEnabledFor(logging.ERROR):  # its facts are built only if it is written
        return
    logger.error(
        "supervisor %s: %s, child %s: %r",
        state.label,
        context,
        child_id,
        reason,
        extra={
            "report": "supervisor_report",
            "supervisor": state.label,
            "error_context": context,
            "child_id": child_id,
            "reason": repr(reason),
            "restart_count": len(state.restarts),
        },
    )


async def _call_user_init(module: str, args: object) -> SupervisorSpec | Ignore:
    result = resolve(module).init(args)
    if hasattr(result, "__await__"):
        result = await result
    if isinstance(result, SupervisorSpec | Ignore):
        return result
    raise ValueError(f"{module}.init returned {result!r}, not a SupervisorSpec or Ignore()")


# -- gen_server callbacks ------------------------------------------------------------------


async def init(args: tuple[str, object, str | None]) -> object:
    module, user_args, name = args
    kernel.trap_exit(True)
    kernel.set_label("behaviour", "supervisor")
    kernel.set_label("module", module)
    kernel.set_label(RESTARTS_LABEL, 0)  # supervisor.restart_count
    try:
        spec = await _call_user_init(module, user_args)
    except Exception as exc:
        return Stop(("bad_return", exc))
    if isinstance(spec, Ignore):
        return spec
    state = SupervisorState(module, user_args, name, spec)
    if spec.strategy == "simple_one_for_one":
        state.children = [_Child(spec.children[0])]
        return Ok(state)
    for child_spec in spec.children:
        child = _Child(child_spec)
        try:
            child.pid = await _start(child_spec, ())
        except _StartFailed as failed:
            await _shutdown_all(state)
            return Stop(("shutdown", ("failed_to_start_child", child_spec.id, failed.reason)))
        if child.pid is None and child_spec.restart == "temporary":
            continue
        state.children.append(child)
    return Ok(state)


async def handle_call(request: object, from_: From, state: SupervisorState) -> object:
    match request:
        case WhichChildren():
            return Reply(replies.Ok(tuple(_which_children(state))), state)
        case CountChildren():
            return Reply(replies.Ok(_count_children(state)), state)
        case StartChild(spec_or_args=arg):
            return Reply(await _start_child(state, arg), state)
        case TerminateChild(key=key):
            return Reply(await _terminate_child(state, key), state)
        case RestartChild(child_id=child_id):
            return Reply(await _restart_child(state, child_id), state)
        case DeleteChild(child_id=child_id):
            return Reply(_delete_child(state, child_id), state)
        case GetChildspec(key=key):
            return Reply(_get_childspec(state, key), state)
        case GetCallbackModule():
            return Reply(replies.Ok(state.module), state)
        case GetSpecInfo():
            return Reply(replies.Ok(_spec_info(state)), state)
    return Reply(replies.Refused(("unknown_request", repr(request))), state)


def handle_cast(request: Any, state: SupervisorState) -> object:
    logger.warning("supervisor %s: unexpected cast %r", state.label, request)
    return NoReply(state)


async def handle_info(message: Any, state: SupervisorState) -> object:
    if isinstance(message, ExitMessage):
        return await _child_exited(state, message.pid, message.reason)
    if isinstance(message, _TryAgain):
        return await _try_again(state, message.key)
    logger.warning("supervisor %s: unexpected message %r", state.label, message)
    return NoReply(state)


async def terminate(reason: object, state: SupervisorState) -> None:
    await _shutdown_all(state)


async def code_change(old_vsn: object, state: SupervisorState, extra: object) -> SupervisorState:
    spec = await _call_user_init(state.module, state.args)
    if isinstance(spec, Ignore):
        return state
    new = state.copy()
    if spec.strategy == "simple_one_for_one" or state.spec.strategy == "simple_one_for_one":
        if spec.strategy != state.spec.strategy:
            raise ValueError("a supervisor cannot change to or from simple_one_for_one")
        new.children = [_Child(spec.children[0])]
        new.spec = spec
        return new
    for child_spec in spec.children:
        existing = new.find(child_spec.id)
        if existing is not None:
            existing.spec = child_spec
        else:
            new.children.append(_Child(child_spec))
    new.spec = spec
    return new


# -- starting ------------------------------------------------------------------------------


class _StartFailed(Exception):
    def __init__(self, reason: object) -> None:
        self.reason = reason


async def _start(spec: ChildSpec, extra: tuple[object, ...]) -> Pid | None:
    fn, *args = spec.start
    try:
        pid = await fn(*args, *extra)
    except StartError as exc:
        raise _StartFailed(exc.reason) from None
    except Exception as exc:
        exc.__traceback__ = None
        raise _StartFailed(exc) from None
    if pid is not None and not isinstance(pid, Pid):
        raise _StartFailed(("bad_start_return", pid))
    return pid


async def _start_child(state: SupervisorState, arg: object) -> replies.ServerReply:
    if state.spec.strategy == "simple_one_for_one":
        extra = arg if isinstance(arg, tuple) else (arg,)
        template = state.children[0].spec
        try:
            pid = await _start(template, extra)
        except _StartFailed as failed:
            return replies.Failed(failed.reason)
        if pid is not None:
            state.dynamic[pid] = extra
        return replies.Ok(pid)
    if not isinstance(arg, ChildSpec):
        return replies.Refused(("not_a_child_spec", repr(arg)))
    existing = state.find(arg.id)
    if existing is not None:
        if isinstance(existing.pid, Pid):
            return replies.Refused(("already_started", existing.pid))
        return replies.Refused("already_present")
    try:
        pid = await _start(arg, ())
    except _StartFailed as failed:
        return replies.Failed(failed.reason)
    if pid is not None or arg.restart != "temporary":
        state.children.append(_Child(arg, pid))
    return replies.Ok(pid)


def _refuse_stopped_child_op(
    state: SupervisorState, child: _Child | None
) -> replies.Refused | None:
    """Why restart_child / delete_child cannot act on ``child`` (None: they can)."""
    if state.spec.strategy == "simple_one_for_one":
        return replies.Refused("simple_one_for_one")
    if child is None:
        return replies.Refused("not_found")
    if isinstance(child.pid, Pid):
        return replies.Refused("running")
    if child.pid == RESTARTING:
        return replies.Refused("restarting")
    return None


async def _restart_child(state: SupervisorState, child_id: str) -> replies.ServerReply:
    child = state.find(child_id)
    refusal = _refuse_stopped_child_op(state, child)
    if refusal is not None:
        return refusal
    assert child is not None
    try:
        child.pid = await _start(child.spec, ())
    except _StartFailed as failed:
        return replies.Failed(failed.reason)
    return replies.Ok(child.pid)


async def _terminate_child(state: SupervisorState, key: object) -> replies.ServerReply:
    if state.spec.strategy == "simple_one_for_one":
        if not isinstance(key, Pid) or key not in state.dynamic:
            return replies.Refused("not_found")
        del state.dynamic[key]
        await _shutdown(state, state.children[0].spec, key)
        return replies.Ok(None)
    child = _lookup(state, key)
    if child is None:
        return replies.Refused("not_found")
    if isinstance(child.pid, Pid):
        await _shutdown(state, child.spec, child.pid)
    child.pid = None
    if child.spec.restart == "temporary":
        state.children.remove(child)
    return replies.Ok(None)


def _delete_child(state: SupervisorState, child_id: str) -> replies.ServerReply:
    child = state.find(child_id)
    refusal = _refuse_stopped_child_op(state, child)
    if refusal is not None:
        return refusal
    assert child is not None
    state.children.remove(child)
    return replies.Ok(None)


def _lookup(state: SupervisorState, key: object) -> _Child | None:
    """The child with id ``key``, or running as pid ``key`` (not simple_one_for_one)."""
    child = state.find(key) if isinstance(key, str) else None
    if child is None and isinstance(key, Pid):
        child = state.by_pid(key)
    return child


def _get_childspec(state: SupervisorState, key: object) -> replies.ServerReply:
    if state.spec.strategy == "simple_one_for_one":
        if isinstance(key, Pid) and key in state.dynamic:
            return replies.Ok(state.children[0].spec)
        return replies.Refused("not_found")
    child = _lookup(state, key)
    return replies.Ok(child.spec) if child is not None else replies.Refused("not_found")


def _spec_info(state: SupervisorState) -> SpecInfo:
    spec = state.spec
    return SpecInfo(
        strategy=spec.strategy,
        intensity=spec.intensity,
        period=spec.period,
        auto_shutdown=spec.auto_shutdown,
        child_ids=tuple(child.id for child in spec.children),
    )


def _which_children(state: SupervisorState) -> list[ChildInfo]:
    if state.spec.strategy == "simple_one_for_one":
        template = state.children[0].spec
        return [ChildInfo(None, pid, template.type, template.modules) for pid in state.dynamic]
    return [ChildInfo(c.spec.id, c.pid, c.spec.type, c.spec.modules) for c in state.children]


def _count_children(state: SupervisorState) -> ChildCounts:
    rows = _which_children(state)
    active = [r for r in rows if isinstance(r.pid, Pid) and kernel.is_alive(r.pid)]
    return ChildCounts(
        specs=1 if state.spec.strategy == "simple_one_for_one" else len(rows),
        active=len(active),
        supervisors=sum(1 for r in rows if r.type == "supervisor"),
        workers=sum(1 for r in rows if r.type == "worker"),
    )


# -- restarting ----------------------------------------------------------------------------


async def _child_exited(state: SupervisorState, pid: Pid, reason: object) -> object:
    if state.spec.strategy == "simple_one_for_one":
        if pid not in state.dynamic:
            return NoReply(state)
        spec = state.children[0].spec
        if _should_restart(spec, reason):
            _report(state, "child_terminated", pid, reason)
            return await _restart(state, pid)
        if not is_normal_exit(reason):
            _report(state, "child_terminated", pid, reason)
        del state.dynamic[pid]
        return NoReply(state)
    child = state.by_pid(pid)
    if child is None:
        return NoReply(state)
    spec = child.spec
    if spec.restart == "permanent" or not is_normal_exit(reason):
        _report(state, "child_terminated", spec.id, reason)
    if _should_restart(spec, reason):
        return await _restart(state, spec.id)
    child.pid = None
    if spec.restart == "temporary":
        state.children.remove(child)
    if spec.significant and _auto_shutdown_now(state):
        await _shutdown_all(state)
        return Stop("shutdown", state)
    return NoReply(state)


def _should_restart(spec: ChildSpec, reason: object) -> bool:
    if spec.restart == "permanent":
        return True
    if spec.restart == "transient":
        return not is_normal_exit(reason)
    return False


def _auto_shutdown_now(state: SupervisorState) -> bool:
    mode = state.spec.auto_shutdown
    if mode == "any_significant":
        return True
    if mode == "all_significant":
        return not any(c.spec.significant and isinstance(c.pid, Pid) for c in state.children)
    return False


async def _restart(state: SupervisorState, key: str | Pid) -> object:
    # the loop's clock, as anyio.current_time() reads it, without anyio's backend look-up
    now = asyncio.get_running_loop().time()
    state.restarts, exceeded = add_restart(
        state.restarts, now, state.spec.intensity, state.spec.period
    )
    if exceeded:
        _report(state, "reached_max_restart_intensity", key, "shutdown")
        await _shutdown_all(state)
        return Stop("shutdown", state)
    me = kernel.self()
    kernel.set_label(RESTARTS_LABEL, kernel.get_label(me, RESTARTS_LABEL, 0) + 1)
    strategy = state.spec.strategy
    if strategy == "simple_one_for_one":
        assert isinstance(key, Pid)
        extra = state.dynamic.pop(key)
        try:
            pid = await _start(state.children[0].spec, extra)
        except _StartFailed as failed:
            _report(state, "start_error", key, failed.reason)
            state.dynamic[key] = extra
            kernel.send(kernel.self(), _TryAgain(key))
            return NoReply(state)
        if pid is not None:
            state.dynamic[pid] = extra
        return NoReply(state)
    child = state.find(key) if isinstance(key, str) else None
    if child is None:
        return NoReply(state)
    index = state.children.index(child)
    if strategy == "one_for_one":
        group = [child]
    elif strategy == "one_for_all":
        group = list(state.children)
    else:
        group = state.children[index:]
    for other in reversed(group):
        if other is not child and isinstance(other.pid, Pid):
            await _shutdown(state, other.spec, other.pid)
            other.pid = None
    # temporary children shut down by a group restart are not restarted: drop them (OTP)
    dropped = [c for c in group if c is not child and c.spec.restart == "temporary"]
    for gone in dropped:
        state.children.remove(gone)
        group.remove(gone)
    for member in group:
        try:
            member.pid = await _start(member.spec, ())
        except _StartFailed as failed:
            _report(state, "start_error", member.spec.id, failed.reason)
            member.pid = RESTARTING
            kernel.send(kernel.self(), _TryAgain(member.spec.id))
            return NoReply(state)
    return NoReply(state)


async def _try_again(state: SupervisorState, key: str | Pid) -> object:
    if isinstance(key, str):
        child = state.find(key)
        if child is None or child.pid != RESTARTING:
            return NoReply(state)
    elif key not in state.dynamic:
        return NoReply(state)
    return await _restart(state, key)


# -- shutting down -------------------------------------------------------------------------


async def _shutdown(state: SupervisorState, spec: ChildSpec, pid: Pid) -> None:
    ref = kernel.monitor(pid)
    shutdown = spec.shutdown_value
    if shutdown == "brutal_kill":
        kernel.exit(pid, kernel.KILL)
        down = await _down(ref, math.inf)
    else:
        kernel.exit(pid, kernel.SHUTDOWN)
        down = await _down(ref, float(shutdown))
        if down is None:
            kernel.exit(pid, kernel.KILL)
            down = await _down(ref, math.inf)
    assert down is not None
    _flush_exit(pid)
    _check_shutdown_reason(state, spec, spec.id, down.reason)


def _check_shutdown_reason(
    state: SupervisorState, spec: ChildSpec, key: object, reason: object
) -> None:
    expected = reason == kernel.SHUTDOWN or (
        spec.shutdown_value == "brutal_kill" and reason == kernel.KILLED
    )
    if not expected and spec.restart != "permanent" and is_normal_exit(reason):
        expected = True
    if not expected:
        _report(state, "shutdown_error", key, reason)


async def _down(ref: kernel.Ref, timeout: float) -> DownMessage | None:
    try:
        message = await kernel.receive(
            lambda m: type(m) is DownMessage and m.ref is ref,
            timeout=None if timeout == math.inf else timeout,
        )
    except TimeoutError:
        return None
    assert isinstance(message, DownMessage)
    return message


def _flush_exit(pid: Pid) -> None:
    kernel.flush(lambda m: type(m) is ExitMessage and m.pid is pid)


async def _shutdown_all(state: SupervisorState) -> None:
    if state.spec.strategy == "simple_one_for_one":
        await _shutdown_dynamic(state)
        return
    for child in reversed(state.children):
        if isinstance(child.pid, Pid):
            await _shutdown(state, child.spec, child.pid)
        child.pid = None


async def _shutdown_dynamic(state: SupervisorState) -> None:
    spec = state.children[0].spec
    shutdown = spec.shutdown_value
    refs = {kernel.monitor(pid): pid for pid in state.dynamic}
    signal = kernel.KILL if shutdown == "brutal_kill" else kernel.SHUTDOWN
    for pid in state.dynamic:
        kernel.exit(pid, signal)
    deadline = (
        math.inf
        if shutdown in ("brutal_kill", math.inf)
        else anyio.current_time() + float(shutdown)
    )
    pids = set(refs.values())
    # one pass over the mailbox per message: the children's EXIT signals are taken (and
    # dropped) as they come instead of scanned past, or stopping N children costs N^2
    while refs:
        left = deadline - anyio.current_time()
        message = await _down_or_exit(refs, pids, max(left, 0.0))
        if message is None:
            for pid in refs.values():
                kernel.exit(pid, kernel.KILL)
            deadline = math.inf
            continue
        if type(message) is ExitMessage:
            continue
        assert isinstance(message, DownMessage)
        pid = refs.pop(message.ref)
        _check_shutdown_reason(state, spec, pid, message.reason)
    kernel.flush(lambda m: type(m) is ExitMessage and m.pid in pids)
    state.dynamic.clear()


async def _down_or_exit(refs: dict[kernel.Ref, Pid], pids: set[Pid], timeout: float) -> object:
    try:
        return await kernel.receive(
            lambda m: (
                (type(m) is DownMessage and m.ref in refs)
                or (type(m) is ExitMessage and m.pid in pids)
            ),
            timeout=None if timeout == math.inf else timeout,
        )
    except TimeoutError:
        return None
