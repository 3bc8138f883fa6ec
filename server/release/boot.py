"""Booting a node into a release: the application controller, then each application.

``boot_release`` runs inside a node's process: it starts the application controller
(linked to the caller), loads every application of the release with its source root on the
code path and its env (spec env overridden by ``sys.config``), and starts them in release
order with their start types (``load`` only loads, ``none`` does neither). It returns the
controller's pid: when a permanent application ends, the controller ends, and so should
the node (``server.node.run_node`` does that).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from server.app import controller
from server.errors import ReleaseError
from server.release.current import set_current_release

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Pid
    from server.spec.release_view import ReleaseView

__all__ = ["boot_release", "parse_release_name"]

logger = logging.getLogger("server.release")


def parse_release_name(text: str) -> tuple[str, str]:
    """``"demo-1.0.0"`` to ``("demo", "1.0.0")`` (release names hold no ``-``).

    Raises:
        ReleaseError: ``text`` is not ``<name>-<vsn>``.
    """
    name, dash, vsn = text.partition("-")
    if not dash or not name or not vsn:
        raise ReleaseError(f"{text!r} is not <name>-<vsn>, e.g. demo-1.0.0")
    return name, vsn


async def boot_release(
    release: ReleaseView, lib_dirs: dict[str, Path], sys_env: dict[str, dict[str, Any]]
) -> Pid:
    """Start the controller and the release's applications; return the controller's pid.

    Raises:
        ApplicationError: an application failed to load or start.
        StartError: the controller could not start.
    """
    pid = await controller.start_link(sys_env)
    for entry in release.spec.applications:
        if entry.type == "none":
            continue
        await controller.load_application(release.app(entry.name), lib_dirs[entry.name])
    for entry in release.spec.applications:
        if entry.type in ("load", "none"):
            continue
        await controller.start_application(entry.name, entry.type)
    set_current_release(release.spec.name, release.spec.vsn)
    logger.info(
        "release %s %s booted",
        release.spec.name,
        release.spec.vsn,
        extra={"applications": [e.name for e in release.spec.applications]},
    )
    return pid
