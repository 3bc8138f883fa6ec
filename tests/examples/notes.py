"""The FastAPI example (``examples/fastapi``) for tests and benchmarks: built, and loaded.

- ``build_example``: a copy of the example's sources (not what a run in its folder left
  there) and its two release packages built from it.
- ``LoadClient``: a thread sending requests back to back on one keep-alive connection
  (``http.client``); each round is a ``step`` that returns the version that answered, or
  raises (a failure: counted, the connection opened anew). Callers wait on its counts.
- ``EchoSocket``: one WebSocket (wsproto over a plain socket) that sends a text message and
  reads its echo.

``tests/examples/test_fastapi_example.py`` and ``bench/asgi_upgrade.py`` use them.
"""

from __future__ import annotations

import collections
import http.client
import json
import shutil
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests._support.nodes import REPO

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

HOST = "127.0.0.1"
TIMEOUT = 10.0
EXAMPLE = REPO / "examples" / "fastapi"
VERSIONS = ("1.0.0", "2.0.0")
_LEFT_BEHIND = frozenset({"build", "lib", "run", "log", "__pycache__", "RELEASES"})


def build_example(tree: Path, packages: Path) -> dict[str, Path]:
    """Copy the example's sources to ``tree``; build its packages into ``packages``.

    Returns:
        Each version's package (``notes-<vsn>.tar.gz``, its ``.sha256`` beside it).
    """

    def ignored(folder: str, names: list[str]) -> set[str]:
        if folder.endswith("/releases"):  # unpacked releases sit beside the specs
            return {name for name in names if not name.endswith(".toml")}
        return {name for name in names if name in _LEFT_BEHIND}

    shutil.copytree(EXAMPLE, tree, ignore=ignored)
    for vsn in VERSIONS:
        build_package(SourceTree(tree), "notes", vsn, packages)
    return {vsn: packages / f"notes-{vsn}.tar.gz" for vsn in VERSIONS}


def call_json(
    conn: http.client.HTTPConnection, method: str, path: str, body: object = None
) -> tuple[int, Any]:
    """One request on ``conn`` (JSON body when ``body`` is not None); status and JSON answer."""
    headers = {}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read())


class LoadClient(threading.Thread):
    """Runs ``step`` back to back on one keep-alive connection until ``stopping`` is set.

    ``ok`` and ``by_vsn`` count the good rounds (by the version that answered),
    ``successes`` holds when each ended (``time.perf_counter()``), ``failures`` when and why
    each failed round did. After a failure the connection is opened anew, ``retry_delay``
    seconds later (0: at once).
    """

    def __init__(
        self,
        port: int,
        step: Callable[[http.client.HTTPConnection], str],
        *,
        retry_delay: float = 0.0,
        host: str = HOST,
    ) -> None:
        super().__init__(daemon=True)
        self.port, self.step, self.retry_delay, self.host = port, step, retry_delay, host
        self.ok = 0
        self.by_vsn: collections.Counter[str] = collections.Counter()
        self.successes: list[float] = []
        self.failures: list[tuple[float, str]] = []
        self.stopping = threading.Event()
        self._changed = threading.Condition()

    def wait_until(self, done: Callable[[LoadClient], bool], timeout: float = 30.0) -> bool:
        """Block until ``done(self)`` holds after a round (False when ``timeout`` ran out)."""
        with self._changed:
            return self._changed.wait_for(lambda: done(self), timeout=timeout)

    def stop(self) -> None:
        """End the loop after the round under way; wait for the thread."""
        self.stopping.set()
        self.join(TIMEOUT * 2)

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        try:
            while not self.stopping.is_set():
                try:
                    vsn = self.step(conn)
                except Exception as exc:  # a failed round is what the caller counts
                    with self._changed:
                        self.failures.append((time.perf_counter(), repr(exc)))
                        self._changed.notify_all()
                    conn.close()
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
                    if self.retry_delay:
                        self.stopping.wait(self.retry_delay)
                    continue
                with self._changed:
                    self.ok += 1
                    self.by_vsn[vsn] += 1
                    self.successes.append(time.perf_counter())
                    self._changed.notify_all()
        finally:
            conn.close()


class EchoSocket:
    """One WebSocket to ``path``: ``echo`` sends a text message and returns the answer.

    Raises:
        ConnectionError: the handshake was refused, or the server closed or reset the
            connection (``close_code`` is its close code, when it sent one).
    """

    def __init__(self, port: int, path: str = "/ws", *, host: str = HOST) -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pending: collections.deque[Event] = collections.deque()
        self.close_code: int | None = None
        self.sock.sendall(self.ws.send(Request(host=host, target=path)))
        event = self._next()
        if not isinstance(event, AcceptConnection):
            self.sock.close()
            raise ConnectionError(f"the WebSocket handshake was answered with {event!r}")

    def _next(self) -> Event:
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.ws.receive_data(data)
            self.pending.extend(self.ws.events())
        return self.pending.popleft()

    def echo(self, text: str) -> str:
        """Send ``text``; the text message that comes back."""
        self.sock.sendall(self.ws.send(Message(data=text)))
        parts: list[str] = []
        while True:
            event = self._next()
            if isinstance(event, Ping):
                self.sock.sendall(self.ws.send(event.response()))
            elif isinstance(event, TextMessage):
                parts.append(event.data)
                if event.message_finished:
                    return "".join(parts)
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
                raise ConnectionError(f"the server closed the WebSocket ({event.code})")
            elif isinstance(event, RejectConnection):
                raise ConnectionError(f"the WebSocket was rejected ({event.status_code})")

    def close(self) -> None:
        """Close the WebSocket (1000) and wait for the server's close, then the socket."""
        try:
            self.sock.sendall(self.ws.send(CloseConnection(code=1000)))
            while not isinstance(self._next(), CloseConnection):
                pass  # a message still under way: the close answer comes after it
        except (OSError, ConnectionError):
            pass  # already gone: nothing left to close but the socket
        finally:
            self.sock.close()
