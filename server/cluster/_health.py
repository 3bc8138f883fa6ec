"""Health checks a rollout runs on each node it has just upgraded, on that node itself.

A check is written as text (the CLI's ``--health``), so that it can travel to the node:

- ``http://HOST:PORT/PATH``: a ``GET`` made by the upgraded node, so ``127.0.0.1`` is that
  node's own loopback; healthy when the answer's status is the expected one (200 unless
  told). The connection is closed after the status line: only the status is judged.
- ``MODULE:FUNCTION``: a function of the release (a managed module resolves to its current
  version), called with no arguments, awaited when it returns an awaitable; healthy when it
  returns anything but ``False`` without raising.

``parse_check`` refuses anything else at once, before the rollout touches a node;
``run_check`` raises ``HealthCheckFailed`` with a line that says what was seen.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from typing import Final, final
from urllib.parse import urlsplit

import anyio

from server.errors import HealthCheckFailed

__all__ = ["HealthCheck", "HealthCheckFailed", "parse_check", "run_check"]

#: Seconds a check may take, on the node, before it counts as failed.
CHECK_TIMEOUT: Final = 5.0
_FUNCTION: Final = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.[01] (\d{3})")
_MAX_STATUS_LINE: Final = 8192


@final
@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A parsed check: ``text`` as the user wrote it, and the status an HTTP check expects."""

    text: str
    status: int = 200

    @property
    def is_http(self) -> bool:
        """An HTTP GET (else a function of the release)."""
        return self.text.startswith("http://")


def parse_check(text: str, status: int = 200) -> HealthCheck:
    """The check ``text`` names, validated.

    Raises:
        ValueError: ``text`` is neither ``http://HOST:PORT/PATH`` nor ``MODULE:FUNCTION``,
            or ``status`` is not an HTTP status.
    """
    if not 100 <= status <= 599:
        raise ValueError(f"--health-status must be an HTTP status (100-599), not {status}")
    if text.startswith("http://"):
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ValueError(f"health check {text!r} must be http://HOST:PORT/PATH")
        return HealthCheck(text, status)
    if text.startswith("https://"):
        raise ValueError(
            "an HTTPS health check is not supported: check the node's own http:// port"
        )
    if not _FUNCTION.fullmatch(text):
        raise ValueError(
            f"health check {text!r} is neither http://HOST:PORT/PATH nor MODULE:FUNCTION"
        )
    return HealthCheck(text, status)


async def run_check(check: HealthCheck) -> str:
    """Run ``check`` here; returns what was seen when healthy.

    Raises:
        HealthCheckFailed: unhealthy, unreachable, too slow or raising (the line says which).
    """
    with anyio.move_on_after(CHECK_TIMEOUT) as scope:
        if check.is_http:
            return await _http(check)
        return await _function(check.text)
    assert scope.cancelled_caught
    raise HealthCheckFailed(f"{check.text} did not answer within {CHECK_TIMEOUT:g} s")


async def _http(check: HealthCheck) -> str:
    parts = urlsplit(check.text)
    host, port = parts.hostname, parts.port
    assert host is not None
    assert port is not None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
    try:
        async with await anyio.connect_tcp(host, port) as stream:
            await stream.send(request.encode("latin-1"))
            head = b""
            while b"\r\n" not in head and len(head) < _MAX_STATUS_LINE:
                head += await stream.receive()
    except (OSError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
        raise HealthCheckFailed(f"GET {check.text}: {str(exc) or type(exc).__name__}") from None
    seen = _STATUS_LINE.match(head)
    if seen is None:
        raise HealthCheckFailed(f"GET {check.text}: not an HTTP answer: {head[:60]!r}")
    status = int(seen.group(1))
    if status != check.status:
        raise HealthCheckFailed(f"GET {check.text} answered {status}, expected {check.status}")
    return f"GET {check.text}: {status}"


async def _function(text: str) -> str:
    module, _, name = text.partition(":")
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise HealthCheckFailed(f"{text} cannot be found on this node: {exc}") from None
    try:
        result = function()
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        raise HealthCheckFailed(f"{text} raised {type(exc).__name__}: {exc}") from None
    if result is False:
        raise HealthCheckFailed(f"{text} returned False")
    return f"{text} returned {result!r}"[:200]
