"""gen_server: the generic server behaviour (the engine; callbacks live in a user module).

==============================  =================================================
generic function                callback it triggers
==============================  =================================================
``start`` / ``start_link``      ``init(args)``
``call(server, request)``       ``handle_call(request, from_, state)``
``cast(server, request)``       ``handle_cast(request, state)``
any other message               ``handle_info(message, state)``
a ``Continuation`` action       ``handle_continue(arg, state)``
``stop`` / ``Stop`` / a crash   ``terminate(reason, state)``
``system_messages.change_code`` ``code_change(old_vsn, state, extra)``
==============================  =================================================

Results, and what the engine does with them (see ``gen_server_callbacks``):

- ``init``: ``Ok(state, action?)`` -> the starter gets the pid; ``Ignore()`` -> the starter
  gets None and the process ends ``normal``; ``Stop(reason)`` or an exception -> the starter
  gets ``StartError(reason)`` and the process ends with ``reason``.
- ``handle_call``: ``Reply`` answers at once; ``NoReply`` leaves the answer to a later
  ``reply(from_, value)``; ``Stop(reason, state, reply=...)`` answers (if a reply is given),
  runs ``terminate`` and ends with ``reason``.
- ``handle_cast`` / ``handle_info`` / ``handle_continue``: ``NoReply`` or ``Stop``.
- Anything else is a bad return: ``terminate`` runs and the server ends with
  ``("bad_return_value", value)``. An exception ends it with that exception.

Every callback is looked up through ``_dispatch.resolve`` at each use, so a newly loaded
version of the module answers the next message. Callbacks may be plain or ``async``
functions. ``terminate`` runs on ``Stop``, on a crash, on ``stop``, and on an exit signal from
the parent only when the server traps exits; never when it is killed.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
from inspect import CO_COROUTINE
from types import CoroutineType, FunctionType, ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, final

from server import kernel
from server.behaviours import system_messages
from server.behaviours._dispatch import module_name, resolve
from server.behaviours._start import Starter, register_or_fail, start_process
from server.behaviours.gen_server_callbacks import (
    NO_REPLY,
    Continuation,
    Hibernate,
    Ignore,
    NoReply,
    Ok,
    Reply,
    Stop,
    Timeout,
)
from server.behaviours.system_messages import ProcessStatus, SystemMessage
from server.kernel import ExitMessage, From, Pid, ProcessExit

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import CodeType

__all__ = [
    "CallMessage",
    "CastMessage",
    "abcast",
    "call",
    "cast",
    "reply",
    "start",
    "start_link",
    "stop",
]

logger = logging.getLogger("server.behaviours.gen_server")

DEFAULT_CALL_TIMEOUT = 5.0

reply = kernel.reply


@final
class CallMessage:
    """A ``call`` as it arrives at the server."""

    __slots__ = ("from_", "request")

    def __init__(self, from_: From, request: object) -> None:
        self.from_ = from_
        self.request = request

    def __repr__(self) -> str:
        return f"CallMessage({self.request!r}, from={self.from_.pid!r})"


_new_message = object.__new__


@final
class CastMessage:
    """A ``cast`` as it arrives at the server."""

    __slots__ = ("request",)

    def __init__(self, request: object) -> None:
        self.request = request

    def __repr__(self) -> str:
        return f"CastMessage({self.request!r})"


# -- the client's side ---------------------------------------------------------------------


async def start(
    module: ModuleType | str,
    args: object = None,
    *,
    name: str | None = None,
    timeout: float = math.inf,
) -> Pid | None:
    """Start a server (not linked) and wait until its ``init`` has run.

    Returns:
        The pid, or None when ``init`` returned ``Ignore()``.

    Raises:
        StartError: ``init`` stopped, crashed or took longer than ``timeout``.
        AlreadyStarted: ``name`` is held by a live process.
    """
    return await _start(module, args, name=name, timeout=timeout, link=False)


async def start_link(
    module: ModuleType | str,
    args: object = None,
    *,
    name: str | None = None,
    timeout: float = math.inf,
) -> Pid | None:
    """Like ``start``, linked to the calling process (the server's parent).

    Raises:
        StartError: ``init`` stopped, crashed or took longer than ``timeout``.
        AlreadyStarted: ``name`` is held by a live process.
    """
    return await _start(module, args, name=name, timeout=timeout, link=True)


async def _start(
    module: ModuleType | str, args: object, *, name: str | None, timeout: float, link: bool
) -> Pid | None:
    mod_name = module_name(module)
    what = name or mod_name
    return await start_process(
        _init_it, (mod_name, args, name), link=link, timeout=timeout, what=what
    )


def call(
    server: Pid | str | tuple[str, str],
    request: object,
    *,
    timeout: float = DEFAULT_CALL_TIMEOUT,
) -> Coroutine[Any, Any, Any]:
    """Send ``request`` and wait for the answer of ``handle_call`` (await what it returns).

    It returns the kernel's request coroutine itself rather than awaiting it in a coroutine
    of its own: each resumption of a call then passes through one coroutine frame, not two.

    ``server`` is a pid (of this node or another), a registered name, or ``(name, node)``
    for a name registered on another node. A request to another node must be a term (see
    ``server.dist``).

    ``timeout`` is in seconds (``math.inf`` waits for ever). The server is monitored for
    the length of the call: a missing or dead server fails at once, and a reply that comes
    after the timeout is dropped.

    Raises:
        CalleeExited: the server does not exist (reason ``noproc``) or ended before replying.
        CallingSelf: the server is the caller itself (OTP's ``calling_self``): at once.
        CallTimeout: no answer within ``timeout``.
    """

    def make_message(from_: From) -> CallMessage:
        # CallMessage(from_, request) without its __init__'s frame: the call's hot path
        message: CallMessage = _new_message(CallMessage)
        message.from_ = from_
        message.request = request
        return message

    return kernel.request(
        server,
        make_message,
        None if timeout == math.inf else timeout,
        what=request,
    )


def cast(server: Pid | str | tuple[str, str], request: object) -> None:
    """Send ``request`` to ``handle_cast`` without waiting. Never fails (as in OTP)."""
    with contextlib.suppress(LookupError):
        kernel.send(server, CastMessage(request))


def abcast(names: list[str], request: object) -> None:
    """Cast ``request`` to each registered name that exists."""
    for name in names:
        cast(name, request)


async def stop(
    server: Pid | str, reason: object = kernel.NORMAL, *, timeout: float = math.inf
) -> None:
    """Make the server run ``terminate`` and end with ``reason``; wait until it has ended.

    Raises:
        CalleeExited: the server does not exist, or ended with another reason.
        CallTimeout: it did not end within ``timeout``.
    """
    await system_messages.terminate(server, reason, timeout=timeout)


# -- the server's side ---------------------------------------------------------------------


async def _init_it(starter: Starter, mod_name: str, args: object, name: str | None) -> None:
    register_or_fail(starter, name)
    kernel.set_label("behaviour", "gen_server")
    kernel.set_label("module", mod_name)
    server = _Server(mod_name, starter.parent, name)
    kernel.set_label(system_messages.HOST_LABEL, server)  # may be suspended in place
    try:
        result = await server.invoke("init", args)
    except Exception as exc:
        starter.failed(exc)
        raise
    except ProcessExit as exit_:  # init called OTP's exit/1: a failed start, not a signal
        starter.failed(exit_.reason)
        raise
    if type(result) is Ok:
        starter.started()
        server.state = result.state
        await server.loop(result.action)
    elif type(result) is Ignore:
        raise starter.ignored()
    elif type(result) is Stop:
        starter.failed(result.reason)
        raise ProcessExit(result.reason)
    else:
        reason = ("bad_return_value", result)
        starter.failed(reason)
        raise ProcessExit(reason)


def _default_handle_call(request: object, from_: From, state: object) -> object:
    logger.warning("unexpected call %r: no handle_call in the callback module", request)
    return Stop(("bad_call", request), state)


def _default_handle_cast(request: object, state: object) -> object:
    logger.warning("unexpected cast %r: no handle_cast in the callback module", request)
    return Stop(("bad_cast", request), state)


def _default_handle_info(message: object, state: object) -> object:
    logger.warning("unexpected message %r: no handle_info in the callback module", message)
    return NoReply(state)


def _default_terminate(reason: object, state: object) -> object:
    return None


def _default_code_change(old_vsn: object, state: object, extra: object) -> object:
    return state


_DEFAULTS: dict[str, Callable[..., object]] = {
    "handle_call": _default_handle_call,
    "handle_cast": _default_handle_cast,
    "handle_info": _default_handle_info,
    "terminate": _default_terminate,
    "code_change": _default_code_change,
}


@final
class _Server:
    """The engine's state for one server process (the ``SystemHost`` of its sys protocol)."""

    __slots__ = ("module", "name", "parent", "pending_change", "state")

    def __init__(self, module: str, parent: Pid, name: str | None) -> None:
        self.module = module
        self.parent = parent
        self.name = name
        #: the coroutine a plain ``code_change`` returned when tried in place, with the
        #: arguments it was called with: the message path awaits it instead of calling again
        self.pending_change: tuple[object, object, Coroutine[Any, Any, object]] | None = None
        self.state: object = None

    def callback(self, fn_name: str) -> Callable[..., object]:
        fn = getattr(resolve(self.module), fn_name, None)
        if fn is None:
            fn = _DEFAULTS.get(fn_name)
            if fn is None:
                raise AttributeError(f"callback module {self.module} has no {fn_name}()")
        return fn

    async def invoke(self, fn_name: str, *args: object) -> object:
        result = self.callback(fn_name)(*args)
        if type(result) is CoroutineType:
            result = await result
        return result

    async def loop(self, action: object) -> NoReturn:
        """Take messages one at a time, for ever (ends by raising ``ProcessExit``)."""
        receive = kernel.receive
        timeout: float | None = None
        message: object = None
        while True:
            try:
                if action is not None:
                    kind = type(action)
                    if kind is Continuation:
                        message = action
                        action = self._result(
                            await self.invoke("handle_continue", action.arg, self.state)  # type: ignore[attr-defined]
                        )
                        continue
                    if kind is Timeout:
                        timeout = action.seconds  # type: ignore[attr-defined]
                    elif kind is not Hibernate:
                        raise _Stopping(("bad_action", action))
                    action = None
                try:
                    message = await receive(timeout=timeout)
                except TimeoutError:
                    message = "timeout"
                kind = type(message)
                if kind is SystemMessage:
                    # OTP answers and goes back to its loop with the same timeout, re-armed
                    await system_messages.handle_system(self, message, self.parent)  # type: ignore[arg-type]
                    continue
                timeout = None
                # calls and casts run their callback inline rather than through invoke: two
                # coroutines fewer per message; the callback is still looked up each time
                if kind is CallMessage:
                    from_ = message.from_  # type: ignore[attr-defined]
                    fn = getattr(resolve(self.module), "handle_call", None)  # callback, inlined
                    if fn is None:
                        fn = self.callback("handle_call")
                    result = fn(message.request, from_, self.state)  # type: ignore[attr-defined]
                    if type(result) is CoroutineType:
                        result = await result
                    if type(result) is Reply:
                        kernel.reply(from_, result.reply)
                        self.state = result.state
                        action = result.action
                    else:
                        if type(result) is Stop and result.reply is not NO_REPLY:
                            kernel.reply(from_, result.reply)
                        action = self._result(result)
                elif kind is CastMessage:
                    fn = getattr(resolve(self.module), "handle_cast", None)
                    if fn is None:
                        fn = self.callback("handle_cast")
                    result = fn(message.request, self.state)  # type: ignore[attr-defined]
                    if type(result) is CoroutineType:
                        result = await result
                    action = self._result(result)
                elif kind is ExitMessage and message.pid is self.parent:  # type: ignore[attr-defined]
                    raise _Stopping(message.reason)  # type: ignore[attr-defined]
                else:
                    action = self._result(await self.invoke("handle_info", message, self.state))
            except _Stopping as stopping:
                await self._terminate_with(stopping.reason)
            except ProcessExit:
                raise
            except Exception as exc:
                await self._crash(exc, message)

    def _result(self, result: object) -> object:
        if type(result) is NoReply:
            self.state = result.state
            return result.action
        if type(result) is Stop:
            self.state = result.state
            raise _Stopping(result.reason)
        raise _Stopping(("bad_return_value", result))

    async def _crash(self, exc: Exception, last_message: object) -> NoReturn:
        if logger.isEnabledFor(logging.ERROR):  # its facts are built only if it is written
            self._report_crash(exc, last_message)
        await self._run_terminate(exc)
        raise exc

    def _report_crash(self, exc: Exception, last_message: object) -> None:
        logger.error(
            "gen_server %s terminating: %r while handling %r",
            self.name or kernel.self(),
            exc,
            last_message,
            extra={
                "report": "gen_server_terminate",
                "pid": repr(kernel.self()),
                "registered_name": self.name,
                "callback_module": self.module,
                "last_message": repr(last_message),
            },
        )

    async def _run_terminate(self, reason: object) -> None:
        try:
            await self.invoke("terminate", reason, self.state)
        except Exception:
            logger.exception("terminate of %s raised", self.module)

    async def _terminate_with(self, reason: object) -> NoReturn:
        await self._run_terminate(reason)
        raise ProcessExit(reason)

    # SystemHost

    def system_get_state(self) -> object:
        return self.state

    def system_replace_state(self, fn: Callable[[Any], Any]) -> object:
        self.state = fn(self.state)
        return self.state

    async def system_code_change(self, module: str, old_vsn: object, extra: object) -> None:
        # OTP ignores the module argument: a gen_server changes code through its own module.
        pending, self.pending_change = self.pending_change, None
        if pending is not None:
            tried_vsn, tried_extra, coroutine = pending
            if tried_vsn is old_vsn and tried_extra is extra:
                self.state = await coroutine  # its plain part ran in place already
                return
            coroutine.close()  # for another change: it never ran
        self.state = await self.invoke("code_change", old_vsn, self.state, extra)

    # ParkedHost

    def system_parent(self) -> Pid | None:
        return self.parent

    def system_loop_code(self) -> CodeType:
        return _LOOP_CODE

    def system_code_change_now(self, module: str, old_vsn: object, extra: object) -> bool:
        fn = self.callback("code_change")
        if _is_async(fn):
            return False
        result = fn(old_vsn, self.state, extra)
        if type(result) is CoroutineType:
            # a plain function that returned a coroutine: its plain part ran, the rest did
            # not; the process awaits it on the message path (``ChangeCode``)
            if self.pending_change is not None:
                self.pending_change[2].close()
            self.pending_change = (old_vsn, extra, result)
            return False
        self.state = result
        return True

    def system_status(self, status: str) -> ProcessStatus:
        return ProcessStatus.of_self(
            status,
            behaviour="gen_server",
            module=self.module,
            registered_name=self.name,
            parent=self.parent,
            state=self.state,
        )

    async def system_terminate(self, reason: object) -> None:
        await self._terminate_with(reason)


_LOOP_CODE = _Server.loop.__code__


def _is_async(fn: Callable[..., object]) -> bool:
    if type(fn) is FunctionType:
        return bool(fn.__code__.co_flags & CO_COROUTINE)
    return inspect.iscoroutinefunction(fn)


class _Stopping(Exception):
    """Internal: a callback asked to stop (or returned junk)."""

    def __init__(self, reason: object) -> None:
        self.reason = reason
