"""The gen_event handler contract: what a handler module defines and may return.

An event handler is a plain Python module (the unit of code loading) installed in an event
manager under a *handler id*: the module, or ``(module, id)`` when one module is installed
more than once (OTP's ``Module`` and ``{Module, Id}``). Each callback may be a plain or an
``async`` function. ``init`` and ``handle_event`` are required; the engine supplies OTP's
defaults for the others.

=======================  ====================================================================
callback                 allowed results
=======================  ====================================================================
``init(args)``           ``Ok(state)``, ``Error(reason)``
``handle_event``         ``Ok(state)``, ``SwapHandler(...)``, ``RemoveHandler()``
``handle_info``          ``Ok(state)``, ``SwapHandler(...)``, ``RemoveHandler()``
``handle_call``          ``Reply(reply, state)``, ``SwapHandler(..., reply=...)``,
                         ``RemoveHandler(reply)``
``terminate(arg, st)``   anything: ``delete_handler`` returns it, a swap hands it to the new
                         handler's ``init``, otherwise it is ignored
``code_change``          the new state; raise to refuse (the state is left unchanged)
=======================  ====================================================================

``terminate``'s ``arg`` says why the handler goes: the ``args`` of ``delete_handler`` or of a
swap; ``"remove_handler"`` (a callback returned ``RemoveHandler``); ``"stop"`` (the manager
is terminating); ``("stop", reason)`` (the process that added it with ``add_sup_handler``
ended with ``reason``); ``("error", exception)`` (a callback raised; for a
``ProcessExit``, its reason) or ``("error", ("bad_return_value", value))`` (a callback
returned something else).

``hibernate=True`` is accepted for OTP compatibility; the engine keeps no stack to drop, so
it changes nothing. ``code_change(old_vsn, state, extra)`` must not mutate ``state``: it
returns a new one (the release handler relies on this to undo a failed upgrade).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, final

if TYPE_CHECKING:
    from server.kernel import Pid

__all__ = [
    "CallResult",
    "Error",
    "EventResult",
    "GenEventCallbacks",
    "Handler",
    "HandlerExit",
    "HandlerSpec",
    "HandlerState",
    "InitResult",
    "Ok",
    "RemoveHandler",
    "Reply",
    "SwapHandler",
    "Swapped",
    "handler_of",
]


@final
@dataclass(frozen=True, slots=True)
class Handler:
    """A handler id: its module's name and, for a module installed more than once, an id."""

    module: str
    id: object = None

    def __post_init__(self) -> None:
        module: object = self.module  # checked: callers outside mypy pass anything
        if not isinstance(module, str) or not module:
            raise TypeError(f"a handler's module is a non-empty dotted name, not {module!r}")
        try:
            hash(self.id)
        except TypeError:
            raise TypeError(f"a handler's id must be hashable, not {self.id!r}") from None

    def __repr__(self) -> str:
        return self.module if self.id is None else f"({self.module}, {self.id!r})"


HandlerSpec = Handler | ModuleType | str | tuple[ModuleType | str, object]


def handler_of(spec: HandlerSpec) -> Handler:
    """The ``Handler`` named by a module, a module name, ``(module, id)`` or a ``Handler``.

    Raises:
        TypeError: ``spec`` is none of these.
    """
    given: object = spec  # checked: callers outside mypy pass anything
    if type(given) is Handler:
        return given
    if isinstance(given, str):
        return Handler(given)
    if isinstance(given, ModuleType):
        return Handler(given.__name__)
    if isinstance(given, tuple) and len(given) == 2:
        module, id_ = given
        if isinstance(module, str | ModuleType):
            return Handler(handler_of(module).module, id_)
    raise TypeError(f"a handler is a module, its dotted name, or (module, id), not {spec!r}")


@final
@dataclass(frozen=True, slots=True)
class HandlerState:
    """One installed handler and its state, as ``sys.get_state`` reports a manager."""

    handler: Handler
    state: object

    @property
    def module(self) -> str:
        """The handler's module."""
        return self.handler.module


@final
@dataclass(frozen=True, slots=True)
class Ok:
    """``init`` / ``handle_event`` / ``handle_info``: go on with ``state``."""

    state: object
    hibernate: bool = False


@final
@dataclass(frozen=True, slots=True)
class Error:
    """``init`` declines (OTP's ``{error, Reason}``): the handler is not added."""

    reason: object


@final
@dataclass(frozen=True, slots=True)
class Reply:
    """``handle_call``: answer the caller with ``reply`` and go on with ``state``."""

    reply: object
    state: object
    hibernate: bool = False


@final
@dataclass(frozen=True, slots=True)
class SwapHandler:
    """Replace this handler: ``terminate(args1, state)``, then ``handler2``'s ``init``.

    The new handler's ``init`` gets ``(args2, what terminate returned)``; it inherits the
    supervision of the old one. From ``handle_call``, ``reply`` answers the caller.
    """

    args1: object
    state: object
    handler2: HandlerSpec
    args2: object
    reply: object = None


@final
@dataclass(frozen=True, slots=True)
class RemoveHandler:
    """Delete this handler (``terminate("remove_handler", state)``); answer ``reply``."""

    reply: object = None


@final
@dataclass(frozen=True, slots=True)
class Swapped:
    """The removal reason of a swapped handler: replaced by ``new`` supervised by ``pid``."""

    new: Handler
    pid: Pid | None


@final
@dataclass(frozen=True, slots=True)
class HandlerExit:
    """Sent to the adder of a supervised handler when it is removed (``gen_event_EXIT``).

    ``reason``: ``"normal"`` (deleted, or a callback returned ``RemoveHandler``),
    ``"shutdown"`` (the manager is terminating), ``Swapped(new, pid)``, or the error: the
    exception a callback raised (traceback cleared) or ``("bad_return_value", value)``.
    """

    manager: Pid
    handler: Handler
    reason: object


InitResult = Ok | Error
EventResult = Ok | SwapHandler | RemoveHandler
CallResult = Reply | SwapHandler | RemoveHandler


class GenEventCallbacks(Protocol):
    """What an event handler module provides (each function may also be async)."""

    def init(self, args: Any) -> InitResult: ...

    def handle_event(self, event: Any, state: Any) -> EventResult: ...

    def handle_info(self, message: Any, state: Any) -> EventResult: ...

    def handle_call(self, request: Any, state: Any) -> CallResult: ...

    def terminate(self, arg: Any, state: Any) -> object: ...

    def code_change(self, old_vsn: Any, state: Any, extra: Any) -> Any: ...
