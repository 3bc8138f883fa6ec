"""The observer: a gen_server (registered ``observer``) that owns the web view's listener.

How this works:

1. ``start_supervisor`` (the node's boot calls it after the release handler, when
   sys.config has ``[node.observer]``) makes the token (random, URL-safe) and starts the
   observer's supervisor (``_observer_sup``), which starts the gen_server with it
   (``start_link``) and starts it again, with the same token, when it crashes: an open
   page reconnects with the URL it has. Its ``init`` starts the ASGI listener linked to
   it on ``host:port`` (the node's own HTTP/1.1 stack; the application is
   ``server.observer._web:app``; ASGI, not the handler server, since a push stream is a
   response sent in pieces), starts the relay registered ``install_feed`` (the
   installer's event feed, see ``server.release.install_feed``), logs the URL with its
   token, and labels itself with both, which ``server observer`` and the web
   application read.
2. A page's push stream is a connection process that subscribes: the observer
   monitors it, answers with the events of the last install, and forwards each later
   ``InstallEvent`` to it at once. A subscriber that ends is forgotten (its ``DOWN``).
3. It traps exits: the listener's or the relay's end ends the observer with that reason;
   its parent's ``shutdown`` ends it (and so its listener) as any gen_server.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, final

from server import kernel
from server.behaviours import gen_server, supervisor
from server.behaviours.gen_server_callbacks import NoReply, Ok, Reply, Stop
from server.net import asgi_server, listening_port
from server.net.asgi_server import AsgiConfig
from server.release.install_feed import FEED_NAME, InstallEvent

if TYPE_CHECKING:
    from server.kernel import From, Pid
    from server.spec.sys_config import ObserverSettings

__all__ = [
    "BOOT_LABEL",
    "NAME",
    "SETTINGS_LABEL",
    "SUPERVISOR",
    "TOKEN_LABEL",
    "URL_LABEL",
    "observer_url",
    "start_link",
    "start_supervisor",
    "subscribe",
]

logger = logging.getLogger("server.observer")

#: The observer's registered name, and its supervisor's.
NAME: Final = "observer"
SUPERVISOR: Final = "observer_sup"
SUPERVISOR_ENGINE: Final = "server.observer._observer_sup"
#: Labels of the observer process: its URL (with the token), the token, the node's boot
#: process (the uptime counts from it), and its settings.
URL_LABEL: Final = "observer_url"
TOKEN_LABEL: Final = "observer_token"
BOOT_LABEL: Final = "observer_boot"
SETTINGS_LABEL: Final = "observer_settings"

#: The events of the last install kept for a page opened in its middle.
HISTORY: Final = 200


@final
@dataclass
class _State:
    listener: Pid
    relay: Pid
    subscribers: dict[Pid, object] = field(default_factory=dict)  # pid -> monitor ref
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))


async def start_supervisor(settings: ObserverSettings, boot: Pid) -> Pid:
    """Start the observer under its own supervisor, linked to the caller (the boot).

    Raises:
        StartError: the listener could not open ``host:port`` (the message says why).
        AlreadyStarted: an observer runs already.
    """
    token = secrets.token_urlsafe(24)
    pid = await supervisor.start_link(SUPERVISOR_ENGINE, (settings, boot, token), name=SUPERVISOR)
    assert pid is not None  # its init never ignores
    return pid


async def start_link(settings: ObserverSettings, boot: Pid, token: str | None = None) -> Pid:
    """Start the observer linked to the caller; returns once its listener accepts.

    ``token`` is the one the view's URL carries (None: a new one).

    Raises:
        StartError: the listener could not open ``host:port`` (the message says why).
        AlreadyStarted: an observer runs already.
    """
    token = token or secrets.token_urlsafe(24)
    pid = await gen_server.start_link(__name__, (settings, boot, token), name=NAME)
    assert pid is not None  # init never ignores
    return pid


def observer_url() -> str | None:
    """The running observer's URL, with its token; None when the node serves none."""
    pid = kernel.whereis(NAME)
    url = kernel.get_label(pid, URL_LABEL) if pid is not None else None
    return url if isinstance(url, str) else None


async def subscribe() -> list[dict[str, Any]]:
    """Subscribe the calling process to install events; returns the last install's events.

    Each later event arrives as ``("observer_install", event_json)``.

    Raises:
        CallError: no observer runs.
    """
    history: list[dict[str, Any]] = await gen_server.call(NAME, ("subscribe", kernel.self()))
    return history


async def _relay(observer: Pid) -> None:
    """Hand every message sent to ``install_feed`` to the observer."""
    kernel.register(FEED_NAME, kernel.self())
    kernel.send(observer, ("relay_ready", kernel.self()))
    while True:
        kernel.send(observer, await kernel.receive())


async def init(args: tuple[ObserverSettings, Pid, str]) -> Ok:
    settings, boot, token = args
    kernel.trap_exit(True)
    kernel.set_label(TOKEN_LABEL, token)
    kernel.set_label(BOOT_LABEL, boot)
    kernel.set_label(SETTINGS_LABEL, settings)
    listener = await asgi_server.start_link(
        settings.host, settings.port, AsgiConfig(app="server.observer._web:app")
    )
    relay = kernel.spawn_link(_relay, kernel.self())
    await kernel.receive(lambda m: m == ("relay_ready", relay))
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{listening_port(listener)}/?token={token}"
    kernel.set_label(URL_LABEL, url)
    logger.info("observer at %s", url, extra={"observer_url": url})
    return Ok(_State(listener, relay))


async def handle_call(request: Any, from_: From, state: _State) -> Reply:
    match request:
        case ("subscribe", kernel.Pid() as pid):
            if pid not in state.subscribers:
                state.subscribers[pid] = kernel.monitor(pid)
            return Reply(list(state.history), state)
    return Reply(("error", f"unknown request {request!r}"), state)


async def handle_info(message: Any, state: _State) -> NoReply | Stop:
    if type(message) is InstallEvent:
        event = message.as_json()
        if message.index == 0 and message.outcome == "running":
            state.history.clear()  # a new install
        state.history.append(event)
        for pid in state.subscribers:
            kernel.send(pid, ("observer_install", event))
    elif type(message) is kernel.DownMessage and isinstance(message.pid, kernel.Pid):
        state.subscribers.pop(message.pid, None)
    elif type(message) is kernel.ExitMessage and message.pid in (state.listener, state.relay):
        return Stop(message.reason, state)
    return NoReply(state)
