"""A native WebSocket handler: a plain callback module, looked up again at every frame.

An ASGI WebSocket coroutine lives in the version it started in (its frames hold that
code). A native handler has no long-running coroutine of its own: the connection process
calls the handler module's *current* version for each event, so an open WebSocket moves to
new code at its next message, across any number of upgrades, and no frame of an old
version stays in the connection process between messages.

The callbacks (plain or ``async``)::

    def on_connect(request: WebSocketRequest, args) -> Accept | Refuse
    def on_message(message: str | bytes, state) -> Send | Keep | Close
    def on_close(code: int, state) -> None            # optional

===============================  ================================================
the handler returns              the connection does
===============================  ================================================
``Accept(state, subprotocol)``   completes the handshake (101); ``state`` is kept
``Refuse()``                     answers 403 and closes
``Send(messages, state)``        sends each message (``str``: text, ``bytes``:
                                 binary), keeps ``state``
``Keep(state)``                  keeps ``state``, sends nothing
``Close(code, state)``           closes with ``code``; ``on_close`` then runs
raises                           closes with 1011 (internal error), logged
===============================  ================================================

``on_close`` runs once when the WebSocket ends, whoever closed it (the client's code, the
handler's, or 1006 when the connection broke).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, final

from server import kernel
from server.behaviours import resolve

if TYPE_CHECKING:
    from server.net._asgi_websocket import WebSocketCycle

__all__ = [
    "Accept",
    "Close",
    "Keep",
    "Refuse",
    "Send",
    "WebSocketRequest",
    "serve_native",
]

logger = logging.getLogger("server.net.asgi")


@final
@dataclass(frozen=True, slots=True)
class WebSocketRequest:
    """The upgrade request, as ``on_connect`` sees it."""

    path: str
    query_string: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    subprotocols: tuple[str, ...]


@final
@dataclass(frozen=True, slots=True)
class Accept:
    """Complete the handshake, keeping ``state`` (and answering ``subprotocol``)."""

    state: object = None
    subprotocol: str | None = None


@final
@dataclass(frozen=True, slots=True)
class Refuse:
    """Refuse the WebSocket: the client gets 403."""


@final
@dataclass(frozen=True, slots=True)
class Send:
    """Send each of ``messages`` (``str`` as text, ``bytes`` as binary); keep ``state``."""

    messages: tuple[str | bytes, ...] | list[str | bytes] = field(default_factory=tuple)
    state: object = None


@final
@dataclass(frozen=True, slots=True)
class Keep:
    """Keep ``state``; send nothing."""

    state: object = None


@final
@dataclass(frozen=True, slots=True)
class Close:
    """Close the WebSocket with ``code``."""

    code: int = 1000
    state: object = None


async def _call(handler: str, name: str, *args: Any) -> Any:
    function = getattr(resolve(handler), name, None)
    if function is None:
        return None
    result = function(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def serve_native(cycle: WebSocketCycle, handler: str, args: object) -> None:
    """Run one WebSocket through ``handler`` (a module name), frame by frame."""
    kernel.set_label("websocket_handler", handler)
    await cycle.receive()  # websocket.connect
    scope = cycle.scope()
    request = WebSocketRequest(
        scope["path"],
        scope["query_string"],
        tuple(scope["headers"]),
        tuple(scope["subprotocols"]),
    )
    verdict = await _call(handler, "on_connect", request, args)
    if not isinstance(verdict, Accept):
        if not isinstance(verdict, Refuse):
            logger.error(
                "websocket: %s.on_connect returned %r, not Accept or Refuse", handler, verdict
            )
        await cycle.send({"type": "websocket.close"})
        return
    await cycle.send({"type": "websocket.accept", "subprotocol": verdict.subprotocol})
    state = verdict.state
    code = 1006
    try:
        while True:
            message = await cycle.receive()
            if message["type"] == "websocket.disconnect":
                code = int(message.get("code", 1006))
                return
            payload = message.get("text")
            if payload is None:
                payload = message.get("bytes", b"")
            result = await _call(handler, "on_message", payload, state)
            if isinstance(result, Send):
                for item in result.messages:
                    key = "text" if isinstance(item, str) else "bytes"
                    await cycle.send({"type": "websocket.send", key: item})
                state = result.state
            elif isinstance(result, Keep):
                state = result.state
            elif isinstance(result, Close):
                state, code = result.state, result.code
                await cycle.close(code)
                return
            else:
                raise TypeError(f"{handler}.on_message returned {result!r}")
    except Exception:
        logger.exception("websocket: handler %s failed", handler)
        code = 1011
        await cycle.close(code)
    finally:
        try:
            await _call(handler, "on_close", code, state)
        except Exception:
            logger.exception("websocket: %s.on_close failed", handler)
