"""Fault injection: kill the node at a named point of an install, an unpack, a remove, a rollout.

Only the crash tests use it, and it cannot fire by accident in production.

How this works:

1. Two keys, held by different parties, must agree:

   - the environment variable ``SERVER_FAULT_INJECTION`` (set by whoever starts the node;
     the heart passes it on to every restart) lists the points this node *may* be killed
     at, comma-separated: ``<point>`` (any index) or ``<point>:<n>``;
   - the marker file ``<root>/run/fault-injection-armed`` (written by a test, never by the
     product) holds the one point to kill at, ``<point>:<n>``. It must be a regular file
     (not a link) owned by the node's user and name a point the variable allows.

   A variable alone, a file alone, a malformed or disallowed file: nothing fires (a
   warning is logged). When both agree, a CRITICAL line says what is armed.
2. Arming is one-shot: the marker is removed (and the removal synced) before the kill, so
   the node the heart restarts, with the same environment, runs clean; a test arms the
   next crash by writing the file again, without restarting the heart.
3. The kill is ``SIGKILL`` to the node itself: no cleanup, no ``finally``, as a power cut.
4. The points (``POINTS``) and their index:

   ==================  ==========================================================
   ``after_step:<i>``  after instruction ``i`` (from 0) of an install's script, the
                       instructions after the point of no return
   ``releases_write``  in ``write_releases``: ``0`` once the temp file is synced,
   ``:<n>``            before the rename; ``1`` after the rename, before the
                       folder's fsync
   ``unpack_move:<k>`` in ``unpack_package``: after the ``k``-th directory is
                       renamed into place (``0``: staging complete, none moved)
   ``remove_rename``   in a remove (``_removal``): after the ``k``-th folder of
   ``:<k>``            the release is renamed aside (from 1), before RELEASES
   ``remove_delete``   in a remove, RELEASES written: after the ``k``-th folder
   ``:<k>``            set aside is deleted (``0``: none deleted yet)
   ``remove_entries``  in a remove, RELEASES written: after the ``n``-th entry
   ``:<n>``            (file, link or folder) is deleted, over all its folders
   ``rollout_confirm`` in a cluster rollout: ``0`` when the node's release agent is
   ``:0``              asked to confirm it runs the new release (installed, not yet
                       permanent anywhere)
   ==================  ==========================================================

5. Cost when unused: one ``os.environ`` lookup per call site (``hook`` returns None).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = ["ENV", "MARKER", "POINTS", "hook"]

#: The environment variable listing the points a node may be killed at.
ENV = "SERVER_FAULT_INJECTION"
#: The marker file, relative to the node root, naming the one point armed.
MARKER = "run/fault-injection-armed"
POINTS = (
    "after_step",
    "releases_write",
    "unpack_move",
    "remove_rename",
    "remove_delete",
    "remove_entries",
    "rollout_confirm",
)

logger = logging.getLogger(__name__)


def hook(root: Path, point: str) -> Callable[[int], None] | None:
    """A function to call with each index reached at ``point``, or None when not armed.

    The function kills the node (``SIGKILL``) when called with the armed index, after
    removing the marker file.
    """
    allowed = os.environ.get(ENV)
    if not allowed:
        return None
    armed = _armed(root, point, allowed)
    if armed is None:
        return None
    logger.critical(
        "fault injection armed: the node will be killed at %s:%d",
        point,
        armed,
        extra={"point": point, "index": armed, "root": str(root)},
    )

    def reached(index: int) -> None:
        if index == armed:
            _kill(root, point, index)

    return reached


def _armed(root: Path, point: str, allowed: str) -> int | None:
    """The index the marker arms at ``point``, if the variable allows it."""
    marker = root / MARKER
    try:
        info = os.lstat(marker)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            logger.warning("fault injection: %s is not a plain file of this user", marker)
            return None
        text = marker.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("fault injection: cannot read %s: %s", marker, exc)
        return None
    name, _, number = text.partition(":")
    if name != point:
        return None
    if name not in POINTS or not number.isdigit():
        logger.warning("fault injection: %s holds %r, not <point>:<n>", marker, text)
        return None
    entries = {entry.strip() for entry in allowed.split(",")}
    if name not in entries and text not in entries:
        logger.warning("fault injection: %s arms %s, which %s does not allow", marker, text, ENV)
        return None
    return int(number)


def _kill(root: Path, point: str, index: int) -> None:
    marker = root / MARKER
    with contextlib.suppress(FileNotFoundError):
        marker.unlink()
    folder = os.open(marker.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    logger.critical("fault injection: killing the node at %s:%d", point, index)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)
