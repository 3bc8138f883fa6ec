"""The HTTP routes, looked up afresh at every request (so a reload takes effect at once).

On a cluster (``server start --nodes N``) each node counts the increments it served, in
its own store: ``/incr`` answers this node's count (a write never waits for another node),
``/count`` the sum over this node and every connected peer. A grow-only counter per node:
increments commute, so every node takes every write while the others restart or upgrade,
and a peer that does not answer is left out of the sum rather than failing the read.
Every answer names the node that served it (``x-node``).
"""

from __future__ import annotations

from typing import Any

from server import kernel, release
from server.app import get_env
from server.behaviours import gen_server
from server.errors import CallError
from server.net import Request, Response, json_response

__vsn__ = "2.0.0"

VSN = "2.0.0"
PEER_TIMEOUT = 2.0  # a peer that takes longer is left out of the sum


async def handle_request(request: Request, args: Any) -> Response:
    answer = await _route(request)
    return Response(answer.status, (*answer.headers, ("x-node", kernel.node())), answer.body)


async def health() -> bool:
    """For ``server cluster upgrade --health counter.web:health``: this node's store answers.

    Run on the upgraded node itself; with nodes sharing a port (``server start --nodes N``)
    an HTTP check of ``127.0.0.1:PORT`` may be answered by another node, this cannot.
    """
    try:
        await gen_server.call("counter_store", ("total",), timeout=PEER_TIMEOUT)
    except CallError:
        return False
    return True


async def _cluster_value(key: str, local: int) -> int:
    """``local`` plus the count of ``key`` on every connected peer that answers."""
    total = local
    for peer in kernel.nodes("connected"):
        try:
            answer = await gen_server.call(
                ("counter_store", peer), ("get", key), timeout=PEER_TIMEOUT
            )
        except CallError:
            continue
        if isinstance(answer, dict) and isinstance(answer.get("value"), int):
            total += answer["value"]
    return total


async def _route(request: Request) -> Response:
    method, path = request.method, request.path
    parts = path.split("/", 2)
    route = "/" + parts[1] if len(parts) > 1 else path
    gen_server.cast("stats_server", ("hit", route))  # never fails, even while stats is down
    if path == "/stats" and method == "GET":
        try:
            summary = await gen_server.call("stats_server", ("summary",))
        except CallError as exc:
            return json_response({"error": str(exc)}, status=503)
        return json_response({**summary, "vsn": VSN})
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
            value = answer["value"]
            if op == "get":  # a read sums every node's count; a write answers this node's
                value = await _cluster_value(key, value)
            body = {
                "key": key,
                "value": value,
                "updated": answer.get("updated"),
            }
            return json_response({**body, "vsn": VSN})
    return json_response({"error": "not found"}, status=404)
