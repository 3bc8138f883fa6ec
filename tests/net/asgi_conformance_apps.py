"""The ASGI applications of the conformance table: each sends or receives one message type.

What an application sees (a message it received, or the error its ``send`` raised) it
tells the tester (the process registered as ``asgi_tester``) as ``("saw", value)``.
"""

from __future__ import annotations

from typing import Any

from server import kernel

Receive = Any
Send = Any
Scope = dict[str, Any]


def saw(value: object) -> None:
    tester = kernel.whereis("asgi_tester")
    if tester is not None:
        kernel.send(tester, ("saw", value))


async def _answer(send: Send, body: bytes = b"ok") -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


# -- http -----------------------------------------------------------------------------------


async def request_messages(scope: Scope, receive: Receive, send: Send) -> None:
    """Tells every http.request message (type, body, more_body) up to the last one."""
    seen = []
    while True:
        message = await receive()
        seen.append((message["type"], message.get("body"), message.get("more_body")))
        if not message.get("more_body"):
            break
    saw(seen)
    await _answer(send)


async def disconnect_after_response(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _answer(send)
    saw((await receive())["type"])


async def disconnect_mid_request(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the body; tells what it got when the client went away in the middle."""
    types = []
    while True:
        message = await receive()
        types.append(message["type"])
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            break
    saw(types)


async def streams(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]})
    for part in (b"a", b"b", b"c"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def streams_until_the_client_goes(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    saw("started")
    try:
        while True:
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
    except OSError as error:
        saw(type(error).__name__)


async def sends_a_websocket_message_in_http(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})


async def sends_after_the_response(scope: Scope, receive: Receive, send: Send) -> None:
    await _answer(send)
    try:
        await send({"type": "http.response.body", "body": b"late"})
    except RuntimeError as error:
        saw(str(error))
        raise


# -- websocket ------------------------------------------------------------------------------


async def ws_accepts_with_headers(scope: Scope, receive: Receive, send: Send) -> None:
    saw((await receive())["type"])
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": scope["subprotocols"][-1],
            "headers": [(b"x-extra", b"yes")],
        }
    )
    message = await receive()
    saw(message)


async def ws_echo_both(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"].upper()})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})
    saw(message)


async def ws_closes_with_a_reason(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 4000, "reason": "bye"})


async def ws_closes_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.close"})


async def ws_denial_response(scope: Scope, receive: Receive, send: Send) -> None:
    """The WebSocket Denial Response extension, which the server does not offer."""
    saw("websocket.http.response" in scope.get("extensions", {}))
    await receive()
    await send({"type": "websocket.http.response.start", "status": 401, "headers": []})


async def ws_sends_an_http_message(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "http.response.start", "status": 200})


async def ws_sends_after_close(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1000})
    try:
        await send({"type": "websocket.send", "text": "late"})
    except OSError as error:
        saw(type(error).__name__)


# -- lifespan -------------------------------------------------------------------------------


async def lifespan_completes(scope: Scope, receive: Receive, send: Send) -> None:
    saw((await receive())["type"])
    await send({"type": "lifespan.startup.complete"})
    saw((await receive())["type"])
    await send({"type": "lifespan.shutdown.complete"})


async def lifespan_startup_fails(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no database"})


async def lifespan_shutdown_fails(scope: Scope, receive: Receive, send: Send) -> None:
    saw((await receive())["type"])
    await send({"type": "lifespan.startup.complete"})
    saw((await receive())["type"])
    await send({"type": "lifespan.shutdown.failed", "message": "could not flush"})


async def lifespan_sends_a_wrong_message(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200})


async def ws_sends_forever(scope: Scope, receive: Receive, send: Send) -> None:
    """Sends 256 KiB messages until a send fails; tells how many went out, and why not."""
    await receive()
    await send({"type": "websocket.accept"})
    sent = 0
    try:
        while True:
            await send({"type": "websocket.send", "bytes": b"x" * 262144})
            sent += 1
    except OSError as error:
        saw((sent, type(error).__name__))
