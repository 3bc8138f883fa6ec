"""Run an application call until it returns, or until the code it runs is purged.

A connection process runs the ASGI application in its own frames, so a purge of the
application's old version finds it (``code_server.processes_in_old_code``) and, without a
notice, kills it: the client would see its connection reset. ``run_until_purged`` sets a
purge notice (``code_server.on_purge``) for the call: when a purge comes, a watcher task
runs ``on_purge(module)`` (a WebSocket sends its close 1012, a request not yet answered
gets its 503), then cancels the call, whose frames unwind. The call runs in the calling
task (its frames stay on the process's stack, where the code server looks for old code).
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
    """The purge notice of one call: remembers the module and wakes the watcher."""

    def __init__(self) -> None:
        self.module: str | None = None
        self.event = anyio.Event()
        self.left = anyio.Event()  # set once the call's frames are gone

    def __call__(self, module: str) -> anyio.Event:
        if self.module is None:
            self.module = module
        self.event.set()
        return self.left


async def run_until_purged(
    call: Callable[[], Awaitable[object]], on_purge: Callable[[str], Awaitable[None]]
) -> str | None:
    """Await ``call()``; None when it returned, the module's name when a purge ended it.

    Raises:
        Exception: whatever ``call()`` raised (not after a purge: then it was cancelled).
    """
    notice = _Notice()
    purged: str | None = None
    failure: Exception | None = None
    code_server.on_purge(notice)
    try:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                nonlocal purged
                await notice.event.wait()
                purged = notice.module
                assert purged is not None
                with anyio.move_on_after(NOTICE_WRITE_TIMEOUT):
                    await on_purge(purged)
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                await call()
            except Exception as exc:  # raised below, outside the task group (not wrapped)
                failure = exc
            group.cancel_scope.cancel()
    finally:
        code_server.on_purge(None)
        notice.left.set()
    if failure is not None and purged is None:
        raise failure
    return purged
