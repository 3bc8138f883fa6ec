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
