"""ASGI 3 applications for the connection tests: each shows one part of the protocol."""

from __future__ import annotations

import json
from typing import Any

from server import kernel

Receive = Any
Send = Any


async def _json(send: Send, value: object, status: int = 200) -> None:
    body = json.dumps(value).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def scope_echo(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Answers the scope's plain fields as JSON."""
    fields = {
        key: value
        for key, value in scope.items()
        if key in ("type", "http_version", "method", "scheme", "path", "root_path", "client")
    }
    fields["raw_path"] = scope["raw_path"].decode()
    fields["query_string"] = scope["query_string"].decode()
    fields["headers"] = [[k.decode(), v.decode()] for k, v in scope["headers"]]
    fields["asgi"] = scope["asgi"]
    await _json(send, fields)


async def body_chunks(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Reads the body message by message; answers the sizes seen and the whole body."""
    sizes: list[int] = []
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        sizes.append(len(message["body"]))
        body += message["body"]
        if not message.get("more_body"):
            break
    await _json(send, {"sizes": sizes, "body": body.decode()})


async def streamed(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Answers in three body messages, with no content-length (chunked on the wire)."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one,", b"two,", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def raises_before(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    raise RuntimeError("the application failed before answering")


async def raises_after(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"half", "more_body": True})
    raise RuntimeError("the application failed in the middle of its answer")


async def silent(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Returns without answering."""


async def waits_for_disconnect(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Reads the body, tells the test, then waits for the client to go away."""
    while (await receive()).get("more_body"):
        pass
    tester = kernel.whereis("asgi_tester")
    assert tester is not None
    kernel.send(tester, ("waiting", kernel.self()))
    message = await receive()
    kernel.send(tester, ("after_body", message))


async def reports_disconnect_after_response(
    scope: dict[str, Any], receive: Receive, send: Send
) -> None:
    """Answers, then receives: the response being complete, that is a disconnect."""
    await receive()
    await _json(send, {"ok": True})
    tester = kernel.whereis("asgi_tester")
    assert tester is not None
    kernel.send(tester, ("after_response", await receive()))


def _tell(what: object) -> None:
    tester = kernel.whereis("asgi_tester")
    if tester is not None:
        kernel.send(tester, what)


async def lifespan_ok(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Speaks lifespan: tells the tester at startup and at shutdown."""
    assert scope["type"] == "lifespan"
    assert (await receive())["type"] == "lifespan.startup"
    _tell(("startup", kernel.self()))
    await send({"type": "lifespan.startup.complete"})
    assert (await receive())["type"] == "lifespan.shutdown"
    _tell(("shutdown", kernel.self()))
    await send({"type": "lifespan.shutdown.complete"})


async def lifespan_fails(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "the database is unreachable"})


async def lifespan_raises(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()
    raise RuntimeError("startup exploded")


async def http_only(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """An application that knows only the http scope (it refuses lifespan at once)."""
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope {scope['type']}")
    await _json(send, {"ok": True})


async def lifespan_hangs_at_shutdown(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "lifespan.startup.complete"})
    await receive()
    _tell(("hanging", kernel.self()))
    await kernel.receive(lambda m: False)  # never completes its shutdown


async def ws_echo(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Accepts (with the first subprotocol offered), echoes each message until a disconnect."""
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _tell(("ws_disconnect", message["code"]))
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})


async def ws_refuses(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.close", "code": 1008})


async def ws_closes(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 4000, "reason": "bye"})


async def ws_never_reads(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Accepts, then never reads again: the client's flood must stay in the network."""
    await receive()
    await send({"type": "websocket.accept"})
    _tell(("ws_accepted", kernel.self()))
    await kernel.receive(lambda m: m == "stop")


async def combined(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Speaks lifespan (telling the tester) and answers every request with its path."""
    if scope["type"] == "lifespan":
        await lifespan_ok(scope, receive, send)
        return
    await _json(send, {"path": scope["path"]})


async def lifespan_state(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Puts a greeting in the lifespan's state at startup; answers each request's state,
    after changing its own copy (which the next request must not see)."""
    if scope["type"] == "lifespan":
        assert (await receive())["type"] == "lifespan.startup"
        scope["state"]["greeting"] = "hello"
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    seen = dict(scope["state"])
    scope["state"]["greeting"] = "changed by a request"
    await _json(send, seen)
