"""The top supervisor: the counter store first, then the HTTP listener that uses it."""

from __future__ import annotations

from server.app import get_env
from server.behaviours.supervisor_callbacks import ChildSpec, SupervisorSpec, worker
from server.net import http_server

__vsn__ = "1.0.0"


def init(args: object) -> SupervisorSpec:
    port = get_env("counter", "port", 8080)
    host = get_env("counter", "host", "127.0.0.1")
    listener = ChildSpec(
        id="web",
        start=(http_server.start_link, host, port, "counter.web", None),
        modules=("counter.web",),
    )
    return SupervisorSpec(
        children=[worker("store", "counter.store", None, name="counter_store"), listener],
        strategy="rest_for_one",
        intensity=5,
        period=10.0,
    )
