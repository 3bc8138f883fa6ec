"""Run an application call until it returns, or until the code it runs is purged.

A connection process runs the ASGI application in its own frames, so a purge of the
application's old version finds it (``code_server.processes_in_old_code``) and, without a
notice, kills it: the client would see its connection reset. ``run_until_purged`` sets a
purge notice (``code_server.on_purge``) for the call: when a purge comes, the notice cancels the
call (a cancel scope around it: no task of its own, nothing per request but the scope), its
frames unwind, the purge is told they are gone, and ``on_purge(module)`` runs (a WebSocket
sends its close 1012, a request not yet answered gets its 503). The call runs in the
calling task, so its frames stay on the process's stack, where the code server looks for
old code. Writes in progress are whole frames (``_asgi_websocket`` shields them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import anyio

from server import code_server

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["NOTICE_WRITE_TIMEOUT", "run_until_purged"]

#: How long ``on_purge`` may take (its last write to a client), in seconds.
NOTICE_WRITE_TIMEOUT: Final = 1.0


class _Notice:
    """The purge notice of one call: cancels it and says when its frames are gone."""

    __slots__ = ("gone", "left", "module", "scope")

    def __init__(self, scope: anyio.CancelScope) -> None:
        self.scope = scope
        self.module: str | None = None
        self.gone = False  # the call's frames are gone
        self.left: anyio.Event | None = None  # made by a purge only: set once they are gone

    def __call__(self, module: str) -> anyio.Event:
        if self.module is None:
            self.module = module
            self.scope.cancel()
        if self.left is None:
            self.left = anyio.Event()
            if self.gone:
                self.left.set()
        return self.left

    def leave(self) -> None:
        """The call's frames are gone: tell a purge waiting for it."""
        self.gone = True
        if self.left is not None:
            self.left.set()


async def run_until_purged(
    call: Callable[[], Awaitable[object]], on_purge: Callable[[str], Awaitable[None]]
) -> str | None:
    """Await ``call()``; None when it returned, the module's name when a purge ended it.

    Raises:
        Exception: whatever ``call()`` raised (not after a purge: then it was cancelled).
    """
    with anyio.CancelScope() as scope:
        notice = _Notice(scope)
        code_server.on_purge(notice)
        try:
            await call()
        finally:
            code_server.on_purge(None)
            notice.leave()
    module = notice.module
    if module is None or not scope.cancelled_caught:
        return None
    with anyio.move_on_after(NOTICE_WRITE_TIMEOUT):
        await on_purge(module)
    return module
