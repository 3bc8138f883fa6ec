"""The HTTP routes, looked up afresh at every request (so a reload takes effect at once)."""

from __future__ import annotations

from typing import Any

from server import release
from server.app import get_env
from server.behaviours import gen_server
from server.errors import CallError
from server.net import Request, Response, json_response

__vsn__ = "2.0.0"

VSN = "2.0.0"


async def handle_request(request: Request, args: Any) -> Response:
    method, path = request.method, request.path
    parts = path.split("/", 2)
    route = "/" + parts[1] if len(parts) > 1 else path
    gen_server.cast("stats_server", ("hit", route))  # never fails, even while stats is down
    if path == "/stats" and method == "GET":
        try:
            routes = await gen_server.call("stats_server", ("routes",))
        except CallError as exc:
            return json_response({"error": str(exc)}, status=503)
        return json_response({"routes": routes, "vsn": VSN})
    if path == "/health" and method == "GET":
        return json_response({"release": release.current_vsn()})
    for prefix, op, allowed in (("/incr/", "incr", "POST"), ("/count/", "get", "GET")):
        if path.startswith(prefix):
            if method != allowed:
                return json_response({"error": f"use {allowed}"}, status=405)
            key = path[len(prefix) :]
            if not key or len(key) > get_env("counter", "max_key_length", 64):
                return json_response({"error": "bad key"}, status=400)
            try:
                answer = await gen_server.call("counter_store", (op, key))
            except CallError as exc:
                return json_response({"error": str(exc)}, status=503)
            body = {"key": key, "value": answer["value"], "updated": answer.get("updated")}
            return json_response({**body, "vsn": VSN})
    return json_response({"error": "not found"}, status=404)
