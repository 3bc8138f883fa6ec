"""The handler contract: what an application's request handler module provides.

An HTTP handler is a plain module (the unit of code loading) with one function::

    def handle_request(request: Request, args: object) -> Response: ...

or the same as ``async def``. The server looks the module up by name with
``server.behaviours.resolve`` at *every* request, so a newly loaded version
answers the next request, also on a keep-alive connection opened before the load.

================================  ==================================================
the handler does                  the server does
================================  ==================================================
returns a ``Response``            writes it; keeps the connection open unless the
                                  request or the response (``connection: close``)
                                  asks to close
raises an ``Exception``           answers 500, logs the traceback (``extra=``: pid,
                                  handler, method, target); the connection goes on
returns anything else             the same as raising ``TypeError``
is CPU-bound for long             blocks the whole node: run such work with
                                  ``anyio.to_thread.run_sync`` or in a worker process
================================  ==================================================

``args`` is the ``handler_args`` given to ``http_server.start_link``, the same object for
every request. The handler runs inside the connection's process, so it may ``receive``,
``call`` and ``send`` like any process code; a ``ProcessExit`` it raises ends that
connection (and only it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from server.net.http import Request, Response

__all__ = ["HttpHandler"]


class HttpHandler(Protocol):
    """What an HTTP handler module provides (a module satisfies it directly)."""

    def handle_request(self, request: Request, args: Any) -> Response | Awaitable[Response]:
        """Answer ``request``; ``args`` is the listener's ``handler_args``."""
        ...
