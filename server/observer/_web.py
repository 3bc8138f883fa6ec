"""The observer's ASGI application: one page, its assets, JSON views and a push stream.

Every request runs in its connection process (the node's ASGI server). Routes, each
answered only with the observer's token (``?token=``, ``Authorization: Bearer``, or the
``observer_token`` cookie that the page's answer sets, so that its assets and its stream
carry it; 401 without it, compared in constant time with ``hmac.compare_digest``):

- ``GET /``: the page (``static/index.html``); ``GET /static/<file>``: its script and style;
- ``GET /api/<view>``: one view as JSON (``overview``, ``trees``, ``processes``, ``code``,
  ``releases``, ``nodes``), ``GET /api/process?pid=<0.12.0>[&state=1]``: one process;
- ``POST /api/kill?pid=<0.12.0>``: end that process with ``kill`` (as Erlang's observer
  offers), for a supervisor to restart;
- ``GET /events?view=<view>``: server-sent events: the view (and the overview) every
  ``interval`` seconds as ``event: view``, and each step of an install as it happens as
  ``event: install`` (the stream's connection process subscribes to the observer);
- ``GET /metrics``: the Prometheus text of ``server.observer.metrics`` (open when
  ``metrics_token = false``).
"""

from __future__ import annotations

import hmac
import json
from importlib import resources
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs

import anyio

from server import kernel
from server.errors import CallError
from server.observer import _service, _snapshot, loop_lag, metrics
from server.spec.sys_config import ObserverSettings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Message = MutableMapping[str, Any]
    Send = Callable[[Message], Awaitable[None]]

__all__ = ["VIEWS", "app", "view"]

#: The assets the page needs, with their content types.
ASSETS: Final = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

#: The cookie the page's own requests (its assets, its stream) carry the token in.
COOKIE: Final = "observer_token"

VIEWS: Final = ("overview", "trees", "processes", "code", "releases", "nodes")


async def view(name: str) -> Any:
    """The view ``name`` (one of ``VIEWS``) as plain data.

    Raises:
        KeyError: no such view.
    """
    if name == "overview":
        boot = _label(_service.BOOT_LABEL)
        data = await _snapshot.overview(boot if isinstance(boot, kernel.Pid) else None)
        data["loop_lag"] = _loop_lag()
        return data
    if name == "trees":
        return await _snapshot.supervision_trees()
    if name == "processes":
        return await _snapshot.process_rows()
    if name == "code":
        return _snapshot.code_rows(users=True)
    if name == "releases":
        return await _snapshot.release_rows()
    if name == "nodes":
        # a peer that does not answer (stopped, overloaded) holds the page at most this
        # long: one push interval, at least a second, at most five
        return await _snapshot.node_rows(timeout=min(5.0, max(1.0, _settings().interval)))
    raise KeyError(name)


def _loop_lag() -> dict[str, Any] | None:
    """The event loop's lag from the sampler, when it runs (see ``loop_lag``)."""
    figures = loop_lag.lag_statistics()
    if figures is None:
        return None
    return {
        "samples": figures.samples,
        "p50": figures.p50,
        "p90": figures.p90,
        "p99": figures.p99,
        "max": figures.max,
        "window": figures.window,
        "series": [{"ago": b.ago, "max": b.max, "p99": b.p99} for b in figures.series],
    }


def _label(key: str) -> object:
    pid = kernel.whereis(_service.NAME)
    return kernel.get_label(pid, key) if pid is not None else None


def _settings() -> ObserverSettings:
    settings = _label(_service.SETTINGS_LABEL)
    return settings if isinstance(settings, ObserverSettings) else ObserverSettings()


def _authorized(scope: Message, query: dict[str, list[str]]) -> bool:
    token = _label(_service.TOKEN_LABEL)
    if not isinstance(token, str):
        return False
    given = query.get("token", [""])[0]
    for key, value in scope.get("headers", []):
        if key == b"authorization" and value.startswith(b"Bearer "):
            given = given or value[len(b"Bearer ") :].decode("latin-1")
        elif key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, cookie = part.strip().partition("=")
                if name == COOKIE:
                    given = given or cookie
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode("ascii")),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, data: Any) -> None:
    await _respond(send, status, json.dumps(data).encode("utf-8"), "application/json")


async def app(scope: Message, receive: Callable[[], Awaitable[Message]], send: Send) -> None:
    """The ASGI 3 application (``http`` scopes; anything else is closed at once)."""
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if path == "/metrics" and not _settings().metrics_token:
        await _metrics(send)
        return
    if not _authorized(scope, query):
        await _respond(send, 401, b"observer: a missing or wrong token\n", "text/plain")
        return
    if path == "/api/kill":
        await _kill(send, scope["method"], query)
    elif scope["method"] != "GET":
        await _respond(send, 405, b"observer: GET only (POST for /api/kill)\n", "text/plain")
    elif path in ("/", "/index.html"):
        token = _label(_service.TOKEN_LABEL)
        cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
        await _asset(send, "index.html", ((b"set-cookie", cookie.encode("latin-1")),))
    elif path.startswith("/static/"):
        await _asset(send, path.removeprefix("/static/"))
    elif path == "/api/process":
        await _process(send, query)
    elif path.startswith("/api/"):
        try:
            await _json(send, 200, await view(path.removeprefix("/api/")))
        except KeyError:
            await _json(send, 404, {"error": f"no view {path!r}; views: {', '.join(VIEWS)}"})
    elif path == "/events":
        await _events(send, query.get("view", ["overview"])[0])
    elif path == "/metrics":
        await _metrics(send)
    else:
        await _respond(send, 404, b"observer: no such page\n", "text/plain")


async def _asset(send: Send, name: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    if name not in ASSETS:
        await _respond(send, 404, b"observer: no such file\n", "text/plain")
        return
    body = resources.files("server.observer").joinpath("static", name).read_bytes()
    await _respond(send, 200, body, ASSETS[name], headers)


async def _process(send: Send, query: dict[str, list[str]]) -> None:
    text = query.get("pid", [""])[0]
    pid = _snapshot.find_process(text)
    detail = None
    if pid is not None:
        detail = await _snapshot.process_detail(pid, state=query.get("state") == ["1"])
    if detail is None:
        await _json(send, 404, {"error": f"no live process {text!r}"})
    else:
        await _json(send, 200, detail)


async def _kill(send: Send, method: str, query: dict[str, list[str]]) -> None:
    """``POST /api/kill?pid=``: end a process with ``kill`` (Erlang observer's "Kill process")."""
    if method != "POST":
        await _json(send, 405, {"error": "kill a process with POST /api/kill?pid=<pid>"})
        return
    text = query.get("pid", [""])[0]
    pid = _snapshot.find_process(text)
    if pid is None:
        await _json(send, 404, {"error": f"no live process {text!r}"})
        return
    kernel.exit(pid, kernel.KILL)
    await _json(send, 200, {"killed": repr(pid)})


async def _metrics(send: Send) -> None:
    await _respond(send, 200, metrics.render_metrics(), metrics.CONTENT_TYPE)


def _event(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


async def _events(send: Send, name: str) -> None:
    """The push stream: a view every ``interval`` seconds, install steps as they happen."""
    if name not in VIEWS:
        await _json(send, 404, {"error": f"no view {name!r}; views: {', '.join(VIEWS)}"})
        return
    try:
        history = await _service.subscribe()
    except CallError:
        await _respond(send, 503, b"observer: not running\n", "text/plain")
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    try:
        await _push(send, name, _event("install_history", history))
    except OSError:
        return  # the page was closed (ClientDisconnected): the stream just ends


async def _push(send: Send, name: str, body: bytes) -> None:
    """Send the view every ``interval`` seconds, and each install event at once, for ever."""
    interval = _settings().interval
    while True:
        overview = await view("overview")
        data = overview if name == "overview" else await view(name)
        body += _event("view", {"view": name, "overview": overview, "data": data})
        await send({"type": "http.response.body", "body": body, "more_body": True})
        body = b""
        deadline = anyio.current_time() + interval
        while (left := deadline - anyio.current_time()) > 0:
            try:
                message = await kernel.receive(_is_install, timeout=left)
            except TimeoutError:
                break
            assert isinstance(message, tuple)
            event = _event("install", message[1])
            await send({"type": "http.response.body", "body": event, "more_body": True})


def _is_install(message: object) -> bool:
    return type(message) is tuple and len(message) == 2 and message[0] == "observer_install"
