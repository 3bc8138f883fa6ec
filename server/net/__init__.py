"""HTTP/1.1 served from processes, with handler modules that upgrade live.

``http`` is the sans-IO protocol (parser, records, writer); ``http_server`` runs it on
sockets: a listener process and one process per connection, calling the application's
handler module (``http_callbacks``) through its current version at every request.
"""

from __future__ import annotations

from server.net.http import (
    HttpLimits,
    HttpProtocolError,
    Request,
    RequestParser,
    Response,
    json_response,
    text_response,
    write_response,
)
from server.net.http_callbacks import HttpHandler
from server.net.http_server import (
    child_spec,
    count_connections,
    listening_port,
    start_link,
    which_connections,
)

__all__ = [
    "HttpHandler",
    "HttpLimits",
    "HttpProtocolError",
    "Request",
    "RequestParser",
    "Response",
    "child_spec",
    "count_connections",
    "json_response",
    "listening_port",
    "start_link",
    "text_response",
    "which_connections",
    "write_response",
]
