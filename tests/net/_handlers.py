"""A handler module for the server tests, routed by path (a real module, as users write)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import kernel
from server.net import Request, Response, json_response, text_response

if TYPE_CHECKING:
    from server.kernel import Pid


async def handle_request(request: Request, args: Pid | None) -> Response:
    match request.path:
        case "/hello":
            return text_response("hello")
        case "/echo":
            return json_response(
                {
                    "method": request.method,
                    "query": request.query,
                    "body": request.body.decode(),
                    "keep_alive": request.keep_alive,
                    "pid": repr(kernel.self()),
                }
            )
        case "/boom":
            raise RuntimeError("the handler failed")
        case "/junk":
            return "not a response"  # type: ignore[return-value]
        case "/bye":
            return Response(200, (("connection", "close"),), b"bye")
        case "/wait":
            assert args is not None
            kernel.send(args, ("parked", kernel.self()))
            await kernel.receive(lambda m: m == "go")
            return text_response("went")
    return text_response("no such page", 404)
