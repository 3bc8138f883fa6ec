"""Readiness notification, systemd's ``sd_notify`` protocol: one datagram to NOTIFY_SOCKET.

The node says ``READY=1`` once its release has booted (again after each reboot into the
permanent release) and ``STOPPING=1`` when it begins to stop. systemd's ``Type=notify``
units wait for it; so does ``server start``, which hands its own socket to the heart and
its node. Without NOTIFY_SOCKET nothing is sent. A path starting with ``@`` is Linux's
abstract namespace.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["NOTIFY_ENV", "notify"]

NOTIFY_ENV = "NOTIFY_SOCKET"

logger = logging.getLogger("server.node")


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (``READY=1``, newline-separated assignments) to NOTIFY_SOCKET.

    Returns False when there is no NOTIFY_SOCKET.

    A socket that cannot be reached is logged and ignored: the node serves either way.
    """
    target = (os.environ if environ is None else environ).get(NOTIFY_ENV)
    if not target:
        return False
    address = "\0" + target[1:] if target.startswith("@") else target
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(), address)
        except OSError as exc:
            logger.warning("cannot notify %s: %s", target, exc, extra={"notify_socket": target})
            return False
    return True
