"""The gen_server callback contract: what a callback module defines and may return.

A callback module is a plain Python module (the unit of code loading) defining the
functions of ``GenServerCallbacks``; each may be a plain or an ``async`` function. Only
``init`` is required; the engine supplies OTP's defaults for the others.

==================  =========================================================
callback            allowed results
==================  =========================================================
``init(args)``      ``Ok(state, action?)``, ``Ignore()``, ``Stop(reason)``
``handle_call``     ``Reply(reply, state, action?)``, ``NoReply(state, action?)``,
                    ``Stop(reason, state, reply=...)``
``handle_cast``     ``NoReply(state, action?)``, ``Stop(reason, state)``
``handle_info``     ``NoReply(state, action?)``, ``Stop(reason, state)``
``handle_continue`` ``NoReply(state, action?)``, ``Stop(reason, state)``
``terminate``       anything (ignored)
``code_change``     the new state; raise to refuse (the state is left unchanged)
==================  =========================================================

An *action* is ``Continuation(arg)`` (``handle_continue(arg, state)`` runs before the next
message), ``Timeout(seconds)`` (``handle_info("timeout", state)`` if no message arrives in
time) or ``Hibernate()`` (accepted; the engine's stack is already minimal, so it is a no-op).

``code_change(old_vsn, state, extra)`` must not mutate ``state``: it returns a new one. The
release handler relies on this to undo a failed upgrade with every state untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, final

if TYPE_CHECKING:
    from server.kernel import From

__all__ = [
    "NO_REPLY",
    "Action",
    "CallResult",
    "Continuation",
    "GenServerCallbacks",
    "Hibernate",
    "Ignore",
    "InitResult",
    "NoReply",
    "Ok",
    "Reply",
    "Stop",
    "Timeout",
]


@final
@dataclass(frozen=True, slots=True)
class Continuation:
    """Run ``handle_continue(arg, state)`` before taking the next message."""

    arg: object


@final
@dataclass(frozen=True, slots=True)
class Timeout:
    """Deliver ``"timeout"`` to ``handle_info`` if no message arrives within ``seconds``."""

    seconds: float


@final
@dataclass(frozen=True, slots=True)
class Hibernate:
    """Accepted for OTP compatibility; the engine keeps no stack to drop."""


Action = Continuation | Timeout | Hibernate


@final
@dataclass(frozen=True, slots=True)
class Ok:
    """``init`` succeeded with ``state``."""

    state: object
    action: Action | None = None


@final
@dataclass(frozen=True, slots=True)
class Ignore:
    """``init`` declines to start; the starter gets None and the process ends ``normal``."""


class _NoReplyMarker:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_REPLY"


#: ``Stop(..., reply=NO_REPLY)``: stop without answering the caller.
NO_REPLY: Final = _NoReplyMarker()


@final
@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the caller with ``reply`` and go on with ``state``."""

    reply: object
    state: object
    action: Action | None = None


@final
@dataclass(frozen=True, slots=True)
class NoReply:
    """Go on with ``state`` (from ``handle_call``: answer later with ``gen_server.reply``)."""

    state: object
    action: Action | None = None


@final
@dataclass(frozen=True, slots=True)
class Stop:
    """End the server with ``reason`` after ``terminate``; optionally answer the caller."""

    reason: object
    state: object = None
    reply: object = field(default=NO_REPLY)


InitResult = Ok | Ignore | Stop
CallResult = Reply | NoReply | Stop


class GenServerCallbacks(Protocol):
    """What a gen_server callback module provides (each function may also be async)."""

    def init(self, args: Any) -> InitResult: ...

    def handle_call(self, request: Any, from_: From, state: Any) -> CallResult: ...

    def handle_cast(self, request: Any, state: Any) -> NoReply | Stop: ...

    def handle_info(self, message: Any, state: Any) -> NoReply | Stop: ...

    def handle_continue(self, arg: Any, state: Any) -> NoReply | Stop: ...

    def terminate(self, reason: Any, state: Any) -> object: ...

    def code_change(self, old_vsn: Any, state: Any, extra: Any) -> Any: ...
