"""Serve an ASGI 3 application (FastAPI, Starlette...) from processes, with live upgrades.

``start_link(host, port, config)`` starts a listener (the shared acceptor) whose
connections each run in a process of their own and speak HTTP/1.1 (httptools, or h11) and WebSockets
(wsproto) to the application ``config.app`` names (``module:attribute``). The application is
looked up in its module's current version at each request: after an install, the next
request runs the new code, keep-alive connections included, while a request in flight
finishes on its own version (see ``_asgi_connection``). Run its lifespan with
``asgi_lifespan`` before the listener (``server.net.asgi_application`` does both for an
application spec's ``[asgi]`` table).

The node's HTTP limits apply as to the handler server (``server.net.http_server``): the
shared connection budget (a client over it gets 503), bounded reads and writes, a send
timeout, head and body limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.net import http_server
from server.net._asgi_connection import AsgiConfig, serve_asgi_connection
from server.net._connection import refuse_connection
from server.net._listener import start_tcp_acceptor

if TYPE_CHECKING:
    from server.kernel import Pid

__all__ = ["AsgiConfig", "start_link"]


async def start_link(
    host: str, port: int, config: AsgiConfig, *, backlog: int = 128, name: str | None = None
) -> Pid:
    """Start an ASGI listener on ``host:port``, linked to the caller; return once it listens.

    Raises:
        StartError: the socket could not be opened; the message names host, port and why.
        AlreadyStarted: ``name`` is held by a live process.
    """
    what = f"asgi listener {name or ''}{' ' if name else ''}on {host}:{port}"
    return await start_tcp_acceptor(
        host,
        port,
        what=what,
        behaviour="asgi_listener",
        serve=lambda io: serve_asgi_connection(io, config),
        refuse=refuse_connection,
        budget=http_server.shared_budget(),
        backlog=backlog,
        name=name,
        labels={"asgi_app": config.app},
        reuse_port=http_server.node_defaults().reuse_port,
    )
